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


def make_tiny_model_dir(path, texts, *, num_labels: int = 3, hidden_size: int = 32, layers: int = 2,
                        seed: int = 0, dropout: float = 0.1) -> str:
    """Save a randomly initialised tiny BERT classifier and its tokenizer under ``path``."""
    import torch
    from transformers import BertConfig, BertForSequenceClassification

    path = Path(path)
    tokenizer = make_tokenizer(texts)
    config = BertConfig(vocab_size=len(tokenizer), hidden_size=hidden_size, num_hidden_layers=layers,
                        num_attention_heads=2, intermediate_size=hidden_size * 2, max_position_embeddings=64,
                        num_labels=num_labels, hidden_dropout_prob=dropout,
                        attention_probs_dropout_prob=dropout)
    torch.manual_seed(seed)
    BertForSequenceClassification(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return str(path)
