"""Interop with the paper's code (allenai/cartography).

Its format: ``<dir>/training_dynamics/dynamics_epoch_<N>.jsonl``, one JSON object per example and
epoch: ``{"guid": ..., "logits_epoch_<N>": [...], "gold": <int>}``. Integer guids become our row
ids; other guids are numbered in sorted order and kept in the ``guid`` column of examples.parquet.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import numpy as np
import pandas as pd

from .._io import write_text_atomic
from ..errors import DatacartoError
from .store import (
    DYNAMICS_DIRNAME,
    DynamicsWriter,
    dataset_fingerprint,
    dynamics_dir,
    load_dynamics,
    load_examples,
)

_FILE_RE = re.compile(r"^dynamics_epoch_(\d+)\.jsonl$")


def _allenai_files(src: Path) -> dict[int, Path]:
    folder = src / DYNAMICS_DIRNAME if (src / DYNAMICS_DIRNAME).is_dir() else src
    files = {}
    if folder.is_dir():
        for p in folder.iterdir():
            m = _FILE_RE.match(p.name)
            if m:
                files[int(m.group(1))] = p
    if not files:
        raise DatacartoError(f"no allenai dynamics found in {folder} (expected dynamics_epoch_N.jsonl files)")
    return dict(sorted(files.items()))


def _read_epoch(path: Path, epoch: int) -> pd.DataFrame:
    try:
        frame = pd.read_json(path, lines=True, dtype=False)
    except ValueError as e:
        raise DatacartoError(f"unreadable allenai dynamics file {path}: {e}") from e
    key = f"logits_epoch_{epoch}"
    missing = {"guid", "gold", key} - set(frame.columns)
    if missing:
        raise DatacartoError(f"{path}: missing fields {sorted(missing)}")
    if frame["guid"].duplicated().any():
        raise DatacartoError(f"{path}: duplicate guids")
    return frame.rename(columns={key: "logits"})


def import_allenai(src: str | os.PathLike, out: str | os.PathLike, *, label_names: list[str] | None = None) -> Path:
    """Read allenai/cartography dynamics from ``src`` into a datacarto store under ``out``."""
    src, out = Path(src), Path(out)
    files = _allenai_files(src)
    frames = {e: _read_epoch(p, e) for e, p in files.items()}
    first = next(iter(frames.values()))
    guids = first["guid"]
    numeric = pd.api.types.is_integer_dtype(guids)
    if numeric:
        ids_of = dict(zip(guids.tolist(), guids.tolist()))
    else:
        ordered = sorted(guids.astype(str).tolist())
        ids_of = {g: i for i, g in enumerate(ordered)}
    writer = DynamicsWriter(dynamics_dir(out))
    if list(writer.directory.glob("epoch_*.parquet")):
        raise DatacartoError(f"{writer.directory} already holds training dynamics: choose an empty output folder")
    num_labels = None
    for j, (epoch, frame) in enumerate(frames.items()):
        keys = frame["guid"] if numeric else frame["guid"].astype(str)
        if set(keys) != set(ids_of):
            raise DatacartoError(f"{files[epoch]} covers different examples than {files[min(files)]}")
        row_ids = np.array([ids_of[g] for g in keys], dtype=np.int64)
        logits = np.array(frame["logits"].tolist(), dtype=np.float32)
        if logits.ndim != 2:
            raise DatacartoError(f"{files[epoch]}: logits of different lengths")
        num_labels = logits.shape[1]
        gold = frame["gold"].to_numpy(dtype=np.int64)
        if gold.min() < 0 or gold.max() >= num_labels:
            raise DatacartoError(f"{files[epoch]}: gold labels outside [0, {num_labels})")
        writer.write_epoch(j, row_ids, gold, logits, epoch=float(epoch + 1))
    order = np.argsort(row_ids)
    examples = pd.DataFrame({"guid": np.asarray(list(keys))[order]}) if not numeric else None
    fps = np.asarray(pd.util.hash_pandas_object(pd.Series(np.asarray(keys)[order].astype(str)), index=False),
                     dtype=np.uint64)
    writer.write_examples(row_ids[order], fps, gold[order], examples)
    writer.update_manifest(mode="imported", source=str(src), source_format="allenai/cartography",
                           n_examples=int(len(row_ids)), dataset_fingerprint=dataset_fingerprint(fps),
                           label_names=label_names or [str(i) for i in range(num_labels)],
                           num_labels=int(num_labels), split="train", text_columns=[])
    return writer.directory


def export_allenai(run: str | os.PathLike, out: str | os.PathLike, *, split: str = "train") -> Path:
    """Write a run's dynamics as allenai/cartography ``dynamics_epoch_N.jsonl`` files under ``out``."""
    dyn = load_dynamics(run, split)
    examples = load_examples(run, split)
    guids = dyn.ids.tolist()
    if examples is not None and "guid" in examples.columns:
        guids = examples["guid"].reindex(dyn.ids).tolist()
    folder = Path(out) / DYNAMICS_DIRNAME
    for j in range(dyn.n_epochs):
        logits = dyn.logits[:, j, :].tolist()
        lines = (json.dumps({"guid": g, f"logits_epoch_{j}": lg, "gold": int(y)})
                 for g, lg, y in zip(guids, logits, dyn.gold.tolist()))
        write_text_atomic(folder / f"dynamics_epoch_{j}.jsonl", "\n".join(lines) + "\n")
    return folder
