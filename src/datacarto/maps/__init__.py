"""Data maps: a static matplotlib figure (:mod:`.static`) and one self-contained HTML map (:mod:`.interactive`).

This module holds what both share and stays import-light (NumPy and pandas only): checking the
metrics table, correctness levels, colours and the region guides, so the two maps agree.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from .._validation import check_choice
from ..errors import DatacartoError
from ..metrics import REGIONS, check_metrics_table

REGION_COLORS = {"easy-to-learn": "#2ca02c", "ambiguous": "#ff7f0e", "hard-to-learn": "#1f77b4"}
UNASSIGNED_COLOR = "#9e9e9e"
COLOR_MODES = ("correctness", "label", "region")
# matplotlib's tab10, so the static and the HTML map give a label the same colour
_TAB10 = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
          "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"]
# anchors of matplotlib's "coolwarm" (blue = never correct, red = always correct, as in the paper)
_COOLWARM = [(0.0, (59, 76, 192)), (0.5, (221, 221, 221)), (1.0, (180, 4, 38))]


def check_metrics(metrics, columns) -> pd.DataFrame:
    """Raise DatacartoError unless ``metrics`` is a non-empty DataFrame holding ``columns``."""
    check_metrics_table(metrics, columns, " needed for the data map")
    if len(metrics) == 0:
        raise DatacartoError("the metrics table is empty: nothing to map")
    return metrics


def check_color_by(color_by: str) -> str:
    """``color_by`` if it is one of :data:`COLOR_MODES`; DatacartoError otherwise."""
    return check_choice(color_by, COLOR_MODES, "color_by")


def n_epochs_of(metrics: pd.DataFrame) -> int:
    """Number of epochs E behind ``correctness`` (so it takes the E+1 values 0, 1/E, ..., 1)."""
    if "n_epochs_used" in metrics.columns:
        used = pd.to_numeric(metrics["n_epochs_used"], errors="coerce").to_numpy(dtype=float)
        if np.isfinite(used).any() and np.nanmax(used) >= 1:
            return int(np.nanmax(used))
    corr = pd.to_numeric(metrics["correctness"], errors="coerce").to_numpy(dtype=float)
    if "correct_count" in metrics.columns:
        count = pd.to_numeric(metrics["correct_count"], errors="coerce").to_numpy(dtype=float)
        ok = np.isfinite(count) & np.isfinite(corr) & (corr > 0)
        if ok.any():
            return max(1, int(np.round(np.median(count[ok] / corr[ok]))))
    values = np.unique(corr[np.isfinite(corr)])
    for e in range(1, 101):  # the smallest E that puts every value on the grid k / E
        if np.allclose(values * e, np.round(values * e), atol=1e-6):
            return e
    return 10


def correctness_levels(metrics: pd.DataFrame, n_epochs: int | None = None) -> tuple[np.ndarray, int]:
    """Correctness discretised to its E+1 levels ``round(correctness x E)`` (-1 where NaN), and E."""
    e = n_epochs or n_epochs_of(metrics)
    corr = pd.to_numeric(metrics["correctness"], errors="coerce").to_numpy(dtype=float)
    levels = np.full(corr.shape, -1, dtype=np.int64)
    ok = np.isfinite(corr)
    levels[ok] = np.clip(np.round(corr[ok] * e), 0, e).astype(np.int64)
    return levels, e


def correctness_colors(n_epochs: int) -> list[str]:
    """E+1 hex colours from blue (never correct) to red (always correct)."""
    out = []
    for k in range(n_epochs + 1):
        t = k / n_epochs if n_epochs else 1.0
        for (t0, c0), (t1, c1) in zip(_COOLWARM, _COOLWARM[1:]):
            if t0 <= t <= t1:
                w = (t - t0) / (t1 - t0)
                rgb = [round(a + (b - a) * w) for a, b in zip(c0, c1)]
                break
        out.append(_hex(rgb))
    return out


def label_colors(n: int) -> list[str]:
    """``n`` distinct label colours: tab10, then evenly spaced hues."""
    if n <= len(_TAB10):
        return _TAB10[:n]
    import colorsys

    return [_hex(round(255 * v) for v in colorsys.hls_to_rgb(i / n, 0.5, 0.65)) for i in range(n)]


def _hex(rgb) -> str:
    return "#" + "".join(f"{int(v):02x}" for v in rgb)


def gold_labels(metrics: pd.DataFrame, label_names=None) -> tuple[np.ndarray, list[str]]:
    """Gold label ids (int64) and one name per id (``label_names`` or the ids as text)."""
    gold = pd.to_numeric(metrics["gold"], errors="coerce")
    if gold.isna().any():
        raise DatacartoError("the metrics column 'gold' holds missing or non-numeric labels")
    gold = gold.to_numpy().astype(np.int64)
    if gold.min() < 0:
        raise DatacartoError(f"negative gold label {gold.min()} in the metrics table")
    top = int(gold.max()) + 1
    if "last_pred" in metrics.columns:
        pred = pd.to_numeric(metrics["last_pred"], errors="coerce").to_numpy(dtype=float)
        if np.isfinite(pred).any():
            top = max(top, int(np.nanmax(pred)) + 1)
    if label_names is None:
        names = [str(i) for i in range(top)]
    else:
        names = [str(n) for n in label_names]
        if len(names) < top:
            raise DatacartoError(
                f"{len(names)} label names given ({names}) but the metrics use label id {top - 1}"
            )
    return gold, names


def region_codes(metrics: pd.DataFrame) -> np.ndarray:
    """Region per row as 0, 1, 2 (index into REGIONS) or -1 (no region / unknown name)."""
    values = metrics["region"].astype(object).to_numpy()
    codes = np.full(len(values), -1, dtype=np.int64)
    for k, name in enumerate(REGIONS):
        codes[values == name] = k
    return codes


def subsample(n: int, max_points: int | None, seed: int = 0) -> np.ndarray:
    """Sorted positions of a seeded random subset of at most ``max_points`` of ``n`` rows."""
    if max_points is None or max_points >= n:
        return np.arange(n)
    if int(max_points) < 1:
        raise DatacartoError(f"max_points must be at least 1, got {max_points}")
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(n, size=int(max_points), replace=False))


@dataclass
class Guide:
    """A straight line on the map: ``axis`` "x" (variability = value) or "y" (confidence = value).

    ``start``/``end`` bound the line along the other axis (None: the whole plot).
    """

    axis: str
    value: float
    label: str
    start: float | None = None
    end: float | None = None


def _stored_thresholds(metrics: pd.DataFrame) -> tuple[float, float] | None:
    """(variability threshold, confidence threshold) kept by ``assign_regions`` in ``attrs``, if any."""
    sources = [metrics.attrs]
    if "region" in metrics.columns:
        sources.append(metrics["region"].attrs)
    for attrs in sources:
        v, c = attrs.get("variability_threshold"), attrs.get("confidence_threshold")
        try:
            v, c = float(v), float(c)
        except (TypeError, ValueError):
            continue
        if np.isfinite(v) and np.isfinite(c):
            return v, c
    return None


def inferred_thresholds(metrics: pd.DataFrame) -> tuple[float, float] | None:
    """The thresholds a region column implies, if it follows the region rule.

    The rule (datacarto.metrics.assign_regions): ambiguous = high variability; of the rest,
    hard-to-learn = low confidence, easy-to-learn = high confidence. Returns the largest
    variability outside "ambiguous" and the largest confidence of "hard-to-learn" when the regions
    are separated that way; None otherwise (hand-made regions, or one region empty).
    """
    if "region" not in metrics.columns:
        return None
    codes = region_codes(metrics)
    conf = pd.to_numeric(metrics["confidence"], errors="coerce").to_numpy(dtype=float)
    var = pd.to_numeric(metrics["variability"], errors="coerce").to_numpy(dtype=float)
    amb, easy, hard = codes == 1, codes == 0, codes == 2
    rest = easy | hard
    if not (amb.any() and easy.any() and hard.any()):
        return None
    v_star, c_star = float(np.max(var[rest])), float(np.max(conf[hard]))
    if np.min(var[amb]) < v_star or np.min(conf[easy]) < c_star:
        return None
    return v_star, c_star


def region_guides(metrics: pd.DataFrame) -> tuple[list[Guide], str]:
    """Lines separating the regions, and what they are.

    The boundaries of the region rule: a vertical line at the variability threshold (right of it:
    ambiguous) and, left of it, a horizontal line at the confidence threshold (above: easy-to-learn,
    below: hard-to-learn). The thresholds come from ``attrs`` (as ``assign_regions`` stores them) or
    are read off the ``region`` column; without either, the confidence tertiles and the
    variability's upper tertile are drawn as "quantile guides", only as reading aids.
    """
    found = _stored_thresholds(metrics)
    kind = "region thresholds"
    if found is None:
        found = inferred_thresholds(metrics)
        kind = "region boundaries, read off the region column"
    if found is not None:
        v, c = found
        return [Guide("x", v, f"variability {v:.3g}"),
                Guide("y", c, f"confidence {c:.3g}", start=None, end=v)], kind
    conf = pd.to_numeric(metrics["confidence"], errors="coerce").to_numpy(dtype=float)
    var = pd.to_numeric(metrics["variability"], errors="coerce").to_numpy(dtype=float)
    conf, var = conf[np.isfinite(conf)], var[np.isfinite(var)]
    guides = []
    if conf.size:
        for q in (1 / 3, 2 / 3):
            v = float(np.quantile(conf, q))
            guides.append(Guide("y", v, f"confidence q{round(q * 100)} {v:.3g}"))
    if var.size:
        v = float(np.quantile(var, 2 / 3))
        guides.append(Guide("x", v, f"variability q67 {v:.3g}"))
    return guides, "quantile guides"
