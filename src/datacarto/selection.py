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
  (``order="hardest"`` by default, see :data:`HARDEST_FIRST`); ties by ascending row id.
* ``region`` (one) + ``fraction`` without ``metric`` ("region mode", the paper's "33% ambiguous"):
  ``round(fraction x N)`` of the whole table's N examples, taken from the region ranked by its
  defining metric (:data:`REGION_RANKING`), capped at the region's size.
* ``fraction`` with neither ``metric`` nor ``region``: a seeded random ``round(fraction x M)``.
* Counts round half up (2.5 -> 3), not to even like Python's ``round``.
"""

from __future__ import annotations

import math
import numbers
import os
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .errors import DatacartoError
from .metrics import REGIONS, check_metrics_table, row_ids

#: Ranking direction per metric: True = high values are "hardest" (ranked first with
#: ``order="hardest"``), False = low values are hardest.
HARDEST_FIRST: dict[str, bool] = {
    # low = hard: the model rarely or weakly gets the gold label
    "confidence": False,
    "correctness": False,
    "correct_count": False,
    "aum": False,
    "self_confidence": False,
    # high = hard (or ambiguous): unstable, forgotten, large error or uncertain
    "variability": True,
    "variability_ci": True,
    "forgetfulness": True,
    "el2n": True,
    "el2n_mean": True,
    "aleatoric": True,
    "threshold_closeness": True,
    "entropy": True,
    "last_loss": True,
}

#: Region mode: (defining metric, order) used to rank a region's examples.
REGION_RANKING: dict[str, tuple[str, str]] = {
    "ambiguous": ("variability", "hardest"),  # highest variability first
    "hard-to-learn": ("confidence", "hardest"),  # lowest confidence first
    "easy-to-learn": ("confidence", "easiest"),  # highest confidence first
}

_ORDERS = ("hardest", "easiest")


# ----------------------------------------------------------------------------------------------
# small helpers


def round_half_up(x: float) -> int:
    """Round to the nearest integer, halves up; the tiny slack absorbs float error (0.15 x 30 = 4.5)."""
    return int(math.floor(x + 0.5 + 1e-9))


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


def _check_number(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or math.isnan(float(value)):
        raise DatacartoError(f"{name} must be a number, got {value!r}")
    return float(value)


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
    if metric not in HARDEST_FIRST:
        raise DatacartoError(f"unknown metric {metric!r}; valid metrics: {', '.join(HARDEST_FIRST)}")
    return metric


def _check_fraction(fraction: Any) -> float:
    f = _check_number("fraction", fraction)
    if not 0 < f <= 1:
        raise DatacartoError(f"fraction must be in (0, 1], got {fraction!r}")
    return f


def _rank(ids: np.ndarray, values: np.ndarray, metric: str, order: str) -> np.ndarray:
    """``ids`` sorted by ``values`` in ``order`` of the metric's hardness; ties by ascending row id."""
    descending = HARDEST_FIRST[metric] == (order == "hardest")
    key = values.astype(np.float64)
    return ids[np.lexsort((ids, -key if descending else key))]


def _take(ranked: np.ndarray, k: int, both_ends: float | None) -> np.ndarray:
    """The first ``k`` of ``ranked``, or ``round(both_ends x k)`` from the front and the rest from the back."""
    if both_ends is None:
        return ranked[:k]
    front = round_half_up(both_ends * k)
    back = k - front
    return np.concatenate([ranked[:front], ranked[len(ranked) - back:]])


def _describe(criteria: dict[str, Any]) -> str:
    shown = {k: v for k, v in criteria.items() if v is not None and v is not False}
    return ", ".join(f"{k}={v}" for k, v in shown.items()) or "no criteria"


# ----------------------------------------------------------------------------------------------
# select


def select(metrics: pd.DataFrame, *, min_confidence: float | None = None, max_confidence: float | None = None,
           min_variability: float | None = None, max_variability: float | None = None,
           min_correctness: float | None = None, max_correctness: float | None = None,
           region: str | Iterable[str] | None = None, metric: str | None = None,
           fraction: float | None = None, order: str | None = None, both_ends: float | None = None,
           stratify_by_label: bool = False, seed: int = 0) -> np.ndarray:
    """Row ids of a focused subset of ``metrics`` (int64).

    Bounds are inclusive and, with ``region`` (a name or a list), filter first into a pool of M.
    Then, with ``fraction``:

    * ``metric`` given: ``round(fraction x M)`` pool examples ranked by ``metric``; ``order`` is
      ``"hardest"`` (default, see :data:`HARDEST_FIRST`) or ``"easiest"``.
    * one ``region`` and no ``metric``: ``round(fraction x N)`` (N = rows of ``metrics``), capped at
      the pool size, ranked by the region's defining metric (:data:`REGION_RANKING`).
    * neither: a random ``round(fraction x M)`` drawn with ``seed``.

    ``both_ends=s`` (needs ``metric`` and ``fraction``) takes ``round_half_up(s x k)`` of the k
    examples from the end ``order`` points at and the rest from the opposite end.
    ``stratify_by_label`` splits k over gold labels in proportion to the pool (largest remainder)
    and applies the rule within each label. Ranked results come in rank order (ties by row id);
    unranked ones in ascending row id. An empty result warns and returns an empty array.
    """
    # --- validate everything before touching the data
    bounds = {
        "confidence": (min_confidence, max_confidence),
        "variability": (min_variability, max_variability),
        "correctness": (min_correctness, max_correctness),
    }
    active = {col: (lo, hi) for col, (lo, hi) in bounds.items() if lo is not None or hi is not None}
    for col, (lo, hi) in active.items():
        lo = None if lo is None else _check_number(f"min_{col}", lo)
        hi = None if hi is None else _check_number(f"max_{col}", hi)
        if lo is not None and hi is not None and lo > hi:
            raise DatacartoError(f"min_{col}={lo} is greater than max_{col}={hi}: nothing can match")
        active[col] = (lo, hi)
    regions = normalize_regions(region)
    if metric is not None:
        _check_metric(metric)
    if fraction is not None:
        fraction = _check_fraction(fraction)
    if order is not None and order not in _ORDERS:
        raise DatacartoError(f"order must be one of {', '.join(_ORDERS)}, got {order!r}")
    if both_ends is not None:
        both_ends = _check_number("both_ends", both_ends)
        if not 0 <= both_ends <= 1:
            raise DatacartoError(f"both_ends must be in [0, 1], got {both_ends}")
        if metric is None or fraction is None:
            raise DatacartoError("both_ends needs a metric and a fraction (e.g. metric='variability', fraction=0.33)")
    region_mode = fraction is not None and metric is None and regions is not None
    if region_mode and len(regions) > 1:
        raise DatacartoError(
            f"a fraction of several regions ({', '.join(regions)}) needs a metric to rank them by"
        )
    if order is not None and metric is None and not region_mode:
        raise DatacartoError("order needs a metric (or one region and a fraction) to rank by")
    if stratify_by_label and fraction is None:
        raise DatacartoError("stratify_by_label needs a fraction to split over the labels")

    needed = list(active)
    if regions is not None:
        needed.append("region")
    if metric is not None:
        needed.append(metric)
    if region_mode:
        needed.append(REGION_RANKING[regions[0]][0])
    if stratify_by_label:
        needed.append("gold")
    check_metrics_table(metrics, dict.fromkeys(needed))
    ids = row_ids(metrics)

    # --- filter: inclusive bounds, then regions
    keep = np.ones(len(ids), dtype=bool)
    for col, (lo, hi) in active.items():
        values = metrics[col].to_numpy(dtype=np.float64)
        if lo is not None:
            keep &= values >= lo
        if hi is not None:
            keep &= values <= hi
    if regions is not None:
        keep &= metrics["region"].astype(object).isin(regions).to_numpy()

    rank_metric, rank_order = metric, order or "hardest"
    if region_mode:
        rank_metric, natural = REGION_RANKING[regions[0]]
        rank_order = order or natural
    if rank_metric is not None:
        rank_values = metrics[rank_metric].to_numpy(dtype=np.float64)
        keep &= ~np.isnan(rank_values)  # an example without a value cannot be ranked

    pool = ids[keep]
    gold = metrics["gold"].to_numpy()[keep] if stratify_by_label else None
    if fraction is None:
        if rank_metric is not None:
            chosen = _rank(pool, rank_values[keep], rank_metric, rank_order)
        else:
            chosen = np.sort(pool)
    else:
        k = round_half_up(fraction * (len(ids) if region_mode else len(pool)))
        k = min(k, len(pool))
        if rank_metric is not None:
            ranked = _rank(pool, rank_values[keep], rank_metric, rank_order)
            if stratify_by_label:
                gold_by_id = pd.Series(gold, index=pool)
                ranked_gold = gold_by_id.loc[ranked].to_numpy()
                labels, sizes = np.unique(ranked_gold, return_counts=True)
                quotas = largest_remainder(k, sizes)
                mask = np.zeros(len(ranked), dtype=bool)
                position = np.arange(len(ranked))
                for label, quota in zip(labels, quotas):
                    where = position[ranked_gold == label]
                    mask[_take(where, int(quota), both_ends)] = True
                chosen = ranked[mask]
            else:
                chosen = _take(ranked, k, both_ends)
        else:
            rng = np.random.default_rng(seed)
            ordered = np.sort(pool)
            if stratify_by_label:
                g = pd.Series(gold, index=pool).loc[ordered].to_numpy()
                labels, sizes = np.unique(g, return_counts=True)
                parts = [rng.choice(ordered[g == label], int(q), replace=False)
                         for label, q in zip(labels, largest_remainder(k, sizes))]
                chosen = np.sort(np.concatenate(parts)) if parts else ordered[:0]
            else:
                chosen = np.sort(rng.choice(ordered, k, replace=False))

    chosen = np.asarray(chosen, dtype=np.int64)
    if chosen.size == 0:
        criteria = {f"min_{c}": lo for c, (lo, _) in active.items()}
        criteria.update({f"max_{c}": hi for c, (_, hi) in active.items()})
        criteria.update(region=None if regions is None else ",".join(regions), metric=metric,
                        fraction=fraction, both_ends=both_ends)
        warnings.warn(
            f"empty selection: no example of {len(ids)} matches {_describe(criteria)} "
            f"(pool after bounds and regions: {len(pool)})",
            stacklevel=2,
        )
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
        given = np.asarray(list(n_or_ids) if not isinstance(n_or_ids, np.ndarray) else n_or_ids)
        if given.size and not np.issubdtype(given.dtype, np.integer):
            raise DatacartoError(f"row ids must be integers, got dtype {given.dtype}")
        given = given.astype(np.int64).ravel()
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


# ----------------------------------------------------------------------------------------------
# datasets and files


def _as_ids(ids: Iterable[int]) -> np.ndarray:
    arr = np.asarray(ids if isinstance(ids, np.ndarray) else list(ids))
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        raise DatacartoError(f"row ids must be integers, got dtype {arr.dtype}")
    return arr.astype(np.int64).ravel()


def _examples_table(run_dir: str | os.PathLike, split: str):
    """The run's recorded examples as a pyarrow Table (exact column types, unlike pandas)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from .dynamics.store import EXAMPLES, dynamics_dir

    if not Path(run_dir).exists():
        raise DatacartoError(f"run directory {run_dir} not found")
    path = dynamics_dir(run_dir, split) / EXAMPLES
    if not path.is_file():
        raise DatacartoError(f"{path} not found: the run recorded no examples, so there is nothing to select from")
    try:
        table = pq.read_table(path)
    except (OSError, pa.ArrowException) as e:
        raise DatacartoError(f"unreadable examples file {path}: {e}") from e
    if "row_id" not in table.column_names:
        raise DatacartoError(f"{path}: no row_id column")
    return table


def focused_dataset(run_or_dataset: Any, ids: Iterable[int], *, split: str = "train"):
    """A ``datasets.Dataset`` of the rows ``ids`` (in that order) with every original column and ``row_id``.

    From a run dir: the recorded examples (``load_examples``' file) without ``fingerprint``; the
    ``label`` column holds the integer gold label. From a ``datasets.Dataset``: ``dataset.select(ids)``
    (row id = position, as recorded) plus a ``row_id`` column. Unknown ids raise DatacartoError.
    """
    import datasets

    ids = _as_ids(ids)
    if isinstance(run_or_dataset, (str, os.PathLike)):
        table = _examples_table(run_or_dataset, split)
        row_ids = table.column("row_id").to_numpy()
        sorter = np.argsort(row_ids, kind="stable")
        slot = np.searchsorted(row_ids, ids, sorter=sorter)
        slot = np.minimum(slot, max(len(row_ids) - 1, 0))
        found = (row_ids[sorter[slot]] == ids) if len(row_ids) else np.zeros(len(ids), dtype=bool)
        if not found.all():
            missing = ids[~found]
            raise DatacartoError(f"{missing.size} row ids are not in the run's examples, e.g. {missing[:5].tolist()}")
        table = table.take(sorter[slot] if len(ids) else np.empty(0, dtype=np.int64))
        names = [c for c in table.column_names if c not in ("row_id", "fingerprint")]
        return datasets.Dataset(table.select(names + ["row_id"]))
    if isinstance(run_or_dataset, datasets.Dataset):
        n = len(run_or_dataset)
        bad = ids[(ids < 0) | (ids >= n)]
        if bad.size:
            raise DatacartoError(f"{bad.size} row ids are outside the data set of {n} rows, e.g. {bad[:5].tolist()}")
        # take rows at the Arrow level: exact types, features kept, no index flattening pass
        import pyarrow as pa

        table = run_or_dataset.with_format("arrow")[ids.tolist()] if len(ids) else \
            run_or_dataset.with_format("arrow")[:0]
        features = run_or_dataset.features.copy()
        if "row_id" in table.column_names:
            if not np.array_equal(table.column("row_id").to_numpy(zero_copy_only=False).astype(np.int64), ids):
                raise DatacartoError("the data set's own row_id column disagrees with row positions; drop it first")
        else:
            table = table.append_column("row_id", pa.array(ids, type=pa.int64()))
            features["row_id"] = datasets.Value("int64")
        return datasets.Dataset(table, info=datasets.DatasetInfo(features=features))
    raise DatacartoError(
        f"focused_dataset needs a run directory or a datasets.Dataset, got {type(run_or_dataset).__name__}"
    )


def export_subset(dataset_or_frame: Any, path: str | os.PathLike) -> Path:
    """Write a subset as .jsonl, .csv or .parquet (by extension), atomically.

    Refuses (DatacartoError) to replace an existing file with an empty subset.
    """
    from ._io import write_frame, write_jsonl_atomic, write_table_atomic

    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".jsonl", ".json", ".csv", ".parquet"):
        raise DatacartoError(f"unsupported output format {suffix!r} for {path}: use .jsonl, .csv or .parquet")
    if isinstance(dataset_or_frame, pd.DataFrame):
        frame, table = dataset_or_frame, None
    elif hasattr(dataset_or_frame, "with_format") and hasattr(dataset_or_frame, "column_names"):
        table = dataset_or_frame.with_format("arrow")[:]  # exact types for parquet
        frame = None
    else:
        raise DatacartoError(f"export_subset needs a datasets.Dataset or a DataFrame, got {type(dataset_or_frame).__name__}")
    n_rows = len(frame) if frame is not None else table.num_rows
    if n_rows == 0 and path.exists():
        raise DatacartoError(f"empty selection: refusing to overwrite the existing file {path}")
    if suffix in (".jsonl", ".json"):
        if table is None:
            import pyarrow as pa

            table = pa.Table.from_pandas(frame, preserve_index=frame.index.name is not None)
        return write_jsonl_atomic(path, table.to_pylist())
    if table is not None:
        if suffix == ".parquet":
            return write_table_atomic(path, table)
        frame = table.to_pandas()
    return write_frame(frame, path, index=frame.index.name is not None)


def get_focused_sets(checkpoint_dir: str | os.PathLike, min_confidence: float | None = None,
                     max_confidence: float | None = None, min_variability: float | None = None,
                     max_variability: float | None = None, min_correctness: float | None = None,
                     max_correctness: float | None = None) -> dict[str, list]:
    """The seed project's filter: the examples within the bounds, as a dict of column lists.

    Ready for ``datasets.Dataset.from_dict``; every original column is kept (``label`` = gold id),
    rows in ascending row id. Unlike the seed project, bounds are inclusive.
    """
    from .metrics import get_metrics

    metrics = get_metrics(checkpoint_dir)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ids = select(metrics, min_confidence=min_confidence, max_confidence=max_confidence,
                     min_variability=min_variability, max_variability=max_variability,
                     min_correctness=min_correctness, max_correctness=max_correctness)
    if ids.size == 0:
        bounds = dict(min_confidence=min_confidence, max_confidence=max_confidence,
                      min_variability=min_variability, max_variability=max_variability,
                      min_correctness=min_correctness, max_correctness=max_correctness)
        warnings.warn(f"empty selection: no example matches {_describe(bounds)}", stacklevel=2)
    return focused_dataset(checkpoint_dir, ids).remove_columns("row_id").to_dict()


get_focussed_sets = get_focused_sets
