"""Multiple choice, multi-label and token classification: every unit recorded once per epoch, both modes.

A unit is what carries one gold label: an example (multiple choice), an (example, label) pair
(multi-label, two-class logits [0, z]) or an (example, word) pair (token classification).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from datasets import Dataset
from transformers import AutoTokenizer, Trainer

from conftest import training_args
from datacarto import CartographyCallback, CartographyTrainer, load_dynamics, load_examples
from datacarto.metrics import compute_metrics
from datacarto.models import load_model
from datacarto.tasks import TaskSpec, collator_for, prepare_for_task, tokenize_task
from datacarto.testing import (
    TOY_TAGS,
    make_tiny_model_dir,
    toy_choices,
    toy_multilabel,
    toy_task_words,
    toy_tokens,
)

MODES = ["training_pass", "epoch_end"]
TASKS = ["multiple-choice", "multi-label", "token-classification"]
N = 48


@pytest.fixture(scope="module")
def task_model(tmp_path_factory):
    return make_tiny_model_dir(tmp_path_factory.mktemp("taskmodel") / "tiny", toy_task_words(), dropout=0.0)


def task_data(task, model_dir, n=N, seed=0):
    """(raw rows, tokenized dataset, spec, tokenizer, model) for a task, as a user would prepare them."""
    if task == "multiple-choice":
        rows = toy_choices(n, seed=seed)
        ds, spec = prepare_for_task(Dataset.from_list(rows), TaskSpec(
            task=task, text_columns=["sentence"], choice_columns=["option1", "option2"]))
    elif task == "multi-label":
        rows = toy_multilabel(n, seed=seed)
        ds, spec = prepare_for_task(Dataset.from_list(rows), TaskSpec(
            task=task, text_columns=["text"], label_column="labels", label_names=["sunny", "rainy", "windy"]))
    else:
        rows = toy_tokens(n, seed=seed)
        ds, spec = prepare_for_task(Dataset.from_list(rows), TaskSpec(task=task, label_names=TOY_TAGS))
    tok = AutoTokenizer.from_pretrained(model_dir)
    _, model = load_model(model_dir, spec.num_labels, spec.label_names, task=task)
    return rows, tokenize_task(ds, tok, spec), spec, tok, model


def expected_units(task, rows):
    """(row ids, sub ids, gold) of every unit, in (row, sub) order."""
    if task == "multiple-choice":
        return np.arange(len(rows)), None, np.array([r["label"] for r in rows])
    if task == "multi-label":
        gold = np.array([[int(j in r["labels"]) for j in range(3)] for r in rows]).reshape(-1)
        return np.repeat(np.arange(len(rows)), 3), np.tile(np.arange(3), len(rows)), gold
    lengths = [len(r["tokens"]) for r in rows]
    return (np.repeat(np.arange(len(rows)), lengths), np.concatenate([np.arange(k) for k in lengths]),
            np.concatenate([r["ner_tags"] for r in rows]))


def train(task, mode, model_dir, out, **overrides):
    rows, data, spec, tok, model = task_data(task, model_dir)
    args = training_args(out, **overrides)
    common = dict(model=model, args=args, train_dataset=data, processing_class=tok,
                  data_collator=collator_for(task, tok))
    if mode == "training_pass":
        trainer = CartographyTrainer(**common, label_names=spec.label_names)
    else:
        trainer = Trainer(**common, callbacks=[CartographyCallback(dataset=data, label_names=spec.label_names)])
    trainer.train()
    return rows, data, tok, model


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("task", TASKS)
def test_every_unit_recorded_once_per_epoch(tmp_path, task_model, task, mode):
    rows, data, tok, model = train(task, mode, task_model, tmp_path)
    dyn = load_dynamics(tmp_path)
    row_ids, sub_ids, gold = expected_units(task, rows)
    assert dyn.epochs == [0, 1] and dyn.manifest["task"] == task and dyn.manifest["mode"] == mode
    np.testing.assert_array_equal(dyn.gold, gold)
    assert np.isfinite(dyn.logits).all()
    if sub_ids is None:
        assert not dyn.unit_level and dyn.logits.shape == (len(rows), 2, 2)  # two choices
        np.testing.assert_array_equal(dyn.ids, row_ids)
    else:
        assert dyn.unit_level and dyn.manifest["n_units"] == len(gold)
        np.testing.assert_array_equal(dyn.row_ids, row_ids)
        np.testing.assert_array_equal(dyn.sub_ids, sub_ids)
        np.testing.assert_array_equal(dyn.ids, np.arange(len(gold)))
        assert dyn.num_labels == (2 if task == "multi-label" else 3)
    assert len(load_examples(tmp_path)) == len(rows)


def test_multi_label_pairs_are_the_sigmoid(tmp_path, task_model):
    # epoch_end: the last snapshot is the final model's eval prediction; softmax([0, z]) = sigmoid(z)
    rows, data, tok, model = train("multi-label", "epoch_end", task_model, tmp_path)
    dyn = load_dynamics(tmp_path)
    model.eval()
    feats = data.remove_columns([c for c in data.column_names if c not in ("input_ids", "attention_mask",
                                                                            "token_type_ids")])
    with torch.no_grad():
        z = model(**tok.pad(feats[:], return_tensors="pt")).logits.numpy()
    pairs = dyn.logits[:, -1, :]
    p1 = np.exp(pairs[:, 1]) / np.exp(pairs).sum(axis=1)
    np.testing.assert_allclose(p1, 1 / (1 + np.exp(-z.reshape(-1))), atol=1e-5)
    assert list(load_examples(tmp_path)["label"].iloc[0]) == rows[0]["labels"]  # stored as label ids


def test_unit_metrics_match_a_per_unit_loop(tmp_path, task_model):
    train("token-classification", "training_pass", task_model, tmp_path, num_train_epochs=3)
    dyn = load_dynamics(tmp_path)
    metrics = compute_metrics(dyn)
    for u in [0, 7, len(dyn.gold) - 1]:
        probs = []
        for e in range(dyn.n_epochs):
            z = dyn.logits[u, e].astype(np.float64)
            p = np.exp(z - z.max())
            probs.append(p[dyn.gold[u]] / p.sum())
        assert metrics.loc[u, "confidence"] == pytest.approx(np.mean(probs), abs=1e-6)
        assert metrics.loc[u, "variability"] == pytest.approx(np.std(probs), abs=1e-6)


@pytest.mark.parametrize("task,change,message", [
    ("token-classification", lambda r: {**r, "ner_tags": r["ner_tags"][:-1]}, "tokens but"),
    ("token-classification", lambda r: {**r, "ner_tags": [7] * len(r["tokens"])}, "out of range for 3 tags"),
    ("multi-label", lambda r: {**r, "labels": 1}, "must hold a list of label ids"),
    ("multi-label", lambda r: {**r, "labels": [5]}, "out of range for 3 labels"),
    ("multiple-choice", lambda r: {**r, "option2": ""}, "empty choice"),
])
def test_bad_task_data_is_one_line(task, change, message):
    from datacarto.errors import DatacartoError

    rows = {"token-classification": toy_tokens, "multi-label": toy_multilabel, "multiple-choice": toy_choices}[task](8)
    ds = Dataset.from_list([change(r) for r in rows])
    with pytest.raises(DatacartoError, match=message):
        if task == "token-classification":
            prepare_for_task(ds, TaskSpec(task=task, label_names=TOY_TAGS))
        elif task == "multi-label":
            prepare_for_task(ds, TaskSpec(task=task, text_columns=["text"], label_column="labels",
                                          label_names=["sunny", "rainy", "windy"]))
        else:
            prepare_for_task(ds, TaskSpec(task=task, text_columns=["sentence"], choice_columns=["option1", "option2"]))


def test_example_scores_aggregate_the_units(tmp_path, task_model):
    from datacarto.dynamics.cache import get_metrics
    from datacarto.units import summary_by

    rows, *_ = train("token-classification", "training_pass", task_model, tmp_path, num_train_epochs=3)
    units = get_metrics(tmp_path, level="unit")
    examples = get_metrics(tmp_path)
    assert len(units) == sum(len(r["tokens"]) for r in rows) and len(examples) == len(rows)
    for r in [0, 5, len(rows) - 1]:
        mine = units[units["row_id"] == r]
        assert examples.loc[r, "confidence"] == pytest.approx(mine["confidence"].mean())
        assert examples.loc[r, "confidence_min"] == pytest.approx(mine["confidence"].min())
        assert examples.loc[r, "hardest_unit"] == mine.loc[mine["confidence"].idxmin(), "sub_id"]
        assert examples.loc[r, "n_units"] == len(rows[r]["tokens"])
        assert examples.loc[r, "hard_share"] == pytest.approx((mine["region"] == "hard-to-learn").mean())
    assert set(examples["region"].dropna()) <= {"easy-to-learn", "ambiguous", "hard-to-learn"}
    tags = summary_by(units, units["gold"].to_numpy(), TOY_TAGS)
    assert set(tags.index) == set(TOY_TAGS) and tags["n"].sum() == len(units)


def test_select_and_export_by_example(tmp_path, task_model, capsys):
    from datacarto.cli import main

    rows, *_ = train("multi-label", "training_pass", task_model, tmp_path / "run")
    out = tmp_path / "amb.jsonl"
    assert main(["select", str(tmp_path / "run"), "--region", "ambiguous", "--fraction", "0.5",
                 "--out", str(out)]) == 0
    import json

    picked = [json.loads(line) for line in out.read_text().splitlines()]
    from datacarto.dynamics.cache import get_metrics

    examples = get_metrics(tmp_path / "run")
    n_amb = int((examples["region"] == "ambiguous").sum())
    # region mode takes min(round(fraction x N), M) examples (docs/select.md): N examples, not units
    assert len(picked) == min(round(0.5 * len(rows)), n_amb) and len(examples) == len(rows)
    assert all(p["text"] == rows[p["row_id"]]["text"] and p["label"] == rows[p["row_id"]]["labels"] for p in picked)


CLI_FAST = ["--num_train_epochs", "2", "--per_device_train_batch_size", "8", "--learning_rate", "5e-3", "--use_cpu",
            "--disable_tqdm", "true", "--save_strategy", "no", "--logging_strategy", "no", "--report_to", "none"]


@pytest.mark.parametrize("task,flags,inferred", [
    ("multiple-choice", ["--text-columns", "sentence", "--choice-columns", "option1,option2"],
     "--choice-columns given"),
    ("multi-label", ["--label-column", "labels", "--class-names", "sunny,rainy,windy"], "'labels' holds a list"),
    ("token-classification", ["--class-names", ",".join(TOY_TAGS)], "columns 'tokens' and 'ner_tags'"),
])
def test_cli_train_metrics_map_for_each_task(tmp_path, task_model, capsys, task, flags, inferred):
    from conftest import write_jsonl
    from datacarto.cli import main

    make = {"multiple-choice": toy_choices, "multi-label": toy_multilabel, "token-classification": toy_tokens}[task]
    rows = make(N)
    data = write_jsonl(tmp_path / "train.jsonl", rows)
    dev = write_jsonl(tmp_path / "dev.jsonl", make(16, seed=1))
    out = tmp_path / "run"
    assert main(["train", "--model", task_model, "--dataset", data, "--validation", dev, *flags,
                 "--output-dir", str(out), *CLI_FAST]) == 0
    assert f"task: {task} ({inferred}" in capsys.readouterr().err  # inferred from the columns, and printed
    dyn = load_dynamics(out)
    row_ids, sub_ids, gold = expected_units(task, rows)
    np.testing.assert_array_equal(dyn.gold, gold)
    assert dyn.manifest["task"] == task and load_dynamics(out, "validation").n_epochs == 2
    assert main(["metrics", str(out), "--out", str(tmp_path / "m.csv")]) == 0
    assert len(__import__("pandas").read_csv(tmp_path / "m.csv")) == len(rows)  # one row per example
    assert main(["map", str(out), "--html", str(tmp_path / "map.html"), "--png", str(tmp_path / "map.png")]) == 0


@pytest.mark.browser
def test_unit_map_tooltip_marks_the_word(open_page, tmp_path, task_model, capsys):
    """Token classification, one point per word: hovering a point shows its sentence with the word marked."""
    from datacarto.cli import main
    from datacarto.dynamics.cache import get_metrics
    from test_maps_browser import hover, isolated, pixel

    rows, *_ = train("token-classification", "training_pass", task_model, tmp_path / "run", num_train_epochs=3)
    html = tmp_path / "units.html"
    assert main(["map", str(tmp_path / "run"), "--level", "unit", "--html", str(html)]) == 0
    units = get_metrics(tmp_path / "run", level="unit")
    i = isolated(units, 1)[0]
    r, s = int(units["row_id"].iloc[i]), int(units["sub_id"].iloc[i])
    words = rows[r]["tokens"]
    marked = " ".join(f"[{w}]" if k == s else w for k, w in enumerate(words))
    page = open_page(html)
    shown, tip = hover(page, pixel(page, units, i))
    assert shown == i and marked in tip
    assert TOY_TAGS[rows[r]["ner_tags"][s]] in tip


@pytest.mark.parametrize("task,width", [("multiple-choice", 2), ("multi-label", 3), ("token-classification", 3)])
def test_unit_noise_is_exact_and_seeded(task, width):
    from datacarto.audit_tasks import inject_unit_noise

    make = {"multiple-choice": toy_choices, "multi-label": toy_multilabel, "token-classification": toy_tokens}[task]
    key = {"multiple-choice": "label", "multi-label": "labels", "token-classification": "ner_tags"}[task]
    labels = [r[key] for r in make(40)]
    noisy, flipped = inject_unit_noise(task, labels, 0.1, width=width, seed=3)
    again, _ = inject_unit_noise(task, labels, 0.1, width=width, seed=3)
    assert noisy == again
    n_units = len(flipped)
    assert flipped.sum() == int(0.1 * n_units + 0.5)  # exactly round(share x units), half up
    if task == "token-classification":
        changed = np.concatenate(noisy) != np.concatenate(labels)
        np.testing.assert_array_equal(changed, flipped)
    elif task == "multi-label":
        before = np.array([[int(j in ids) for j in range(3)] for ids in labels]).reshape(-1)
        after = np.array([[int(j in ids) for j in range(3)] for ids in noisy]).reshape(-1)
        np.testing.assert_array_equal(before != after, flipped)  # a label added or dropped
    else:
        np.testing.assert_array_equal(np.array(noisy) != np.array(labels), flipped)


def test_unit_audit_finds_units_with_low_gold_probability():
    """Synthetic unit dynamics: the changed units get low gold probability, so confidence ranks them first."""
    from datacarto.dynamics.store import Dynamics
    from datacarto.metrics import assign_regions
    from datacarto.noise import audit_scores

    rng = np.random.default_rng(0)
    u, e = 400, 4
    gold = rng.integers(0, 3, u)
    noisy = rng.random(u) < 0.1
    logits = rng.normal(0, 0.5, (u, e, 3)).astype(np.float32)
    logits[np.arange(u), :, gold] += np.where(noisy, -1.0, 2.5)[:, None]
    metrics = compute_metrics(Dynamics(ids=np.arange(u), gold=gold, logits=logits))
    metrics["region"] = assign_regions(metrics)
    table = audit_scores(metrics, noisy).set_index("score")
    assert table.loc["confidence", "auroc"] > 0.9


def test_token_audit_end_to_end(tmp_path, task_model):
    import json

    from conftest import write_jsonl
    from datacarto.audit_tasks import run_task_audit

    data = write_jsonl(tmp_path / "train.jsonl", toy_tokens(N))
    result = run_task_audit(task="token-classification", dataset=data, model=task_model, output_dir=tmp_path / "a",
                            noise=0.1, seed=1, label_names=TOY_TAGS,
                            training_args=dict(num_train_epochs=6, learning_rate=5e-3, per_device_train_batch_size=8,
                                               use_cpu=True, disable_tqdm=True, save_strategy="no",
                                               logging_strategy="no", report_to="none"))
    n_words = sum(len(r["tokens"]) for r in toy_tokens(N))
    assert result.n_examples == n_words and result.n_flipped == int(0.1 * n_words + 0.5)
    report = json.loads((tmp_path / "a" / "audit.json").read_text())
    assert report["config"]["unit"] == "word" and report["n_flipped"] == result.n_flipped
    best = result.scores.set_index("score").loc["confidence", "auroc"]
    print("token audit AUROC (confidence)", best)
    assert best > 0.8  # the tiny model learns the tags of the words; changed tags stay unlearned


def test_cli_audit_with_a_task(tmp_path, task_model, capsys):
    from conftest import write_jsonl
    from datacarto.cli import main

    data = write_jsonl(tmp_path / "train.jsonl", toy_multilabel(N))
    assert main(["audit", "--model", task_model, "--dataset", data, "--label-column", "labels", "--task",
                 "multi-label", "--class-names", "sunny,rainy,windy", "--output-dir", str(tmp_path / "a"),
                 "--noise", "0.1", *CLI_FAST]) == 0
    out = capsys.readouterr().out
    assert "auroc" in out.lower() and (tmp_path / "a" / "audit.json").is_file()


@pytest.mark.parametrize("task", ["token-classification", "multi-label"])
def test_focus_on_a_subset_of_a_task_run(tmp_path, task_model, capsys, task):
    """select by example, then continue training on the subset: the focused run records its units."""
    from datacarto.cli import main

    rows, *_ = train(task, "training_pass", task_model, tmp_path / "run")
    sub = tmp_path / "hard.jsonl"
    assert main(["select", str(tmp_path / "run"), "--metric", "confidence", "--fraction", "0.25", "--order",
                 "hardest", "--out", str(sub)]) == 0
    assert main(["focus", str(tmp_path / "run"), "--subset", str(sub), "--init", "pretrained", "--model", task_model,
                 "--output-dir", str(tmp_path / "focused"), *CLI_FAST]) == 0
    import json

    picked = [json.loads(line)["row_id"] for line in sub.read_text().splitlines()]
    dyn = load_dynamics(tmp_path / "focused")
    assert dyn.manifest["task"] == task and dyn.unit_level and len(set(dyn.row_ids)) == len(picked) == 12
    _, _, gold = expected_units(task, [rows[r] for r in picked])
    np.testing.assert_array_equal(dyn.gold, gold)
