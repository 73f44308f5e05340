"""The shared rules of datacarto._validation, and that every call site follows the same one."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from datacarto._validation import (
    check_choice,
    check_fraction,
    check_int_labels,
    fmt_seconds,
    round_half_up,
)
from datacarto.errors import DatacartoError


def test_round_half_up_rounds_halves_up_despite_float_error():
    assert round_half_up(0.15, 30) == 5
    assert round(0.15 * 30) == 4  # Python's round (the old demo rule) rounds halves to even
    assert 0.58 * 25 < 14.5  # here the float product falls just short of the half ...
    assert round_half_up(0.58, 25) == 15  # ... and the slack still rounds it up
    assert round_half_up(2.5) == 3 and round(2.5) == 2
    assert round_half_up(0.33, 200) == 66 and round_half_up(0.1, 0) == 0


def test_every_share_of_n_rounds_the_same_way():
    """select, the audit's flip count and the demo data's row counts: 0.15 x 30 gives 5 in all three."""
    from datacarto.demo_data import _exact
    from datacarto.noise import n_flips
    from datacarto.selection import select

    metrics = pd.DataFrame({"confidence": np.linspace(0, 1, 30), "gold": np.arange(30) % 2},
                           index=pd.Index(np.arange(30), name="row_id"))
    assert select(metrics, metric="confidence", fraction=0.15).size == 5
    assert n_flips(0.15, 30) == 5
    assert _exact(30, 0.15, "flip") == 5
    # a half the float product misses (14.499999999999998): the audit used to give 14 here
    assert select(metrics.iloc[:25], metric="confidence", fraction=0.58).size == 15
    assert n_flips(0.58, 25) == 15
    assert _exact(25, 0.58, "flip") == 15


def test_demo_data_flips_the_rounded_share(tmp_path):
    from datacarto.demo_data import make_demo_dataset

    splits = make_demo_dataset(n_train=30, n_validation=0, n_test=0, flip=0.15, ambiguous=0.0, seed=0)
    assert sum(splits["train"]["is_flipped"]) == 5


def test_check_fraction_intervals_and_messages():
    assert check_fraction(1, "fraction", low_open=True) == 1.0
    with pytest.raises(DatacartoError, match=r"fraction must be in \(0, 1\], got 0"):
        check_fraction(0, "fraction", low_open=True)
    with pytest.raises(DatacartoError, match=r"noise must be in \[0, 1\), got 1.0"):
        check_fraction(1.0, "noise", high_open=True)
    for bad in ("0.5", True, float("nan"), None):
        with pytest.raises(DatacartoError, match=r"share must be a number in \[0, 1\]"):
            check_fraction(bad, "share")


def test_check_choice_names_the_options():
    assert check_choice("b", ("a", "b"), "mode") == "b"
    with pytest.raises(DatacartoError, match="mode must be one of a, b, got 'c'"):
        check_choice("c", ("a", "b"), "mode")


def test_check_int_labels_accepts_whole_floats_only():
    np.testing.assert_array_equal(check_int_labels(np.array([0.0, 2.0])), [0, 2])
    assert check_int_labels(np.array([True, False])).dtype == np.int64
    assert check_int_labels([]).shape == (0,)
    with pytest.raises(DatacartoError, match="gold labels must be whole numbers"):
        check_int_labels(np.array([0.5, 1.0]))
    with pytest.raises(DatacartoError, match="gold labels must be whole numbers"):
        check_int_labels(np.array([np.nan, 1.0]))
    with pytest.raises(DatacartoError, match="labels must be integers, got dtype <U1"):
        check_int_labels(np.array(["a"]), "labels")


@pytest.mark.parametrize("call", [
    lambda: __import__("datacarto.metrics", fromlist=["compute_metrics"]).compute_metrics(
        (np.arange(2), np.array([0.5, 1.0]), np.zeros((2, 1, 2)))),
    lambda: __import__("datacarto.evaluation", fromlist=["x"]).evaluate_by_region(
        {"m": np.zeros((2, 2))}, np.array([0.5, 1.0])),
    lambda: __import__("datacarto.noise", fromlist=["x"]).inject_label_noise(np.array([0.5, 1.0]), 0.1),
])
def test_the_label_check_is_the_same_everywhere(call):
    with pytest.raises(DatacartoError, match="must be whole numbers"):
        call()


def test_fmt_seconds():
    assert fmt_seconds(12.34) == "12.3 s"
    assert fmt_seconds(150) == "2.5 min"
