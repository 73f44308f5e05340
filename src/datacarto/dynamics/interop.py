"""Interop with the paper's code (allenai/cartography).

Its format: ``<dir>/training_dynamics/dynamics_epoch_<N>.jsonl``, one JSON object per example and
epoch: ``{"guid": ..., "logits_epoch_<N>": [...], "gold": <int>}``.

Import: row ids are 0..N-1 in sorted guid order (numbers numerically, strings by code point),
whatever order the lines of each file are in, and the original guids are kept in the ``guid``
column of examples.parquet. Contiguous ids keep loading fast (12-digit sparse ids loaded 3x
slower). The import is all or nothing: it writes a temporary sibling folder under a run lock and
renames it to ``<out>/training_dynamics`` at the end. Files are parsed by ``pyarrow.json``; a file
it cannot read cleanly is read again line by line, which names the first bad line.

Export: refuses to replace an earlier export unless ``overwrite=True``, and is all or nothing too.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import numpy as np
import pandas as pd

from .._io import atomic_dir, remove_partials, run_lock
from ..errors import DatacartoError
from ..tasks import DEFAULT_TASK, TaskSpec, manifest_task
from .store import (
    DYNAMICS_DIRNAME,
    MANIFEST,
    DynamicsWriter,
    dataset_fingerprint,
    list_epoch_files,
    load_dynamics,
    load_examples,
)

_FILE_RE = re.compile(r"dynamics_epoch_(\d+)\.jsonl")
_BLOCK = 16 << 20  # pyarrow.json block size: a line must fit in one block


def _allenai_files(src: Path) -> dict[int, Path]:
    folder = src / DYNAMICS_DIRNAME if (src / DYNAMICS_DIRNAME).is_dir() else src
    files = {}
    if folder.is_dir():
        for p in folder.iterdir():
            m = _FILE_RE.fullmatch(p.name)
            if m:
                files[int(m.group(1))] = p
    if not files:
        raise DatacartoError(f"no allenai dynamics found in {folder} (expected dynamics_epoch_N.jsonl files)")
    return dict(sorted(files.items()))


# ----------------------------------------------------------------------------------------------
# reading one epoch file: (guids, gold, logits)


def _read_fast(path: Path, key: str):
    """Parse with pyarrow.json; None when the file needs the line-by-line reader (errors, nulls, ragged)."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.json as pj

    table = None
    for guid_type in (pa.int64(), pa.string()):
        schema = pa.schema([("guid", guid_type), ("gold", pa.int64()), (key, pa.list_(pa.float64()))])
        try:
            table = pj.read_json(path, read_options=pj.ReadOptions(block_size=_BLOCK),
                                 parse_options=pj.ParseOptions(explicit_schema=schema,
                                                               unexpected_field_behavior="ignore"))
            break
        except (pa.ArrowException, OSError):
            continue
    if table is None or table.num_rows == 0 or any(table.column(c).null_count for c in table.column_names):
        return None
    lists = table.column(key).combine_chunks()
    lengths = pc.list_value_length(lists).to_numpy()
    values = lists.flatten()
    if lengths.min() < 1 or lengths.min() != lengths.max() or values.null_count:
        return None
    guids = table.column("guid").to_numpy(zero_copy_only=False)
    gold = table.column("gold").to_numpy()
    logits = values.to_numpy(zero_copy_only=False).reshape(-1, int(lengths[0]))
    return guids, gold, logits


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _check_record(record, key: str, guid_kind, width) -> str | None:
    """What is wrong with one parsed line, or None."""
    if not isinstance(record, dict):
        return f"expected a JSON object, got {type(record).__name__}"
    missing = sorted({"guid", "gold", key} - set(record))
    if missing:
        return f"missing fields {missing}"
    guid, gold, logits = record["guid"], record["gold"], record[key]
    if not (_is_int(guid) or isinstance(guid, str)):
        return f"guid must be an integer or a string, got {guid!r}"
    if guid_kind is not None and _is_int(guid) != guid_kind:
        return f"guid {guid!r}: guids mix numbers and strings"
    if _is_int(guid) and not -2**63 <= guid < 2**63:
        return f"guid {guid} does not fit in 64 bits: write it as a string"
    if not _is_int(gold) or not -2**63 <= gold < 2**63:
        return f"gold label must be an integer class index, got {gold!r}"
    if not isinstance(logits, list) or not logits or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in logits):
        return f"{key} must be a non-empty list of numbers, got {str(logits)[:60]}"
    if width is not None and len(logits) != width:
        return f"{len(logits)} logits, earlier lines have {width}"
    return None


def _read_lines(path: Path, key: str):
    """The line-by-line reader: one DatacartoError naming the file and line of the first bad line."""
    guids, gold, logits = [], [], []
    guid_kind = width = None
    with open(path, "rb") as f:
        for number, raw in enumerate(f, start=1):
            try:
                line = raw.decode("utf-8").strip()
            except UnicodeDecodeError:
                raise DatacartoError(f"{path}, line {number}: not UTF-8 text") from None
            if not line:
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as e:
                raise DatacartoError(f"{path}, line {number}: not valid JSON ({e.msg})") from None
            problem = _check_record(record, key, guid_kind, width)
            if problem:
                raise DatacartoError(f"{path}, line {number}: {problem}")
            guid_kind, width = _is_int(record["guid"]), len(record[key])
            guids.append(record["guid"])
            gold.append(record["gold"])
            logits.append(record[key])
    if not guids:
        raise DatacartoError(f"{path}: no examples")
    kind = np.int64 if guid_kind else object
    return np.asarray(guids, dtype=kind), np.asarray(gold, dtype=np.int64), np.asarray(logits, dtype=np.float64)


def _read_epoch(path: Path, epoch: int):
    key = f"logits_epoch_{epoch}"
    fast = _read_fast(path, key)
    guids, gold, logits = fast if fast is not None else _read_lines(path, key)
    return guids, gold, logits.astype(np.float32)


# ----------------------------------------------------------------------------------------------
# import


def _describe(guid) -> str:
    return repr(guid.item() if hasattr(guid, "item") else guid)


class _Aligner:
    """Row id = rank of the guid in sorted order; aligns every epoch to the first one's guids."""

    def __init__(self, guids: np.ndarray, path: Path):
        index = pd.Index(guids)
        if index.has_duplicates:
            raise DatacartoError(f"{path}: duplicate guid {_describe(index[index.duplicated()][0])}")
        self.guids = index.sort_values()
        self.numeric = guids.dtype.kind in "iu"
        self.first = path

    def rows(self, guids: np.ndarray, path: Path) -> np.ndarray:
        if (guids.dtype.kind in "iu") != self.numeric:
            raise DatacartoError(f"{path}: guids are {'numbers' if not self.numeric else 'strings'}, "
                                 f"in {self.first} they are {'numbers' if self.numeric else 'strings'}")
        rows = self.guids.get_indexer(guids)
        if (rows < 0).any():
            raise DatacartoError(f"{path} covers different examples than {self.first}: guid "
                                 f"{_describe(guids[np.flatnonzero(rows < 0)[0]])} is not in {self.first.name}")
        seen = np.zeros(len(self.guids), dtype=bool)
        seen[rows] = True
        if len(rows) != len(self.guids) or not seen.all():
            what = ("duplicate guid " + _describe(guids[pd.Index(rows).duplicated()][0])
                    if pd.Index(rows).has_duplicates else f"{len(rows)} examples")
            raise DatacartoError(f"{path} covers different examples than {self.first} "
                                 f"({what}; {self.first.name} has {len(self.guids)})")
        return rows


def _check_label_names(label_names, num_labels: int) -> list[str]:
    if not label_names:
        return [str(i) for i in range(num_labels)]
    names = [str(n) for n in label_names]
    if len(names) != num_labels:
        raise DatacartoError(f"{len(names)} label names given, the logits have {num_labels} classes")
    if len(set(names)) != len(names):
        raise DatacartoError(f"duplicate label names in {names}")
    return names


def _write_import(files: dict[int, Path], folder: Path, label_names, source: Path) -> None:
    """Read every epoch file and write the store into ``folder`` (a temporary folder)."""
    writer = DynamicsWriter(folder)
    aligner = gold = num_labels = None
    for j, (epoch, path) in enumerate(files.items()):
        guids, g, logits = _read_epoch(path, epoch)
        if aligner is None:
            aligner = _Aligner(guids, path)
            num_labels = logits.shape[1]
        if logits.shape[1] != num_labels:
            raise DatacartoError(f"{path}: {logits.shape[1]} logits per example, "
                                 f"{files[min(files)].name} has {num_labels}")
        rows = aligner.rows(guids, path)
        sorted_logits = np.empty_like(logits)
        sorted_logits[rows] = logits
        sorted_gold = np.empty_like(g)
        sorted_gold[rows] = g
        if gold is None:
            bad = np.flatnonzero((sorted_gold < 0) | (sorted_gold >= num_labels))
            if bad.size:
                raise DatacartoError(f"{path}: gold label {int(sorted_gold[bad[0]])} of guid "
                                     f"{_describe(aligner.guids[bad[0]])} outside [0, {num_labels})")
            gold = sorted_gold
        elif not np.array_equal(sorted_gold, gold):
            k = int(np.flatnonzero(sorted_gold != gold)[0])
            raise DatacartoError(f"{path}: gold label of guid {_describe(aligner.guids[k])} is "
                                 f"{int(sorted_gold[k])}, in {files[min(files)].name} it is {int(gold[k])}")
        writer.write_epoch(j, np.arange(len(rows)), gold, sorted_logits, epoch=float(epoch + 1))
    guids = aligner.guids.to_numpy()
    fps = np.asarray(pd.util.hash_pandas_object(pd.Series(guids.astype(str)), index=False), dtype=np.uint64)
    writer.write_examples(np.arange(len(guids)), fps, gold, pd.DataFrame({"guid": guids}))
    names = _check_label_names(label_names, num_labels)
    spec = TaskSpec(task=DEFAULT_TASK, text_columns=[], label_column="label", label_names=names)  # as recording's
    writer.update_manifest(mode="imported", source=str(source), source_format="allenai/cartography",
                           n_examples=int(len(guids)), dataset_fingerprint=dataset_fingerprint(fps),
                           label_names=names, num_labels=int(num_labels), split="train", text_columns=[],
                           row_ids="rank of the guid in sorted order; guids in examples.parquet",
                           **manifest_task(DEFAULT_TASK, spec))


def _check_no_dynamics(out: Path) -> None:
    target = out / DYNAMICS_DIRNAME
    if (out / MANIFEST).is_file() or (target.exists() and any(target.iterdir())):
        raise DatacartoError(f"{out} already holds training dynamics: choose an empty output folder")


def import_allenai(src: str | os.PathLike, out: str | os.PathLike, *, label_names: list[str] | None = None) -> Path:
    """Read allenai/cartography dynamics from ``src`` into a datacarto store under ``out``, all or nothing.

    Row ids are 0..N-1 in sorted guid order; the guids are kept in examples.parquet. Refused (one
    DatacartoError, nothing written): malformed lines, string gold labels, epochs whose gold labels
    or guids differ, and an ``out`` that already holds dynamics.
    """
    src, out = Path(src), Path(out)
    files = _allenai_files(src)
    if out.exists() and not out.is_dir():
        raise DatacartoError(f"{out} is a file: the output must be a folder (new or empty)")
    target = out / DYNAMICS_DIRNAME
    _check_no_dynamics(out)
    created = not out.exists()
    try:
        with run_lock(out):
            _check_no_dynamics(out)  # again: another import may have finished while we waited
            remove_partials(target)  # left by an import that was killed: we hold the lock
            with atomic_dir(target) as tmp:
                _write_import(files, tmp, label_names, src)
    except BaseException:
        if created and out.is_dir() and not any(out.iterdir()):
            out.rmdir()  # leave nothing behind
        raise
    return target


# ----------------------------------------------------------------------------------------------
# export


def _export_lines(guids, logits: np.ndarray, gold: np.ndarray, epoch: int) -> str:
    key = f"logits_epoch_{epoch}"
    return "".join(json.dumps({"guid": g, key: lg, "gold": y}) + "\n"
                   for g, lg, y in zip(guids, logits.tolist(), gold.tolist()))


def export_allenai(run: str | os.PathLike, out: str | os.PathLike, *, split: str = "train",
                   overwrite: bool = False) -> Path:
    """Write a run's dynamics as allenai/cartography ``dynamics_epoch_N.jsonl`` files under ``out``.

    All or nothing (a temporary folder renamed into place). An earlier export in ``out`` is
    replaced only with ``overwrite=True``; a datacarto store there never is.
    """
    dyn = load_dynamics(run, split)
    bad = np.flatnonzero((dyn.gold < 0) | (dyn.gold >= dyn.num_labels))
    if bad.size:
        raise DatacartoError(f"{dyn.directory}: gold label {int(dyn.gold[bad[0]])} of row {int(dyn.ids[bad[0]])} "
                             f"outside [0, {dyn.num_labels}): the paper's code would index past the logits")
    examples = load_examples(run, split)
    guids = dyn.ids.tolist()
    if examples is not None and "guid" in examples.columns:
        guids = examples["guid"].reindex(dyn.ids).tolist()
    if Path(out).exists() and not Path(out).is_dir():
        raise DatacartoError(f"{out} is a file: the output must be a folder")
    folder = Path(out) / DYNAMICS_DIRNAME
    existing = folder.exists() and any(folder.iterdir())
    if existing and ((folder / MANIFEST).exists() or list_epoch_files(folder)):
        raise DatacartoError(f"{folder} holds a datacarto store, not an export: choose another folder")
    if existing and not overwrite:
        raise DatacartoError(f"{folder} already holds files (an earlier export?): pass --overwrite to replace it")
    with run_lock(out):
        remove_partials(folder)
        with atomic_dir(folder, replace=overwrite) as tmp:
            for j in range(dyn.n_epochs):
                (tmp / f"dynamics_epoch_{j}.jsonl").write_text(
                    _export_lines(guids, dyn.logits[:, j, :], dyn.gold, j), encoding="utf-8")
    return folder
