"""Focused subsets as data: the rows of a run's recorded examples, and subset files.

``focused_dataset`` turns selected row ids (:func:`datacarto.selection.select`) into a
``datasets.Dataset`` with every original column, from a run folder or a data set
(``subset_rows``: the same rows of a run as a pyarrow Table, without importing ``datasets``);
``export_subset`` writes one as .jsonl/.csv/.parquet; ``get_focused_sets`` is the seed project's
one-call filter; ``select_from_run`` is the one selection of ``datacarto select`` and the pipeline's
recipes; ``read_subset`` is the one reader of a subset to train on (``datacarto focus``, the
pipeline's focused models). The selection rules themselves stay in the pure :mod:`datacarto.selection`.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..errors import DatacartoError
from ..selection import as_row_ids, check_criteria, describe_criteria, select
from .generative import is_generative
from .store import EXAMPLES, dynamics_dir

#: File formats of a subset, by extension.
SUBSET_SUFFIXES = (".jsonl", ".json", ".csv", ".parquet")


def _examples_table(run_dir: str | os.PathLike, split: str):
    """The run's recorded examples as a pyarrow Table (exact column types, unlike pandas)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

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


def subset_rows(run_dir: str | os.PathLike, ids: Iterable[int], *, split: str = "train"):
    """The recorded examples' rows ``ids`` (in that order) as a pyarrow Table: every original column
    and ``row_id``, no ``fingerprint`` (and no ``label`` for a causal LM: it has no classes, and the
    explorer's exports carry none either). Unknown ids raise DatacartoError. Needs no ``datasets``."""
    ids = as_row_ids(ids)
    table = _examples_table(run_dir, split)
    row_ids = table.column("row_id").to_numpy()
    sorter = np.argsort(row_ids, kind="stable")
    slot = np.searchsorted(row_ids, ids, sorter=sorter)
    slot = np.minimum(slot, max(len(row_ids) - 1, 0))
    found = (row_ids[sorter[slot]] == ids) if len(row_ids) else np.zeros(len(ids), dtype=bool)
    if not found.all():
        missing = ids[~found]
        raise DatacartoError(f"{missing.size} row ids are not in the run's examples, e.g. {missing[:5].tolist()}")
    table = table.take(sorter[slot] if len(ids) else np.empty(0, dtype=np.int64))
    dropped = ["row_id", "fingerprint"]
    if is_generative(run_dir, split):
        dropped.append("label")  # the recorder's placeholder gold, "response"
    names = [c for c in table.column_names if c not in dropped]
    return table.select(names + ["row_id"])


def select_from_run(run_dir: str | os.PathLike, metrics: pd.DataFrame, *, split: str = "train",
                    burn_out: int | None = None, seed: int = 0, **criteria: Any) -> np.ndarray:
    """:func:`~datacarto.selection.select` of ``criteria`` on a run's ``metrics``; S2L reads the run's trajectories.

    The one selection of ``datacarto select`` and of the pipeline's recipes: the same criteria give
    the same row ids, or the same DatacartoError. ``method="trajectory-clusters"`` clusters the
    loss trajectories (:func:`~datacarto.dynamics.generative.run_trajectories`) of the pool that
    region and bounds leave.
    """
    trajectories = None
    if check_criteria(**criteria).clusters is not None:
        from .generative import run_trajectories

        trajectories = run_trajectories(run_dir, split, burn_out)
    return select(metrics, trajectories=trajectories, seed=seed, **criteria)


def focused_dataset(run_or_dataset: Any, ids: Iterable[int], *, split: str = "train"):
    """A ``datasets.Dataset`` of the rows ``ids`` (in that order) with every original column and ``row_id``.

    From a run dir: the recorded examples (``load_examples``' file) without ``fingerprint``; the
    ``label`` column holds the integer gold label. From a ``datasets.Dataset``: ``dataset.select(ids)``
    (row id = position, as recorded) plus a ``row_id`` column. Unknown ids raise DatacartoError.
    """
    import datasets

    ids = as_row_ids(ids)
    if isinstance(run_or_dataset, (str, os.PathLike)):
        return datasets.Dataset(subset_rows(run_or_dataset, ids, split=split))
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


def read_subset(run_dir: str | os.PathLike, subset: Any):
    """A subset of the run ``run_dir`` to train on, as ``(Dataset, source, row ids or None)``.

    ``subset``: a .jsonl/.csv/.parquet file (``source`` = its path), a ``datasets.Dataset`` or row
    ids of the run. Its ``row_id`` column (None without one) must name examples of the run, each
    once: an empty subset, a repeated row id or an unknown one is a one-line DatacartoError.
    """
    import datasets

    from ..data import column_values, load_table

    if isinstance(subset, (str, os.PathLike)):
        ds, source = load_table(subset), str(subset)
    elif isinstance(subset, datasets.Dataset):
        ds, source = subset, None
    elif isinstance(subset, (list, tuple, np.ndarray, range)):
        ids = np.asarray(subset)
        if ids.size == 0:
            raise DatacartoError("the subset is empty")
        ds, source = focused_dataset(run_dir, ids), f"{ids.size} row ids of {run_dir}"
    else:
        raise DatacartoError(f"subset must be a file, a datasets.Dataset or row ids, got {type(subset).__name__}")
    if len(ds) == 0:
        raise DatacartoError("the subset is empty")
    if "row_id" not in ds.column_names:
        return ds, source, None
    ids = np.asarray(column_values(ds, "row_id"), dtype=np.int64)
    _check_examples_of(run_dir, ids)
    _check_unique(ids, source)
    return ds, source, ids


def _check_unique(ids: np.ndarray, source: str | None) -> None:
    """Each example once: a row id listed twice would be trained on twice."""
    seen = pd.Index(ids).duplicated()
    if seen.any():
        raise DatacartoError(f"the subset{' ' + source if source else ''}: {int(seen.sum())} rows repeat a row_id "
                             f"(first: {int(ids[seen.argmax()])}); each example may appear once")


def _check_examples_of(run_dir: str | os.PathLike, ids: np.ndarray) -> None:
    """The subset's row ids must be examples of the run (a subset of another run would be mislabelled)."""
    from .store import load_examples

    examples = load_examples(run_dir)
    if examples is None:
        return
    unknown = np.setdiff1d(ids, examples.index.to_numpy())
    if unknown.size:
        raise DatacartoError(f"the subset's row ids {unknown[:5].tolist()}{' ...' if unknown.size > 5 else ''} "
                             f"({unknown.size} of {ids.size}) are not examples of {run_dir} ({len(examples)} "
                             "examples): was it selected from another run?")


def export_subset(dataset_or_frame: Any, path: str | os.PathLike) -> Path:
    """Write a subset (a ``datasets.Dataset``, a DataFrame or :func:`subset_rows`' pyarrow Table) as
    .jsonl, .csv or .parquet (by extension), atomically.

    Refuses (DatacartoError) to replace an existing file with an empty subset.
    """
    from .._io import write_frame, write_jsonl_atomic, write_table_atomic

    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in SUBSET_SUFFIXES:
        raise DatacartoError(f"unsupported output format {suffix!r} for {path}: use .jsonl, .csv or .parquet")
    import pyarrow as pa

    if isinstance(dataset_or_frame, pd.DataFrame):
        frame, table = dataset_or_frame, None
    elif isinstance(dataset_or_frame, pa.Table):
        frame, table = None, dataset_or_frame
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
    from .cache import get_metrics

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
        warnings.warn(f"empty selection: no example matches {describe_criteria(bounds)}", stacklevel=2)
    return focused_dataset(checkpoint_dir, ids).remove_columns("row_id").to_dict()
