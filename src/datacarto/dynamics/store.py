"""On-disk store of training dynamics: units once, one Parquet file of logits per epoch, examples, manifest.

Layout under ``<output_dir>/training_dynamics/`` (see docs/format.md)::

    manifest.json            what was recorded: model, data, labels, mode, epochs, versions
    examples.parquet         row_id, fingerprint, label and the text columns (for tooltips)
    units.parquet            row_id (int64), gold (int32) [, sub_id]: the split's units, once, sorted
    epoch_000.parquet ...    logits (fixed_size_list<float32>[C]) in the order of units.parquet
                             [, filled, a causal LM's nll, token_accuracy, n_tokens]
    eval/<split>/...         the same files for each evaluation split (validation, test, ...)

Format-1 runs (every epoch file holding row_id and gold) still load (:mod:`.epochs`). Every file is
written atomically, so a crash leaves the finished epochs intact.
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

from .._io import write_json_atomic, write_table_atomic
from ..errors import DatacartoError
from .epochs import (
    FORMAT_VERSION,
    LOGITS_DTYPE,
    SUB_BITS,
    UNITS,
    StoredLogits,
    epoch_path,
    list_epoch_files,
    read_table,
    write_epoch_file,
)

__all__ = ["DYNAMICS_DIRNAME", "EXAMPLES", "FORMAT_VERSION", "LOGITS_DTYPE", "MANIFEST", "UNITS", "Dynamics",
           "DynamicsWriter", "StoredLogits", "check_split_name", "dataset_fingerprint", "dynamics_dir", "epoch_path",
           "example_fingerprints", "list_epoch_files", "load_dynamics", "load_epoch_columns", "load_examples", "no_dynamics",
           "open_dynamics", "package_versions", "read_manifest", "runs_inside"]

DYNAMICS_DIRNAME = "training_dynamics"
MANIFEST = "manifest.json"
EXAMPLES = "examples.parquet"
#: a cross-fitted run's store that is not its main one (``train``), by the main one's dynamics
CROSSFIT_OTHER_SPLIT = {"out-of-sample": "insample", "in-sample": "oos"}
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


_KINDS = {
    "a list of strings": lambda v: isinstance(v, list) and all(isinstance(x, str) for x in v),
    "a list of integers": lambda v: isinstance(v, list) and all(isinstance(x, int) and not isinstance(x, bool)
                                                                for x in v),
    "an integer >= 0": lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 0,
    "a string": lambda v: isinstance(v, str),
    "a mapping": lambda v: isinstance(v, dict),
}
#: The type of each manifest field a reader relies on (docs/format.md); null counts as absent.
MANIFEST_FIELDS = {
    **dict.fromkeys(("label_names", "text_columns"), "a list of strings"),
    "epochs": "a list of integers",
    **dict.fromkeys(("num_labels", "n_examples", "n_units", "format_version", "snapshots_per_epoch", "nan_logits"),
                    "an integer >= 0"),
    **dict.fromkeys(("dataset_fingerprint", "mode", "model", "split", "task", "unit", "dynamics", "logits_dtype"),
                    "a string"),
    **dict.fromkeys(("snapshots", "versions", "task_columns", "task_spec", "crossfit"), "a mapping"),
}


def read_manifest(directory: str | os.PathLike) -> dict[str, Any]:
    """A split's manifest (``{}`` when there is none), its fields type-checked: the one reader of manifests.

    DatacartoError naming the file (and the field) when it is unreadable, not a JSON object, or a
    field of :data:`MANIFEST_FIELDS` has the wrong type (``"label_names": "abc"`` is not three labels).
    """
    path = Path(directory) / MANIFEST
    if not path.is_file():
        return {}
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:  # ValueError: invalid JSON or not UTF-8
        raise DatacartoError(f"unreadable manifest {path}: {e}") from e
    if not isinstance(manifest, dict):
        raise DatacartoError(f"unreadable manifest {path}: expected a JSON object, got {type(manifest).__name__}")
    for key, kind in MANIFEST_FIELDS.items():
        value = manifest.get(key)
        if value is not None and not _KINDS[kind](value):
            shown = repr(value)
            raise DatacartoError(f"{path}: {key} must be {kind}, got "
                                 f"{shown if len(shown) <= 60 else shown[:57] + '...'}")
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


class DynamicsWriter:
    """Writes one split's dynamics; the recorder and the importers both use it."""

    def __init__(self, directory: str | os.PathLike):
        self.directory = Path(directory)

    @property
    def manifest(self) -> dict[str, Any]:
        return read_manifest(self.directory)

    def store_format(self) -> int:
        """The folder's format: its manifest's; else 1 if it holds epochs without units.parquet; else 2."""
        version = self.manifest.get("format_version")
        if version is not None:
            return int(version)
        old = list_epoch_files(self.directory) and not (self.directory / UNITS).is_file()
        return 1 if old else FORMAT_VERSION

    def update_manifest(self, **fields: Any) -> dict[str, Any]:
        manifest = self.manifest
        if "format_version" not in manifest:
            manifest["format_version"] = self.store_format()
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
        A format-2 store keeps the keys (row_id, gold, sub_id) in units.parquet, written with the first
        epoch, and stores the columns of an epoch over the same units in their order; a format-1 store
        (a resumed old run) keeps writing keys into every epoch file.
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
        keys = {"row_id": row_ids, "gold": gold}
        if sub_ids is not None:
            keys["sub_id"] = np.asarray(sub_ids, dtype=np.int32)
        columns = {"logits": logits}
        for name, values in (extra or {}).items():
            columns[name] = np.asarray(values, dtype=np.float32)
        n_filled = 0
        if filled is not None and np.any(filled):
            columns["filled"] = np.asarray(filled, dtype=bool)
            n_filled = int(np.sum(filled))
        write_epoch_file(self.directory, index, keys, columns, shared=self.store_format() >= 2)
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
    ``logits`` is an array from ``load_dynamics`` and a :class:`StoredLogits` from ``open_dynamics``.
    """

    ids: np.ndarray
    gold: np.ndarray
    logits: np.ndarray | StoredLogits
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


def runs_inside(directory: Path) -> str:
    """"; <folder> holds recorded runs: ..." when the folder ``directory`` was looked for in holds runs
    one level down (a pipeline run folder: baseline/, crossfit/), else ""."""
    folder = directory.parent if directory.name == DYNAMICS_DIRNAME else directory
    runs = sorted(str(p.parent) for p in folder.glob(f"*/{DYNAMICS_DIRNAME}") if p.is_dir())
    return f"; {folder} holds recorded runs: {', '.join(runs[:6])}" if runs else ""


def no_dynamics(directory: Path) -> DatacartoError:
    """The error for a folder that holds no recorded epochs (naming the runs inside it, if any)."""
    return DatacartoError(f"no training dynamics found in {directory} (expected epoch_*.parquet files)"
                          + runs_inside(directory))


def _epoch_files(directory: Path, manifest: dict[str, Any], epochs: list[int] | None) -> dict[int, Path]:
    """The epoch files to load: every one recorded, or ``epochs``; DatacartoError if any is missing."""
    files = list_epoch_files(directory)
    if not files:
        raise no_dynamics(directory)
    version = manifest.get("format_version", 1)
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise DatacartoError(f"{directory / MANIFEST}: format_version {version!r}: written by a newer datacarto "
                             f"(this one reads formats 1 to {FORMAT_VERSION}); upgrade datacarto")
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
    return files


def open_dynamics(run_dir: str | os.PathLike, split: str = "train", *,
                  epochs: list[int] | None = None) -> Dynamics:
    """``load_dynamics`` without reading the logits: ``logits`` is a :class:`StoredLogits`.

    Its ``blocks()`` read the epochs in blocks of rows, so :func:`datacarto.metrics.compute_metrics`
    of it holds one block at a time, never the (N, E, C) array. The same checks as ``load_dynamics``.
    """
    directory = dynamics_dir(run_dir, split)
    manifest = read_manifest(directory)
    files = _epoch_files(directory, manifest, epochs)
    stored = StoredLogits(directory, files)
    ids, units = stored.keys, {}
    if stored.unit_level:  # units: one key per (row_id, sub_id), ordered like the pair
        units = {"row_ids": ids >> SUB_BITS, "sub_ids": ids & ((1 << SUB_BITS) - 1)}
        ids = np.arange(ids.shape[0], dtype=np.int64)
    return Dynamics(ids=ids, gold=stored.gold.astype(np.int64), logits=stored, manifest=manifest,
                    directory=directory, epochs=list(files), **units)


def load_dynamics(run_dir: str | os.PathLike, split: str = "train", *,
                  epochs: list[int] | None = None) -> Dynamics:
    """Load every recorded epoch of ``split`` as arrays sorted by row id.

    Raises DatacartoError when nothing is recorded, a file is unreadable, or epochs cover
    different examples. Reads format 1 (keys in every epoch file) and format 2 (units.parquet).
    """
    dyn = open_dynamics(run_dir, split, epochs=epochs)
    dyn.logits = dyn.logits.read()
    return dyn


def load_epoch_columns(run_dir: str | os.PathLike, index: int, split: str = "train") -> pd.DataFrame:
    """One snapshot's per-row columns besides the logits (gold, ``filled``, a causal LM's ``nll``, ...).

    Indexed by ``row_id`` in key order; a run with several units per example adds ``sub_id``.
    """
    dyn = open_dynamics(run_dir, split, epochs=[index])
    frame = {"gold": dyn.gold}
    if dyn.unit_level:
        frame["sub_id"] = dyn.sub_ids
    frame.update({name: dyn.logits.column(0, name) for name in dyn.logits.columns(0)})
    return pd.DataFrame(frame, index=pd.Index(dyn.row_ids if dyn.unit_level else dyn.ids, name="row_id"))


def _read_examples(path: Path) -> pd.DataFrame:
    df = read_table(path).to_pandas()
    if "row_id" not in df.columns:
        raise DatacartoError(f"{path}: no row_id column")
    return df.set_index("row_id").sort_index()


def load_examples(run_dir: str | os.PathLike, split: str = "train") -> pd.DataFrame | None:
    """The recorded examples of ``split`` (text columns, label, fingerprint) by row id, or None."""
    path = dynamics_dir(run_dir, split) / EXAMPLES
    return _read_examples(path) if path.is_file() else None
