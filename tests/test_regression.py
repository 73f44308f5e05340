"""Regression (STS-B-style pairs with a float score) as one registry entry: record, metrics, map, select, audit, run.

Each example's closeness at an epoch is exp(-(prediction - score)^2 / (2 s^2)), s the standard
deviation of the split's gold scores, stored as the pseudo-logits [0, z] with sigmoid(z) the
closeness; the prediction and gold score are kept in the epoch files (docs/tasks.md).
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import write_jsonl
from datacarto.dynamics.cache import get_metrics
from datacarto.dynamics.regression import load_scores, squared_errors
from datacarto.dynamics.store import dynamics_dir, load_dynamics, read_manifest
from datacarto.errors import DatacartoError
from datacarto.metrics import REGIONS
from datacarto.tasks import TASK_TYPES, TaskSpec, head_task
from datacarto.testing import make_tiny_model_dir, toy_score_words, toy_scored_pairs

FAST = {"num_train_epochs": 3, "per_device_train_batch_size": 8, "per_device_eval_batch_size": 32,
        "learning_rate": 5e-3, "use_cpu": True, "disable_tqdm": True, "save_strategy": "no",
        "logging_strategy": "no", "report_to": "none", "seed": 0}
TASK = next(t.name for t in TASK_TYPES.values() if t.numeric)


@pytest.fixture(scope="module")
def regressor(tmp_path_factory):
    return make_tiny_model_dir(tmp_path_factory.mktemp("reg") / "model", toy_score_words(), num_labels=1,
                               problem_type=TASK, dropout=0.0)


@pytest.fixture(scope="module")
def rows():
    return toy_scored_pairs(60)


@pytest.fixture(scope="module", params=["training_pass", "epoch_end"])
def run(request, regressor, rows, tmp_path_factory):
    from datacarto.train.baseline import train_baseline

    root = tmp_path_factory.mktemp(request.param)
    data = write_jsonl(root / "train.jsonl", rows)
    out = root / "run"
    train_baseline(model=regressor, train=str(data), task_spec=TaskSpec(task=TASK), output_dir=out,
                   training_args=FAST, dynamics_mode=request.param)
    return out


def test_a_one_output_head_is_a_regression():
    from transformers import BertConfig

    assert head_task("BertForSequenceClassification", BertConfig(num_labels=1)).name == TASK
    assert head_task("BertForSequenceClassification", BertConfig(num_labels=3)).name != TASK


def test_records_the_gold_scores_and_the_closeness(run, rows):
    manifest = read_manifest(dynamics_dir(run))
    assert manifest["task"] == TASK
    ids, values = load_scores(run)
    gold = np.array([r["label"] for r in rows], dtype=np.float64)[ids]
    for epoch in range(values["score"].shape[1]):  # the stored gold is the data's score, row by row
        np.testing.assert_allclose(values["score"][:, epoch], gold, rtol=1e-6)
    dyn = load_dynamics(run)
    assert dyn.logits.shape == (len(rows), 3, 2) and set(dyn.gold.tolist()) == {1}
    closeness = 1 / (1 + np.exp(-(dyn.logits[..., 1] - dyn.logits[..., 0]).astype(np.float64)))
    s = np.std(gold)
    expected = np.exp(-((values["prediction"] - values["score"]) ** 2) / (2 * s ** 2))
    np.testing.assert_allclose(closeness, expected, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(squared_errors(run).to_numpy(), (values["prediction"] - values["score"]) ** 2)


def test_the_map_table_shows_each_rows_squared_error(run, tmp_path):
    """A regression's page shows squared_error beside the other per-row scores: each row's own value
    (stored to 1/65534 of its range)."""
    import pandas as pd

    from datacarto.maps.interactive import decode_payload
    from datacarto.maps.run_maps import write_run_maps

    m = get_metrics(run)
    write_run_maps(run, html=tmp_path / "map.html")
    meta, arrays, _ = decode_payload((tmp_path / "map.html").read_text(encoding="utf-8"))
    assert "squared_error" in [s["name"] for s in meta["scores"]]
    shown = pd.Series(arrays["squared_error"], index=arrays["row_id"]).reindex(m.index)
    error = m["squared_error"]
    np.testing.assert_allclose(shown, error, atol=(error.max() - error.min()) / 65534 + 1e-12)


def test_metrics_map_and_select(run, rows, tmp_path):
    from datacarto.dynamics.subsets import select_from_run
    from datacarto.maps.run_maps import write_run_maps

    m = get_metrics(run)
    ids, values = load_scores(run)
    np.testing.assert_allclose(m.loc[ids, "confidence"], np.mean(
        np.exp(-((values["prediction"] - values["score"]) ** 2) / (2 * np.std(values["score"][:, 0]) ** 2)), axis=1),
        rtol=1e-4)
    np.testing.assert_allclose(m.loc[ids, "squared_error"], np.mean((values["prediction"] - values["score"]) ** 2, 1))
    assert set(m["region"].dropna()) <= set(REGIONS)
    page = tmp_path / "map.html"
    maps = write_run_maps(run, html=page, png=tmp_path / "map.png")
    assert page.stat().st_size > 0 and (tmp_path / "map.png").stat().st_size > 0
    assert maps.suspects is None  # numbers, not classes: no label-error column on the page
    from datacarto.dynamics.label_errors import run_label_errors

    with pytest.raises(DatacartoError, match="is a regression run"):
        run_label_errors(run)
    chosen = select_from_run(run, m, region="hard-to-learn", fraction=0.5)
    assert len(chosen) and set(m.loc[chosen, "region"]) == {"hard-to-learn"}
    clusters = select_from_run(run, m, method="trajectory-clusters", clusters=2, fraction=0.3)
    assert len(clusters) == round(0.3 * len(m))


def test_the_audit_finds_injected_score_noise(regressor, tmp_path):
    from datacarto.audit_tasks import run_task_audit

    rows = toy_scored_pairs(90)
    data = write_jsonl(tmp_path / "train.jsonl", rows)
    result = run_task_audit(task=TASK, dataset=data, model=regressor, output_dir=tmp_path / "a", noise=0.1, seed=1,
                            training_args={**FAST, "num_train_epochs": 16, "learning_rate": 3e-3})
    assert result.n_examples == 90 and result.n_flipped == 9
    report = json.loads((tmp_path / "a" / "audit.json").read_text())
    noisy = [json.loads(line) for line in (tmp_path / "a" / "noisy_train.jsonl").read_text().splitlines()]
    moved = [abs(n["label"] - r["label"]) for n, r in zip(noisy, rows) if n["noisy_units"]]
    assert len(moved) == 9 and min(moved) >= (5 - 0) / 4 - 0.31  # at least a quarter of the range away
    scores = result.scores.set_index("score")
    print("regression audit AUROC", scores["auroc"].to_dict())
    assert report["config"]["task"] == TASK
    assert scores.loc["squared_error", "auroc"] > 0.75 and scores.loc["confidence", "auroc"] > 0.75


def test_datacarto_run_scores_rmse_and_spearman(regressor, tmp_path, capsys):
    import pandas as pd
    from scipy.stats import spearmanr

    from datacarto.cli import main
    from datacarto.pipeline import load_predictions

    rows = toy_scored_pairs(56)
    splits = {"train": rows[:32], "validation": rows[32:44], "test": rows[44:]}
    files = {s: write_jsonl(tmp_path / f"{s}.jsonl", r) for s, r in splits.items()}
    out = tmp_path / "run"
    assert main(["run", "--model", regressor, "--dataset", files["train"], "--validation", files["validation"],
                 "--test", files["test"], "--output-dir", str(out), "--task", TASK, "--num_train_epochs", "2",
                 "--per_device_train_batch_size", "8", "--learning_rate", "5e-3", "--use_cpu",
                 "--recipes", "hard:metric=confidence,fraction=0.25"]) == 0
    assert f"task: {TASK} (given)" in capsys.readouterr().out
    table = pd.read_csv(out / "evaluation" / "accuracy.csv").set_index("model")
    gold = np.array([r["label"] for r in splits["validation"]])
    for name in ("baseline", "focused/hard", "control/hard"):
        values = load_predictions(out / "predictions" / f"{name}.npz")["validation"]
        np.testing.assert_allclose(values[:, 3], gold, rtol=1e-6)  # the predictions keep the gold scores
        row = table.loc[name]
        assert row["validation_rmse"] == pytest.approx(np.sqrt(np.mean((values[:, 2] - gold) ** 2)), rel=1e-5)
        assert row["validation_spearman"] == pytest.approx(spearmanr(values[:, 2], gold).statistic, rel=1e-5)
    md = (out / "report.md").read_text()
    assert f"Task: {TASK}." in md and "## Held-out RMSE" in md and "validation Spearman" in md
    assert "ensemble/" not in md and "barely learned" not in md
    shown = [[c.strip() for c in line.strip("|").split("|")]
             for line in md[md.index("### Examples"):md.index("## Focused subsets")].splitlines()]
    shown = [cells for cells in shown if cells[0].isdigit()]
    assert shown and all(cells[3] == f"{splits['train'][int(cells[0])]['label']:.3f}" for cells in shown)
