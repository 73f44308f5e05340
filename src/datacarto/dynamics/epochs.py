"""A split's epoch files and the keys of their rows: writing them, and reading the logits in blocks.

Format 2 (docs/format.md) writes a split's units once, in ``units.parquet`` (``row_id``, ``gold``
and, with several units per example, ``sub_id``), sorted by ``(row_id, sub_id)``; each
``epoch_NNN.parquet`` then holds only its per-row columns in that order: ``logits``
(fixed_size_list<float32>[C]), ``filled``, a causal LM's ``nll``, ``token_accuracy``, ``n_tokens``.
An epoch file that holds its own ``row_id`` and ``gold`` is keyed by them: every format-1 file, and
a format-2 epoch over other units or other gold than units.parquet (``load_dynamics`` refuses to mix
them). :class:`StoredLogits` reads every epoch's logits in key order, in blocks of rows or whole.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from .._io import atomic_write
from ..errors import DatacartoError

UNITS = "units.parquet"
#: Format 2: keys in units.parquet, epochs as logit blocks. Format 1: keys in every epoch file.
FORMAT_VERSION = 2
LOGITS_DTYPE = np.float32
SUB_BITS = 24  # a unit's key while loading: row_id << 24 | sub_id (up to 16M units per example)
#: Logits per block read and per Parquet row group (16 MB of float32): what bounds reading memory.
BLOCK_LOGITS = 1 << 22
_EPOCH_RE = re.compile(r"epoch_(\d+)\.parquet")
_KEYS = ("row_id", "gold", "sub_id")


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


def _unreadable(path: Path, e: Exception) -> DatacartoError:
    return DatacartoError(f"unreadable or partial dynamics file {path}: {e}")


def read_table(path: Path, columns: list[str] | None = None) -> pa.Table:
    try:
        return pq.read_table(path, columns=columns)
    except (OSError, pa.ArrowException) as e:
        raise _unreadable(path, e) from e


def _open(path: Path) -> pq.ParquetFile:
    try:
        return pq.ParquetFile(path)
    except (OSError, pa.ArrowException) as e:
        raise _unreadable(path, e) from e


def unit_keys(row_ids: np.ndarray, sub_ids: np.ndarray | None = None) -> np.ndarray:
    """One int64 key per unit, ordered like ``(row_id, sub_id)``."""
    row_ids = np.asarray(row_ids, dtype=np.int64)
    if sub_ids is None:
        return row_ids
    return (row_ids << SUB_BITS) | np.asarray(sub_ids, dtype=np.int64)


def _increasing(keys: np.ndarray) -> bool:
    return keys.size < 2 or bool(np.all(keys[1:] > keys[:-1]))


def _arrow(values: np.ndarray) -> pa.Array:
    """A column: (N, C) logits as a fixed-size list, anything else as a flat array."""
    if values.ndim == 2:
        flat = np.ascontiguousarray(values, dtype=LOGITS_DTYPE).reshape(-1)
        return pa.FixedSizeListArray.from_arrays(pa.array(flat), values.shape[1])
    return pa.array(values)


def parquet_options(table: pa.Table) -> dict:
    """How the store writes ``table``: floats byte-stream-split, ids delta-coded, gold dictionary-coded, zstd.

    Lossless; at 3 classes float32 logits take about 10.7 bytes per row instead of 12.
    """
    names = table.column_names
    floats = [f"{name}.list.element" if name == "logits" else name for name in names
              if name == "logits" or pa.types.is_floating(table.schema.field(name).type)]
    width = table.schema.field("logits").type.list_size if "logits" in names else 1
    return {"compression": "zstd", "use_byte_stream_split": floats, "use_compliant_nested_type": True,
            "use_dictionary": [n for n in ("gold",) if n in names],
            "column_encoding": {n: "DELTA_BINARY_PACKED" for n in ("row_id", "sub_id") if n in names},
            "row_group_size": max(1024, BLOCK_LOGITS // max(width, 1))}


def write_parquet(path: Path, columns: dict[str, np.ndarray]) -> Path:
    """Write ``columns`` atomically with :func:`parquet_options` ((N, C) arrays as float32 logits)."""
    table = pa.table({name: _arrow(values) for name, values in columns.items()})
    return atomic_write(path, lambda tmp: pq.write_table(table, tmp, **parquet_options(table)))


def write_epoch_file(directory: Path, index: int, keys: dict[str, np.ndarray], columns: dict[str, np.ndarray], *,
                     shared: bool) -> bool:
    """Write epoch ``index``: ``keys`` (row_id, gold, sub_id) and its per-row ``columns`` (logits, ...).

    ``shared`` (format 2): the first epoch writes the keys, sorted, to units.parquet; an epoch over the
    same units with the same gold, in any order, stores only its columns in that order (returns True).
    Otherwise (format 1, or other units) the file holds its keys and columns as given.
    """
    directory = Path(directory)
    k = unit_keys(keys["row_id"], keys.get("sub_id"))
    if shared:
        order = None if _increasing(k) else np.argsort(k, kind="stable")
        sort = (lambda v: v) if order is None else (lambda v: v[order])
        units = directory / UNITS
        if not units.is_file():
            write_parquet(units, {name: sort(v) for name, v in keys.items()})
            same = True
        else:
            stored, gold, _ = read_keys(units)
            same = np.array_equal(stored, sort(k)) and np.array_equal(gold, sort(keys["gold"]))
        if same:
            write_parquet(epoch_path(directory, index), {name: sort(v) for name, v in columns.items()})
            return True
    write_parquet(epoch_path(directory, index), {**keys, **columns})
    return False


def read_keys(path: Path) -> tuple[np.ndarray, np.ndarray, bool]:
    """(keys, gold, has sub_id) of units.parquet or of an epoch file holding its keys, in stored order."""
    names = _open(path).schema_arrow.names
    table = read_table(path, [c for c in _KEYS if c in names])
    ids = table.column("row_id").to_numpy()
    sub = table.column("sub_id").to_numpy() if "sub_id" in names else None
    return unit_keys(ids, sub), table.column("gold").to_numpy(), sub is not None


def _logits_values(column: pa.Array | pa.ChunkedArray, c: int) -> np.ndarray:
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    return column.flatten().to_numpy(zero_copy_only=False).reshape(-1, c).astype(LOGITS_DTYPE, copy=False)


def _exact(pieces: Iterator[np.ndarray], rows: int) -> Iterator[np.ndarray]:
    """The same rows cut into blocks of exactly ``rows`` (the last one shorter)."""
    buffer, have = [], 0
    for piece in pieces:
        buffer.append(piece)
        have += len(piece)
        while have >= rows:
            joined = np.concatenate(buffer) if len(buffer) > 1 else buffer[0]
            yield joined[:rows]
            buffer, have = [joined[rows:]], have - rows
    if have:
        yield np.concatenate(buffer) if len(buffer) > 1 else buffer[0]


class StoredLogits:
    """The (N, E, C) float32 logits of a split's epoch files, in key order, read when asked.

    ``blocks()`` yields them in blocks of rows (memory bounded by the block, whatever N is),
    ``read()`` (or ``np.asarray``) whole; ``column(j, name)`` is another per-row column of epoch j
    (``filled``, ``nll``, ...). Opening reads only keys and schemas, and checks that every epoch covers
    the same units with the same gold (one DatacartoError naming the epoch otherwise).
    """

    ndim = 3
    dtype = np.dtype(LOGITS_DTYPE)

    def __init__(self, directory: Path, files: dict[int, Path]):
        self.directory, self.files = Path(directory), dict(files)
        self._paths = list(self.files.values())
        self._units: tuple[np.ndarray, np.ndarray, bool] | None = None
        self._orders: list[np.ndarray | None] = []
        first = None  # (index, sorted keys, gold in that order, classes, unit level)
        for index, path in self.files.items():
            keys, gold, has_sub, c, order = self._keys(path)
            self._orders.append(order)
            if first is None:
                if keys.size and np.any(keys[1:] == keys[:-1]):
                    raise DatacartoError(f"{path}: duplicate row ids")
                first = (index, keys, gold, c, has_sub)
            elif c != first[3]:
                raise DatacartoError(f"{path}: {c} classes, epoch {first[0]} has {first[3]}")
            elif not np.array_equal(keys, first[1]):
                raise DatacartoError(
                    f"epoch {index} covers {keys.shape[0]} examples and epoch {first[0]} covers "
                    f"{first[1].shape[0]}, not the same row ids: epochs must cover the same examples")
            elif not np.array_equal(gold, first[2]):
                raise DatacartoError(f"epoch {index}: gold labels differ from epoch {first[0]}")
        _, self.keys, self.gold, c, self.unit_level = first
        self.shape = (int(self.keys.shape[0]), len(self.files), int(c))

    def _keys(self, path: Path) -> tuple[np.ndarray, np.ndarray, bool, int, np.ndarray | None]:
        """(sorted keys, gold, has sub_id, classes, the order that sorts its rows or None) of one epoch file."""
        parquet = _open(path)
        names = parquet.schema_arrow.names
        needed = {"logits", "row_id", "gold"} if {"row_id", "gold"} & set(names) else {"logits"}
        missing = needed - set(names)
        if missing:
            raise DatacartoError(f"{path} is not a datacarto epoch file: missing columns {sorted(missing)}")
        kind = parquet.schema_arrow.field("logits").type
        if not pa.types.is_fixed_size_list(kind):
            raise DatacartoError(f"{path}: column 'logits' must be a fixed-size list, got {kind}")
        if "row_id" in names:  # keyed by its own columns (format 1, or other units than units.parquet)
            keys, gold, has_sub = read_keys(path)
        else:
            keys, gold, has_sub = self._shared_keys(path, parquet.metadata.num_rows)
        order = None if _increasing(keys) else np.argsort(keys, kind="stable")
        if order is not None:  # the recorder writes sorted keys; other writers may not
            keys, gold = keys[order], gold[order]
        return keys, gold, has_sub, kind.list_size, order

    def _shared_keys(self, path: Path, rows: int) -> tuple[np.ndarray, np.ndarray, bool]:
        units = self.directory / UNITS
        if self._units is None:
            if not units.is_file():
                raise DatacartoError(f"{path} holds logits only and its units file {units} is missing")
            self._units = read_keys(units)
        if rows != self._units[0].shape[0]:
            raise DatacartoError(f"{path} holds {rows} rows and {units} {self._units[0].shape[0]}: "
                                 "epochs must cover the same examples")
        return self._units

    def __len__(self) -> int:
        return self.shape[0]

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        return self.read() if dtype is None else self.read().astype(dtype)

    def columns(self, j: int) -> list[str]:
        """The per-row columns of epoch ``j`` besides its keys and logits (``filled``, ``nll``, ...)."""
        return [n for n in _open(self._paths[j]).schema_arrow.names if n not in (*_KEYS, "logits")]

    def column(self, j: int, name: str) -> np.ndarray:
        """Column ``name`` of epoch ``j`` (the j-th loaded), in key order."""
        values = read_table(self._paths[j], [name]).column(name).to_numpy()
        order = self._orders[j]
        return values if order is None else values[order]

    def epoch(self, j: int) -> np.ndarray:
        """The (N, C) logits of epoch ``j``, whole, in key order."""
        values = _logits_values(read_table(self._paths[j], ["logits"]).column("logits"), self.shape[2])
        order = self._orders[j]
        return values if order is None else values[order]

    def read(self) -> np.ndarray:
        """Every epoch whole: (N, E, C) float32."""
        out = np.empty(self.shape, dtype=LOGITS_DTYPE)
        for j in range(self.shape[1]):
            out[:, j] = self.epoch(j)
        return out

    def blocks(self, rows: int | None = None, epochs: int | None = None) -> Iterator[tuple[int, np.ndarray]]:
        """(first row, (m, E', C) logits) for consecutive blocks of ``rows`` rows (default: about
        ``BLOCK_LOGITS`` logits); ``epochs``: the first E' epochs only."""
        n, e, c = self.shape
        e = e if epochs is None else int(epochs)
        rows = int(rows or max(1, BLOCK_LOGITS // (e * c)))
        start = 0
        for pieces in zip(*(self._epoch_blocks(j, rows) for j in range(e))):
            block = np.empty((len(pieces[0]), e, c), dtype=LOGITS_DTYPE)
            for j, piece in enumerate(pieces):
                block[:, j] = piece
            yield start, block
            start += len(block)

    def _epoch_blocks(self, j: int, rows: int) -> Iterator[np.ndarray]:
        if self._orders[j] is not None:  # stored in another order: permuted whole (format-1 files only)
            whole = self.epoch(j)
            for s in range(0, len(whole), rows):
                yield whole[s:s + rows]
            return
        path = self._paths[j]
        try:
            batches = _open(path).iter_batches(batch_size=rows, columns=["logits"])
            yield from _exact((_logits_values(b.column(0), self.shape[2]) for b in batches), rows)
        except (OSError, pa.ArrowException) as e:
            raise _unreadable(path, e) from e
