"""Cleaning recipes of the pipeline: drop or relabel the flagged labels, retrain beside a random-drop control.

A tiny BERT on toy NLI rows learnable from a cue word, 10% of the training labels flipped (the
``is_flipped`` column), cross-fitted with 3 folds (the estimate is out-of-sample).
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest

from datacarto.pipeline import STAGES, PipelineConfig, load_predictions, run_pipeline

NAMES = ["entailment", "neutral", "contradiction"]
RECIPES = [{"name": "drop", "action": "drop"}, {"name": "fix", "action": "relabel"}]
TRAINING = {"num_train_epochs": 8, "per_device_train_batch_size": 8, "per_device_eval_batch_size": 64,
            "learning_rate": 1e-3, "use_cpu": True, "disable_tqdm": True, "save_strategy": "no",
            "logging_strategy": "no", "report_to": "none"}


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    from datacarto.noise import inject_label_noise
    from datacarto.testing import make_tiny_model_dir, toy_nli

    root = tmp_path_factory.mktemp("cleaning")
    rows = toy_nli(240, seed=0)
    true = np.array([r["label"] for r in rows])
    noisy, flipped = inject_label_noise(true, 0.1, seed=0)
    train = [{**r, "label": int(y), "is_flipped": bool(f), "true_label": int(t)}
             for r, y, f, t in zip(rows, noisy, flipped, true)]
    paths = {"train": train, "validation": toy_nli(60, seed=2), "test": toy_nli(90, seed=3)}
    for split, split_rows in paths.items():
        paths[split] = root / f"{split}.jsonl"
        paths[split].write_text("".join(json.dumps(r) + "\n" for r in split_rows))
    model = make_tiny_model_dir(root / "model", [r["premise"] + " " + r["hypothesis"] for r in toy_nli(60, seed=1)],
                                hidden_size=64)
    return {**paths, "model": model, "flipped": flipped, "true": true, "noisy": noisy}


def make_config(world, out, **overrides) -> PipelineConfig:
    values = dict(model=world["model"], dataset=str(world["train"]), validation=str(world["validation"]),
                  test=str(world["test"]), output_dir=str(out), text_columns=["premise", "hypothesis"],
                  class_names=NAMES, max_length=32, training_args=dict(TRAINING), recipes=[dict(r) for r in RECIPES],
                  folds=3, title="cleaning test")
    values.update(overrides)
    return PipelineConfig(**values)


FINDER_CALLS: list = []  # every label-error estimate the `cleaned` run made (its run folder, per call)


@pytest.fixture(scope="module")
def cleaned(world, tmp_path_factory):
    from datacarto.dynamics import label_errors

    real = label_errors.run_label_errors

    def counted(*args, **kwargs):
        FINDER_CALLS.append(args[0])
        return real(*args, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(label_errors, "run_label_errors", counted)
        return run_pipeline(make_config(world, tmp_path_factory.mktemp("run") / "run"), quiet=True)


def read_jsonl(path) -> pd.DataFrame:
    return pd.DataFrame([json.loads(line) for line in path.read_text().splitlines()])


def test_the_flagged_rows_are_the_cross_fitted_estimates(cleaned, world):
    from datacarto.dynamics.label_errors import run_label_errors

    out = cleaned.output_dir
    found = run_label_errors(out / "crossfit", agree_with=[(out / "baseline", "train")])
    assert found.info["dynamics"] == "out-of-sample" and found.info["method"].startswith("agreement")
    assert [s["split"] for s in found.info["stores"]] == ["train", "insample", "train"]
    summary = cleaned.cleaning
    assert summary.refused is None and summary.source["run"] == "crossfit"
    assert summary.estimate["total"] == found.total > 0
    flagged = found.flagged["row_id"].to_numpy()
    # the rows every store flags: out-of-sample, the fold models' in-sample and the baseline's
    for store in (run_label_errors(out / "crossfit", method="out-of-sample"),
                  run_label_errors(out / "crossfit", split="insample"), run_label_errors(out / "baseline")):
        assert set(flagged) <= set(store.flagged["row_id"]) and found.total <= store.total
    for name in ("drop", "fix"):
        corrections = pd.read_csv(out / "cleaning" / f"{name}.corrections.csv")
        assert corrections["row_id"].tolist() == flagged.tolist()
        assert set(corrections["decision"]) == {"drop" if name == "drop" else "relabel"}
    # the flags find the flipped labels far above chance (10% of the rows)
    assert world["flipped"][flagged].mean() > 0.5
    # and the estimate is near the true count
    assert abs(found.total - world["flipped"].sum()) <= 0.35 * world["flipped"].sum()


def test_the_corrected_data_and_the_random_drop_control(cleaned, world):
    from datacarto.dynamics.label_errors import run_label_errors
    from datacarto.selection import random_control

    out = cleaned.output_dir
    flagged = run_label_errors(out / "crossfit", agree_with=[(out / "baseline", "train")]).flagged
    ids = flagged["row_id"].to_numpy()
    dropped = read_jsonl(out / "cleaning" / "drop.jsonl")
    assert len(dropped) == 240 - ids.size and not set(dropped["row_id"]) & set(ids)
    assert (dropped["label"].to_numpy() == world["noisy"][dropped["row_id"]]).all()
    fixed = read_jsonl(out / "cleaning" / "fix.jsonl").set_index("row_id").sort_index()
    assert len(fixed) == 240
    suggested = flagged.set_index("row_id")["suggested_label"].map(NAMES.index)
    assert (fixed.loc[ids, "label"] == suggested.loc[ids]).all()
    others = np.setdiff1d(np.arange(240), ids)
    assert (fixed.loc[others, "label"].to_numpy() == world["noisy"][others]).all()
    assert (fixed.loc[ids, "given_label"].to_numpy() == world["noisy"][ids]).all()  # provenance kept
    # the control drops as many rows, with the same given labels, drawn as select's controls are (the run's seed)
    gold = pd.DataFrame({"gold": world["noisy"]}, index=pd.RangeIndex(240, name="row_id"))
    for name in ("drop", "fix"):
        control = read_jsonl(out / "cleaning" / f"{name}.control.jsonl")
        gone = np.setdiff1d(np.arange(240), control["row_id"])
        assert gone.tolist() == random_control(ids, gold, match_labels=True, seed=0).tolist()
        assert sorted(world["noisy"][gone]) == sorted(world["noisy"][ids])
        entry = cleaned.cleaning.recipes[name]
        assert entry.control.n_train == 240 - ids.size and entry.control.dropped == ids.size
    assert cleaned.cleaning.recipes["fix"].relabelled == int((suggested != world["noisy"][suggested.index]).sum())


def test_the_retrained_models_and_their_evaluation(cleaned, world):
    out = cleaned.output_dir
    names = ["cleaned/drop", "random-drop/drop", "cleaned/fix", "random-drop/fix"]
    test_gold = np.array([json.loads(line)["label"] for line in world["test"].read_text().splitlines()])
    for name in names:
        pred = load_predictions(out / "predictions" / f"{name}.npz")
        assert pred["validation"].shape == (60, 3) and pred["test"].shape == (90, 3)
        assert cleaned.accuracy.loc[name, "test_accuracy"] == pytest.approx((pred["test"].argmax(1) == test_gold).mean())
        if name == "random-drop/fix":  # the same rows as random-drop/drop's: not trained again (below)
            continue
        # trained from the pretrained model with the baseline's arguments; the weights are not kept
        focus = json.loads((out / "models" / name / "focus.json").read_text())
        assert focus["init"] == "pretrained" and focus["start_model"] == str(world["model"])
        assert not list((out / "models" / name).rglob("*.safetensors"))
    # the two controls drop the same rows: trained once
    models = cleaned.cleaning.models
    assert models["random-drop/fix"].same_as == "random-drop/drop" and models["cleaned/fix"].same_as is None
    np.testing.assert_array_equal(load_predictions(out / "predictions" / "random-drop/fix.npz")["test"],
                                  load_predictions(out / "predictions" / "random-drop/drop.npz")["test"])
    assert list(cleaned.accuracy.index) == ["baseline", *names]  # no selection recipe: no focused model


def test_the_map_shows_the_clean_stages_flags_without_estimating_again(cleaned):
    """The clean stage estimates the wrong labels once (both recipes rank by the same score); the maps
    stage reads that estimate: the page's suspects are the clean stage's flags, in its order."""
    from datacarto.maps.interactive import decode_payload

    out = cleaned.output_dir
    assert len(FINDER_CALLS) == 1, FINDER_CALLS
    meta, arrays, _ = decode_payload((out / "maps" / "data_map.html").read_text(encoding="utf-8"))
    flags = pd.read_csv(out / "cleaning" / "drop.corrections.csv")
    suspect = pd.Series(arrays["suspect"], index=arrays["row_id"])
    shown = suspect[suspect > 0].sort_values()
    assert shown.index.tolist() == flags["row_id"].tolist() and shown.tolist() == list(range(1, len(flags) + 1))
    suggested = pd.Series(arrays["suggested"], index=arrays["row_id"])[shown.index]
    assert [meta["label_names"][c] for c in suggested] == flags["suggested_label"].tolist()
    assert meta["review"]["estimate"] == cleaned.cleaning.estimate["total"]


def test_a_second_run_reuses_every_stage_and_a_control_change_retrains_nothing(cleaned, world, tmp_path):
    out = tmp_path / "copy"
    shutil.copytree(cleaned.output_dir, out)
    again = run_pipeline(make_config(world, out), quiet=True)
    assert again.ran == [] and again.skipped == list(STAGES)
    assert again.cleaning == cleaned.cleaning
    pd.testing.assert_frame_equal(again.accuracy, cleaned.accuracy)
    # no control: the clean stage runs again, its cleaned models are reused (same rows, same labels)
    fewer = run_pipeline(make_config(world, out, control=False), quiet=True)
    assert "clean" in fewer.ran and "baseline" in fewer.skipped
    assert {n: m.ran for n, m in fewer.cleaning.models.items()} == {"cleaned/drop": False, "cleaned/fix": False}
    assert list(fewer.accuracy.index) == ["baseline", "cleaned/drop", "cleaned/fix"]


def test_the_clean_stage_reads_exactly_the_config_keys_it_declares(cleaned, world, tmp_path):
    from datacarto.pipeline.context import Context
    from datacarto.pipeline.stages import PIPELINE

    out = tmp_path / "declared"
    shutil.copytree(cleaned.output_dir, out)
    ctx = Context(make_config(world, out).validate(), force={"clean"}, log=lambda msg: None, progress=False)
    for stage in PIPELINE:
        ctx.run(stage)
    declared = next(s for s in PIPELINE if s.name == "clean").config
    assert ctx.runner.config_read["clean"] == set(declared)  # forced: its models are trained again too


def test_the_retrained_weights_are_kept_with_save_focused_models(cleaned, world, tmp_path):
    out = tmp_path / "kept"
    shutil.copytree(cleaned.output_dir, out)
    kept = run_pipeline(make_config(world, out, save_focused_models=True), quiet=True)
    assert "clean" in kept.ran and "baseline" in kept.skipped
    trained = ["cleaned/drop", "random-drop/drop", "cleaned/fix"]  # random-drop/fix: random-drop/drop's predictions
    assert sorted(n for n in kept.models if n != "baseline") == sorted(trained)
    for name in trained:
        assert list((out / "models" / name / "model").glob("*.safetensors"))
        assert out.joinpath("models", name, "model").as_posix() in {p.as_posix() for p in kept.models.values()}


def test_the_report_opens_with_the_estimate_the_flags_and_the_paired_tests(cleaned, world):
    from datacarto.pipeline.document import pct
    from datacarto.significance import accuracy_interval, mcnemar_test

    out = cleaned.output_dir
    md = (out / "report.md").read_text()
    assert md.index("## Label errors and retraining") < md.index("## Data map")
    assert md.index("## Label errors and retraining") == md.index("\n## ") + 1  # the first section
    total = cleaned.cleaning.estimate["total"]
    ids = pd.read_csv(out / "cleaning" / "drop.corrections.csv")["row_id"].to_numpy()
    hits = int(world["flipped"][ids].sum())
    method = cleaned.cleaning.source["method"]  # which stores agreed, each with its own count
    assert method.startswith("agreement of confident learning on out-of-sample 'train' (") and "in-sample" in method
    assert (f"Label errors: {total} of 240 training labels estimated wrong ({pct(total / 240)}; {method}, "
            f"mean of 8 epochs' probabilities); {ids.size} flagged, {hits} of them known "
            f"to be wrong (column 'is_flipped', {int(world['flipped'].sum())} in all): precision "
            f"{hits / ids.size:.2f}, recall {hits / world['flipped'].sum():.2f}.") in md
    gold = np.array([json.loads(line)["label"] for line in world["test"].read_text().splitlines()])
    right = {n: load_predictions(out / "predictions" / f"{n}.npz")["test"].argmax(1) == gold
             for n in ("baseline", "cleaned/drop", "random-drop/drop")}

    def acc(name):
        a, low, high = accuracy_interval(right[name])
        return f"{pct(a)} ({pct(low)}–{pct(high)})"

    b, c, p = mcnemar_test(right["cleaned/drop"], right["random-drop/drop"])
    line = next(x for x in md.splitlines() if x.startswith("drop (drop: "))
    assert f"test accuracy on 90 rows with 95% intervals: cleaned {acc('cleaned/drop')}, baseline " \
           f"{acc('baseline')}, random-drop control {acc('random-drop/drop')}" in line
    assert f"({b} rows only cleaned gets right, {c} only control)" in line
    assert f"McNemar p {'< 0.001' if p < 0.001 else f'= {p:.3f}'} ({b} rows" in line
    assert "| given label | examples | estimated wrong | share |" in md
    per_class = cleaned.cleaning.estimate["per_class"]
    rows = [f"| {name} | {per_class[name]['n']} | {per_class[name]['estimated_errors']} |" for name in NAMES]
    assert [md.index(row) for row in rows] == sorted(md.index(row) for row in rows)  # in the classes' order
    assert "| drop | cleaned: cleaned/drop | " in md and "| drop | random-drop control: random-drop/drop | " in md


def test_a_run_that_cannot_support_an_estimate_retrains_nothing_and_says_why(cleaned, world, tmp_path, monkeypatch):
    from datacarto.dynamics import label_errors
    from datacarto.errors import DatacartoError
    from datacarto.pipeline.report import label_error_lines

    def refuse(*args, **kwargs):
        raise DatacartoError("cannot estimate label errors: the model barely learned")

    out = tmp_path / "refused"
    shutil.copytree(cleaned.output_dir, out)
    monkeypatch.setattr(label_errors, "run_label_errors", refuse)
    result = run_pipeline(make_config(world, out), force=["clean"], quiet=True)
    assert result.cleaning.refused == "cannot estimate label errors: the model barely learned"
    assert list(result.accuracy.index) == ["baseline"]
    line = "Label errors: not estimated, nothing retrained: cannot estimate label errors: the model barely learned."
    assert label_error_lines(out) == [line]
    assert line in (out / "report.md").read_text()


def test_cleaning_recipes_are_checked_with_the_config():
    from datacarto.errors import DatacartoError

    base = dict(model="m", dataset="d.jsonl", validation="v.jsonl")
    for recipes, extra, needle in [
        ([{"name": "x", "action": "burn"}], {}, "recipe 'x': action must be one of drop, relabel, got 'burn'"),
        ([{"name": "x", "action": "drop", "fraction": 0.1}], {}, "unknown key(s) fraction for a cleaning recipe"),
        ([{"name": "x", "action": "drop", "score": "loss"}], {}, "recipe 'x': score must be one of"),
        ([{"name": "x", "action": "drop"}], {"training_args": {"num_train_epochs": 1}},
         "in-sample dynamics of 1 epoch cannot support one"),
    ]:
        with pytest.raises(DatacartoError, match=None) as info:
            PipelineConfig(**base, recipes=recipes, **extra).validate()
        assert needle in str(info.value), str(info.value)
    # cross-fitted, one epoch is enough (out-of-sample probabilities)
    PipelineConfig(**base, recipes=[{"name": "x", "action": "drop"}], folds=2,
                   training_args={"num_train_epochs": 1}).validate()


def test_without_a_cleaning_recipe_the_map_shows_the_same_estimate(cleaned, world):
    """One estimate per run: the map of a run without cleaning recipes flags what the clean stage would."""
    from types import SimpleNamespace

    from datacarto.pipeline.cleaning import clean_review
    from datacarto.pipeline.layout import RunLayout
    from datacarto.pipeline.summaries import CleanSummary

    out = cleaned.output_dir
    config = make_config(world, out)
    flagged_rows = pd.read_parquet(out / "cleaning" / "label_errors.parquet")  # the clean stage's
    no_recipe = SimpleNamespace(config=config, layout=RunLayout(out),
                                rec=lambda stage: SimpleNamespace(summary=CleanSummary()))
    review = clean_review(no_recipe)
    assert review is not None and review.note.startswith("agreement of confident learning")
    assert review.flagged["row_id"].tolist() == flagged_rows["row_id"].tolist()
    assert review.estimate == cleaned.cleaning.estimate["total"]


def test_label_errors_and_apply_corrections_take_the_pipeline_run_folder(cleaned, tmp_path, capsys):
    """A user who ran the pipeline names its folder: the queue holds the report's flags and applies there."""
    from datacarto.cli import main
    from datacarto.errors import DatacartoError
    from datacarto.pipeline.cleaning import folder_estimate_source

    out = cleaned.output_dir
    queue = tmp_path / "queue.csv"
    assert main(["label-errors", str(out), "--out", str(queue), "--top", "0"]) == 0
    printed = capsys.readouterr().out
    assert f"estimated wrong labels: {cleaned.cleaning.estimate['total']} of 240 " in printed
    assert "of baseline (" in printed  # the agreeing store of another run is named by its run
    rows = pd.read_csv(queue)
    assert rows["row_id"].tolist() == pd.read_parquet(out / "cleaning" / "label_errors.parquet")["row_id"].tolist()
    rows["decision"] = "drop"
    rows.to_csv(queue, index=False)
    fixed = tmp_path / "fixed.jsonl"
    assert main(["apply-corrections", str(out), "--corrections", str(queue), "--out", str(fixed)]) == 0
    # the same training data as the clean stage's drop recipe made from the same flags
    assert read_jsonl(fixed)["row_id"].tolist() == read_jsonl(out / "cleaning" / "drop.jsonl")["row_id"].tolist()
    # a store of one of its runs is named by that run's folder
    with pytest.raises(DatacartoError, match="is a pipeline run folder: --split insample"):
        folder_estimate_source(out, "insample")
    assert folder_estimate_source(out / "baseline", "train") == (out / "baseline", "train", [], None)
    # --method in-sample on the folder: its baseline's store (the crossfit store with the in-sample rule is
    # what naming out/crossfit with --method in-sample gives)
    assert folder_estimate_source(out, "train", "in-sample")[:3] == (out / "baseline", "train", [])


def test_a_pipeline_folder_queue_is_ranked_by_the_estimates_score(cleaned, tmp_path, capsys):
    """The report's flags are ranked by the first cleaning recipe's score: so is the folder's queue."""
    from datacarto.cli import main
    from datacarto.dynamics.label_errors import run_label_errors

    out = tmp_path / "run"
    shutil.copytree(cleaned.output_dir, out, ignore=shutil.ignore_patterns("models", "predictions"))
    config = json.loads((out / "config.json").read_text())
    config["recipes"] = [{"name": "drop", "action": "drop", "score": "normalized_margin"}]
    (out / "config.json").write_text(json.dumps(config))
    queue = tmp_path / "queue.csv"
    assert main(["label-errors", str(out), "--out", str(queue), "--top", "0"]) == 0
    capsys.readouterr()
    expected = run_label_errors(out / "crossfit", score="normalized_margin", agree_with=[(out / "baseline", "train")])
    assert pd.read_csv(queue)["row_id"].tolist() == expected.flagged["row_id"].tolist()
    assert pd.read_csv(queue)["score"].unique().tolist() == ["normalized_margin"]
