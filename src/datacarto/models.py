"""Model folders and hub names: the one place a tokenizer or model is loaded (the same path for both).

``check_model_path`` says in one line when a local folder is missing; ``classifier_head`` reads a
model's classes from its config; ``effective_max_length`` caps a length at the model's positions.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

from .data import ClassifierHead, first_line, minilm_path
from .errors import DatacartoError
from .tasks import DEFAULT_TASK, TASK_TYPES, task_type


def looks_local(name_or_dir: str) -> bool:
    """A path rather than a hub name (``NAME`` or ``NAMESPACE/NAME``).

    Absolute, relative (./, ../, ~), an existing file system entry, a path separator no hub id holds
    (a second ``/``, a backslash), or a ``PARENT/NAME`` whose parent folder exists here.
    """
    text = str(name_or_dir)
    path = Path(text).expanduser()
    if text.startswith(("/", ".", "~")) or path.exists():
        return True
    if any(sep in text for sep in (os.sep, os.altsep) if sep and sep != "/"):
        return True
    return text.count("/") > 1 or ("/" in text and path.parent.is_dir())


def check_model_path(name_or_dir) -> None:
    """One line for a local model folder that is not there (before anything asks the hub for it)."""
    if looks_local(name_or_dir) and not Path(str(name_or_dir)).expanduser().is_dir():
        raise DatacartoError(f"model folder not found: {name_or_dir}")


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
    check_model_path(text)
    return text


def _load_error(name_or_dir, e: BaseException) -> DatacartoError:
    """``cannot load model NAME: reason`` on one line (transformers' messages run over several)."""
    where = "" if looks_local(name_or_dir) else " (no local folder of that name, so a Hugging Face Hub name)"
    return DatacartoError(f"cannot load model {str(name_or_dir)!r}{where}: {first_line(e)}")


def _has_head(config, task: str | None) -> bool:
    """The config's architecture has ``task``'s head (None: a head with classes of any task)."""
    heads = task_type(task).heads[:1] if task else [t.heads[0] for t in TASK_TYPES.values() if t.head_classes]
    return any(a.endswith(tuple(heads)) for a in (getattr(config, "architectures", None) or []))


def classifier_head(name_or_dir, task: str | None = DEFAULT_TASK) -> ClassifierHead | None:
    """The classes of the model's head for ``task`` (None: a base model, another task's head, no classes)."""
    source = model_source(name_or_dir)
    if task is not None and not task_type(task).head_classes:
        return None
    from transformers import AutoConfig

    try:
        config = AutoConfig.from_pretrained(source)
    except (OSError, ValueError) as e:
        raise _load_error(name_or_dir, e) from e
    if not _has_head(config, task):
        return None
    id2label = {int(k): str(v) for k, v in (getattr(config, "id2label", None) or {}).items()}
    return ClassifierHead(str(name_or_dir), [id2label.get(i, f"LABEL_{i}") for i in range(config.num_labels)])


def effective_max_length(tokenizer, model, requested: int) -> int:
    """``requested`` capped at what the model can embed (as the official run_glue script does).

    ``model``: the model or its config. A cap is said in one warning."""
    config = getattr(model, "config", model)
    limits = [n for n in (getattr(tokenizer, "model_max_length", None),
                          getattr(config, "max_position_embeddings", None))
              if isinstance(n, int) and 0 < n < 1_000_000]
    if getattr(config, "model_type", "") in ("roberta", "xlm-roberta", "camembert") and len(limits) == 2:
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
        raise _load_error(name_or_dir, e) from e
    return effective_max_length(tokenizer, config, requested)


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
        raise _load_error(name_or_dir, e) from e
    except ValueError as e:
        raise DatacartoError(f"model {name_or_dir!r} is not a causal language model: {first_line(e)}") from e
    if tokenizer.pad_token_id is None:  # GPT-2 style tokenizers: pad with the end-of-text token
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer, model


def load_model(name_or_dir: str, num_labels: int, label_names: list[str] | None = None, *,
               task: str = DEFAULT_TASK):
    """Tokenizer and model of ``task``'s head from a hub name or a local folder (same path)."""
    import transformers
    from transformers import AutoConfig, AutoTokenizer

    source = model_source(name_or_dir)
    entry = task_type(task)
    if entry.generative:
        return load_causal_lm(name_or_dir)
    auto = getattr(transformers, "AutoModel" + entry.heads[0])
    kwargs = {"num_labels": num_labels} if entry.head_classes else {}
    if label_names and entry.head_classes:
        kwargs["id2label"] = dict(enumerate(label_names))
        kwargs["label2id"] = {n: i for i, n in enumerate(label_names)}
    if entry.problem_type:
        kwargs["problem_type"] = entry.problem_type
    try:
        config = AutoConfig.from_pretrained(source)
        head = _has_head(config, task)
        if head and entry.head_classes and config.num_labels != num_labels:
            raise DatacartoError(f"model {name_or_dir!r} is a classifier with {config.num_labels} labels, not "
                                 f"{num_labels}: use a model with {num_labels} labels or its pretrained base")
        if not head:  # a base model, or another task's head: this task's head starts fresh
            kwargs["ignore_mismatched_sizes"] = True
        tokenizer = AutoTokenizer.from_pretrained(source)
        model = auto.from_pretrained(source, **kwargs)
    except DatacartoError:
        raise
    except OSError as e:
        raise _load_error(name_or_dir, e) from e
    except (ValueError, RuntimeError) as e:
        raise DatacartoError(f"model {name_or_dir!r} does not fit {num_labels} labels: {first_line(e)}") from e
    if entry.head_classes and getattr(model.config, "num_labels", num_labels) != num_labels:
        raise DatacartoError(
            f"model {name_or_dir!r} has {model.config.num_labels} labels but the data has {num_labels}"
        )
    return tokenizer, model
