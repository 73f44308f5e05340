"""On-disk store of training dynamics: one Parquet file per epoch, examples, manifest.

Layout under ``<output_dir>/training_dynamics/`` (see docs/format.md)::

    manifest.json            what was recorded: model, data, labels, mode, epochs, versions
    examples.parquet         row_id, fingerprint, label and the text columns (for tooltips)
    epoch_000.parquet ...    row_id (int64), gold (int32), logits (fixed_size_list<float32>[C])
    eval/<split>/...         the same files for each evaluation split (validation, test, ...)

Every file is written atomically, so a crash leaves the finished epochs intact.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from .._io import write_json_atomic, write_table_atomic
from ..errors import DatacartoError

DYNAMICS_DIRNAME = "training_dynamics"
MANIFEST = "manifest.json"
EXAMPLES = "examples.parquet"
FORMAT_VERSION = 1
LOGITS_DTYPE = np.float32
_SUB_BITS = 24  # a unit's key while loading: row_id << 24 | sub_id (up to 16M units per example)
_EPOCH_RE = re.compile(r"epoch_(\d+)\.parquet")
_SPLIT_RE = re.compile(r"[A-Za-z0-9_-]+")


def check_split_name(split: str) -> str:
    """``split`` if it is a plain name (letters, digits, ``_``, ``-``); DatacartoError otherwise.

    A split names a folder under ``eval/``: a path (``../x``), a dot, a separator or a trailing
    newline would let it point outside the run, so it is checked with ``re.fullmatch``.
    """
    if not isinstance(split, str) or not _SPLIT_RE.fullmatch(split):
        raise DatacartoError(f"invalid split name {split!r}: use letters, digits, '_' and '-' only "
                             "(e.g. train, validation, test)")
    return split


def dynamics_dir(run_dir: str | os.PathLike, split: str = "train") -> Path:
    """The folder holding one split's dynamics.

    ``run_dir`` may be a training output dir (holding ``training_dynamics/``) or the
    ``training_dynamics`` folder itself.
    """
    if split is not None:
        check_split_name(split)
    run_dir = Path(run_dir)
    base = run_dir / DYNAMICS_DIRNAME
    if not base.is_dir() and (run_dir / MANIFEST).is_file():
        base = run_dir
    if split in ("train", None):
        return base
    return base / "eval" / split


def epoch_path(directory: Path, index: int) -> Path:
    return Path(directory) / f"epoch_{int(index):03d}.parquet"


def list_epoch_files(directory: str | os.PathLike) -> dict[int, Path]:
    """Map epoch (snapshot) index -> file, for the epoch files present in ``directory``."""
    directory = Path(directory)
    if not directory.is_dir():
        return {}
    found = {}
    for p in directory.iterdir():
        m = _EPOCH_RE.fullmatch(p.name)
        if m:
            found[int(m.group(1))] = p
    return dict(sorted(found.items()))


def read_manifest(directory: str | os.PathLike) -> dict[str, Any]:
    path = Path(directory) / MANIFEST
    if not path.is_file():
        return {}
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:  # ValueError: invalid JSON or not UTF-8
        raise DatacartoError(f"unreadable manifest {path}: {e}") from e
    if not isinstance(manifest, dict):
        raise DatacartoError(f"unreadable manifest {path}: expected a JSON object, got {type(manifest).__name__}")
    return manifest


def package_versions() -> dict[str, str]:
    """Versions of the packages that shape the recorded numbers (a new dict each call)."""
    return dict(_package_versions())


@functools.lru_cache(maxsize=1)
def _package_versions() -> tuple[tuple[str, str], ...]:
    """Looked up once a process: each lookup scans the installed distributions (milliseconds a training run)."""
    from importlib.metadata import PackageNotFoundError, version

    out = []
    for name in ("datacarto", "torch", "transformers", "datasets", "accelerate", "numpy", "pyarrow"):
        try:
            out.append((name, version(name)))
        except PackageNotFoundError:
            pass
    return tuple(out)


def example_fingerprints(frame: pd.DataFrame, columns: list[str] | None = None) -> np.ndarray:
    """A 64-bit content hash per row of ``frame`` (text columns and label), vectorized."""
    if columns is not None:
        frame = frame[list(columns)]
    if frame.shape[1] == 0:
        raise DatacartoError("cannot fingerprint examples: no columns given")
    return pd.util.hash_pandas_object(frame.astype(str), index=False).to_numpy(dtype=np.uint64)


def dataset_fingerprint(fingerprints: np.ndarray) -> str:
    """One hex digest for a whole data set, from its per-example fingerprints in row order."""
    return hashlib.sha256(np.ascontiguousarray(fingerprints, dtype=np.uint64).tobytes()).hexdigest()[:32]


def _label_array(labels) -> pa.Array:
    """One gold label per example: an id, or a list of ids (multi-label, token tags)."""
    if len(labels) and isinstance(labels[0], (list, tuple, np.ndarray)):
        return pa.array([[int(v) for v in row] for row in labels], type=pa.list_(pa.int64()))
    return pa.array(np.asarray(labels, dtype=np.int64))


def _logits_array(logits: np.ndarray) -> pa.FixedSizeListArray:
    logits = np.ascontiguousarray(logits, dtype=LOGITS_DTYPE)
    return pa.FixedSizeListArray.from_arrays(pa.array(logits.reshape(-1)), logits.shape[1])


class DynamicsWriter:
    """Writes one split's dynamics; the recorder and the importers both use it."""

    def __init__(self, directory: str | os.PathLike):
        self.directory = Path(directory)

    @property
    def manifest(self) -> dict[str, Any]:
        return read_manifest(self.directory)

    def update_manifest(self, **fields: Any) -> dict[str, Any]:
        manifest = self.manifest
        manifest.setdefault("format_version", FORMAT_VERSION)
        manifest.setdefault("logits_dtype", np.dtype(LOGITS_DTYPE).name)
        manifest.update(fields)
        write_json_atomic(self.directory / MANIFEST, manifest)
        return manifest

    def check_fingerprint(self, fingerprint: str, *, dataset: str | None = None, refusal=None) -> None:
        """Refuse to mix dynamics of two different data sets in one folder.

        ``refusal(holds) -> message``: the caller's words for the way out (its own options); by
        default "use another output folder"."""
        old = self.manifest.get("dataset_fingerprint")
        if old is not None and old != fingerprint and list_epoch_files(self.directory):
            holds = (f"training dynamics of a different data set (fingerprint {old}, this data set "
                     f"{fingerprint}{', ' + dataset if dataset else ''})")
            raise DatacartoError(refusal(holds) if refusal else
                                 f"{self.directory} already holds {holds}: use another output folder")

    def write_examples(self, row_ids: np.ndarray, fingerprints: np.ndarray, labels: np.ndarray,
                       texts: pd.DataFrame | None = None) -> Path:
        table = {
            "row_id": pa.array(np.asarray(row_ids, dtype=np.int64)),
            "fingerprint": pa.array(np.asarray(fingerprints, dtype=np.uint64)),
            "label": _label_array(labels),
        }
        if texts is not None:
            for col in texts.columns:
                if col in table:
                    continue
                table[col] = pa.array(texts[col].tolist())
        return write_table_atomic(self.directory / EXAMPLES, pa.table(table))

    def write_epoch(self, index: int, row_ids: np.ndarray, gold: np.ndarray, logits: np.ndarray, *,
                    epoch: float | None = None, global_step: int | None = None,
                    filled: np.ndarray | None = None, sub_ids: np.ndarray | None = None,
                    extra: dict[str, np.ndarray] | None = None) -> int:
        """Write one epoch's (or snapshot's) logits; returns the number of examples with NaN logits.

        ``filled``: a bool per row, True where the logits come from an eval-mode prediction at the
        epoch end because the training pass did not see the row (``dataloader_drop_last``).
        ``sub_ids``: with several units per example (labels, words), each unit's index in its
        example; units are then keyed by ``(row_id, sub_id)``. ``extra``: more float32 columns by
        name (a causal LM's ``nll``, ``token_accuracy``, ``n_tokens``; docs/format.md).
        """
        row_ids = np.asarray(row_ids, dtype=np.int64)
        gold = np.asarray(gold, dtype=np.int32)
        logits = np.asarray(logits)
        if logits.ndim != 2 or logits.shape[0] != row_ids.shape[0] or gold.shape != row_ids.shape:
            raise DatacartoError(
                f"epoch {index}: shapes disagree: row_ids {row_ids.shape}, gold {gold.shape}, logits {logits.shape}"
            )
        nan_rows = int(np.isnan(logits).any(axis=1).sum())
        if nan_rows:
            warnings.warn(f"epoch {index}: {nan_rows} examples have NaN logits (recorded as NaN)", stacklevel=2)
        columns = {"row_id": row_ids, "gold": gold, "logits": _logits_array(logits)}
        if sub_ids is not None:
            columns["sub_id"] = pa.array(np.asarray(sub_ids, dtype=np.int32))
        for name, values in (extra or {}).items():
            columns[name] = pa.array(np.asarray(values, dtype=np.float32))
        n_filled = 0
        if filled is not None and np.any(filled):
            columns["filled"] = pa.array(np.asarray(filled, dtype=bool))
            n_filled = int(np.sum(filled))
        write_table_atomic(epoch_path(self.directory, index), pa.table(columns))
        manifest = self.manifest
        snapshots = manifest.get("snapshots", {})
        snapshots[str(int(index))] = {
            "epoch": None if epoch is None else float(epoch),
            "global_step": global_step,
            "n": int(row_ids.shape[0]),
            "nan_logits": nan_rows,
            **({"filled": n_filled} if n_filled else {}),
        }
        self.update_manifest(
            snapshots=dict(sorted(snapshots.items(), key=lambda kv: int(kv[0]))),
            epochs=sorted(int(k) for k in snapshots),
            nan_logits=int(sum(s.get("nan_logits", 0) for s in snapshots.values())),
            num_labels=int(logits.shape[1]),
        )
        return nan_rows


@dataclass
class Dynamics:
    """Training dynamics of one split: ``ids`` (N,), ``gold`` (N,), ``logits`` (N, E, C).

    Rows are sorted by row id. Unpacks as ``ids, gold, logits = load_dynamics(run)``. A task with
    several units per example (multi-label, token classification) has one row per unit: ``ids``
    are unit ids 0..U-1 in ``(row_id, sub_id)`` order, and ``row_ids``/``sub_ids`` say which.
    """

    ids: np.ndarray
    gold: np.ndarray
    logits: np.ndarray
    manifest: dict[str, Any] = field(default_factory=dict)
    directory: Path | None = None
    epochs: list[int] = field(default_factory=list)
    row_ids: np.ndarray | None = None
    sub_ids: np.ndarray | None = None

    @property
    def unit_level(self) -> bool:
        """True when rows are units of examples (``row_ids``, ``sub_ids`` set)."""
        return self.sub_ids is not None

    def __iter__(self):
        return iter((self.ids, self.gold, self.logits))

    @property
    def n_examples(self) -> int:
        return int(self.logits.shape[0])

    @property
    def n_epochs(self) -> int:
        return int(self.logits.shape[1])

    @property
    def num_labels(self) -> int:
        return int(self.logits.shape[2])

    @property
    def label_names(self) -> list[str]:
        names = self.manifest.get("label_names")
        return list(names) if names else [str(i) for i in range(self.num_labels)]

    def examples(self) -> pd.DataFrame | None:
        """The recorded examples (text columns, label), indexed by row id, or None if absent."""
        if self.directory is None or not (self.directory / EXAMPLES).is_file():
            return None
        return _read_examples(self.directory / EXAMPLES)


def _read_table(path: Path) -> pa.Table:
    try:
        return pq.read_table(path)
    except (OSError, pa.ArrowException) as e:
        raise DatacartoError(f"unreadable or partial dynamics file {path}: {e}") from e


def _read_epoch(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    table = _read_table(path)
    missing = {"row_id", "gold", "logits"} - set(table.column_names)
    if missing:
        raise DatacartoError(f"{path} is not a datacarto epoch file: missing columns {sorted(missing)}")
    col = table.column("logits").combine_chunks()
    if not pa.types.is_fixed_size_list(col.type):
        raise DatacartoError(f"{path}: column 'logits' must be a fixed-size list, got {col.type}")
    c = col.type.list_size
    logits = col.flatten().to_numpy(zero_copy_only=False).reshape(-1, c)
    ids = table.column("row_id").to_numpy()
    if "sub_id" in table.column_names:  # units: one key per (row_id, sub_id), ordered like the pair
        ids = (ids.astype(np.int64) << _SUB_BITS) | table.column("sub_id").to_numpy().astype(np.int64)
    gold = table.column("gold").to_numpy()
    return ids, gold, logits


def load_dynamics(run_dir: str | os.PathLike, split: str = "train", *,
                  epochs: list[int] | None = None) -> Dynamics:
    """Load every recorded epoch of ``split`` as arrays sorted by row id.

    Raises DatacartoError when nothing is recorded, a file is unreadable, or epochs cover
    different examples.
    """
    directory = dynamics_dir(run_dir, split)
    files = list_epoch_files(directory)
    manifest = read_manifest(directory)
    if not files:
        raise DatacartoError(f"no training dynamics found in {directory} (expected epoch_*.parquet files)")
    listed = manifest.get("epochs")
    if listed:
        lost = sorted(set(int(e) for e in listed) - set(files))
        if lost:
            raise DatacartoError(f"{directory}: manifest lists epochs {lost} whose files are missing")
    if epochs is not None:
        unknown = sorted(set(epochs) - set(files))
        if unknown:
            raise DatacartoError(f"{directory}: no recorded epochs {unknown}; recorded: {sorted(files)}")
        files = {e: files[e] for e in sorted(epochs)}

    first = None  # (index, sorted ids, gold sorted by id)
    out = None
    for j, (index, path) in enumerate(files.items()):
        ids, g, logits = _read_epoch(path)
        order = None if ids.size < 2 or bool(np.all(ids[1:] > ids[:-1])) else np.argsort(ids, kind="stable")
        if order is not None:  # the recorder writes sorted ids; other writers may not
            ids, g = ids[order], g[order]
        if first is None:
            if ids.size and np.any(ids[1:] == ids[:-1]):
                raise DatacartoError(f"{path}: duplicate row ids")
            first = (index, ids, g)
            out = np.empty((ids.shape[0], len(files), logits.shape[1]), dtype=LOGITS_DTYPE)
        else:
            if logits.shape[1] != out.shape[2]:
                raise DatacartoError(f"{path}: {logits.shape[1]} classes, epoch {first[0]} has {out.shape[2]}")
            if not np.array_equal(ids, first[1]):
                raise DatacartoError(
                    f"epoch {index} covers {ids.shape[0]} examples and epoch {first[0]} covers "
                    f"{first[1].shape[0]}, not the same row ids: epochs must cover the same examples"
                )
            if not np.array_equal(g, first[2]):
                raise DatacartoError(f"epoch {index}: gold labels differ from epoch {first[0]}")
        out[:, j, :] = logits if order is None else logits[order]
    first_ids, gold = first[1], first[2]
    units = {}
    if "sub_id" in pq.read_schema(next(iter(files.values()))).names:
        units = {"row_ids": first_ids >> _SUB_BITS, "sub_ids": first_ids & ((1 << _SUB_BITS) - 1)}
        first_ids = np.arange(first_ids.shape[0], dtype=np.int64)
    return Dynamics(ids=first_ids, gold=gold.astype(np.int64), logits=out, manifest=manifest,
                    directory=directory, epochs=list(files), **units)


def _read_examples(path: Path) -> pd.DataFrame:
    df = _read_table(path).to_pandas()
    if "row_id" not in df.columns:
        raise DatacartoError(f"{path}: no row_id column")
    return df.set_index("row_id").sort_index()


def load_examples(run_dir: str | os.PathLike, split: str = "train") -> pd.DataFrame | None:
    """The recorded examples of ``split`` (text columns, label, fingerprint) by row id, or None."""
    path = dynamics_dir(run_dir, split) / EXAMPLES
    return _read_examples(path) if path.is_file() else None
