"""What recording reads from the training set: row ids, records, labels, the task it can record.

Everything here is checked before the first training step, so a set-up datacarto cannot record
stops with one line instead of training without a store (or with a wrong one).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import pandas as pd
import torch

from ..data import column_values
from ..errors import DatacartoError
from ..task_data import UNIT_WORDS

ROW_ID = "datacarto_row_id"
SEGMENTS = "datacarto_segments"  # a packed or padding-free batch: each position's target segment (record/segments.py)
MODEL_INPUTS = ("input_ids", "attention_mask", "token_type_ids", "position_ids", "labels", "label_ids", ROW_ID,
                UNIT_WORDS, "seq_lengths")
LABEL_KEYS = ("labels", "label", "label_ids")


def _is_arrow_dataset(dataset) -> bool:
    import datasets

    return isinstance(dataset, datasets.Dataset)


def check_map_style(dataset, what: str = "training set") -> None:
    """Recording keys rows by position: an ``IterableDataset`` (no length) cannot be recorded."""
    if dataset is None:
        raise DatacartoError(f"recording needs a {what}: none was given to the Trainer")
    if isinstance(dataset, torch.utils.data.IterableDataset) or not hasattr(dataset, "__len__"):
        raise DatacartoError(
            f"recording needs a map-style {what} (with a length and row positions), got {type(dataset).__name__}: "
            "materialise it (datasets: Dataset.from_generator, or load without streaming=True)"
        )


def label_keys(label_names=None) -> tuple[str, ...]:
    """The label columns recording looks for, in order: the Trainer's ``label_names``, then :data:`LABEL_KEYS`."""
    return tuple(label_names or ()) + LABEL_KEYS


def label_column_of(data, keys: tuple[str, ...] = LABEL_KEYS) -> str | None:
    """The first of ``keys`` that is a column of ``data``, or None: the one rule for where the labels are.

    ``data``: a data set (a table's columns, else its first row's fields) or one row or batch (a mapping).
    """
    if isinstance(data, Mapping):
        fields = data
    elif _is_arrow_dataset(data) or getattr(data, "column_names", None) is not None:
        fields = data.column_names
    else:
        first = data[0] if hasattr(data, "__len__") and len(data) else None
        fields = first if isinstance(first, Mapping) else ()
    return next((k for k in keys if k in fields), None)


def read_labels(dataset, label_names: tuple[str, ...] = LABEL_KEYS) -> tuple[object, str]:
    """The raw gold labels of every row (an array, or a list of arrays) and their column."""
    column = label_column_of(dataset, label_names)
    if _is_arrow_dataset(dataset):
        if column is None:
            raise DatacartoError(f"no label column found in the training set (looked for {list(label_names)}; "
                                 f"columns: {dataset.column_names})")
        values = column_values(dataset, column)
        return (list(values) if values.dtype == object else values), column
    values = []
    for i in range(len(dataset)):
        item = dataset[i]
        if column is None or item.get(column) is None:
            raise DatacartoError(f"training example {i} has no label field (looked for {list(label_names)})")
        value = item[column]
        values.append(value.tolist() if hasattr(value, "tolist") else value)
    return values, column


def units_of(task, dataset, model, what: str = "training set", *, label_keys: tuple[str, ...] = LABEL_KEYS,
             records=None):
    """(example labels, Units, label column) of a (tokenized) data set, validated for ``task``.

    ``records``: the same rows with their original columns, where the units' words may be (the
    Trainer removes the columns the model does not take before callbacks see the data set).
    """
    raw, column = read_labels(dataset, label_keys)
    labels = task_labels(task, raw, column, task.num_classes(model, dataset), what)
    return labels, task.units(labels, unit_words(dataset, records)), column


def unit_words(*datasets) -> list | None:
    """Each row's units' word indices (token classification, :data:`~datacarto.task_data.UNIT_WORDS`), or None.

    From the first of ``datasets`` that has the column; without it a unit's index is its place
    among the row's tagged tokens.
    """
    for ds in datasets:
        if _is_arrow_dataset(ds) and UNIT_WORDS in ds.column_names:
            return ds.with_format("arrow")[UNIT_WORDS].to_pylist()
    return None


def task_labels(task, raw, column: str, num_classes: int | None, what: str = "training set"):
    """Validated labels for ``task.units`` (as its ``label_form`` says): class ids, multi-hot rows, tag
    lists (with -100), or a causal LM's target tokens."""
    if len(raw) == 0:
        raise DatacartoError(f"the {what} is empty")
    first = next((v for v in raw if v is not None), None)
    listed = isinstance(first, (list, tuple, np.ndarray))
    return _LABEL_FORMS[task.label_form](raw, column, num_classes, listed, what)


def _class_ids(raw, column, num_classes, listed, what):
    if listed:
        raise DatacartoError(
            f"the {what}'s label column {column!r} holds a list per row, not one class id: for multi-label data "
            "use problem_type='multi_label_classification', for tags a ...ForTokenClassification model")
    labels = validate_labels(np.asarray(raw, dtype=object), column, what)
    check_label_range(labels, column, num_classes, what)
    return labels


def _multi_hot(raw, column, width, listed, what):
    if not listed:
        raise DatacartoError(f"the {what}'s label column {column!r} holds one value per row, but the model is "
                             "multi-label: give a multi-hot vector (one 0/1 per label) per row")
    lengths = {len(v) for v in raw}
    if len(lengths) != 1 or (width is not None and lengths != {width}):
        raise DatacartoError(f"the {what}'s multi-hot labels in {column!r} have lengths {sorted(lengths)[:5]}; "
                             f"the model has {width} labels")
    hot = np.asarray([np.asarray(v, dtype=np.float64) for v in raw])
    if not np.isin(hot, (0.0, 1.0)).all():
        raise DatacartoError(f"the {what}'s multi-hot labels in {column!r} must be 0 or 1")
    return hot


def _tag_lists(raw, column, num_classes, listed, what):
    if not listed:
        raise DatacartoError(f"the {what}'s label column {column!r} holds one value per row, but the model is a "
                             "token classifier: give one tag id per token (-100 for tokens to skip)")
    tags = [np.asarray(v, dtype=np.int64) for v in raw]
    flat = np.concatenate(tags) if tags else np.empty(0, np.int64)
    bad = flat[(flat != -100) & ((flat < 0) | (flat >= (num_classes or np.iinfo(np.int64).max)))]
    if bad.size:
        raise DatacartoError(f"the {what}'s tags in {column!r} include {int(bad[0])}, outside 0..{(num_classes or 0) - 1}"
                             f" (the model has {num_classes} labels)")
    return tags


def _target_tokens(raw, column, num_classes, listed, what):
    """A causal LM's labels: token ids with -100 on the prompt; every row needs a target token."""
    if not listed:
        raise DatacartoError(f"the {what}'s label column {column!r} holds one value per row, but the model is a "
                             "causal LM: give the token ids to predict per row (-100 on prompt and padding)")
    empty = [i for i, v in enumerate(raw) if not np.any(np.asarray(v)[1:] != -100)]
    if empty:
        raise DatacartoError(f"{len(empty)} row(s) of the {what} have no response token to predict (row {empty[0]}: "
                             "every label is -100, e.g. the response was truncated away): drop them or raise "
                             "max_length")
    return raw


def _float_scores(raw, column, num_classes, listed, what):
    """A regression's gold: one finite number per row."""
    if listed:
        raise DatacartoError(f"the {what}'s label column {column!r} holds a list per row, but the model is a "
                             "regression (one output): give one number per row")
    try:
        scores = np.asarray(raw, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise DatacartoError(f"the {what}'s label column {column!r} must hold numbers (gold scores): {e}") from e
    if scores.ndim != 1 or not np.all(np.isfinite(scores)):
        raise DatacartoError(f"the {what}'s label column {column!r} must hold one finite number per row")
    return scores


_LABEL_FORMS = {"classes": _class_ids, "multi_hot": _multi_hot, "tags": _tag_lists, "tokens": _target_tokens,
                "scores": _float_scores}


def validate_labels(raw: np.ndarray, column: str, what: str = "training set") -> np.ndarray:
    """Integer class ids, or one line saying which task the labels look like instead."""
    arr = np.asarray(raw)
    if arr.dtype == object:
        first = next((v for v in arr if v is not None), None)
        if isinstance(first, str):
            raise DatacartoError(
                f"the {what}'s label column {column!r} holds strings ({first!r}, ...): map them to integer "
                "ids first (datasets: ds.class_encode_column), or pass --class-names to datacarto train")
        if any(v is None for v in arr):
            raise DatacartoError(f"the {what}'s label column {column!r} has missing (None) labels")
        arr = np.asarray(arr.tolist())
    if arr.dtype.kind == "f":
        if not np.all(np.isfinite(arr)) or not np.all(arr == np.round(arr)):
            raise DatacartoError(f"the {what}'s label column {column!r} holds non-integer numbers "
                                 "(regression?): datacarto records class labels")
        arr = arr.astype(np.int64)
    if arr.dtype.kind not in "iub":
        raise DatacartoError(f"the {what}'s label column {column!r} must hold integer class ids, got {arr.dtype}")
    return arr.astype(np.int64)


def check_label_range(labels: np.ndarray, column: str, num_labels: int | None, what: str = "training set") -> None:
    """Labels outside [0, C) are the data's fault: say which and where."""
    bad = np.flatnonzero((labels < 0) | (labels >= (num_labels or np.iinfo(np.int64).max)))
    if bad.size:
        raise DatacartoError(
            f"the {what}'s label column {column!r} has {bad.size} label(s) outside 0..{(num_labels or 0) - 1}"
            f" (row {int(bad[0])}: {int(labels[bad[0]])}); the model has {num_labels} labels")


def label_names_of(model, records, explicit: list[str] | None, column: str) -> list[str] | None:
    """Class names: given > the data set's ClassLabel feature > the model config's (if not LABEL_i)."""
    if explicit:
        return list(explicit)
    feature = getattr(records, "features", {}).get(column) if _is_arrow_dataset(records) else None
    if feature is None and _is_arrow_dataset(records) and label_column_of(records) is not None:
        feature = records.features[label_column_of(records)]
    if getattr(feature, "names", None):
        return list(feature.names)
    id2label = getattr(getattr(model, "config", None), "id2label", None)
    if not id2label:
        return None
    names = [id2label[i] for i in sorted(id2label)]
    return None if all(n == f"LABEL_{i}" for i, n in enumerate(names)) else names


def records_frame(dataset, tokenizer=None) -> tuple[pd.DataFrame, list[str]]:
    """The original columns of the data set (not the tokenizer's) and which of them are text.

    Without any text column (the Trainer drops unused columns before callbacks see the data),
    the input ids are decoded into a ``text`` column, so tooltips still show each example.
    """
    if not _is_arrow_dataset(dataset):
        return pd.DataFrame(index=range(len(dataset))), []
    cols = [c for c in dataset.column_names if c not in MODEL_INPUTS]
    frame = dataset.select_columns(cols).to_pandas() if cols else pd.DataFrame(index=range(len(dataset)))
    text = [c for c in frame.columns if pd.api.types.is_string_dtype(frame[c])]
    if not text and tokenizer is not None and "input_ids" in dataset.column_names:
        ids = dataset.with_format("arrow")["input_ids"].to_pylist()
        frame["text"] = tokenizer.batch_decode(ids, skip_special_tokens=True)
        text = ["text"]
    return frame, text


def model_name(model) -> str | None:
    config = getattr(model, "config", None)
    return getattr(config, "_name_or_path", None) or getattr(config, "model_type", None)


def split_name(metric_key_prefix: str) -> str:
    """Trainer metric prefixes to split names: eval -> validation, eval_X -> X, test -> test."""
    return "validation" if metric_key_prefix == "eval" else metric_key_prefix.removeprefix("eval_")


class RowIdCollator:
    """Wraps a data collator: drops text fields, collates the rest, adds the row ids as a tensor.

    A batch whose rows hold several examples (packed rows, whose row id is a list with one per
    token, or a padding-free collator's one flattened row) gets the row id of each segment and
    :data:`SEGMENTS`, the segment of each position's target (:func:`~datacarto.record.segments.segment_batch`).
    """

    def __init__(self, inner: Callable):
        self.inner = inner

    @staticmethod
    def _is_text(value: Any) -> bool:
        if isinstance(value, str) or value is None:
            return True
        return isinstance(value, (list, tuple)) and len(value) > 0 and isinstance(value[0], str)

    def __call__(self, features: list[dict[str, Any]]) -> dict[str, Any]:
        features = [dict(f) for f in features]
        row_ids = [f.pop(ROW_ID, None) for f in features]
        if features:
            text = [k for k, v in features[0].items() if self._is_text(v)]
            for f in features:
                for k in text:
                    f.pop(k, None)
        tokens = [f.get("input_ids") for f in features]
        batch = self.inner(features)
        if not row_ids or row_ids[0] is None:
            return batch
        ids = batch.get("input_ids") if hasattr(batch, "get") else None
        packed = np.ndim(row_ids[0]) > 0
        if packed or (ids is not None and ids.ndim == 2 and ids.shape[0] != len(features)):
            from .segments import segment_batch

            rows, segments = segment_batch(row_ids, tokens, ids)
            batch[ROW_ID], batch[SEGMENTS] = torch.as_tensor(rows), torch.as_tensor(segments)
        else:
            batch[ROW_ID] = torch.as_tensor(row_ids, dtype=torch.long)
        return batch


def with_row_ids(dataset, what: str = "training set"):
    """A data set whose every item carries its position as the row id, without copying the data.

    The row id travels with each example through any sampler and collator, so whatever order a
    loader yields, every stored number is keyed by the row it came from. An evaluation set
    without a length (``what`` other than the training set) is returned as it is.
    """
    if dataset is None or (_is_arrow_dataset(dataset) and ROW_ID in dataset.column_names):
        return dataset
    if what != "training set" and not hasattr(dataset, "__len__"):
        return dataset
    check_map_style(dataset, what)
    if _is_arrow_dataset(dataset):
        return dataset.add_column(ROW_ID, np.arange(len(dataset), dtype=np.int64))
    return IndexedDataset(dataset)


class IndexedDataset(torch.utils.data.Dataset):
    """A map-style data set whose items carry their position as the row id."""

    def __init__(self, base):
        self.base = base

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, i: int) -> dict[str, Any]:
        item = dict(self.base[i])
        item[ROW_ID] = i
        return item

    def __getitems__(self, rows: list[int]) -> list[dict[str, Any]]:
        """A batch of rows in one read where the base data set can (an Arrow data set can)."""
        fetch = getattr(self.base, "__getitems__", None)
        items = fetch(rows) if fetch is not None else [self.base[i] for i in rows]
        return [{**dict(item), ROW_ID: i} for item, i in zip(items, rows)]
