"""The review queue of ``datacarto label-errors``: CSV, JSONL, Label Studio tasks, Argilla records.

CSV and JSONL hold the queue table as it is (:func:`datacarto.dynamics.label_errors.review_queue`):
the flagged rows, their texts, empty ``decision`` and ``new_label`` columns to fill in, and the
run's ``dataset_fingerprint``; ``apply-corrections`` reads them back. Label Studio: a JSON list of
tasks (``data`` = the texts and ids, the suggested label as a ``predictions`` pre-annotation of a
``choices`` control named ``label``). Argilla: a JSON list of records as ``Record.to_dict`` writes
them (``fields`` = the texts, ``suggestions`` = the suggested label with its probability for a
question named ``label``, ``metadata`` = the ids, the given label and the score). docs/label_errors.md.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from .._io import check_output_file, write_frame, write_json_atomic
from .._validation import check_choice
from ..errors import DatacartoError

FORMATS = ("csv", "jsonl", "label-studio", "argilla")
SUFFIX = {"csv": ".csv", "jsonl": ".jsonl", "label-studio": ".json", "argilla": ".json"}
#: the question (Argilla) and the choices control (Label Studio) the suggestion answers
QUESTION = "label"
AGENT = "datacarto label-errors"
#: per-row columns that identify a flagged row (kept as Label Studio data and Argilla metadata)
ID_COLUMNS = ("row_id", "sub_id", "unit", "given_label", "score", "score_value", "dataset_fingerprint")


def queue_format(path: str | os.PathLike, fmt: str | None = None, *, overwrite: bool = True) -> str:
    """The queue's format: ``fmt``, else from the file's extension; checked against it (and, unless
    ``overwrite``, refused when the file exists: a queue being reviewed) before any work."""
    path = Path(path)
    suffix = path.suffix.lower()
    if fmt is None:
        by_suffix = {".csv": "csv", ".jsonl": "jsonl"}
        if suffix not in by_suffix:
            raise DatacartoError(f"cannot tell the queue format of {path}: name a .csv or .jsonl file, or give "
                                 "--format label-studio or --format argilla with a .json file")
        fmt = by_suffix[suffix]
    check_choice(fmt, FORMATS, "--format")
    check_output_file(path, (SUFFIX[fmt],), overwrite=overwrite)
    return fmt


def _texts(queue: pd.DataFrame, texts: list[str]) -> list[str]:
    cols = [c for c in texts if c in queue.columns]
    return cols or [c for c in ("sentence", "unit") if c in queue.columns]


def _plain(value):
    """A JSON-ready value (numpy scalars and arrays to Python)."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return value


def _record_id(row) -> str:
    return f"{int(row['row_id'])}" + (f"-{int(row['sub_id'])}" if "sub_id" in row and pd.notna(row["sub_id"]) else "")


def label_studio_tasks(queue: pd.DataFrame, texts: list[str]) -> list[dict]:
    """One Label Studio task per flagged row: texts and ids in ``data``, the suggestion as a prediction."""
    cols = _texts(queue, texts)
    target = cols[0] if cols else "text"
    tasks = []
    for _, row in queue.iterrows():
        data = {c: _plain(row[c]) for c in cols}
        data.update({c: _plain(row[c]) for c in ID_COLUMNS if c in queue.columns and c not in data})
        result = {"from_name": QUESTION, "to_name": target, "type": "choices",
                  "value": {"choices": [str(row["suggested_label"])]}}
        tasks.append({"data": data, "predictions": [{"model_version": AGENT,
                                                     "score": float(row["suggested_probability"]),
                                                     "result": [result]}]})
    return tasks


def argilla_records(queue: pd.DataFrame, texts: list[str]) -> list[dict]:
    """One Argilla record per flagged row (``Record.from_dict`` reads it): fields, suggestion, metadata."""
    cols = _texts(queue, texts)
    records = []
    for _, row in queue.iterrows():
        metadata = {c: _plain(row[c]) for c in ID_COLUMNS if c in queue.columns}
        suggestion = {"value": str(row["suggested_label"]), "score": float(row["suggested_probability"]),
                      "agent": AGENT}
        records.append({"id": _record_id(row), "fields": {c: _plain(row[c]) for c in cols}, "metadata": metadata,
                        "suggestions": {QUESTION: suggestion}, "responses": {}, "vectors": {}})
    return records


def write_review_queue(queue: pd.DataFrame, path: str | os.PathLike, *, fmt: str | None = None,
                       texts: list[str] | None = None) -> Path:
    """Write the queue in ``fmt`` (default: by extension), atomically; ``texts``: the text columns."""
    fmt = queue_format(path, fmt)
    texts = list(texts or [])
    if fmt in ("csv", "jsonl"):
        return write_frame(queue, path, index=False)
    rows = label_studio_tasks(queue, texts) if fmt == "label-studio" else argilla_records(queue, texts)
    return write_json_atomic(path, rows)
