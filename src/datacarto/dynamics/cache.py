"""The per-example metrics of a stored run, cached next to its dynamics; regions of evaluation splits.

``get_metrics(run_dir)`` is :func:`datacarto.metrics.compute_metrics` plus
:func:`~datacarto.metrics.assign_regions` of the recorded dynamics, cached as ``metrics.parquet``
(and its key ``metrics.json``) in the split's dynamics folder. ``eval_regions`` gives the regions
of a validation or test split from the dynamics the baseline recorded for it. The metrics
themselves stay in the pure :mod:`datacarto.metrics`; this module is their run-folder I/O.
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .. import metrics as _metrics
from .._io import atomic_write, write_json_atomic
from ..errors import DatacartoError
from ..learning_check import learning_warning
from ..metrics import REGIONS, metric_columns
from ..units import aggregate_units
from .store import UNITS, dynamics_dir, list_epoch_files, load_dynamics, open_dynamics

CACHE_FILE = "metrics.parquet"
CACHE_KEY_FILE = "metrics.json"
# Bump when a metric's definition or the table's layout changes: old caches are then recomputed.
CACHE_SCHEMA = 1
_KEY_METADATA = b"datacarto.metrics_key"


def _cache_key(directory: Path, burn_out: int | None) -> dict[str, Any]:
    """What the cached table depends on: epoch and units files (name, size, mtime ns), burn_out, versions."""
    from .. import __version__

    files = []
    paths = list(list_epoch_files(directory).values())
    if paths and (directory / UNITS).is_file():
        paths.append(directory / UNITS)
    for path in paths:
        st = path.stat()
        files.append([path.name, int(st.st_size), int(st.st_mtime_ns)])
    if isinstance(burn_out, np.integer):
        burn_out = int(burn_out)
    return {"schema": CACHE_SCHEMA, "datacarto": __version__, "burn_out": burn_out, "files": files,
            "regions": "quantile"}


def _key_digest(key: dict[str, Any]) -> str:
    import hashlib

    return hashlib.sha256(json.dumps(key, sort_keys=True, default=repr).encode()).hexdigest()


def _read_cache(directory: Path, key: dict[str, Any]) -> pd.DataFrame | None:
    """The cached table if both the json key and the key stored in the Parquet file match."""
    import pyarrow.parquet as pq

    key_path, table_path = directory / CACHE_KEY_FILE, directory / CACHE_FILE
    try:
        stored = json.loads(key_path.read_text(encoding="utf-8"))
        if stored.get("key") != key or not table_path.is_file():
            return None
        table = pq.read_table(table_path)
    except (OSError, ValueError):
        return None  # missing, partial or unreadable: recompute
    if (table.schema.metadata or {}).get(_KEY_METADATA, b"").decode() != _key_digest(key):
        return None  # another process rewrote the table for other dynamics in between
    df = table.to_pandas().set_index("row_id")
    if list(df.columns) != [*metric_columns(), "region"]:  # a score registered since: recompute
        return None
    region = df["region"]
    if not (isinstance(region.dtype, pd.CategoricalDtype) and list(region.cat.categories) == list(REGIONS)):
        df["region"] = pd.Categorical(region.astype(object), categories=list(REGIONS))
    df.attrs.update(stored.get("attrs") or {})
    return df


def _write_cache(directory: Path, key: dict[str, Any], df: pd.DataFrame) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    digest = _key_digest(key)
    table = pa.Table.from_pandas(df.reset_index(), preserve_index=False)
    table = table.replace_schema_metadata({**(table.schema.metadata or {}), _KEY_METADATA: digest.encode()})
    try:
        # Uncompressed: metric floats barely compress, and reading back is then about 2x faster. No
        # dictionary for float columns: distinct values overflow it (half the write time at 1M rows, wasted).
        dictionary = [f.name for f in table.schema if not pa.types.is_floating(f.type)]
        atomic_write(directory / CACHE_FILE,
                     lambda tmp: pq.write_table(table, tmp, compression="none", use_dictionary=dictionary))
        write_json_atomic(directory / CACHE_KEY_FILE, {"key": key, "digest": digest, "attrs": dict(df.attrs)})
    except OSError as e:  # e.g. a read-only run dir: the result is still good, only not cached
        warnings.warn(f"could not cache the metrics in {directory}: {e}", stacklevel=3)


def get_metrics(run_dir: str | os.PathLike, split: str = "train", burn_out: int | None = None, *,
                level: str = "example") -> pd.DataFrame:
    """``compute_metrics`` of a stored run plus a ``region`` column (``assign_regions`` defaults), cached.

    Cached as ``metrics.parquet`` plus its key ``metrics.json`` in the split's dynamics folder;
    recomputed only when the epoch files or units.parquet (names, sizes, mtimes in ns), ``burn_out`` or the
    datacarto version change. The region thresholds are in ``result.attrs``. A run with several
    units per example (multi-label, token classification) gives one row per example with
    ``level="example"`` (:func:`datacarto.units.aggregate_units`) and one per unit with
    ``level="unit"`` (with ``row_id`` and ``sub_id`` columns); those tables are not cached. A
    causal-LM run's table has ``correctness`` = mean token accuracy and ``nll``, ``n_tokens``
    (:mod:`datacarto.dynamics.generative`; computed on top of the cached classifier view); a
    regression run's has ``gold_score``, ``prediction`` and ``squared_error`` too.
    """
    if level not in ("example", "unit"):
        raise DatacartoError(f"level must be 'example' or 'unit', got {level!r}")
    directory = dynamics_dir(run_dir, split)
    key = _cache_key(directory, burn_out)  # stat before loading: a change after it is never masked
    if key["files"]:
        cached = _read_cache(directory, key)
        if cached is not None:
            cached = _generative(cached, run_dir, split, burn_out)
            _warn_if_barely_learned(cached, split)
            return cached
    dyn = open_dynamics(run_dir, split)  # the logits are read in blocks of rows: memory stays bounded
    df = _metrics.compute_metrics(dyn, burn_out=burn_out)  # by module: tests count calls
    region = _metrics.assign_regions(df)
    df["region"] = region
    df.attrs.update(region.attrs)
    if dyn.unit_level:
        message = _warn_if_barely_learned(df, split)  # judged on the units: an example's gold is its hardest unit's
        if level == "unit":
            df = df.assign(row_id=dyn.row_ids, sub_id=dyn.sub_ids)
            df.index.name = "unit_id"
        else:
            df = aggregate_units(df, dyn.row_ids, dyn.sub_ids)
            if message:
                df.attrs["learning_warning"] = message
        return df
    _write_cache(directory, key, df)
    df = _generative(df, run_dir, split, burn_out)
    _warn_if_barely_learned(df, split)
    return df


def _generative(df: pd.DataFrame, run_dir, split: str, burn_out: int | None) -> pd.DataFrame:
    """A causal-LM run's metrics: correctness is the mean token accuracy; nll and n_tokens added.
    A regression run's: gold_score, prediction and squared_error added (:mod:`datacarto.dynamics.regression`)."""
    from .generative import is_generative, with_generative_metrics
    from .regression import is_numeric, with_regression_metrics

    if is_numeric(run_dir, split):
        return with_regression_metrics(df, run_dir, split, burn_out)
    return with_generative_metrics(df, run_dir, split, burn_out) if is_generative(run_dir, split) else df


def _warn_if_barely_learned(df: pd.DataFrame, split: str) -> str | None:
    """Warn (and return the line) when the model barely learned ``split``."""
    message = learning_warning(df, what="training set" if split in (None, "train") else f"{split} set")
    if message:
        warnings.warn(message, stacklevel=3)
    return message


def eval_regions(run_dir: str | os.PathLike, split: str = "validation") -> pd.Series:
    """Regions of an evaluation split from the dynamics the baseline recorded for it, by row id.

    ``assign_regions(compute_metrics(load_dynamics(run_dir, split)))``. Row id = position in the
    evaluation set as the Trainer saw it (rows without a gold label dropped). Needs at least two
    recorded evaluations for the variability to mean anything; with one, a warning is given.
    """
    dyn = load_dynamics(run_dir, split)
    if dyn.n_epochs < 2:
        warnings.warn(f"the {split!r} dynamics of {run_dir} hold {dyn.n_epochs} evaluation(s): regions need "
                      "several (variability is 0 with one)", stacklevel=2)
    return _metrics.assign_regions(_metrics.compute_metrics(dyn))
