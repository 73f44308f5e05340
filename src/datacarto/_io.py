"""Atomic file writes: write to a temporary name in the same folder, then rename.

A reader (or a crash) never sees a half-written file: either the old file or the new one.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any


def _read_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _read_umask()  # read once: os.umask() can only be read by setting it, which races with threads


def atomic_write(path: str | os.PathLike, write: Callable[[str], None]) -> Path:
    """Call ``write(tmp_path)`` then rename the temporary file onto ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        # mkstemp makes the file private (0600); give it the mode a plain open() would (umask)
        os.chmod(tmp, 0o666 & ~_UMASK)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    def _write(tmp: str) -> None:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())

    return atomic_write(path, _write)


def write_json_atomic(path: str | os.PathLike, obj: Any) -> Path:
    return write_text_atomic(path, json.dumps(obj, indent=2, sort_keys=True, default=_json_default) + "\n")


def write_table_atomic(path: str | os.PathLike, table) -> Path:
    """Write a ``pyarrow.Table`` as Parquet, atomically."""
    import pyarrow.parquet as pq

    return atomic_write(path, lambda tmp: pq.write_table(table, tmp))


def write_jsonl_atomic(path: str | os.PathLike, rows) -> Path:
    """One JSON object per line; floats written exactly (pandas' to_json keeps 10 digits), NaN as null."""
    def clean(v):
        return None if isinstance(v, float) and math.isnan(v) else v

    lines = (json.dumps({k: clean(v) for k, v in row.items()}, ensure_ascii=False, default=_json_default) + "\n"
             for row in rows)
    return write_text_atomic(path, "".join(lines))


def write_frame(df, path: str | os.PathLike, *, index: bool = True) -> Path:
    """Write a pandas DataFrame by extension (.parquet, .csv, .jsonl/.json), atomically."""
    path = Path(path)
    suffix = path.suffix.lower()
    frame = df.reset_index() if index and df.index.name is not None else df
    if suffix == ".parquet":
        return atomic_write(path, lambda tmp: frame.to_parquet(tmp, index=False))
    if suffix == ".csv":
        return atomic_write(path, lambda tmp: frame.to_csv(tmp, index=False))
    if suffix in (".jsonl", ".json"):
        import pyarrow as pa

        return write_jsonl_atomic(path, pa.Table.from_pandas(frame, preserve_index=False).to_pylist())
    from .errors import DatacartoError

    raise DatacartoError(f"unsupported output format {suffix!r} for {path}: use .parquet, .csv or .jsonl")


def _json_default(obj: Any):
    import numpy as np

    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating):
        return float(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, (Path, bytes)) or hasattr(obj, "isoformat"):
        return obj.decode() if isinstance(obj, bytes) else str(obj)
    raise TypeError(f"not JSON serializable: {type(obj).__name__}")
