"""Label-noise audit: noise injection, per-score detection numbers, region spread, plot, CLI."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from datacarto.audit import (
    audit_scores,
    chance_level,
    inject_label_noise,
    noise_by_region,
    plot_roc_curves,
    precision_recall_at_k,
)
from datacarto.errors import DatacartoError
from datacarto.metrics import score_directions

SCORE_DIRECTIONS = score_directions("labels")  # what a label audit ranks by default

# ----------------------------------------------------------------------------------------------
# noise injection


def test_uniform_noise_flips_exactly_the_share_and_is_seeded():
    labels = np.arange(1000) % 4
    noisy, flipped = inject_label_noise(labels, 0.1, seed=3)
    assert flipped.dtype == bool and flipped.sum() == 100
    assert (noisy[flipped] != labels[flipped]).all()
    assert (noisy[~flipped] == labels[~flipped]).all()
    assert noisy.min() >= 0 and noisy.max() <= 3
    again, flipped_again = inject_label_noise(labels, 0.1, seed=3)
    np.testing.assert_array_equal(again, noisy)
    np.testing.assert_array_equal(flipped_again, flipped)
    other, flipped_other = inject_label_noise(labels, 0.1, seed=4)
    assert flipped_other.sum() == 100 and not np.array_equal(flipped_other, flipped)
    # the input is not modified
    np.testing.assert_array_equal(labels, np.arange(1000) % 4)


def test_uniform_noise_rounds_half_up_and_zero_noise_is_a_no_op():
    labels = np.array([0, 1] * 5)
    assert inject_label_noise(labels, 0.25)[1].sum() == 3  # 2.5 -> 3
    assert inject_label_noise(labels, 0.24)[1].sum() == 2
    noisy, flipped = inject_label_noise(labels, 0.0)
    assert not flipped.any() and np.array_equal(noisy, labels)
    assert inject_label_noise(np.arange(8999) % 3, 0.1)[1].sum() == 900


def test_uniform_noise_new_label_is_uniform_over_the_other_labels():
    labels = np.zeros(30000, dtype=int)
    noisy, flipped = inject_label_noise(labels, 0.5, num_labels=4, seed=0)
    counts = np.bincount(noisy[flipped], minlength=4)
    assert counts[0] == 0
    # 15000 flips over 3 labels: 5000 each, binomial sd ~ 58
    assert np.all(np.abs(counts[1:] - 5000) < 300), counts
    # flipped rows are spread over the whole data set, not a block
    rows = np.flatnonzero(flipped)
    assert rows.min() < 1000 and rows.max() > 29000


def test_class_conditional_noise_follows_its_matrix():
    labels = np.arange(30000) % 3
    matrix = [[0, 1, 0],   # 0 -> 1 only
              [0, 0, 1],   # 1 -> 2 only
              [0, 0, 0]]   # 2 never flips
    noisy, flipped = inject_label_noise(labels, 0.2, kind="class-conditional", matrix=matrix, seed=1)
    assert flipped.sum() == 6000
    assert not flipped[labels == 2].any()
    assert (noisy[flipped & (labels == 0)] == 1).all()
    assert (noisy[flipped & (labels == 1)] == 2).all()

    # a row with two targets: its flips split in the matrix's ratio (3:1), within a tolerance
    matrix = [[0.0, 0.75, 0.25], [0.5, 0.0, 0.5], [0.5, 0.5, 0.0]]
    noisy, flipped = inject_label_noise(labels, 0.3, kind="class-conditional", matrix=matrix, seed=2)
    from_zero = noisy[flipped & (labels == 0)]
    assert len(from_zero) > 2000
    assert abs((from_zero == 1).mean() - 0.75) < 0.03
    assert not (noisy[flipped] == labels[flipped]).any()


def test_class_conditional_rows_flip_in_proportion_to_their_flip_mass():
    labels = np.arange(30000) % 2
    # class 1 flips three times as often as class 0; the diagonal is ignored
    matrix = [[0.9, 0.05], [0.15, 0.85]]
    _, flipped = inject_label_noise(labels, 0.1, kind="class-conditional", matrix=matrix, seed=0)
    assert flipped.sum() == 3000
    ratio = flipped[labels == 1].sum() / flipped[labels == 0].sum()
    assert 2.6 < ratio < 3.4, ratio


def test_class_conditional_default_matrix_flips_to_the_next_class():
    labels = np.arange(3000) % 3
    noisy, flipped = inject_label_noise(labels, 0.1, kind="class-conditional", seed=5)
    assert flipped.sum() == 300
    np.testing.assert_array_equal(noisy[flipped], (labels[flipped] + 1) % 3)
    again, _ = inject_label_noise(labels, 0.1, kind="class-conditional", seed=5)
    np.testing.assert_array_equal(again, noisy)


@pytest.mark.parametrize("kwargs, message", [
    ({"noise": -0.1}, "in \\[0, 1\\)"),
    ({"noise": 1.0}, "in \\[0, 1\\)"),
    ({"noise": "lots"}, "number"),
    ({"kind": "gaussian"}, "noise kind"),
    ({"matrix": [[0, 1, 0], [0, 0, 1], [1, 0, 0]]}, "class-conditional"),
    ({"kind": "class-conditional", "matrix": [[0, 1, 0], [1, 0, 0]], "num_labels": None}, "square"),
    ({"kind": "class-conditional", "matrix": np.ones((4, 4))}, "4 x 4 but there are 3 labels"),
    ({"kind": "class-conditional", "matrix": [[0, -1, 2], [1, 0, 0], [1, 0, 0]]}, "non-negative"),
    ({"kind": "class-conditional", "matrix": [[0, np.nan, 1], [1, 0, 0], [1, 0, 0]]}, "finite"),
    ({"kind": "class-conditional", "matrix": np.eye(3)}, "no off-diagonal mass"),
    ({"kind": "class-conditional", "matrix": [[0, 1, 0], [0, 0, 0], [0, 0, 0]], "noise": 0.5},
     "cannot flip 50 labels"),
    ({"num_labels": 2}, "out of range"),
])
def test_noise_injection_rejects_bad_input(kwargs, message):
    labels = np.arange(100) % 3
    with pytest.raises(DatacartoError, match=message):
        inject_label_noise(labels, **{"num_labels": 3, **kwargs})


def test_noise_injection_needs_two_labels_and_integer_labels():
    with pytest.raises(DatacartoError, match="at least 2 labels"):
        inject_label_noise(np.zeros(10, dtype=int), 0.1)
    with pytest.raises(DatacartoError, match="integer"):
        inject_label_noise(np.array(["a", "b"]), 0.1)
    with pytest.raises(DatacartoError, match=">= 0"):
        inject_label_noise(np.array([0, -1, 1]), 0.1)
    with pytest.raises(DatacartoError, match="no labels"):
        inject_label_noise([], 0.1)


# ----------------------------------------------------------------------------------------------
# scoring on a synthetic run


def synthetic_run(n=2000, epochs=4, classes=3, noise=0.1, seed=0):
    """Logits (N, E, C) where the model learns the true label: flipped examples get a low p(gold)."""
    from datacarto.metrics import compute_metrics

    rng = np.random.default_rng(seed)
    true = rng.integers(0, classes, n)
    gold, flipped = inject_label_noise(true, noise, num_labels=classes, seed=seed)
    logits = rng.normal(0, 1.0, (n, epochs, classes))
    # the model grows confident in the *true* label over the epochs, at a per-example pace
    pace = rng.uniform(0.5, 2.0, n)
    logits[np.arange(n), :, true] += pace[:, None] * np.arange(1, epochs + 1)[None, :]
    metrics = compute_metrics((np.arange(n), gold, logits.astype(np.float32)))
    return metrics, flipped


@pytest.fixture(scope="module")
def run():
    return synthetic_run()


def test_confidence_finds_flipped_labels_and_a_random_score_does_not(run):
    metrics, flipped = run
    rng = np.random.default_rng(1)
    frame = metrics.assign(random=rng.random(len(metrics)))
    table = audit_scores(frame, flipped, scores={**SCORE_DIRECTIONS, "random": "high"}).set_index("score")
    assert table.loc["confidence", "auroc"] > 0.97
    assert table.loc["confidence", "average_precision"] > 0.8
    assert abs(table.loc["random", "auroc"] - 0.5) < 0.06
    assert abs(table.loc["random", "average_precision"] - 0.1) < 0.04
    for score in ("confidence", "aum", "last_loss", "self_confidence", "el2n_mean"):
        assert table.loc[score, "auroc"] > 0.9, score
    # k = number noisy and every row scored: precision@k == recall@k
    np.testing.assert_allclose(table["precision_at_k"], table["recall_at_k"])
    assert (table["n"] == len(metrics)).all()


def test_audit_table_is_sorted_best_first_with_directions(run):
    metrics, flipped = run
    table = audit_scores(metrics, flipped)
    assert list(table.columns) == ["score", "direction", "auroc", "average_precision", "precision_at_k",
                                   "recall_at_k", "n"]
    assert set(table["score"]) == set(SCORE_DIRECTIONS)
    assert table["auroc"].is_monotonic_decreasing
    assert dict(zip(table["score"], table["direction"])) == SCORE_DIRECTIONS


def test_direction_matters_and_results_match_sklearn(run):
    from sklearn.metrics import average_precision_score, roc_auc_score

    metrics, flipped = run
    low = audit_scores(metrics, flipped, scores={"confidence": "low"}).iloc[0]
    high = audit_scores(metrics, flipped, scores={"confidence": "high"}).iloc[0]
    assert low.auroc == pytest.approx(1 - high.auroc)
    assert low.auroc == pytest.approx(roc_auc_score(flipped, -metrics["confidence"]))
    assert low.average_precision == pytest.approx(average_precision_score(flipped, -metrics["confidence"]))
    # precision@k by hand: the k least confident
    k = int(flipped.sum())
    top = np.argsort(metrics["confidence"].to_numpy())[:k]
    assert low.precision_at_k == pytest.approx(flipped[top].mean())


def test_perfect_reversed_and_constant_scores():
    noisy = np.array([True] * 10 + [False] * 90)
    frame = pd.DataFrame({"good": noisy * 1.0 + 0.5, "bad": -(noisy * 1.0), "flat": np.ones(100)})
    table = audit_scores(frame, noisy, scores={"good": "high", "bad": "high", "flat": "high"})
    assert list(table["score"]) == ["good", "flat", "bad"]
    good, flat, bad = (table.set_index("score").loc[s] for s in ("good", "flat", "bad"))
    assert good.auroc == 1.0 and good.average_precision == 1.0
    assert good.precision_at_k == 1.0 and good.recall_at_k == 1.0
    assert bad.auroc == 0.0 and bad.precision_at_k == 0.0
    # a constant score ties everything: expected precision over random tie-breaking = noise rate
    assert flat.auroc == 0.5 and flat.precision_at_k == pytest.approx(0.1)
    assert chance_level(noisy)["precision_at_k"] == pytest.approx(0.1)


def test_precision_at_k_shares_ties_at_the_cut():
    # scores 3, 2, 2, 2, 1: top-2 takes the 3 and one of three tied 2s (one of which is noisy)
    s = np.array([3.0, 2, 2, 2, 1])
    y = np.array([True, True, False, False, False])
    p, r = precision_recall_at_k(s, y, 2)
    assert p == pytest.approx((1 + 1 / 3) / 2)
    assert r == pytest.approx((1 + 1 / 3) / 2)
    p, r = precision_recall_at_k(s, y, 1)
    assert p == 1.0 and r == 0.5


def test_rows_with_nan_scores_are_left_out_of_that_score():
    noisy = np.array([True] * 5 + [False] * 45)
    score = np.where(noisy, 0.0, 1.0)
    score[[0, 10]] = np.nan
    frame = pd.DataFrame({"confidence": score, "aum": np.where(noisy, -1.0, 1.0)})
    table = audit_scores(frame, noisy).set_index("score")
    assert table.loc["confidence", "n"] == 48 and table.loc["aum", "n"] == 50
    assert table.loc["confidence", "auroc"] == 1.0


def test_is_noisy_series_is_aligned_by_row_id(run):
    metrics, flipped = run
    truth = pd.Series(flipped, index=metrics.index)
    shuffled = truth.sample(frac=1.0, random_state=0)
    a = audit_scores(metrics, truth, scores=["confidence"])
    b = audit_scores(metrics, shuffled, scores=["confidence"])
    pd.testing.assert_frame_equal(a, b)
    # 0/1 integers work like bools
    c = audit_scores(metrics, flipped.astype(int), scores=["confidence"])
    pd.testing.assert_frame_equal(a, c)


@pytest.mark.parametrize("is_noisy, scores, message", [
    (np.zeros(5, bool), None, "has 5 values"),
    (np.zeros(20, bool), None, "no example is marked noisy"),
    (np.ones(20, bool), None, "every example is marked noisy"),
    (np.r_[np.ones(2), np.zeros(18)] * 2, None, "booleans"),
    (np.r_[[np.nan], np.ones(2), np.zeros(17)], None, "missing"),
    (np.r_[np.ones(2, bool), np.zeros(18, bool)], ["nonsense"], "unknown score 'nonsense'"),
    (np.r_[np.ones(2, bool), np.zeros(18, bool)], ["aum"], "not a column"),
    (np.r_[np.ones(2, bool), np.zeros(18, bool)], {"confidence": "sideways"}, "'low' or 'high'"),
    (np.r_[np.ones(2, bool), np.zeros(18, bool)], [], "no scores"),
])
def test_audit_scores_rejects_bad_input(is_noisy, scores, message):
    frame = pd.DataFrame({"confidence": np.linspace(0, 1, 20)})
    with pytest.raises(DatacartoError, match=message):
        audit_scores(frame, is_noisy, scores=scores)


def test_audit_scores_rejects_a_series_missing_rows():
    frame = pd.DataFrame({"confidence": np.linspace(0, 1, 4)}, index=pd.Index([0, 1, 2, 3], name="row_id"))
    truth = pd.Series([True, False, False, True], index=[0, 1, 2, 9])
    with pytest.raises(DatacartoError, match="no value for 1 metrics rows"):
        audit_scores(frame, truth)


def test_metrics_without_any_known_score_are_rejected():
    with pytest.raises(DatacartoError, match="none of the scores"):
        audit_scores(pd.DataFrame({"x": [1.0, 2.0]}), [True, False])


# ----------------------------------------------------------------------------------------------
# regions and plot


def test_noise_by_region_counts_and_shares():
    region = ["easy-to-learn"] * 6 + ["ambiguous"] * 3 + ["hard-to-learn"] * 3
    noisy = [False] * 5 + [True] + [False, False, True] + [True, True, False]
    frame = pd.DataFrame({"confidence": np.linspace(1, 0, 12), "region": pd.Categorical(region)})
    out = noise_by_region(frame, noisy)
    assert list(out.index) == ["easy-to-learn", "ambiguous", "hard-to-learn", "all"]
    assert out["n"].tolist() == [6, 3, 3, 12]
    assert out["n_flipped"].tolist() == [1, 1, 2, 4]
    np.testing.assert_allclose(out["flipped_share"], [1 / 6, 1 / 3, 2 / 3, 4 / 12])
    np.testing.assert_allclose(out["share_of_flipped"], [0.25, 0.25, 0.5, 1.0])


def test_noise_by_region_on_a_synthetic_run_puts_flips_in_hard_to_learn(run):
    from datacarto.metrics import assign_regions

    metrics, flipped = run
    out = noise_by_region(metrics.assign(region=assign_regions(metrics)), flipped)
    assert out.loc["hard-to-learn", "flipped_share"] > 2 * out.loc["all", "flipped_share"]
    assert out.loc["hard-to-learn", "share_of_flipped"] > out.loc["easy-to-learn", "share_of_flipped"]
    assert out.loc[["easy-to-learn", "ambiguous", "hard-to-learn"], "n_flipped"].sum() == flipped.sum()


def test_plot_roc_curves_draws_one_curve_per_score_with_auroc(run, tmp_path):
    metrics, flipped = run
    path = tmp_path / "roc.png"
    fig = plot_roc_curves(metrics, flipped, path, scores=["confidence", "variability", "aum"])
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert len(labels) == 4  # three scores and chance
    assert labels[0].startswith("confidence (low) AUROC 0.9") or labels[0].startswith("aum")
    assert all("AUROC" in t for t in labels[:3]) and labels[-1].startswith("chance")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_scoring_does_not_import_torch():
    code = ("import sys, numpy as np; from datacarto.audit import audit_scores, inject_label_noise;"
            "import pandas as pd;"
            "y, f = inject_label_noise(np.arange(100) % 3, 0.2);"
            "audit_scores(pd.DataFrame({'confidence': f * -1.0}), f);"
            "assert 'torch' not in sys.modules and 'transformers' not in sys.modules, 'heavy import'")
    subprocess.run([sys.executable, "-c", code], check=True)


# ----------------------------------------------------------------------------------------------
# end to end: the CLI with the tiny model


CLI_TRAINING = ["--use_cpu", "--report_to", "none", "--per_device_train_batch_size", "16",
                "--num_train_epochs", "2", "--learning_rate", "5e-3", "--save_strategy", "no",
                "--disable_tqdm", "true"]


def test_cli_audit_end_to_end(tmp_path, toy_jsonl, tiny_model, capsys):
    from datacarto.cli import main
    from datacarto.dynamics.store import load_examples

    out = tmp_path / "audit"
    code = main(["audit", "--dataset", str(toy_jsonl), "--model", tiny_model, "--noise", "0.1",
                 "--seed", "7", "--text-columns", "premise,hypothesis", "--output-dir", str(out),
                 *CLI_TRAINING])
    assert code == 0
    printed = capsys.readouterr().out
    assert "6 of 60 labels flipped" in printed and "confidence" in printed and "(chance)" in printed
    report = json.loads((out / "audit.json").read_text())
    assert report["n_flipped"] == 6 and report["n_examples"] == 60
    assert report["config"]["noise"] == 0.1 and report["config"]["seed"] == 7
    assert report["config"]["epochs"] == 2
    assert {r["score"] for r in report["scores"]} == set(SCORE_DIRECTIONS)
    assert [r["region"] for r in report["regions"]][-1] == "all"
    assert sum(report["flips"].values()) == 6
    assert (out / "roc.png").stat().st_size > 1000

    # the truth lands in examples.parquet and agrees with the noisy training file
    examples = load_examples(out)
    assert int(examples["is_flipped"].sum()) == 6
    flipped = examples[examples["is_flipped"]]
    assert (flipped["label"] != flipped["original_label"]).all()
    clean = examples[~examples["is_flipped"]]
    assert (clean["label"] == clean["original_label"]).all()
    noisy_file = pd.read_json(out / "noisy_train.jsonl", lines=True)
    assert noisy_file["is_flipped"].sum() == 6
    original = pd.read_json(toy_jsonl, lines=True)
    np.testing.assert_array_equal(noisy_file["original_label"], original["label"])

    # auditing the run again from its recorded column gives the same table
    again = tmp_path / "again"
    assert report["noisy_labels"] == "flipped labels"
    assert main(["audit", "--run", str(out), "--noisy-column", "is_flipped", "--output-dir", str(again)]) == 0
    report2 = json.loads((again / "audit.json").read_text())
    assert report2["n_flipped"] == 6 and report2["scores"] == report["scores"]
    assert "6 of 60 labels marked wrong (column 'is_flipped')" in capsys.readouterr().out
    assert main(["audit", "--run", str(out), "--true-label-column", "original_label",
                 "--output-dir", str(tmp_path / "third")]) == 0
    third = json.loads((tmp_path / "third" / "audit.json").read_text())
    assert third["scores"] == report["scores"]
    # real noise is not "flipped": the output names what it measured
    printed = capsys.readouterr().out
    assert "6 of 60 labels differ from the true label (column 'original_label')" in printed
    assert "flipped" not in printed
    assert third["noisy_labels"] == "labels that differ from the true label (column 'original_label')"


def test_cli_audit_help_documents_both_modes(capsys):
    from datacarto.cli import main

    with pytest.raises(SystemExit) as stop:
        main(["audit", "--help"])
    assert stop.value.code == 0
    printed = capsys.readouterr().out
    assert "two modes" in printed and "--true-label-column" in printed and "--noise-kind" in printed
    assert "labels that differ from the true label" in printed


def test_cli_audit_reports_bad_input_in_one_line(tmp_path, toy_jsonl, tiny_model, capsys):
    from datacarto.cli import main

    code = main(["audit", "--dataset", str(toy_jsonl), "--model", tiny_model, "--noise", "1.5",
                 "--output-dir", str(tmp_path / "x"), "--use_cpu"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.startswith("datacarto: error:") and "[0, 1)" in err and "\n" not in err
    assert not (tmp_path / "x" / "audit.json").exists()

    code = main(["audit", "--run", str(tmp_path / "missing")])
    assert code == 2 and "run folder not found" in capsys.readouterr().err

    code = main(["audit", "--dataset", str(toy_jsonl), "--model", tiny_model, "--noise-kind",
                 "class-conditional", "--noise-matrix", "0,1;1", "--output-dir", str(tmp_path / "y"), "--use_cpu"])
    assert code == 2 and "different lengths" in capsys.readouterr().err


def test_run_audit_with_class_conditional_noise(tmp_path, toy_jsonl, tiny_model):
    from datacarto.audit import run_audit

    out = tmp_path / "cc"
    fields = {"num_train_epochs": 2, "per_device_train_batch_size": 16, "learning_rate": 5e-3, "use_cpu": True,
              "save_strategy": "no", "disable_tqdm": True}  # a dict of TrainingArguments fields works too
    result = run_audit(dataset=str(toy_jsonl), model=tiny_model, output_dir=out, noise=0.2,
                       noise_kind="class-conditional", seed=1, training_args=fields)
    assert result.n_flipped == 12 and result.n_examples == 60
    report = json.loads((out / "audit.json").read_text())
    # the default matrix: every flip goes to the next class
    assert set(report["flips"]) <= {"0 -> 1", "1 -> 2", "2 -> 0"} and sum(report["flips"].values()) == 12
    assert report["config"]["noise_kind"] == "class-conditional"
    assert list(result.scores["score"]) == [r["score"] for r in report["scores"]]
    assert result.regions.loc["all", "n_flipped"] == 12
    # the audit refuses data that already carries its columns
    with pytest.raises(DatacartoError, match="already has column"):
        run_audit(dataset=str(out / "noisy_train.jsonl"), model=tiny_model, output_dir=tmp_path / "again",
                  training_args=fields)
