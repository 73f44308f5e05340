"""``datacarto run`` on every task type: units predicted and scored per task, focused models, the report.

Each task runs the whole pipeline once on tiny generated data (a tiny BERT, a tiny GPT-2). The
test rebuilds the units of the validation set from the raw rows it wrote, and recomputes the
task's scores from the saved predictions, so neither can drift from what the units mean.
"""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest

from conftest import cli_fails, write_jsonl
from datacarto.pipeline import PipelineConfig, load_predictions, run_pipeline
from datacarto.testing import (
    TOY_TAGS,
    make_tiny_causal_lm_dir,
    make_tiny_model_dir,
    toy_choices,
    toy_instruction_words,
    toy_instructions,
    toy_multilabel,
    toy_task_words,
    toy_tokens,
)

TRAINING = {"num_train_epochs": 2, "per_device_train_batch_size": 8, "per_device_eval_batch_size": 32,
            "learning_rate": 5e-3, "use_cpu": True, "disable_tqdm": True, "save_strategy": "no",
            "logging_strategy": "no", "report_to": "none"}
RECIPE = [{"name": "hard", "metric": "confidence", "fraction": 0.25}]
S2L = {"name": "s2l", "method": "trajectory-clusters", "fraction": 0.25, "clusters": 3}
WEATHER = ["sunny", "rainy", "windy"]
#: task -> (rows maker, config keys)
TASKS = {
    "multiple-choice": (toy_choices, {"choice_columns": ["option1", "option2"], "text_columns": ["sentence"]}),
    "multi-label": (toy_multilabel, {"label_column": "labels", "class_names": WEATHER}),
    "token-classification": (toy_tokens, {"class_names": TOY_TAGS}),
    "causal-lm": (lambda n: toy_instructions(n, corrupt=0.1), {"prompt_column": "prompt",
                                                               "response_column": "response",
                                                               "noise_column": "corrupted"}),
}


def expected_gold(task, rows) -> np.ndarray:
    """The gold of every unit of ``rows``, in (row, sub) order, from the raw data."""
    if task == "multiple-choice":
        return np.array([r["label"] for r in rows])
    if task == "multi-label":
        return np.array([[int(j in r["labels"]) for j in range(len(WEATHER))] for r in rows]).reshape(-1)
    if task == "token-classification":
        return np.concatenate([r["ner_tags"] for r in rows])
    return np.ones(len(rows), dtype=np.int64)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("task_models")
    return {"bert": make_tiny_model_dir(root / "bert", toy_task_words(), dropout=0.0),
            "gpt": make_tiny_causal_lm_dir(root / "gpt", toy_instruction_words())}


_RUNS: dict[str, tuple] = {}


def pipeline_run(task, models, tmp_path_factory):
    """(task, splits, run folder, result) of the pipeline on ``task``'s data, run once per module."""
    if task not in _RUNS:
        _RUNS[task] = _run(task, models, tmp_path_factory)
    return _RUNS[task]


@pytest.fixture(scope="module", params=list(TASKS))
def task_run(request, models, tmp_path_factory):
    return pipeline_run(request.param, models, tmp_path_factory)


@pytest.fixture(scope="module")
def causal_run(models, tmp_path_factory):
    return pipeline_run("causal-lm", models, tmp_path_factory)


def _run(task, models, tmp_path_factory):
    make_rows, keys = TASKS[task]
    rows = make_rows(56)
    root = tmp_path_factory.mktemp(task)
    splits = {"train": rows[:32], "validation": rows[32:44], "test": rows[44:]}
    files = {s: write_jsonl(root / f"{s}.jsonl", r) for s, r in splits.items()}
    config = PipelineConfig(model=models["gpt" if task == "causal-lm" else "bert"], dataset=files["train"],
                            validation=files["validation"], test=files["test"], output_dir=str(root / "run"),
                            training_args=dict(TRAINING), focus_training_args={"num_train_epochs": 1},
                            recipes=[dict(r) for r in RECIPE] + ([dict(S2L)] if task == "causal-lm" else []),
                            title=f"{task} run", **keys)
    result = run_pipeline(config, quiet=True)
    return task, splits, root / "run", result


def test_every_stage_and_the_units_of_each_split(task_run):
    task, splits, out, _ = task_run
    stages = {p.stem: json.loads(p.read_text()) for p in (out / "stages").glob("*.json")}
    assert stages["data"]["summary"]["task_spec"]["task"] == task  # inferred from the columns (no --task given)
    from datacarto.dynamics.store import dynamics_dir, read_manifest

    # the one TaskSpec: resolved by the data stage, written whole into the baseline's manifest at its start
    assert read_manifest(dynamics_dir(out / "baseline"))["task_spec"] == stages["data"]["summary"]["task_spec"]
    with np.load(out / "predictions" / "gold.npz") as gold:
        for split in ("validation", "test"):
            np.testing.assert_array_equal(gold[split], expected_gold(task, splits[split]))
    for name in ("baseline", "focused/hard", "control/hard"):
        preds = load_predictions(out / "predictions" / f"{name}.npz")
        for split in ("validation", "test"):
            assert len(preds[split]) == len(expected_gold(task, splits[split])), (name, split)
    ensembles = json.loads((out / "ensembles.json").read_text())
    assert (ensembles == {}) == (task == "causal-lm")  # a causal LM's per-example statistics are not averaged


def test_scores_are_the_tasks_recomputed_from_the_predictions(task_run):
    task, splits, out, _ = task_run
    table = pd.read_csv(out / "evaluation" / "accuracy.csv").set_index("model")
    gold = expected_gold(task, splits["validation"])
    for name in ("baseline", "focused/hard", "control/hard"):
        values = load_predictions(out / "predictions" / f"{name}.npz")["validation"]
        row = table.loc[name]
        if task == "causal-lm":
            nll, n = values[:, 2].astype(float), values[:, 4].astype(float)
            assert row["validation_loss"] == pytest.approx(np.sum(nll * n) / np.sum(n), rel=1e-6)
            assert "validation_accuracy" not in table.columns
            continue
        pred = values.argmax(1)
        assert row["validation_accuracy"] == pytest.approx(np.mean(pred == gold))
        if task == "multi-label":
            tp = np.sum((pred == 1) & (gold == 1))
            assert row["validation_micro_f1"] == pytest.approx(2 * tp / (np.sum(pred == 1) + np.sum(gold == 1)))
            score = values[:, 1] - values[:, 0]  # AP: the recall gained at each threshold x the precision there
            ap = sum(np.sum((score == t) & (gold == 1)) / np.sum(gold == 1) * np.mean(gold[score >= t] == 1)
                     for t in np.unique(score))
            assert row["validation_micro_ap"] == pytest.approx(ap)
        if task == "token-classification":
            tp = np.sum((pred == gold) & (gold != 0))
            assert row["validation_tag_f1"] == pytest.approx(2 * tp / (np.sum(pred != 0) + np.sum(gold != 0)))


def test_the_causal_lm_loss_is_the_models_own(causal_run):
    """The baseline's held-out loss equals the saved model's token NLL on the validation responses."""
    _, splits, out, _ = causal_run
    import torch
    from transformers import AutoModelForCausalLM

    from test_generative import tokenized

    model = AutoModelForCausalLM.from_pretrained(out / "baseline" / "model")
    ds, _ = tokenized(str(out / "baseline" / "model"), splits["validation"], max_length=128)
    total = count = 0.0
    model.eval()
    with torch.no_grad():
        for row in ds:
            logits = model(input_ids=torch.tensor([row["input_ids"]])).logits[0]
            labels = torch.tensor(row["labels"])
            loss = torch.nn.functional.cross_entropy(logits[:-1], labels[1:], ignore_index=-100, reduction="sum")
            total, count = total + loss.item(), count + int((labels[1:] != -100).sum())
    table = pd.read_csv(out / "evaluation" / "accuracy.csv").set_index("model")
    assert table.loc["baseline", "validation_loss"] == pytest.approx(total / count, rel=1e-4)


def test_focused_models_train_on_the_chosen_examples(task_run):
    task, splits, out, _ = task_run
    from datacarto import load_dynamics

    picked = [json.loads(line)["row_id"] for line in (out / "subsets" / "hard.jsonl").read_text().splitlines()]
    assert len(picked) == 8  # 25% of 32 examples, selected by example
    dyn = load_dynamics(out / "models" / "focused" / "hard")
    assert dyn.manifest["task"] == task
    np.testing.assert_array_equal(dyn.gold, expected_gold(task, [splits["train"][r] for r in picked]))


def test_an_s2l_recipe_is_the_select_commands_selection(causal_run, capsys):
    """A ``method: trajectory-clusters`` recipe picks what ``datacarto select --method trajectory-clusters`` picks."""
    _, _, out, _ = causal_run
    from datacarto.cli import main

    picked = [json.loads(line)["row_id"] for line in (out / "subsets" / "s2l.jsonl").read_text().splitlines()]
    assert main(["select", str(out / "baseline"), "--method", "trajectory-clusters", "--fraction", "0.25",
                 "--clusters", "3", "--out", str(out / "cli_s2l.jsonl")]) == 0
    cli = [json.loads(line)["row_id"] for line in (out / "cli_s2l.jsonl").read_text().splitlines()]
    assert sorted(picked) == sorted(cli) and len(picked) == 8
    table = pd.read_csv(out / "evaluation" / "accuracy.csv").set_index("model")
    assert {"focused/s2l", "control/s2l"} <= set(table.index)


@pytest.mark.parametrize("recipe,message", [
    ({"name": "a", "method": "kmeans", "fraction": 0.3}, "recipe 'a': method must be one of"),
    ({"name": "a", "method": "trajectory-clusters", "clusters": 3}, "recipe 'a': method trajectory-clusters needs a "
                                                                    "fraction"),
    ({"name": "a", "method": "trajectory-clusters", "fraction": 0.3, "metric": "aum"}, "does not rank: metric is for"),
    ({"name": "a", "method": "trajectory-clusters", "fraction": 0.3, "clusters": 0}, "positive integer"),
    ({"name": "a", "metric": "confidence", "fraction": 0.3, "clusters": 3}, "clusters is for method"),
])
def test_bad_trajectory_recipes_are_one_line(recipe, message):
    from datacarto.errors import DatacartoError
    from datacarto.pipeline.config import check_recipes

    with pytest.raises(DatacartoError, match=re.escape(message)):
        check_recipes([recipe])


def test_the_report_speaks_of_the_task(task_run):
    task, splits, out, result = task_run
    md = result.report_md.read_text()
    assert f"Task: {task}." in md
    heading = "## Held-out loss" if task == "causal-lm" else "## Accuracy"
    assert heading in md
    table = md[md.index(heading):md.index("## Time per stage")]
    for name in ("baseline", "focused/hard", "control/hard"):
        assert f"| {name} |" in table
    if task == "multi-label":
        assert "Per label (units, hardest first)" in md and "| windy |" in md and "test micro-F1" in table
    if task == "token-classification":
        assert "Per gold tag" in md and "| B-LOC |" in md and "hardest word: gold tag" in md
    if task == "causal-lm":
        assert "test loss" in table and "ensemble" not in table and "same size, random" in md
        assert "barely learned" not in md  # p(gold) > 1/2 is no accuracy for a causal LM
        corrupted = sum(r["corrupted"] for r in splits["train"])
        assert f"{corrupted} of 32 training responses are known to be wrong (column 'corrupted')" in md


def test_cli_run_with_a_task_and_its_errors(tmp_path, models, capsys):
    from datacarto.cli import main

    rows = toy_tokens(24)
    data = write_jsonl(tmp_path / "tokens.jsonl", rows)
    common = ["run", "--model", models["bert"], "--dataset", data, "--validation", data]
    cli_fails(capsys, [*common, "--output-dir", str(tmp_path / "a"), "--folds", "2"],
              "--folds and --seeds train sequence classifiers only so far, not token-classification")
    cli_fails(capsys, [*common, "--output-dir", str(tmp_path / "b"), "--task", "translation"],
              "config key 'task' must be one of")
    cli_fails(capsys, [*common, "--output-dir", str(tmp_path / "c"), "--task", "token-classification",
                       "--tokens-column", "words"], "column(s) ['words'] not in the training set")
    assert not (tmp_path / "a" / "baseline").exists()
    out = tmp_path / "run"
    assert main([*common, "--output-dir", str(out), "--task", "token-classification", "--class-names",
                 ",".join(TOY_TAGS), "--num_train_epochs", "1", "--per_device_train_batch_size", "8",
                 "--learning_rate", "5e-3", "--use_cpu", "--recipes", "low:metric=confidence,fraction=0.25",
                 "--control", "false"]) == 0
    assert "task: token-classification (given)" in capsys.readouterr().out
    assert "Task: token-classification." in (out / "report.md").read_text()


def test_a_second_run_of_a_task_config_reuses_every_stage(causal_run):
    """Resume: the same task config again runs no stage (the report too is up to date)."""
    _, _, _, result = causal_run
    again = run_pipeline(result.config, quiet=True)
    assert [name for name, record in again.stages.items() if record.ran] == []
    pd.testing.assert_frame_equal(again.accuracy, result.accuracy)



def test_a_changed_task_option_redoes_the_baseline_stage(models, tmp_path):
    """``chat_template`` prepares the same rows but trains on other tokens: the baseline must not be reused.

    The data stage's digest covers what later stages read of it (its summary: the task columns),
    not only the prepared rows.
    """
    import dataclasses
    import shutil

    from transformers import AutoTokenizer

    shutil.copytree(models["gpt"], tmp_path / "lm")
    tokenizer = AutoTokenizer.from_pretrained(tmp_path / "lm")
    tokenizer.chat_template = "{% for m in messages %}{{ m['role'] }} {{ m['content'] }} {% endfor %}"
    tokenizer.save_pretrained(tmp_path / "lm")
    rows = toy_instructions(24)
    files = {s: write_jsonl(tmp_path / f"{s}.jsonl", r) for s, r in (("train", rows[:16]), ("validation", rows[16:]))}
    config = PipelineConfig(model=str(tmp_path / "lm"), dataset=files["train"], validation=files["validation"],
                            output_dir=str(tmp_path / "run"), training_args={**TRAINING, "num_train_epochs": 1},
                            focus_training_args={"num_train_epochs": 1}, recipes=[dict(r) for r in RECIPE],
                            control=False, prompt_column="prompt", response_column="response")
    run_pipeline(config, quiet=True)
    again = run_pipeline(dataclasses.replace(config, chat_template=True), quiet=True)
    assert [name for name, record in again.stages.items() if record.ran][:2] == ["data", "baseline"]
