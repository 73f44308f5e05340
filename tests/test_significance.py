"""Intervals and paired tests of the pure core (datacarto.significance) against known cases."""

from __future__ import annotations

import math

import numpy as np
import pytest

from datacarto.errors import DatacartoError
from datacarto.significance import (
    accuracy_interval,
    compare_paired,
    flag_precision_recall,
    fmt_p,
    mcnemar_test,
    paired_bootstrap,
)


def answers(right: int, n: int) -> np.ndarray:
    return np.arange(n) < right


def test_wilson_interval_of_known_cases():
    # 8 of 10: the textbook Wilson 95% interval (Newcombe 1998, method 3) is 0.490 to 0.943
    acc, low, high = accuracy_interval(answers(8, 10))
    assert acc == 0.8 and low == pytest.approx(0.4902, abs=1e-4) and high == pytest.approx(0.9433, abs=1e-4)
    # 0 of 10: the interval starts at 0 and reaches z^2 / (n + z^2)
    z2 = 1.959963984540054 ** 2
    assert accuracy_interval(answers(0, 10))[1:] == pytest.approx((0.0, z2 / (10 + z2)))
    # all right: the mirror image
    assert accuracy_interval(answers(10, 10))[1:] == pytest.approx((10 / (10 + z2), 1.0))
    # a wider interval at 99%, a narrower one with more rows
    assert accuracy_interval(answers(8, 10), 0.99)[1] < low
    assert accuracy_interval(answers(800, 1000))[2] - accuracy_interval(answers(800, 1000))[1] < high - low
    assert all(math.isnan(x) for x in accuracy_interval(np.array([], dtype=bool)))


def test_mcnemar_exact_test_of_known_cases():
    a = np.r_[np.ones(10, bool), np.zeros(2, bool), np.ones(30, bool)]
    b = np.r_[np.zeros(10, bool), np.ones(2, bool), np.ones(30, bool)]
    only_a, only_b, p = mcnemar_test(a, b)
    # 10 against 2 disagreements: two-sided binomial p = 2 * P(X <= 2 | 12, 1/2) = 2 * 79 / 4096
    assert (only_a, only_b) == (10, 2) and p == pytest.approx(2 * 79 / 4096)
    assert mcnemar_test(b, a) == (2, 10, pytest.approx(p))  # symmetric
    assert mcnemar_test(a, a) == (0, 0, 1.0)  # never disagree: no evidence
    assert mcnemar_test([1, 0, 1, 0], [0, 1, 0, 1])[2] == 1.0  # 2 against 2: p = 1


def test_paired_bootstrap_interval():
    rng = np.random.default_rng(1)
    b = rng.random(2000) < 0.7
    a = b.copy()
    flip = rng.choice(2000, 100, replace=False)
    a[flip[:80]] = True  # a is right on 80 more of these rows ...
    a[flip[80:]] = False  # ... and wrong on 20
    diff, low, high = paired_bootstrap(a, b, seed=0)
    assert diff == pytest.approx(a.mean() - b.mean())
    assert low < diff < high and low > 0
    # the normal approximation of the paired difference: sd = sqrt(b + c - (b - c)^2 / n) / n
    only_a, only_b = int((a & ~b).sum()), int((~a & b).sum())
    sd = math.sqrt(only_a + only_b - (only_a - only_b) ** 2 / 2000) / 2000
    assert high - low == pytest.approx(2 * 1.96 * sd, rel=0.1)
    assert paired_bootstrap(a, b, seed=0) == (diff, low, high)  # seeded
    assert paired_bootstrap(a, a) == (0.0, 0.0, 0.0)
    assert paired_bootstrap(b, a, seed=0)[0] == -diff


def test_compare_paired_and_its_line():
    a, b = answers(90, 100), answers(80, 100)
    c = compare_paired(a, b)
    assert c.n == 100 and c.accuracy_a == accuracy_interval(a) and c.accuracy_b == accuracy_interval(b)
    assert (c.only_a, c.only_b) == (10, 0) and c.p_value == pytest.approx(2 / 1024)
    assert c.difference[0] == pytest.approx(0.1)
    line = c.describe("cleaned", "control")
    assert line.startswith("cleaned - control: +10.0 points (95% interval +")
    assert line.endswith("McNemar p = 0.002 (10 rows only cleaned gets right, 0 only control)")
    assert fmt_p(0.0004) == "< 0.001" and fmt_p(0.5) == "0.500"
    strong = compare_paired(answers(100, 100), answers(50, 100)).describe()
    assert "McNemar p < 0.001 (50 rows only a gets right, 0 only b)" in strong


def test_the_package_exports_them():
    import datacarto
    from datacarto import significance

    for name in ("accuracy_interval", "compare_paired", "mcnemar_test", "paired_bootstrap"):
        assert getattr(datacarto, name) is getattr(significance, name)


def test_flag_precision_recall():
    noisy = np.array([1, 1, 1, 1, 0, 0, 0, 0, 0, 0], bool)
    flagged = np.array([1, 1, 1, 0, 1, 0, 0, 0, 0, 0], bool)
    assert flag_precision_recall(flagged, noisy) == (3, 0.75, 0.75)
    hits, precision, recall = flag_precision_recall(np.zeros(10, bool), noisy)
    assert hits == 0 and math.isnan(precision) and recall == 0.0


@pytest.mark.parametrize("a, b, needle", [
    ([1, 0, 2], [1, 0, 1], "correct_a must be one 0/1 or boolean value per test row"),
    ([1, 0], [1, 0, 1], "the same test rows: 2 against 3"),
    ([[1, 0]], [[1, 0]], "one 0/1 or boolean value"),
])
def test_bad_answers_are_refused(a, b, needle):
    with pytest.raises(DatacartoError, match=None) as info:
        compare_paired(a, b)
    assert needle in str(info.value)


def test_bad_settings_are_refused():
    with pytest.raises(DatacartoError, match="confidence must be in"):
        accuracy_interval([1, 0], confidence=95)
    with pytest.raises(DatacartoError, match="resamples must be a positive integer"):
        paired_bootstrap([1, 0], [0, 1], resamples=0)


def test_precision_at_recall_is_the_best_cut_reaching_the_recall():
    import doctest

    import datacarto.noise as noise_module
    from datacarto.noise import precision_at_recall

    assert doctest.testmod(noise_module).failed == 0 and doctest.testmod(noise_module).attempted >= 1
    rng = np.random.default_rng(3)
    noisy = rng.random(300) < 0.2
    score = np.round(noisy * 0.8 + rng.random(300), 1)  # ties at one decimal
    for recall in (0.1, 0.5, 0.6, 0.9, 1.0):
        best = 0.0
        for cut in np.unique(score):  # brute force: flag every row scoring >= cut
            flagged = score >= cut
            if (flagged & noisy).sum() >= recall * noisy.sum():
                best = max(best, (flagged & noisy).sum() / flagged.sum())
        assert precision_at_recall(score, noisy, recall) == pytest.approx(best)
    with_nan = np.append(score, np.nan)
    assert precision_at_recall(with_nan, np.append(noisy, True), 0.5) == precision_at_recall(score, noisy, 0.5)
    for bad, match in (((score, noisy, 0.0), "recall"), ((score, noisy, 1.5), "recall"),
                       ((score, np.zeros(300, bool), 0.5), "at least one noisy row")):
        with pytest.raises(DatacartoError, match=match):
            precision_at_recall(*bad)
