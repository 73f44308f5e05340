"""Pieces of the run report that need no training: the label-noise summary and the old import path."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from datacarto.noise import noise_by_region
from datacarto.pipeline.report import noise_summary


@pytest.fixture
def metrics():
    region = ["easy-to-learn"] * 6 + ["ambiguous"] * 3 + ["hard-to-learn"] * 3
    return pd.DataFrame({"confidence": np.linspace(1, 0, 12), "region": pd.Categorical(region)},
                        index=pd.Index(np.arange(12), name="row_id"))


def test_noise_summary_counts_what_noise_by_region_counts(metrics):
    noisy = np.array([False] * 5 + [True] + [False, False, True] + [True, True, False])
    ns = noise_summary(metrics, noisy)
    spread = noise_by_region(metrics, noisy)
    assert ns["n"] == 12 and ns["n_noisy"] == 4
    assert ns["in_hard"] == spread.loc["hard-to-learn", "n_flipped"] == 2 and ns["hard_size"] == 3
    assert ns["by_region"] == {"easy-to-learn": {"n": 6, "noisy": 1}, "ambiguous": {"n": 3, "noisy": 1},
                               "hard-to-learn": {"n": 3, "noisy": 2}}
    assert 0.5 < ns["auroc_confidence"] <= 1.0  # low confidence (the last rows) holds most of the noise


def test_noise_summary_without_any_noisy_label(metrics):
    ns = noise_summary(metrics, np.zeros(12, dtype=bool))
    assert ns["n_noisy"] == 0 and ns["in_hard"] == 0 and np.isnan(ns["auroc_confidence"])
    assert np.isnan(noise_by_region(metrics, np.zeros(12, dtype=bool)).loc["all", "share_of_flipped"])


def test_vague_pairs_are_counted_like_the_flipped_labels(metrics):
    from sklearn.metrics import roc_auc_score

    from datacarto.pipeline.report import vague_summary

    metrics = metrics.assign(variability=np.r_[np.linspace(0.1, 0.2, 6), [0.4, 0.5, 0.3], [0.1, 0.05, 0.2]])
    vague = np.array([True, False] * 6)
    vs = vague_summary(metrics, vague)
    spread = noise_by_region(metrics, vague)
    assert vs["region"] == "ambiguous" and vs["n_marked"] == 6
    assert vs["in_region"] == spread.loc["ambiguous", "n_flipped"] == 2 and vs["region_size"] == 3
    assert vs["auroc"]["variability"] == pytest.approx(roc_auc_score(vague, metrics["variability"]))
    assert vs["auroc"]["confidence"] == pytest.approx(roc_auc_score(vague, -metrics["confidence"]))


def test_the_package_exports_the_report_function():
    import datacarto
    from datacarto.pipeline import report

    assert report.write_report is datacarto.write_report and report.pct(0.853) == "85.3%"
