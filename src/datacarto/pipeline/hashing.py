"""Stable hashes of what a stage reads: JSON-able values, data frames, row ids, files and folders."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..errors import DatacartoError


def digest(obj: Any) -> str:
    """A short stable hash of a JSON-able object (keys sorted; other objects by ``str``)."""
    text = json.dumps(obj, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def frame_digest(frame: pd.DataFrame) -> str:
    """Content hash of a DataFrame (values, column names and index)."""
    h = hashlib.sha256()
    h.update(json.dumps([str(c) for c in frame.columns]).encode())
    if len(frame):
        h.update(pd.util.hash_pandas_object(frame.astype(str), index=True).to_numpy().tobytes())
    return h.hexdigest()[:24]


def ids_digest(ids: np.ndarray) -> str:
    """Content hash of row ids (as int64, in their order)."""
    return hashlib.sha256(np.ascontiguousarray(ids, dtype=np.int64).tobytes()).hexdigest()[:24]


def _file_stat(path: Path) -> list:
    st = path.stat()
    return [path.name, int(st.st_size), int(st.st_mtime_ns)]


def describe_data(value) -> Any:
    """What identifies a data input: resolved path, size and mtime for files; the name for hub data."""
    if value is None:
        return None
    if isinstance(value, (str, os.PathLike)):
        path = Path(value)
        if path.is_file():
            return {"path": str(path.resolve()), "stat": _file_stat(path)}
        if path.is_dir():
            return {"path": str(path.resolve()),
                    "stat": [_file_stat(p) for p in sorted(path.rglob("*")) if p.is_file()]}
        return {"name": str(value)}
    if hasattr(value, "column_names") and hasattr(value, "to_pandas"):
        return {"in_memory": len(value), "content": frame_digest(value.to_pandas())}
    raise DatacartoError(f"data must be a file, a folder, a hub name or a datasets.Dataset, got {type(value).__name__}")


def describe_model(model: str) -> Any:
    """What identifies a model: a local folder's weight/config files (size, mtime), else its hub name."""
    path = Path(model)
    if path.is_dir():
        files = [p for p in sorted(path.iterdir()) if p.is_file() and p.suffix in (".json", ".safetensors", ".bin", ".txt")]
        return {"path": str(path.resolve()), "stat": [_file_stat(p) for p in files]}
    return {"name": model}
