"""Each task type's data functions: prepare (check and resolve a split for a TaskSpec), tokenize, collate.

Which task uses which is declared once, in the registry (:mod:`datacarto.tasks`); nothing here names
a task. Each ``prepare_*`` takes a split and a spec and returns the split and the resolved spec.
Checks the columns (one line for each problem, before any model loads), then tokenizes the way the
official Hugging Face examples do: one (context, choice) pair per choice, a multi-hot float vector
per example, the first sub-token of each word labelled and the others -100 (which word each labelled
token is comes from the tokenizer's ``word_ids()``: a word with no token or truncated away has no unit).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from .data import check_text_columns, class_names, column_values, infer_text_columns, prepare_labels
from .errors import DatacartoError

IGNORE = -100
#: token classification: the column of each row's units' words (the index of the word each tagged token starts)
UNIT_WORDS = "unit_words"
_NO_TOKEN, _CUT = "datacarto_words_without_token", "datacarto_words_truncated"  # counted, then removed


def _require(ds, columns, what):
    missing = [c for c in columns if c not in ds.column_names]
    if missing:
        raise DatacartoError(f"column(s) {missing} not in the {what} (columns: {ds.column_names})")


def prepare_classes(ds, spec, *, num_labels=None, what="data set", head=None, warn_absent=False):
    """One class per row (:func:`datacarto.data.prepare_labels`)."""
    ds, labels = prepare_labels(ds, text_columns=spec.text_columns, label_column=spec.label_column,
                                label_names=spec.label_names, num_labels=num_labels, what=what, head=head,
                                warn_absent=warn_absent)
    return ds, replace(spec, text_columns=labels.text_columns, label_column=labels.label_column,
                       label_names=labels.label_names)


def prepare_regression(ds, spec, *, num_labels=None, what="data set", head=None, warn_absent=False):
    """Text column(s) and one finite number (the gold score) per row, cast to float32; one head output."""
    label_column = spec.label_column
    _require(ds, [label_column], what)
    text_columns = list(spec.text_columns) if spec.text_columns else infer_text_columns(ds, label_column)[:2]
    _require(ds, text_columns, what)
    check_text_columns(ds, text_columns, label_column, what)
    values = ds.with_format("arrow")[label_column].to_pylist()
    bad = next((i for i, v in enumerate(values) if isinstance(v, bool) or not isinstance(v, (int, float))
                or not np.isfinite(v)), None)
    if bad is not None:
        raise DatacartoError(f"regression: {label_column!r} of the {what} must hold one finite number per row "
                             f"(row {bad}: {values[bad]!r})")
    from datasets import Value

    ds = ds.cast_column(label_column, Value("float32"))
    return ds, replace(spec, text_columns=text_columns, label_names=["score"])


def prepare_multiple_choice(ds, spec, *, num_labels=None, what="data set", head=None, warn_absent=False):
    """Context column(s), K choice columns, a label 0..K-1."""
    choice_columns, label_column = spec.choice_columns, spec.label_column
    if not choice_columns or len(choice_columns) < 2:
        raise DatacartoError("multiple choice needs at least two --choice-columns")
    _require(ds, [*choice_columns, label_column], what)
    text_columns = list(spec.text_columns) if spec.text_columns else [
        c for c in infer_text_columns(ds, label_column) if c not in choice_columns][:1]
    _require(ds, text_columns, what)
    check_text_columns(ds, [*text_columns, *choice_columns], label_column, what)
    for c in choice_columns:
        empty = int(np.sum(np.char.str_len(np.asarray(column_values(ds, c), dtype=str)) == 0))
        if empty:
            raise DatacartoError(f"choice column {c!r} of the {what} has {empty} empty choice(s)")
    labels = column_values(ds, label_column)
    if labels.dtype.kind not in "iu" or labels.min() < 0 or labels.max() >= len(choice_columns):
        raise DatacartoError(f"labels in {label_column!r} of the {what} must be choice ids 0..{len(choice_columns) - 1}")
    return ds, replace(spec, text_columns=text_columns, label_names=list(choice_columns),
                       choice_columns=list(choice_columns))


def prepare_multi_label(ds, spec, *, num_labels=None, what="data set", head=None, warn_absent=False):
    """Text column(s) and a list of label ids per example (classes: :func:`datacarto.data.class_names`)."""
    label_column = spec.label_column
    _require(ds, [label_column], what)
    text_columns = list(spec.text_columns) if spec.text_columns else infer_text_columns(ds, label_column)
    _require(ds, text_columns, what)
    check_text_columns(ds, text_columns, label_column, what)
    values = ds.with_format("arrow")[label_column].to_pylist()
    if not all(isinstance(v, list) for v in values):
        raise DatacartoError(f"multi-label: {label_column!r} of the {what} must hold a list of label ids per row")
    flat = [i for v in values for i in v]
    if any(not isinstance(i, int) for i in flat):
        raise DatacartoError(f"multi-label: {label_column!r} of the {what} must hold integer label ids")
    names = class_names(flat, label_names=spec.label_names, num_labels=num_labels, head=head, noun="label id",
                        where=f"{label_column!r} of the {what}", warn_absent=warn_absent)
    return ds, replace(spec, text_columns=text_columns, label_names=names)


def prepare_token_classification(ds, spec, *, num_labels=None, what="data set", head=None, warn_absent=False):
    """Words pre-split (a list of strings per example) and one tag id per word (the spec's label column)."""
    tokens_column, tags_column, label_names = spec.tokens_column or "tokens", spec.label_column, spec.label_names
    _require(ds, [tokens_column, tags_column], what)
    tokens = ds.with_format("arrow")[tokens_column].to_pylist()
    tags = ds.with_format("arrow")[tags_column].to_pylist()
    for i, (words, row) in enumerate(zip(tokens, tags)):
        if not isinstance(words, list) or not isinstance(row, list):
            raise DatacartoError(f"row {i} of the {what}: {tokens_column!r} and {tags_column!r} must be lists")
        if len(words) != len(row):
            raise DatacartoError(f"row {i} of the {what} has {len(words)} tokens but {len(row)} tags")
        bad = next((j for j, w in enumerate(words) if not isinstance(w, str)), None)
        if bad is not None:
            raise DatacartoError(f"row {i} of the {what}: word {bad} of {tokens_column!r} is {words[bad]!r}, not a "
                                 "string; the words must be strings")
    feature = getattr(ds.features[tags_column], "feature", None)
    if label_names is None and getattr(feature, "names", None):
        label_names = list(feature.names)
    flat = [t for row in tags for t in row]
    odd = [t for t in flat if not isinstance(t, int)]
    if odd:
        raise DatacartoError(f"tag {odd[0]!r} in {tags_column!r} of the {what} is not a tag id")
    names = class_names(flat, label_names=label_names, num_labels=num_labels, head=head,
                        noun="tag", where=f"{tags_column!r} of the {what}", warn_absent=warn_absent)
    return ds, replace(spec, text_columns=[], label_names=names, tokens_column=tokens_column)


def prepare_causal_lm(ds, spec, *, num_labels=None, what="data set", head=None, warn_absent=False):
    """Prompt and response columns (SFT: only the response is predicted), or one text column (plain LM)."""
    prompt_column, response_column = spec.prompt_column, spec.response_column
    if prompt_column or response_column:
        if not (prompt_column and response_column):
            raise DatacartoError("causal-lm: give both --prompt-column and --response-column (or --text-columns)")
        _require(ds, [prompt_column, response_column], what)
        columns, target = [prompt_column, response_column], response_column
    else:
        columns = list(spec.text_columns or [])[:1] or [c for c in infer_text_columns(ds, "") if c][:1]
        if not columns:
            raise DatacartoError(f"causal-lm needs --prompt-column and --response-column, or a text column; the "
                                 f"{what} has columns {ds.column_names}")
        _require(ds, columns, what)
        target = columns[0]
    check_text_columns(ds, columns, "", what)
    values = ds.with_format("arrow")[target].to_pylist()
    empty = [i for i, v in enumerate(values) if v is None or not str(v).strip()]
    if empty:
        raise DatacartoError(f"{len(empty)} empty {'response' if prompt_column else 'text'}(s) in {target!r} of the "
                             f"{what} (row {empty[0]}): there is nothing to predict; drop them")
    return ds, replace(spec, text_columns=columns, label_column="labels", label_names=["other", "response"],
                       chat_template=bool(spec.chat_template and prompt_column))


def _causal_encode(tokenizer, spec, max_length: int):
    """Token ids of prompt + response (+ end of sequence), labels -100 on the prompt, truncated on the right."""
    eos = [tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else []

    if spec.chat_template:
        return _chat_encode(tokenizer, spec, max_length)

    def encode(batch):
        prompts = batch[spec.prompt_column] if spec.prompt_column else [""] * len(batch[spec.text_columns[0]])
        targets = batch[spec.response_column or spec.text_columns[0]]
        out = {"input_ids": [], "attention_mask": [], "labels": []}
        for p, r in zip(prompts, targets):
            head = tokenizer(p, add_special_tokens=False)["input_ids"] if p else []
            if p and spec.response_column:
                r = " " + r if not (p.endswith((" ", "\n")) or r.startswith((" ", "\n"))) else r
            tail = tokenizer(r, add_special_tokens=False)["input_ids"] + eos
            ids = (head + tail)[:max_length]
            out["input_ids"].append(ids)
            out["attention_mask"].append([1] * len(ids))
            out["labels"].append(([IGNORE] * len(head) + tail)[:max_length])
        return out
    return encode


def _chat_encode(tokenizer, spec, max_length: int, where: str = "a row"):
    """Prompt as the user turn, response as the assistant turn of the tokenizer's chat template."""
    if not getattr(tokenizer, "chat_template", None):
        raise DatacartoError("--chat-template: the tokenizer has no chat template")

    def ids(messages, **kwargs):
        try:
            out = tokenizer.apply_chat_template(messages, tokenize=True, **kwargs)
        except Exception as e:  # the template is the user's code: jinja errors, its sandbox, raise_exception
            text = " ".join(str(e).split())
            raise DatacartoError(f"--chat-template: the chat template fails on {where}: "
                                 f"{type(e).__name__}: {text}") from e
        return list(out["input_ids"] if hasattr(out, "keys") else out)

    def encode(batch):
        out = {"input_ids": [], "attention_mask": [], "labels": []}
        for p, r in zip(batch[spec.prompt_column], batch[spec.response_column]):
            user = [{"role": "user", "content": p}]
            head = ids(user, add_generation_prompt=True)
            full = ids([*user, {"role": "assistant", "content": r}])
            if full[:len(head)] != head:
                raise DatacartoError("--chat-template: the template's prompt is not a prefix of the whole "
                                     "conversation, so the response tokens cannot be told apart")
            out["input_ids"].append(full[:max_length])
            out["attention_mask"].append([1] * len(out["input_ids"][-1]))
            out["labels"].append(([IGNORE] * len(head) + full[len(head):])[:max_length])
        return out
    return encode


def check_chat_template(tokenizer, spec, ds, what: str = "training set") -> None:
    """Render the chat template once, on the first row of ``ds``: its errors as one line, before any model loads."""
    if getattr(spec, "chat_template", False) and len(ds):
        _chat_encode(tokenizer, spec, max_length=1, where=f"the first row of the {what}")(ds[:1])


def _drop_truncated(ds, max_length: int):
    """Rows whose response was truncated away carry no target token: counted, warned about, dropped."""
    import warnings

    labels = ds.with_format("arrow")["labels"].to_pylist()
    keep = [i for i, row in enumerate(labels) if any(t != IGNORE for t in row[1:])]
    if len(keep) < len(labels):
        warnings.warn(f"{len(labels) - len(keep)} of {len(labels)} responses were truncated away by max_length="
                      f"{max_length} (no target token left): those rows are dropped; raise --max-length to keep them",
                      stacklevel=4)
        if not keep:
            raise DatacartoError(f"every response was truncated away by max_length={max_length}: raise --max-length")
        ds = ds.select(keep)
    return ds


def tokenize_causal_lm(ds, tokenizer, spec, *, max_length: int = 128):
    """Token ids and labels (-100 on the prompt); rows whose response was truncated away are dropped."""
    # the labels are the tokens: a label column (a subset's gold 1) would clash
    ds = ds.remove_columns([c for c in ("label", "labels", "label_ids") if c in ds.column_names])
    out = ds.map(_causal_encode(tokenizer, spec, max_length), batched=True, desc="tokenizing")
    return _drop_truncated(out, max_length)


# one label column: HF's multiple-choice collator takes 'label' over 'labels' and flattens the other,
# and multi-label's float vector must not inherit the integer type of a 'labels' column of ids
# (a list named 'label' or 'label_ids', the tags or another, would likewise be taken by the
# token-classification collator over 'labels': e.g. a focused subset's recorded 'label' beside its tag column)


def tokenize_multiple_choice(ds, tokenizer, spec, *, max_length: int = 128):
    """One (context, choice) pair per choice, as the official example does."""
    def encode(batch):
        n, k = len(batch[spec.label_column]), len(spec.choice_columns)
        context = [" ".join(parts) for parts in zip(*[batch[c] for c in spec.text_columns])]
        firsts = [c for c in context for _ in range(k)]
        seconds = [batch[c][i] for i in range(n) for c in spec.choice_columns]
        enc = tokenizer(firsts, seconds, truncation=True, max_length=max_length)
        out = {key: [v[i * k:(i + 1) * k] for i in range(n)] for key, v in enc.items()}
        out["labels"] = batch[spec.label_column]
        return out
    return ds.map(encode, batched=True, desc="tokenizing", remove_columns=[spec.label_column])


def tokenize_multi_label(ds, tokenizer, spec, *, max_length: int = 128):
    """The text and a multi-hot float vector per example (BCE needs float targets)."""
    import datasets

    def encode(batch):
        enc = tokenizer(*[batch[c] for c in spec.text_columns[:2]], truncation=True, max_length=max_length)
        width = spec.num_labels
        enc["labels"] = [[float(j in set(ids)) for j in range(width)] for ids in batch[spec.label_column]]
        return enc
    out = ds.map(encode, batched=True, desc="tokenizing", remove_columns=[spec.label_column])
    # datasets keeps the ids' int type otherwise
    return out.cast_column("labels", datasets.Sequence(datasets.Value("float32")))


def tokenize_token_classification(ds, tokenizer, spec, *, max_length: int = 128):
    """The first sub-token of each word labelled; words without a unit counted and warned about."""
    drop = [spec.label_column] if spec.label_column in ("label", "label_ids") else []
    drop = list(dict.fromkeys([*drop, *(c for c in ("label", "label_ids") if c in ds.column_names)]))
    out = ds.map(_word_encode(tokenizer, spec, max_length), batched=True, desc="tokenizing", remove_columns=drop)
    return _count_unrecorded_words(out, max_length)


def _word_encode(tokenizer, spec, max_length: int):
    """Token ids, labels and each unit's word (:data:`UNIT_WORDS`) from the tokenizer's ``word_ids()``.

    A word without a token, or cut off by ``max_length``, gets no unit; the temporary columns count them.
    """
    if not getattr(tokenizer, "is_fast", False):
        raise DatacartoError(f"token classification needs a fast tokenizer (its word_ids() say which word each "
                             f"token is); {type(tokenizer).__name__} is not one")

    def encode(batch):
        enc = tokenizer(batch[spec.tokens_column], is_split_into_words=True, truncation=True, max_length=max_length)
        labels, units, no_token, cut = [], [], [], []
        for i, tags in enumerate(batch[spec.label_column]):
            row, words = _align(enc.word_ids(i), tags)
            overflow = {w for o in enc.encodings[i].overflowing for w in o.word_ids if w is not None} - set(words)
            labels.append(row)
            units.append(words)
            cut.append(len(overflow))
            no_token.append(len(tags) - len(words) - len(overflow))
        enc["labels"], enc[UNIT_WORDS], enc[_NO_TOKEN], enc[_CUT] = labels, units, no_token, cut
        return enc
    return encode


def _align(word_ids, tags) -> tuple[list[int], list[int]]:
    """(labels, units' words): the word's tag on its first sub-token, -100 on special tokens and later sub-tokens."""
    out, words, previous = [], [], None
    for w in word_ids:
        first = w is not None and w != previous
        out.append(int(tags[w]) if first else IGNORE)
        if first:
            words.append(w)
        previous = w
    return out, words


def _count_unrecorded_words(ds, max_length: int):
    """Words with no token or truncated away have no unit: counted and warned about in one line."""
    import warnings

    no_token = np.asarray(ds.with_format("arrow")[_NO_TOKEN].to_numpy(), dtype=np.int64)
    cut = np.asarray(ds.with_format("arrow")[_CUT].to_numpy(), dtype=np.int64)
    ds = ds.remove_columns([_NO_TOKEN, _CUT])
    a, b = int(no_token.sum()), int(cut.sum())
    if a or b:
        words = int(sum(len(u) for u in ds.with_format("arrow")[UNIT_WORDS].to_pylist())) + a + b
        parts = [f"{a} of {words} words have no token (empty, or only characters the tokenizer removes)"] if a else []
        if b:
            parts.append(f"{b}{'' if a else f' of {words} words'} were truncated away by max_length={max_length}")
        warnings.warn(f"{' and '.join(parts)}, in {int(np.sum((no_token + cut) > 0))} of {len(ds)} rows: they have "
                      "no unit and are not recorded (every other word keeps its own tag)"
                      + ("; raise --max-length to keep the truncated ones" if b else ""), stacklevel=4)
    return ds


def multiple_choice_collator(tokenizer):
    """Hugging Face's collator of multiple choice."""
    from transformers import DataCollatorForMultipleChoice

    return DataCollatorForMultipleChoice(tokenizer)


def token_classification_collator(tokenizer):
    """Hugging Face's collator of token classification (labels padded with -100)."""
    from transformers import DataCollatorForTokenClassification

    return DataCollatorForTokenClassification(tokenizer)


def causal_lm_collator(tokenizer):
    """Pads input ids with the pad token and labels with -100."""
    from transformers import DataCollatorForSeq2Seq

    return DataCollatorForSeq2Seq(tokenizer, label_pad_token_id=IGNORE)
