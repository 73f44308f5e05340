"""Focused subsets of the training data: bounds, regions, ranked fractions, both ends, random control.

The core works on the metrics table of :mod:`datacarto.metrics` (index ``row_id``, columns such as
``gold``, ``confidence``, ``variability``, ``correctness`` and ``region``) with NumPy and pandas
only; ``datasets`` is imported inside the functions that build a ``datasets.Dataset``.
See docs/select.md for the semantics in full.

Rules, in short:

* Bounds (``min_*`` / ``max_*``) are **inclusive**: ``max_confidence=0.5`` keeps 0.5. NaN values
  never satisfy a bound.
* Bounds and ``region`` filter first, giving a pool of M examples.
* ``metric`` + ``fraction``: exactly ``round(fraction x M)`` examples of the pool, ranked by the metric
  (``order="hardest"`` by default: the end :data:`datacarto.metrics.SCORES` declares hard); ties by
  ascending row id.
* ``region`` (one) + ``fraction`` without ``metric`` ("region mode", the paper's "33% ambiguous"):
  ``round(fraction x N)`` of the whole table's N examples, taken from the region ranked by its
  defining metric (:data:`REGION_RANKING`), capped at the region's size.
* ``fraction`` with neither ``metric`` nor ``region``: a seeded random ``round(fraction x M)``.
* ``method="trajectory-clusters"`` (S2L): ``round(fraction x M)`` of the pool, sampled evenly across
  k-means clusters of the pool's loss trajectories (:mod:`datacarto.trajectory`); it does not rank,
  so ``metric``, ``order``, ``both_ends`` and ``stratify_by_label`` are refused.
* Counts round half up (2.5 -> 3), not to even like Python's ``round``.
"""

from __future__ import annotations

import numbers
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ._validation import check_choice, check_fraction, check_int_labels, check_number, round_half_up
from .errors import DatacartoError
from .metrics import REGIONS, SCORES, check_metrics_table, row_ids
from .trajectory import sample_pool

#: Region mode: (defining metric, order) used to rank a region's examples.
REGION_RANKING: dict[str, tuple[str, str]] = {
    "ambiguous": ("variability", "hardest"),  # highest variability first
    "hard-to-learn": ("confidence", "hardest"),  # lowest confidence first
    "easy-to-learn": ("confidence", "easiest"),  # highest confidence first
}

#: ``order`` of :func:`select`: the hardest end of the ranking first, or the easiest.
ORDERS = ("hardest", "easiest")
#: ``method`` of :func:`select`: the rules above, or S2L's balanced sample across trajectory clusters.
METHODS = ("rules", "trajectory-clusters")
RANKING_ONLY = ("metric", "order", "both_ends", "stratify_by_label")  # refused by trajectory-clusters: it samples
DEFAULT_CLUSTERS = 8
#: The criteria of :func:`select` (its keyword arguments but ``trajectories`` and ``seed``): what a recipe may set.
CRITERIA = ("min_confidence", "max_confidence", "min_variability", "max_variability", "min_correctness",
            "max_correctness", "region", "metric", "fraction", "order", "both_ends", "stratify_by_label", "method",
            "clusters")


# ----------------------------------------------------------------------------------------------
# small helpers


def largest_remainder(total: int, sizes: Iterable[int]) -> np.ndarray:
    """Split ``total`` over groups in proportion to ``sizes``, exactly, by the largest remainder.

    Integer arithmetic; remainders tie towards the earlier group. Each share is at most its size
    when ``total <= sum(sizes)``.
    """
    sizes = np.asarray(list(sizes), dtype=np.int64)
    whole = int(sizes.sum())
    if whole == 0 or total == 0:
        return np.zeros(len(sizes), dtype=np.int64)
    scaled = sizes * int(total)
    base = scaled // whole
    remainder = scaled % whole
    extra = int(total) - int(base.sum())
    order = np.lexsort((np.arange(len(sizes)), -remainder))
    base[order[:extra]] += 1
    return base


def normalize_regions(region: str | Iterable[str] | None) -> list[str] | None:
    """Region names as a list (``hard_to_learn`` and ``Hard to learn`` are accepted), or None."""
    if region is None:
        return None
    names = [region] if isinstance(region, str) else list(region)
    out = []
    for name in names:
        key = "-".join(str(name).strip().lower().replace("_", " ").replace("-", " ").split())
        if key not in REGIONS:
            raise DatacartoError(f"unknown region {name!r}; valid regions: {', '.join(REGIONS)}")
        if key not in out:
            out.append(key)
    if not out:
        raise DatacartoError(f"region is an empty list; valid regions: {', '.join(REGIONS)}")
    return out


def _check_metric(metric: str) -> str:
    if metric not in SCORES:
        raise DatacartoError(f"unknown metric {metric!r}; valid metrics: {', '.join(SCORES)}")
    return metric


def ranks_descending(metric: str, order: str) -> bool:
    """Whether ``order`` ("hardest" or "easiest") of ``metric`` puts its high values first."""
    return (SCORES[_check_metric(metric)].direction == "high") == (order == "hardest")


def _rank(values: np.ndarray, ids: np.ndarray, metric: str, order: str) -> np.ndarray:
    """Positions that sort ``ids`` by ``values`` in ``order`` of the metric's hardness; ties by ascending id."""
    descending = ranks_descending(metric, order)
    key = values.astype(np.float64)
    return np.lexsort((ids, -key if descending else key))


def _take(ranked: np.ndarray, k: int, both_ends: float | None) -> np.ndarray:
    """The first ``k`` of ``ranked``, or ``round(both_ends x k)`` from the front and the rest from the back."""
    if both_ends is None:
        return ranked[:k]
    front = round_half_up(both_ends, k)
    back = k - front
    return np.concatenate([ranked[:front], ranked[len(ranked) - back:]])


def _per_label(gold: np.ndarray, k: int, pick: Callable[[np.ndarray, int], np.ndarray]) -> np.ndarray:
    """A mask over ``gold``'s positions: ``pick(positions, quota)`` chooses within each label.

    k is split over the labels in proportion to their sizes (:func:`largest_remainder`), labels in
    ascending order; one label (all zeros) picks k among all positions.
    """
    mask = np.zeros(len(gold), dtype=bool)
    positions = np.arange(len(gold))
    labels, sizes = np.unique(gold, return_counts=True)
    for label, quota in zip(labels, largest_remainder(k, sizes)):
        mask[pick(positions[gold == label], int(quota))] = True
    return mask


def as_row_ids(ids: Iterable[int]) -> np.ndarray:
    """``ids`` as a flat int64 array of row ids (DatacartoError unless they are integers)."""
    return check_int_labels(ids if isinstance(ids, np.ndarray) else list(ids), "row ids").ravel()


def describe_criteria(criteria: dict[str, Any]) -> str:
    """``"k=v, k=v"`` of the criteria that are set (for warnings about empty selections)."""
    shown = {k: v for k, v in criteria.items() if v is not None and v is not False}
    return ", ".join(f"{k}={v}" for k, v in shown.items()) or "no criteria"


# ----------------------------------------------------------------------------------------------
# select


@dataclass
class _Criteria:
    """The validated arguments of :func:`select` and what they imply."""

    bounds: dict[str, tuple[float | None, float | None]]
    regions: list[str] | None
    metric: str | None
    fraction: float | None
    both_ends: float | None
    stratify: bool
    rank_metric: str | None  # what the pool is ranked by (None: unranked)
    rank_order: str
    region_mode: bool  # a fraction of the whole table, from one region
    clusters: int | None = None  # set for method trajectory-clusters (S2L)

    def columns(self) -> list[str]:
        needed = list(self.bounds)
        if self.regions is not None:
            needed.append("region")
        needed += [c for c in (self.metric, self.rank_metric) if c is not None]
        if self.stratify:
            needed.append("gold")
        return list(dict.fromkeys(needed))

    def describe(self) -> str:
        criteria = {f"min_{c}": lo for c, (lo, _) in self.bounds.items()}
        criteria.update({f"max_{c}": hi for c, (_, hi) in self.bounds.items()})
        criteria.update(region=None if self.regions is None else ",".join(self.regions), metric=self.metric,
                        fraction=self.fraction, both_ends=self.both_ends, clusters=self.clusters)
        return describe_criteria(criteria)


def _check_bounds(bounds: dict[str, tuple[Any, Any]]) -> dict[str, tuple[float | None, float | None]]:
    active = {}
    for col, (lo, hi) in bounds.items():
        if lo is None and hi is None:
            continue
        lo = None if lo is None else check_number(lo, f"min_{col}")
        hi = None if hi is None else check_number(hi, f"max_{col}")
        if lo is not None and hi is not None and lo > hi:
            raise DatacartoError(f"min_{col}={lo} is greater than max_{col}={hi}: nothing can match")
        active[col] = (lo, hi)
    return active


def _check_method(method: str, clusters: Any, given: dict[str, Any]) -> int | None:
    """The cluster count of ``method="trajectory-clusters"`` (None for rules); refuses what does not fit."""
    check_choice(method, METHODS, "method")
    if method == "rules":
        if clusters is not None:
            raise DatacartoError("clusters is for method trajectory-clusters, not rules")
        return None
    ranking = [name for name in RANKING_ONLY if given[name] not in (None, False)]
    if ranking:
        raise DatacartoError(f"method trajectory-clusters does not rank: {', '.join(ranking)} "
                             f"{'is' if len(ranking) == 1 else 'are'} for method rules")
    if given["fraction"] is None:
        raise DatacartoError("method trajectory-clusters needs a fraction (of the pool that region and bounds leave)")
    clusters = DEFAULT_CLUSTERS if clusters is None else clusters
    if isinstance(clusters, bool) or not isinstance(clusters, numbers.Integral) or clusters < 1:
        raise DatacartoError(f"clusters must be a positive integer, got {clusters!r}")
    return int(clusters)


def _criteria(bounds, region, metric, fraction, order, both_ends, stratify_by_label, method="rules",
              clusters=None) -> _Criteria:
    """Validate every argument of :func:`select` before the data is touched."""
    active = _check_bounds(bounds)
    regions = normalize_regions(region)
    if metric is not None:
        _check_metric(metric)
    if fraction is not None:
        fraction = check_fraction(fraction, "fraction", low_open=True)
    if order is not None:
        check_choice(order, ORDERS, "order")
    clusters = _check_method(method, clusters, dict(metric=metric, order=order, both_ends=both_ends,
                                                    stratify_by_label=stratify_by_label, fraction=fraction))
    if both_ends is not None:
        both_ends = check_fraction(both_ends, "both_ends")
        if metric is None or fraction is None:
            raise DatacartoError("both_ends needs a metric and a fraction (e.g. metric='variability', fraction=0.33)")
    region_mode = fraction is not None and metric is None and regions is not None and clusters is None
    if region_mode and len(regions) > 1:
        raise DatacartoError(f"a fraction of several regions ({', '.join(regions)}) needs a metric to rank them by")
    if order is not None and metric is None and not region_mode:
        raise DatacartoError("order needs a metric (or one region and a fraction) to rank by")
    if stratify_by_label and fraction is None:
        raise DatacartoError("stratify_by_label needs a fraction to split over the labels")
    rank_metric, rank_order = metric, order or "hardest"
    if region_mode:
        rank_metric, natural = REGION_RANKING[regions[0]]
        rank_order = order or natural
    return _Criteria(active, regions, metric, fraction, both_ends, bool(stratify_by_label), rank_metric,
                     rank_order, region_mode, clusters)


def check_criteria(**criteria: Any) -> _Criteria:
    """Validate :func:`select`'s criteria (:data:`CRITERIA`) without data: the one rule of ``datacarto
    select`` and the pipeline's recipes, with the same one-line DatacartoError wherever they come from."""
    unknown = sorted(set(criteria) - set(CRITERIA))
    if unknown:
        raise DatacartoError(f"unknown selection criteria {', '.join(unknown)} (known: {', '.join(CRITERIA)})")
    get = criteria.get
    bounds = {col: (get(f"min_{col}"), get(f"max_{col}")) for col in ("confidence", "variability", "correctness")}
    return _criteria(bounds, get("region"), get("metric"), get("fraction"), get("order"), get("both_ends"),
                     get("stratify_by_label", False), get("method", "rules"), get("clusters"))


def _pool(metrics: pd.DataFrame, ids: np.ndarray, c: _Criteria) -> np.ndarray:
    """Mask of the rows within the inclusive bounds and regions, and with a value to rank by."""
    keep = np.ones(len(ids), dtype=bool)
    for col, (lo, hi) in c.bounds.items():
        values = metrics[col].to_numpy(dtype=np.float64)
        if lo is not None:
            keep &= values >= lo
        if hi is not None:
            keep &= values <= hi
    if c.regions is not None:
        keep &= metrics["region"].astype(object).isin(c.regions).to_numpy()
    if c.rank_metric is not None:  # an example without a value cannot be ranked
        keep &= ~np.isnan(metrics[c.rank_metric].to_numpy(dtype=np.float64))
    return keep


def _choose(metrics: pd.DataFrame, ids: np.ndarray, keep: np.ndarray, c: _Criteria, seed: int) -> np.ndarray:
    """The selected row ids of the pool ``ids[keep]``: ranked (rank order) or not (ascending ids)."""
    pool = ids[keep]
    if c.rank_metric is not None:
        order = _rank(metrics[c.rank_metric].to_numpy(dtype=np.float64)[keep], pool, c.rank_metric, c.rank_order)
    else:
        order = np.argsort(pool, kind="stable")
    if c.fraction is None:
        return pool[order]
    k = min(round_half_up(c.fraction, len(ids) if c.region_mode else len(pool)), len(pool))
    gold = metrics["gold"].to_numpy()[keep][order] if c.stratify else np.zeros(len(pool), dtype=np.int64)
    if c.rank_metric is not None:
        mask = _per_label(gold, k, lambda where, quota: _take(where, quota, c.both_ends))
        return pool[order][mask]
    rng = np.random.default_rng(seed)
    mask = _per_label(gold, k, lambda where, quota: rng.choice(where, quota, replace=False))
    return pool[order][mask]  # ascending ids: order sorts the pool and the mask keeps that order


def select(metrics: pd.DataFrame, *, min_confidence: float | None = None, max_confidence: float | None = None,
           min_variability: float | None = None, max_variability: float | None = None,
           min_correctness: float | None = None, max_correctness: float | None = None,
           region: str | Iterable[str] | None = None, metric: str | None = None,
           fraction: float | None = None, order: str | None = None, both_ends: float | None = None,
           stratify_by_label: bool = False, method: str = "rules", clusters: int | None = None,
           trajectories: pd.DataFrame | None = None, seed: int = 0) -> np.ndarray:
    """Row ids of a focused subset of ``metrics`` (int64).

    Bounds are inclusive and, with ``region``, filter first into a pool of M examples; then
    ``fraction`` picks from the pool in one of three modes (see docs/select.md).

    Parameters
    ----------
    metrics : DataFrame
        The metrics table (index ``row_id``; the columns the criteria name).
    min_confidence, max_confidence, min_variability, max_variability, min_correctness, max_correctness : float, optional
        Inclusive bounds; NaN never satisfies a bound.
    region : str or list of str, optional
        Keep these regions (``hard_to_learn`` and ``Hard to learn`` are accepted).
    metric : str, optional
        Rank the pool by this score (its direction: :data:`datacarto.metrics.SCORES`).
    fraction : float in (0, 1], optional
        With ``metric``: ``round(fraction x M)`` pool examples in rank order. With one ``region``
        and no ``metric``: ``round(fraction x N)`` (N = rows of ``metrics``), capped at the pool
        size, ranked by the region's defining metric (:data:`REGION_RANKING`). With neither: a
        random ``round(fraction x M)`` drawn with ``seed``. Counts round half up
        (:func:`datacarto._validation.round_half_up`).
    order : {"hardest", "easiest"}, optional
        Which end of the ranking comes first (default ``"hardest"``, or the region's own order).
    both_ends : float in [0, 1], optional
        Needs ``metric`` and ``fraction``: ``round_half_up(both_ends x k)`` of the k examples from
        the end ``order`` points at, the rest from the opposite end.
    stratify_by_label : bool, default False
        Split k over gold labels in proportion to the pool (largest remainder) and apply the rule
        within each label.
    method : {"rules", "trajectory-clusters"}, default "rules"
        ``"trajectory-clusters"`` (S2L): ``round(fraction x M)`` of the pool, balanced across
        ``clusters`` (default 8) k-means clusters of the pool's ``trajectories`` (loss per epoch
        by row id, :func:`datacarto.dynamics.generative.run_trajectories`); it does not rank.
    clusters, trajectories : optional
        For ``method="trajectory-clusters"`` only.
    seed : int, default 0
        Seed of the random mode and of the clusters and their sample.

    Returns
    -------
    ndarray of int64
        Ranked results in rank order (ties by row id); unranked ones in ascending row id. An
        empty result warns and returns an empty array.
    """
    c = check_criteria(**{k: v for k, v in locals().items() if k in CRITERIA})  # first: locals() = the arguments
    check_metrics_table(metrics, c.columns())
    ids = row_ids(metrics)
    keep = _pool(metrics, ids, c)
    chosen = np.asarray(_choose(metrics, ids, keep, c, seed) if c.clusters is None else sample_pool(
        trajectories, ids[keep], fraction=c.fraction, clusters=c.clusters, seed=seed), dtype=np.int64)
    if chosen.size == 0:
        warnings.warn(f"empty selection: no example of {len(ids)} matches {c.describe()} "
                      f"(pool after bounds and regions: {int(keep.sum())})", stacklevel=2)
    return chosen


# ----------------------------------------------------------------------------------------------
# random control


def random_control(n_or_ids: int | Iterable[int], metrics: pd.DataFrame, *, match_labels: bool = True,
                   seed: int = 0, exclude: Iterable[int] | None = None) -> np.ndarray:
    """A seeded random subset of ``metrics`` of the same size as ``n_or_ids``: the control baseline.

    Given row ids, the control has as many examples and, with ``match_labels``, exactly the same
    number per gold label. Given a count n, with ``match_labels`` the labels are split in proportion
    to the candidate pool (largest remainder). ``exclude`` removes row ids (e.g. the focused subset
    itself, for a disjoint control) from the candidates. Returns ascending row ids (int64).
    """
    check_metrics_table(metrics, ["gold"] if match_labels else [])
    ids = row_ids(metrics)
    if np.ndim(n_or_ids) == 0:
        if isinstance(n_or_ids, bool) or not isinstance(n_or_ids, numbers.Integral) or int(n_or_ids) < 0:
            raise DatacartoError(f"random_control needs row ids or a count >= 0, got {n_or_ids!r}")
        n, given = int(n_or_ids), None
    else:
        given = as_row_ids(n_or_ids)
        unknown = np.setdiff1d(given, ids)
        if unknown.size:
            raise DatacartoError(f"{unknown.size} row ids are not in the metrics table, e.g. {unknown[:5].tolist()}")
        n = int(given.size)

    candidates = np.ones(len(ids), dtype=bool)
    if exclude is not None:
        candidates &= ~np.isin(ids, np.asarray(list(exclude), dtype=np.int64))
    rng = np.random.default_rng(seed)
    order = np.argsort(ids, kind="stable")
    pool = ids[order][candidates[order]]
    if not match_labels:
        if n > pool.size:
            raise DatacartoError(f"a control of {n} examples needs {n} candidates, only {pool.size} are left")
        return np.sort(rng.choice(pool, n, replace=False)).astype(np.int64)

    gold_all = metrics["gold"].to_numpy()[order][candidates[order]]
    if given is None:
        labels, sizes = np.unique(gold_all, return_counts=True)
        if n > pool.size:
            raise DatacartoError(f"a control of {n} examples needs {n} candidates, only {pool.size} are left")
        quotas = dict(zip(labels.tolist(), largest_remainder(n, sizes).tolist()))
    else:
        gold_by_id = pd.Series(metrics["gold"].to_numpy(), index=ids)
        labels, counts = np.unique(gold_by_id.loc[given].to_numpy(), return_counts=True)
        quotas = dict(zip(labels.tolist(), counts.tolist()))
    parts = []
    for label in sorted(quotas):
        members = pool[gold_all == label]
        if quotas[label] > members.size:
            raise DatacartoError(
                f"a label-matched control needs {quotas[label]} examples of label {label}, "
                f"only {members.size} are candidates"
            )
        parts.append(rng.choice(members, quotas[label], replace=False))
    out = np.concatenate(parts) if parts else np.empty(0, dtype=np.int64)
    return np.sort(out).astype(np.int64)
