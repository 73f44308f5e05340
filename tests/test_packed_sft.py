"""Packed and padding-free SFT: per-example statistics from packed batches equal an unpacked computation."""

from __future__ import annotations

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch

from conftest import training_args
from datacarto.dynamics.store import load_dynamics, load_epoch_columns
from datacarto.errors import DatacartoError
from datacarto.testing import make_tiny_causal_lm_dir, toy_instruction_words, toy_instructions

trl = pytest.importorskip("trl")
N = 24


@pytest.fixture(scope="module")
def lm_dir(tmp_path_factory):
    return make_tiny_causal_lm_dir(tmp_path_factory.mktemp("gpt2") / "tiny", toy_instruction_words())


def sft_rows(n=N, seed=3):
    import datasets

    return datasets.Dataset.from_list([{"prompt": r["prompt"], "completion": " " + r["response"]}
                                       for r in toy_instructions(n, seed=seed)])


def sft_config(out, **options):
    fields = dict(num_train_epochs=2, per_device_train_batch_size=2, learning_rate=0.0, report_to="none",
                  save_strategy="no", logging_strategy="no", use_cpu=True, disable_tqdm=True, bf16=False,
                  max_length=32)  # lr 0: the weights stay those of the fresh model; TRL defaults to bf16 autocast
    fields.update(options)
    return trl.SFTConfig(str(out), **fields)


def sft_class():
    from datacarto.record import CartographyMixin

    class SFT(CartographyMixin, trl.SFTTrainer):
        pass

    return SFT


def token_table(model, input_ids, labels, rows=None):
    """Per predicted token of one forward pass: (example, nll, hit), the prediction of t + 1 from t.

    ``rows``: the example of each token (a packed row); a prediction across two examples never counts.
    """
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([input_ids])).logits[0, :-1].double()
    target = torch.tensor(labels)[1:]
    rows = np.zeros(len(input_ids), np.int64) if rows is None else np.asarray(rows)
    keep = (target != -100).numpy() & (rows[1:] == rows[:-1])
    nll = torch.nn.functional.cross_entropy(logits, target.clamp(min=0), reduction="none").numpy()
    hit = (logits.argmax(-1) == target).numpy()
    return rows[1:][keep], nll[keep], hit[keep]


def per_example(parts, n):
    """(n, 3) mean NLL, token accuracy, n_tokens from (example, nll, hit) tables, summed over an example's pieces."""
    sums = np.zeros((n, 3))
    for rows, nll, hit in parts:
        np.add.at(sums, rows, np.column_stack([nll, hit, np.ones(len(rows))]))
    return np.column_stack([sums[:, :2] / sums[:, 2:], sums[:, 2]])


def unpacked(model, examples):
    """Each example alone: the statistics an unpacked forward pass gives."""
    model.eval()
    return np.stack([per_example([token_table(model, ex["input_ids"], ex["labels"])], 1)[0] for ex in examples])


def recorded(run, epoch):
    frame = load_epoch_columns(run, epoch).reset_index()
    assert "filled" not in frame or not frame["filled"].any()
    return frame.sort_values("row_id")


def assert_each_example_once_with(run, want, epochs=2):
    dyn = load_dynamics(run)
    assert dyn.manifest["task"] == "causal-lm" and dyn.logits.shape == (len(want), epochs, 2)
    np.testing.assert_array_equal(dyn.ids, np.arange(len(want)))
    for e in range(epochs):
        stats = recorded(run, e)
        np.testing.assert_array_equal(stats["row_id"], np.arange(len(want)))  # every example once per epoch
        np.testing.assert_allclose(stats["nll"], want[:, 0], atol=1e-5, rtol=0)
        np.testing.assert_allclose(stats["token_accuracy"], want[:, 1], atol=1e-6, rtol=0)
        np.testing.assert_array_equal(stats["n_tokens"], want[:, 2])


def test_segments_key_each_prediction_by_its_own_example():
    from datacarto.record.segments import merge_pieces, segment_batch

    a, b, c = [5, 6, 7], [8, 9], [1, 2, 3, 4]
    rows, seg = segment_batch([10, 11, 12], [a, b, c], np.array([a + b + c + [0]]))  # flattened, padded once
    np.testing.assert_array_equal(rows, [10, 11, 12])
    np.testing.assert_array_equal(seg, [[0, 0, -1, 1, -1, 2, 2, 2, -1, -1]])  # no prediction across examples
    packed = [[3, 3, 4, 4, 4], [4, 4, 7]]  # a packed row id per token; example 4 cut across two rows
    rows, seg = segment_batch(packed, [[1, 2, 3, 4, 5], [6, 7, 8]], np.array([[1, 2, 3, 4, 5], [0, 0, 6, 7, 8]]))
    np.testing.assert_array_equal(rows, [3, 4, 4, 7])  # left padding found token by token
    np.testing.assert_array_equal(seg, [[0, -1, 1, 1, -1], [-1, -1, 2, -1, -1]])
    with pytest.raises(DatacartoError, match="changed the tokens of example 1"):
        segment_batch([0, 1], [[1, 2], [3, 4]], np.array([[1, 2], [3, 5]]))
    ids, stats = merge_pieces(np.array([4, 3, 4, 7]), np.array([[2.0, 0.5, 2], [1.0, 1.0, 1], [5.0, 0.0, 1],
                                                                [np.nan, np.nan, 0]]))
    np.testing.assert_array_equal(ids, [3, 4])  # a piece with no target token adds nothing
    np.testing.assert_allclose(stats, [[1.0, 1.0, 1], [3.0, 1 / 3, 3]])


@pytest.mark.parametrize("strategy", ["bfd", "wrapped"])
def test_packed_rows_are_trls_with_a_row_id_per_token(tmp_path, lm_dir, strategy):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    def trainer(record):
        args = sft_config(tmp_path / str(record), packing=True, packing_strategy=strategy, shuffle_dataset=True,
                          max_length=16)
        return sft_class()(model=AutoModelForCausalLM.from_pretrained(lm_dir), args=args, train_dataset=sft_rows(),
                           processing_class=AutoTokenizer.from_pretrained(lm_dir), record=record)

    mixin = trainer(True)
    theirs, ours = trainer(False).train_dataset, mixin.train_dataset
    for column in theirs.column_names:  # the same rows, in the same order, as TRL packs them
        assert ours[column] == theirs[column], column
    examples = mixin._dc_packed[id(ours)].examples  # TRL's tokenization, unpacked, row i = example i
    assert examples["datacarto_row_id"] == list(range(N)) and max(map(len, examples["input_ids"])) <= 16
    pieces = {}  # each example's runs of tokens in the packed rows
    for ids, rows in zip(ours["input_ids"], ours["datacarto_row_id"]):
        for token, row, start in zip(ids, rows, [True] + [a != b for a, b in zip(rows[1:], rows[:-1])]):
            pieces.setdefault(row, [])
            if start:
                pieces[row].append([])
            pieces[row][-1].append(token)
    assert sorted(pieces) == list(range(N))
    for row, whole in enumerate(examples["input_ids"]):  # every example's tokens, once, in runs of its own order
        runs = pieces[row]
        assert sorted(t for run in runs for t in run) == sorted(whole)
        assert all(any(whole[i:i + len(run)] == run for i in range(len(whole))) for run in runs)
        assert len(runs) == 1 or strategy == "wrapped"
    if strategy == "wrapped":
        assert sum(map(len, pieces.values())) > N  # some examples cut across rows


@pytest.mark.parametrize("mode", ["training_pass", "epoch_end"])
@pytest.mark.parametrize("setup", ["bfd", "wrapped", "padding_free"])
def test_packed_sft_equals_unpacked(tmp_path, lm_dir, monkeypatch, setup, mode):
    """lr 0: the recorded statistics are those of the same weights computed example by example."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from datacarto.record import callbacks

    monkeypatch.setattr(callbacks, "PENDING_BATCHES", 1)  # an example's pieces reach the buffer in separate moves
    options = {"bfd": dict(packing=True), "wrapped": dict(packing=True, packing_strategy="wrapped", max_length=16),
               "padding_free": dict(padding_free=True, max_length=None)}[setup]
    trainer = sft_class()(model=AutoModelForCausalLM.from_pretrained(lm_dir), args=sft_config(tmp_path, **options),
                          train_dataset=sft_rows(), processing_class=AutoTokenizer.from_pretrained(lm_dir),
                          dynamics_mode=mode)
    trainer.train()
    fresh = AutoModelForCausalLM.from_pretrained(lm_dir).eval()
    examples = trainer.cartography.examples
    assert len(examples) == N and (setup == "padding_free" or len(trainer.train_dataset) < N)  # packed rows
    if setup == "wrapped" and mode == "training_pass":
        # each example as the training pass predicts it: in its packed row, after the row's earlier examples
        rows = trainer.train_dataset
        parts = [token_table(fresh, r["input_ids"], r["labels"], r["datacarto_row_id"]) for r in rows]
        assert any(rows[i]["datacarto_row_id"][-1] == rows[i + 1]["datacarto_row_id"][0] for i in range(len(rows) - 1))
        want = per_example(parts, N)  # the pieces of an example cut across rows, added
        alone = unpacked(fresh, examples)
        assert (want[:, 2] <= alone[:, 2]).all() and (want[:, 2] < alone[:, 2]).any()  # a piece's first token
        assert not np.allclose(want[:, 0], alone[:, 0], atol=1e-3)  # earlier examples of the row are context
    else:
        want = unpacked(fresh, examples)
    assert_each_example_once_with(tmp_path, want)
    assert list(load_dynamics(tmp_path).examples()["completion"]) == sft_rows()["completion"]


def test_packed_evaluation_set_is_recorded_per_example(tmp_path, lm_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    args = sft_config(tmp_path, packing=True, eval_strategy="epoch", num_train_epochs=1)
    trainer = sft_class()(model=AutoModelForCausalLM.from_pretrained(lm_dir), args=args, train_dataset=sft_rows(),
                          eval_dataset=sft_rows(10, seed=5), processing_class=AutoTokenizer.from_pretrained(lm_dir))
    trainer.train()
    assert "seq_lengths" in trainer.eval_dataset.column_names  # TRL evaluates packed (eval_packing)
    frame = load_epoch_columns(tmp_path, 0, "validation").reset_index()
    frame = frame.sort_values("row_id")
    packed = trainer._dc_packed[id(trainer.eval_dataset)]
    want = unpacked(AutoModelForCausalLM.from_pretrained(lm_dir), packed.examples)
    np.testing.assert_array_equal(frame["row_id"], np.arange(10))
    np.testing.assert_allclose(frame[["nll", "token_accuracy", "n_tokens"]].to_numpy(), want, atol=1e-5, rtol=0)
    records = pq.read_table(tmp_path / "training_dynamics/eval/validation/examples.parquet").to_pandas()
    assert list(records["prompt"]) == sft_rows(10, seed=5)["prompt"]


@pytest.mark.parametrize("mode", ["training_pass", "epoch_end"])
def test_padding_free_collator_of_transformers(tmp_path, lm_dir, mode):
    """``DataCollatorWithFlattening`` (one row per batch, position_ids resets): the same numbers as unpacked."""
    import datasets
    from transformers import AutoModelForCausalLM, AutoTokenizer, DataCollatorWithFlattening, Trainer

    from datacarto.record import CartographyCallback, CartographyTrainer
    from datacarto.tasks import TaskSpec, prepare_for_task, tokenize_task

    rows = toy_instructions(N, seed=1)
    ds, spec = prepare_for_task(datasets.Dataset.from_list(rows), TaskSpec(task="causal-lm", prompt_column="prompt",
                                                                           response_column="response"))
    ds = tokenize_task(ds, AutoTokenizer.from_pretrained(lm_dir), spec, max_length=64)
    args = training_args(tmp_path, learning_rate=0.0, per_device_train_batch_size=5, gradient_accumulation_steps=2,
                         eval_strategy="epoch", per_device_eval_batch_size=4)
    common = dict(model=AutoModelForCausalLM.from_pretrained(lm_dir), args=args, train_dataset=ds,
                  eval_dataset=ds.select(range(8)), data_collator=DataCollatorWithFlattening())
    if mode == "training_pass":
        trainer = CartographyTrainer(**common)
    else:
        trainer = Trainer(**common, callbacks=[CartographyCallback(dataset=ds)])
    trainer.train()
    want = unpacked(AutoModelForCausalLM.from_pretrained(lm_dir), ds)
    assert_each_example_once_with(tmp_path, want)
    frame = load_epoch_columns(tmp_path, 1, "validation").reset_index()
    np.testing.assert_allclose(frame.sort_values("row_id")["nll"], want[:8, 0], atol=1e-5, rtol=0)


def test_a_plain_callback_records_trls_padding_free_training(tmp_path, lm_dir):
    """TRL ``padding_free=True`` with a plain ``CartographyCallback``: its rows are the examples, each predicted alone."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from datacarto.record import CartographyCallback

    trainer = trl.SFTTrainer(model=AutoModelForCausalLM.from_pretrained(lm_dir),
                             args=sft_config(tmp_path, padding_free=True, max_length=None), train_dataset=sft_rows(),
                             processing_class=AutoTokenizer.from_pretrained(lm_dir),
                             callbacks=[CartographyCallback(dataset=sft_rows())])
    trainer.train()
    want = unpacked(AutoModelForCausalLM.from_pretrained(lm_dir), trainer.train_dataset)  # row i: example i
    assert_each_example_once_with(tmp_path, want)


@pytest.mark.parametrize("options", [dict(packing=True), dict(packing=True, packing_strategy="wrapped")])
def test_a_plain_callback_refuses_packing_in_one_line(tmp_path, lm_dir, options):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from datacarto.record import CartographyCallback

    trainer = trl.SFTTrainer(model=AutoModelForCausalLM.from_pretrained(lm_dir), args=sft_config(tmp_path, **options),
                             train_dataset=sft_rows(), processing_class=AutoTokenizer.from_pretrained(lm_dir),
                             callbacks=[CartographyCallback(dataset=sft_rows())])
    with pytest.raises(DatacartoError) as caught:
        trainer.train()
    message = str(caught.value)
    assert "\n" not in message and "CartographyMixin" in message and "looks packed" in message
    assert "rows, the training set" not in message
    assert not (tmp_path / "training_dynamics").exists()


def test_cut_examples_are_refused_with_several_processes(monkeypatch):
    from datacarto.record import distributed
    from datacarto.record.packing import Packed, check_packing
    from datacarto.record.tasks import get_task

    monkeypatch.setattr(distributed, "rank_world", lambda: (0, 2))
    args = trl.SFTConfig("unused", packing=True, packing_strategy="wrapped", use_cpu=True, report_to="none")
    check_packing(get_task("causal-lm"), None, Packed(None, None, splits=False), args)  # bfd: every example whole
    with pytest.raises(DatacartoError, match="cuts examples across packed rows.*'bfd'"):
        check_packing(get_task("causal-lm"), None, Packed(None, None, splits=True), args)
