"""Token classification: words the tokenizer gives no token, or truncation cuts off, shift no other word's tag.

A unit is an (example, word) pair whose ``sub_id`` is the word's index in the sentence, taken from
the tokenizer's ``word_ids()``. Words without a token (an empty string, U+200B, U+FE0F, U+00AD,
U+007F under a BERT normalizer) and words cut off by ``max_length`` have no unit: they are counted
in one warning line, and every other word keeps its own tag in the store and in the unit tables.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from datasets import Dataset
from tokenizers import normalizers
from transformers import Trainer

from conftest import training_args
from datacarto import CartographyCallback, CartographyTrainer, load_dynamics, load_examples
from datacarto.dynamics.cache import get_metrics
from datacarto.errors import DatacartoError
from datacarto.models import load_model
from datacarto.tasks import TaskSpec, collator_for, prepare_for_task, tokenize_task
from datacarto.testing import TOY_TAGS, make_tiny_model_dir, make_tokenizer, toy_task_words, toy_tokens
from datacarto.units import unit_records

DROPPED = ["", "\u200b", "\ufe0f", "\u00ad", "\x7f"]  # no token under BERT's normalizer (clean text, accents)
N = 40


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return make_tiny_model_dir(tmp_path_factory.mktemp("words") / "tiny", toy_task_words(), dropout=0.0)


def bert_tokenizer():
    """The tiny word-level tokenizer with BERT's normalizer: it removes control and format characters."""
    tok = make_tokenizer(toy_task_words())
    tok.backend_tokenizer.normalizer = normalizers.BertNormalizer(lowercase=True)
    return tok


def rows_with_dropped_words(n=N, seed=0):
    """Toy sentences; every other one holds a word without a token in its middle, tagged B-PER, before B-LOC."""
    rows = toy_tokens(n, seed=seed)
    for i, r in enumerate(rows[::2]):
        k = len(r["tokens"]) // 2
        r["tokens"][k:k] = [DROPPED[i % len(DROPPED)], "london"]
        r["ner_tags"][k:k] = [2, 1]
    return rows


def tokenized(rows, tok, max_length=64):
    ds, spec = prepare_for_task(Dataset.from_list(rows), TaskSpec(task="token-classification", label_names=TOY_TAGS))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        data = tokenize_task(ds, tok, spec, max_length=max_length)
    return data, spec, [str(w.message) for w in caught if "word" in str(w.message)]


def recorded(rows, tok):
    """Every word that has a token: (row, word index, tag), in (row, word) order."""
    out = []
    for r, row in enumerate(rows):
        for j, (word, tag) in enumerate(zip(row["tokens"], row["ner_tags"])):
            if tok(word, add_special_tokens=False)["input_ids"]:
                out.append((r, j, tag))
    return np.array(out).reshape(-1, 3)


def check_units(run, rows, tok, split="train"):
    """The store's units and the unit tables pair each word with its own tag."""
    expected = recorded(rows, tok)
    dyn = load_dynamics(run, split)
    np.testing.assert_array_equal(dyn.row_ids, expected[:, 0])
    np.testing.assert_array_equal(dyn.sub_ids, expected[:, 1])
    np.testing.assert_array_equal(dyn.gold, expected[:, 2])
    for r, s, g in zip(dyn.row_ids, dyn.sub_ids, dyn.gold):  # word by word: the stored gold is that word's tag
        assert rows[r]["ner_tags"][s] == g and rows[r]["tokens"][s] not in DROPPED
    units = get_metrics(run, split, level="unit")
    table = unit_records(load_examples(run, split), units, unit="word", label_names=TOY_TAGS)
    for (r, s), word, tag in zip(units[["row_id", "sub_id"]].to_numpy(), table["word"], table["gold tag"]):
        assert word == rows[r]["tokens"][s] and tag == TOY_TAGS[rows[r]["ner_tags"][s]]


@pytest.mark.parametrize("mode", ["training_pass", "epoch_end"])
def test_words_without_a_token_shift_no_tag(tmp_path, model_dir, mode):
    rows, val_rows = rows_with_dropped_words(), rows_with_dropped_words(16, seed=1)
    tok = bert_tokenizer()
    data, spec, said = tokenized(rows, tok)
    val, _, _ = tokenized(val_rows, tok)
    n_dropped, n_words = len(rows[::2]), sum(len(r["tokens"]) for r in rows)
    assert said == [f"{n_dropped} of {n_words} words have no token (empty, or only characters the tokenizer "
                    f"removes), in {n_dropped} of {len(rows)} rows: they have no unit and are not recorded (every "
                    "other word keeps its own tag)"]
    _, model = load_model(model_dir, spec.num_labels, spec.label_names, task="token-classification")
    common = dict(model=model, args=training_args(tmp_path, eval_strategy="epoch"), train_dataset=data,
                  eval_dataset=val, processing_class=tok, data_collator=collator_for("token-classification", tok))
    if mode == "training_pass":
        trainer = CartographyTrainer(**common, label_names=spec.label_names)
    else:
        trainer = Trainer(**common, callbacks=[CartographyCallback(dataset=data, label_names=spec.label_names)])
    trainer.train()
    check_units(tmp_path, rows, tok)
    if mode == "training_pass":  # the evaluation set's records carry the words too
        check_units(tmp_path, val_rows, tok, split="validation")
    assert "unit_words" not in load_examples(tmp_path).columns


def test_truncated_words_are_counted_and_the_kept_ones_keep_their_tags(tmp_path, model_dir):
    rows, tok = rows_with_dropped_words(), bert_tokenizer()
    data, spec, said = tokenized(rows, tok, max_length=6)  # [CLS], 4 words, [SEP]
    kept = [[j for j, w in enumerate(r["tokens"]) if w not in DROPPED][:4] for r in rows]
    cut = sum(len([w for w in r["tokens"] if w not in DROPPED]) - len(k) for r, k in zip(rows, kept))
    no_token = sum(w in DROPPED for r in rows for w in r["tokens"])
    short = sum(len(r["tokens"]) > len(k) for r, k in zip(rows, kept))
    n_words = sum(len(r["tokens"]) for r in rows)
    assert cut > 0 and no_token > 0 and len(said) == 1 and "\n" not in said[0]
    assert said[0].startswith(f"{no_token} of {n_words} words have no token (empty, or only characters the "
                              f"tokenizer removes) and {cut} were truncated away by max_length=6, in {short} of "
                              f"{len(rows)} rows: they have no unit")
    assert said[0].endswith("raise --max-length to keep the truncated ones")
    _, model = load_model(model_dir, spec.num_labels, spec.label_names, task="token-classification")
    CartographyTrainer(model=model, args=training_args(tmp_path), train_dataset=data, processing_class=tok,
                       data_collator=collator_for("token-classification", tok), label_names=spec.label_names).train()
    dyn = load_dynamics(tmp_path)
    expected = [(r, j, rows[r]["ner_tags"][j]) for r, k in enumerate(kept) for j in k]
    np.testing.assert_array_equal(np.c_[dyn.row_ids, dyn.sub_ids, dyn.gold], expected)


def test_a_plain_tokenizer_says_nothing(model_dir):
    """Sentences that fit, every word with a token: no warning, units are every word."""
    rows = toy_tokens(12)
    data, _, said = tokenized(rows, make_tokenizer(toy_task_words()))
    assert said == []
    assert data["unit_words"] == [list(range(len(r["tokens"]))) for r in rows]


@pytest.mark.parametrize("bad,shown", [(None, "None"), (7, "7")])
def test_words_that_are_not_strings_are_one_line(bad, shown):
    rows = toy_tokens(6)
    rows[3]["tokens"][2] = bad
    if bad is not None:  # a column of numbers: every word of every row an int
        rows = [{"tokens": [bad] * len(r["tokens"]), "ner_tags": r["ner_tags"]} for r in rows]
    with pytest.raises(DatacartoError) as e:
        prepare_for_task(Dataset.from_list(rows), TaskSpec(task="token-classification", label_names=TOY_TAGS))
    message = str(e.value)
    assert "\n" not in message and "'tokens'" in message
    assert ("row 3" if bad is None else "row 0") in message and shown in message


def test_focus_on_rows_with_unrecorded_words(tmp_path, model_dir):
    """The records of a run whose words lost their units are still a data set: a subset of them trains again."""
    from conftest import write_jsonl
    from datacarto.train.baseline import train_baseline
    from datacarto.train.focused import train_focused

    rows = toy_tokens(24)
    for r in rows:  # the tiny tokenizer gives "" no token; every sentence is longer than 4 words after it
        r["tokens"][1:1], r["ner_tags"][1:1] = ["", "home", "london"], [2, 0, 1]
    args = {"num_train_epochs": 1, "per_device_train_batch_size": 8, "use_cpu": True, "disable_tqdm": True,
            "save_strategy": "no", "logging_strategy": "no", "report_to": "none"}
    with pytest.warns(UserWarning, match=r"24 of \d+ words have no token .* truncated away by max_length=6"):
        train_baseline(model=model_dir, train=write_jsonl(tmp_path / "train.jsonl", rows), task="token-classification",
                       label_names=TOY_TAGS, output_dir=tmp_path / "run", training_args=args, max_length=6)
    picked = [3, 5, 8, 13]
    train_focused(tmp_path / "run", picked, output_dir=tmp_path / "focused", training_args=args, max_length=6)
    dyn = load_dynamics(tmp_path / "focused")
    expected = [(i, j, rows[r]["ner_tags"][j]) for i, r in enumerate(picked) for j in (0, 2, 3, 4)]
    np.testing.assert_array_equal(np.c_[dyn.row_ids, dyn.sub_ids, dyn.gold], expected)
