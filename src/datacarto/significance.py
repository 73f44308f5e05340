"""Is one model better than another on the same test rows? Intervals and paired tests, NumPy/SciPy only.

* :func:`accuracy_interval`: the Wilson score interval of an accuracy (k right of n);
* :func:`mcnemar_test`: McNemar's exact test on the rows where two models disagree (b rows only
  the first gets right, c only the second; two-sided binomial test of b against b + c at 1/2);
* :func:`paired_bootstrap`: the percentile interval of the difference in accuracy, resampling the
  test rows with replacement (each resample keeps both models' answers on a row together);
* :func:`compare_paired`: all three for one pair of models;
* :func:`flag_precision_recall`: how many flagged rows are known to be wrong, and of the known-wrong ones,
  how many were flagged.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import DatacartoError

#: the confidence of every interval unless said otherwise
CONFIDENCE = 0.95


def _correct(values, name: str) -> np.ndarray:
    a = np.asarray(values)
    if a.ndim != 1 or a.dtype.kind not in "biu" or (a.dtype.kind != "b" and not np.isin(a, (0, 1)).all()):
        raise DatacartoError(f"{name} must be one 0/1 or boolean value per test row")
    return a.astype(bool)


def _pair(a, b) -> tuple[np.ndarray, np.ndarray]:
    a, b = _correct(a, "correct_a"), _correct(b, "correct_b")
    if a.shape != b.shape:
        raise DatacartoError(f"paired answers need the same test rows: {a.size} against {b.size}")
    return a, b


def _check_confidence(confidence: float) -> float:
    if not 0 < float(confidence) < 1:
        raise DatacartoError(f"confidence must be in (0, 1), got {confidence!r}")
    return float(confidence)


def accuracy_interval(correct, confidence: float = CONFIDENCE) -> tuple[float, float, float]:
    """(accuracy, low, high): the Wilson score interval of the share of ``correct`` rows (NaN when empty)."""
    from scipy.stats import norm

    correct = _correct(correct, "correct")
    n = correct.size
    if n == 0:
        return float("nan"), float("nan"), float("nan")
    z = float(norm.ppf(0.5 + _check_confidence(confidence) / 2))
    p = correct.mean()
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return float(p), float(max(0.0, centre - half)), float(min(1.0, centre + half))


def mcnemar_test(correct_a, correct_b) -> tuple[int, int, float]:
    """(b, c, two-sided p): McNemar's exact test. ``b``: rows only model a gets right; ``c``: only b.

    Under the null hypothesis (same accuracy) each disagreement favours either model with probability
    1/2; p is the exact binomial test of b out of b + c (1.0 when the models never disagree).
    """
    from scipy.stats import binomtest

    a, b = _pair(correct_a, correct_b)
    only_a, only_b = int((a & ~b).sum()), int((~a & b).sum())
    if only_a + only_b == 0:
        return only_a, only_b, 1.0
    return only_a, only_b, float(binomtest(only_a, only_a + only_b, 0.5).pvalue)


def paired_bootstrap(correct_a, correct_b, *, confidence: float = CONFIDENCE, resamples: int = 10_000,
                     seed: int = 0) -> tuple[float, float, float]:
    """(difference, low, high): accuracy of a minus accuracy of b, and its percentile bootstrap interval.

    Each of ``resamples`` draws the test rows with replacement; only rows where the models disagree
    move the difference, so those are counted per draw (a multinomial draw of the n rows over
    "only a right", "only b right" and "same").
    """
    a, b = _pair(correct_a, correct_b)
    n = a.size
    if n == 0:
        return float("nan"), float("nan"), float("nan")
    confidence = _check_confidence(confidence)
    if isinstance(resamples, bool) or not isinstance(resamples, (int, np.integer)) or resamples < 1:
        raise DatacartoError(f"resamples must be a positive integer, got {resamples!r}")
    only_a, only_b = int((a & ~b).sum()), int((~a & b).sum())
    draws = np.random.default_rng(seed).multinomial(n, [only_a / n, only_b / n, (n - only_a - only_b) / n],
                                                    size=int(resamples))
    diffs = (draws[:, 0] - draws[:, 1]) / n
    low, high = np.quantile(diffs, [(1 - confidence) / 2, (1 + confidence) / 2])
    return float((only_a - only_b) / n), float(low), float(high)


@dataclass
class PairedComparison:
    """Model a against model b on the same rows (see :func:`compare_paired`)."""

    n: int
    accuracy_a: tuple[float, float, float]  # (accuracy, low, high)
    accuracy_b: tuple[float, float, float]
    difference: tuple[float, float, float]  # (a - b, low, high), paired bootstrap
    only_a: int  # rows only a gets right
    only_b: int
    p_value: float  # McNemar's exact test

    def describe(self, name_a: str = "a", name_b: str = "b") -> str:
        """One line: ``a - b: +1.3 points (95% interval -0.2 to +2.9), McNemar p = 0.081 (12 vs 5 rows)``."""
        d, low, high = (100 * x for x in self.difference)
        p = fmt_p(self.p_value)
        return (f"{name_a} - {name_b}: {d:+.1f} points (95% interval {low:+.1f} to {high:+.1f}), McNemar p "
                f"{p if p.startswith('<') else '= ' + p} ({self.only_a} rows only {name_a} gets right, "
                f"{self.only_b} only {name_b})")


def compare_paired(correct_a, correct_b, *, confidence: float = CONFIDENCE, resamples: int = 10_000,
                   seed: int = 0) -> PairedComparison:
    """Both accuracies with Wilson intervals, their difference with a paired bootstrap interval, McNemar's p."""
    a, b = _pair(correct_a, correct_b)
    only_a, only_b, p = mcnemar_test(a, b)
    return PairedComparison(n=int(a.size), accuracy_a=accuracy_interval(a, confidence),
                            accuracy_b=accuracy_interval(b, confidence),
                            difference=paired_bootstrap(a, b, confidence=confidence, resamples=resamples, seed=seed),
                            only_a=only_a, only_b=only_b, p_value=p)


def fmt_p(p: float) -> str:
    """A p-value as the report writes it: three decimals, ``< 0.001`` below that."""
    return "< 0.001" if p < 0.001 else f"{p:.3f}"


def flag_precision_recall(flagged, noisy) -> tuple[int, float, float]:
    """(true flags, precision, recall) of boolean ``flagged`` against boolean ``noisy`` (the same rows).

    Precision is NaN when nothing is flagged, recall NaN when nothing is noisy.
    """
    flagged, noisy = _correct(flagged, "flagged"), _correct(noisy, "noisy")
    if flagged.shape != noisy.shape:
        raise DatacartoError(f"flags and noise marks need the same rows: {flagged.size} against {noisy.size}")
    hits = int((flagged & noisy).sum())
    precision = hits / flagged.sum() if flagged.any() else float("nan")
    recall = hits / noisy.sum() if noisy.any() else float("nan")
    return hits, float(precision), float(recall)
