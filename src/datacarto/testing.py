"""Tiny offline models and data for tests, benchmarks and examples.

Builds a small BERT and a word-level tokenizer (``tokenizers`` library) from the data's own words
and saves them as a normal Hugging Face folder, so code under test loads them through the same
``from_pretrained`` path as a hub name.
"""

from __future__ import annotations

import random
from pathlib import Path

SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]

_SUBJECTS = ["a man", "a woman", "the dog", "two kids", "a chef", "the band", "an old man", "a girl"]
_VERBS = ["is eating", "is playing", "is running", "is reading", "is cooking", "is singing", "is sleeping"]
_PLACES = ["in the park", "at home", "on the beach", "in a kitchen", "on a stage", "in the street"]
# a cue word per label makes the toy task learnable by a tiny model
_CUES = {0: ["indeed", "surely"], 1: ["maybe", "perhaps"], 2: ["never", "not"]}


def toy_nli(n: int = 120, *, seed: int = 0, noise: float = 0.0) -> list[dict]:
    """``n`` premise/hypothesis/label rows (3 labels, learnable from a cue word); ``noise`` flips labels."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        label = i % 3
        s, v, p = rng.choice(_SUBJECTS), rng.choice(_VERBS), rng.choice(_PLACES)
        hyp = f"{rng.choice(_CUES[label])} {s} {rng.choice(_VERBS)}"
        shown = label
        if noise and rng.random() < noise:
            shown = rng.choice([k for k in range(3) if k != label])
        rows.append({"premise": f"{s} {v} {p}", "hypothesis": hyp, "label": shown})
    return rows


def vocabulary(texts) -> list[str]:
    words = sorted({w for t in texts for w in t.lower().split()})
    words += sorted({w for s in _SUBJECTS + _VERBS + _PLACES for w in s.split()} - set(words))
    words += sorted({w for cues in _CUES.values() for w in cues} - set(words))
    return SPECIALS + words


def make_tokenizer(texts):
    """A ``PreTrainedTokenizerFast`` with a word-level vocabulary of ``texts``, BERT-style pairs."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {w: i for i, w in enumerate(vocabulary(texts))}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="[UNK]"))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])],
    )
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="[PAD]", unk_token="[UNK]",
                                   cls_token="[CLS]", sep_token="[SEP]", mask_token="[MASK]",
                                   model_max_length=64,
                                   model_input_names=["input_ids", "token_type_ids", "attention_mask"])


def save_quietly(model, tokenizer, path: Path) -> None:
    """``save_pretrained`` both, without transformers' "Writing model shards" bar (a helper's output
    is the folder; the caller's own progress-bar setting is put back)."""
    from transformers.utils import logging as hf_logging

    shown = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        model.save_pretrained(path)
        tokenizer.save_pretrained(path)
    finally:
        if shown:
            hf_logging.enable_progress_bar()


def make_tiny_model_dir(path, texts, *, num_labels: int = 3, hidden_size: int = 32, layers: int = 2,
                        seed: int = 0, dropout: float = 0.1, label_names: list[str] | None = None,
                        token_classifier: bool = False, problem_type: str | None = None) -> str:
    """Save a randomly initialised tiny BERT classifier and its tokenizer under ``path``.

    ``label_names``: its ``id2label`` (and as many labels); ``token_classifier``: a token
    classification head instead of a sequence classification one; ``problem_type``: the config's
    (a regression: ``num_labels=1, problem_type="regression"``).
    """
    import torch
    from transformers import BertConfig, BertForSequenceClassification, BertForTokenClassification

    path = Path(path)
    tokenizer = make_tokenizer(texts)
    names = {"id2label": dict(enumerate(label_names)), "label2id": {n: i for i, n in enumerate(label_names)}} \
        if label_names else {"num_labels": num_labels}
    config = BertConfig(vocab_size=len(tokenizer), hidden_size=hidden_size, num_hidden_layers=layers,
                        num_attention_heads=2, intermediate_size=hidden_size * 2, max_position_embeddings=64,
                        hidden_dropout_prob=dropout, attention_probs_dropout_prob=dropout, problem_type=problem_type,
                        **names)
    torch.manual_seed(seed)
    save_quietly((BertForTokenClassification if token_classifier else BertForSequenceClassification)(config),
                 tokenizer, path)
    return str(path)


# ---------------------------------------------------------------------------------------------
# toy data for the other task types (learnable by a tiny model)

_PLACES_NE = ["paris", "london", "rome", "berlin"]
_PEOPLE_NE = ["alice", "bob", "carol", "dave"]
_FILLER = ["we", "saw", "the", "big", "house", "near", "a", "river", "today", "and", "went", "home"]
_WEATHER = ["sunny", "rainy", "windy"]
_CHOICE_CUES = ("good", "bad")
TOY_TAGS = ["O", "B-LOC", "B-PER"]


def toy_tokens(n: int = 60, *, seed: int = 0) -> list[dict]:
    """Sentences as word lists with one tag per word: places B-LOC, people B-PER, the rest O."""
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        words = [rng.choice(_FILLER + _PLACES_NE + _PEOPLE_NE) for _ in range(rng.randint(4, 8))]
        tags = [1 if w in _PLACES_NE else 2 if w in _PEOPLE_NE else 0 for w in words]
        rows.append({"tokens": words, "ner_tags": tags})
    return rows


def toy_multilabel(n: int = 60, *, seed: int = 0) -> list[dict]:
    """Texts naming one or more kinds of weather; ``labels`` lists the ids of those named."""
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        ids = sorted(rng.sample(range(3), rng.randint(1, 2)))
        words = [rng.choice(_FILLER) for _ in range(4)] + [_WEATHER[i] for i in ids]
        rng.shuffle(words)
        rows.append({"text": " ".join(words), "labels": ids})
    return rows


_SCORE_CUES = ["none", "few", "some", "many", "most", "all"]  # cue i: a gold score near i


def toy_scored_pairs(n: int = 90, *, seed: int = 0) -> list[dict]:
    """STS-B-like sentence pairs with a float ``label`` in [0, 5], learnable from a cue word."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        level = i % len(_SCORE_CUES)
        s = rng.choice(_SUBJECTS)
        score = min(5.0, max(0.0, level + rng.uniform(-0.3, 0.3)))
        rows.append({"sentence1": f"{s} {rng.choice(_VERBS)} {rng.choice(_PLACES)}",
                     "sentence2": f"{_SCORE_CUES[level]} {s} {rng.choice(_VERBS)}", "label": round(score, 3)})
    return rows


def toy_score_words() -> list[str]:
    """Every word of :func:`toy_scored_pairs` (for a tiny model's vocabulary)."""
    return [" ".join(_SUBJECTS + _VERBS + _PLACES + _SCORE_CUES)]


def toy_choices(n: int = 60, *, seed: int = 0) -> list[dict]:
    """A context and two options; the right one holds the cue word 'good'."""
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        context = " ".join(rng.choice(_FILLER) for _ in range(5))
        good, bad = f"{_CHOICE_CUES[0]} {rng.choice(_FILLER)}", f"{_CHOICE_CUES[1]} {rng.choice(_FILLER)}"
        label = rng.randint(0, 1)
        options = [good, bad] if label == 0 else [bad, good]
        rows.append({"sentence": context, "option1": options[0], "option2": options[1], "label": label})
    return rows


def toy_task_words() -> list[str]:
    """Every word of the toy task data (for a tiny model's vocabulary)."""
    return [" ".join(_FILLER + _PLACES_NE + _PEOPLE_NE + _WEATHER + list(_CHOICE_CUES))]


def write_toy_run(run_dir, n: int = 120, *, epochs: int = 4, seed: int = 0, noise: float = 0.1):
    """Record synthetic dynamics of ``n`` toy NLI rows (:func:`toy_nli`) into ``run_dir``; no model is trained.

    Each row's logits move toward its true label at a pace of its own, so a row whose label ``noise``
    flipped ends hard-to-learn and every region is populated. Returns the run folder.
    """
    import numpy as np
    import pandas as pd

    from .dynamics.store import DynamicsWriter, dynamics_dir

    rows, clean = toy_nli(n, seed=seed, noise=noise), toy_nli(n, seed=seed)
    gold = np.array([r["label"] for r in rows])
    true = np.array([r["label"] for r in clean])
    writer = DynamicsWriter(dynamics_dir(run_dir))
    writer.write_examples(np.arange(n), np.arange(n, dtype=np.uint64), gold,
                          pd.DataFrame(rows).drop(columns="label"))
    writer.update_manifest(label_names=["entailment", "neutral", "contradiction"], num_labels=3, n_examples=n,
                           mode="training_pass", text_columns=["premise", "hypothesis"])
    rng = np.random.default_rng(seed)
    pace = rng.uniform(0.2, 2.0, n)
    for e in range(epochs):
        logits = rng.normal(0, 0.6, (n, 3)).astype(np.float32)
        logits[np.arange(n), true] += (pace * (e + 1)).astype(np.float32)
        writer.write_epoch(e, np.arange(n), gold, logits, epoch=float(e + 1))
    return run_dir


def write_toy_unit_run(run_dir, n: int = 60, *, task: str | None = None, epochs: int = 4,
                       seed: int = 0, words: tuple[int, int] = (3, 8), vocabulary=None):
    """Record synthetic unit dynamics of ``n`` examples into ``run_dir`` (no model is trained).

    ``task``: a registered task whose units are words or labels (None: the first with words).
    Token classification (units are words): each example has ``words`` (min, max) words of the toy vocabulary tagged
    with :data:`TOY_TAGS` (a "tokens" column; units are words); multi-label: a "text" column and three
    weather labels (units are labels). Each unit's p(gold) drifts from its own random start toward a
    random end over the epochs, so every region is populated. ``vocabulary``: more words to draw
    sentences from (tagged O; benchmarks use a large one). Returns the run folder.
    """
    import numpy as np
    import pandas as pd

    from .dynamics.store import DynamicsWriter, dynamics_dir
    from .tasks import TASK_TYPES, task_type

    entry = task_type(task) if task is not None else next(t for t in TASK_TYPES.values() if t.unit == "word")
    rng = np.random.default_rng(seed)
    vocab = np.array(_FILLER + _PLACES_NE + _PEOPLE_NE + list(vocabulary or []), dtype=object)
    if entry.unit == "word":
        lengths = rng.integers(words[0], words[1] + 1, n)
        tokens = vocab[rng.integers(0, len(vocab), int(lengths.sum()))]
        gold = np.where(np.isin(tokens, _PLACES_NE), 1, np.where(np.isin(tokens, _PEOPLE_NE), 2, 0))
        cuts = np.cumsum(lengths)[:-1]
        texts = pd.DataFrame({"tokens": [list(t) for t in np.split(tokens, cuts)]})
        labels, names, unit, classes = [g.tolist() for g in np.split(gold, cuts)], TOY_TAGS, "word", 3
    elif entry.unit == "label":
        lengths = np.full(n, 3)
        hot = rng.random((n, 3)) < 0.4
        texts = pd.DataFrame({"text": [" ".join(list(rng.choice(_FILLER, 4)) + [_WEATHER[j] for j in np.flatnonzero(h)])
                                       for h in hot]})
        gold, labels = hot.reshape(-1).astype(np.int64), [np.flatnonzero(h).tolist() for h in hot]
        names, unit, classes = list(_WEATHER), "label", 2
    else:
        raise ValueError(f"task must be one whose units are words or labels, got {entry.name!r}")
    rows = np.repeat(np.arange(n), lengths)
    subs = np.arange(rows.size) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    writer = DynamicsWriter(dynamics_dir(run_dir))
    writer.write_examples(np.arange(n), np.arange(n, dtype=np.uint64), labels, texts)
    writer.update_manifest(task=entry.name, unit=unit, label_names=list(names), n_examples=n, n_units=int(rows.size),
                           mode="training_pass", text_columns=list(texts.columns))
    start, end = rng.normal(0, 2, rows.size), rng.normal(2.5, 2.5, rows.size)
    for e in range(epochs):
        logits = rng.normal(0, 0.3, (rows.size, classes)).astype(np.float32)
        logits[np.arange(rows.size), gold] += (start + (end - start) * e / max(epochs - 1, 1)).astype(np.float32)
        writer.write_epoch(e, rows, gold, logits, epoch=float(e + 1), sub_ids=subs)
    return run_dir


# ---------------------------------------------------------------------------------------------
# generative (causal LM) toy data and a tiny GPT-2

_LETTERS = list("abcd")


def toy_instructions(n: int = 90, *, seed: int = 0, corrupt: float = 0.0) -> list[dict]:
    """Prompt/response pairs of three learnable templates (copy, reverse, add two small numbers).

    With ``corrupt``, that share of the rows (seeded, exact: round half up) gets another row's
    response; ``corrupted`` marks them.
    """
    from ._validation import round_half_up

    rng = random.Random(seed)
    rows = []
    for i in range(n):
        kind = ("copy", "reverse", "add")[i % 3]
        if kind == "add":
            a, b = rng.randint(0, 4), rng.randint(0, 4)
            prompt, response = f"add {a} {b} =", str(a + b)
        else:
            letters = [rng.choice(_LETTERS) for _ in range(rng.randint(2, 4))]
            shown = letters if kind == "copy" else letters[::-1]
            prompt, response = f"{kind} {' '.join(letters)} =", " ".join(shown)
        rows.append({"prompt": prompt, "response": response, "corrupted": False})
    bad = rng.sample(range(n), round_half_up(corrupt, n)) if corrupt else []
    for i in bad:  # letters for a sum, a sum for letters: the swap is always wrong
        j = rng.choice([k for k in range(n) if (k % 3 == 2) != (i % 3 == 2)])
        rows[i]["response"], rows[i]["corrupted"] = rows[j]["response"], True
    return rows


def toy_instruction_words() -> list[str]:
    return [" ".join(["copy", "reverse", "add", "=", *_LETTERS, *map(str, range(19))])]


def make_causal_tokenizer(texts):
    """A word-level ``PreTrainedTokenizerFast`` for a causal LM: no special tokens added, [SEP] ends a text."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {w: i for i, w in enumerate(vocabulary(texts))}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="[UNK]"))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="[PAD]", unk_token="[UNK]", eos_token="[SEP]",
                                   model_max_length=64, model_input_names=["input_ids", "attention_mask"])


def make_tiny_causal_lm_dir(path, texts, *, n_embd: int = 64, layers: int = 2, seed: int = 0,
                            dropout: float = 0.0, n_positions: int = 64) -> str:
    """Save a randomly initialised tiny GPT-2 (``GPT2LMHeadModel``) and a word-level tokenizer under ``path``."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    path = Path(path)
    tokenizer = make_causal_tokenizer(texts)
    config = GPT2Config(vocab_size=len(tokenizer), n_layer=layers, n_embd=n_embd, n_head=2, n_positions=n_positions,
                        resid_pdrop=dropout, embd_pdrop=dropout, attn_pdrop=dropout,
                        pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
                        bos_token_id=tokenizer.eos_token_id)
    torch.manual_seed(seed)
    save_quietly(GPT2LMHeadModel(config), tokenizer, path)
    return str(path)
