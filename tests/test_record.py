"""Recording from a Trainer: row ids, both modes, the plain-Trainer callback, eval dynamics, bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from datasets import Dataset
from transformers import AutoModelForSequenceClassification, AutoTokenizer, Trainer

from conftest import training_args
from datacarto import CartographyCallback, CartographyTrainer, load_dynamics, load_examples
from datacarto.data import prepare_labels, tokenize
from datacarto.errors import DatacartoError


def _data(model_dir, rows):
    tok = AutoTokenizer.from_pretrained(model_dir)
    raw, spec = prepare_labels(Dataset.from_list(rows), text_columns=["premise", "hypothesis"])
    return tok, raw, tokenize(raw, tok, spec)


def _eval_logits(model, tok, tokenized):
    """Eval-mode logits in row order, computed independently of the recorder."""
    model.eval()
    feats = tokenized.remove_columns([c for c in tokenized.column_names
                                      if c not in ("input_ids", "attention_mask", "token_type_ids")])
    batch = tok.pad(feats[:], return_tensors="pt")
    with torch.no_grad():
        return model(**batch).logits.numpy()


def test_training_pass_logits_are_keyed_by_row_id(tmp_path, tiny_model_no_dropout, toy_rows):
    # lr = 0 and no dropout: the training forward pass must give exactly the eval-mode logits of
    # each row, although the sampler shuffles: a wrong row id mapping would break the equality
    tok, raw, data = _data(tiny_model_no_dropout, toy_rows)
    model = AutoModelForSequenceClassification.from_pretrained(tiny_model_no_dropout)
    trainer = CartographyTrainer(model=model, args=training_args(tmp_path, learning_rate=0.0),
                                 train_dataset=data, processing_class=tok)
    trainer.train()
    dyn = load_dynamics(tmp_path)
    assert dyn.manifest["mode"] == "training_pass"
    assert dyn.logits.shape == (len(toy_rows), 2, 3)
    np.testing.assert_array_equal(dyn.ids, np.arange(len(toy_rows)))
    np.testing.assert_array_equal(dyn.gold, [r["label"] for r in toy_rows])
    expected = _eval_logits(model, tok, data)
    for e in range(2):
        np.testing.assert_allclose(dyn.logits[:, e], expected, atol=1e-5)
    records = load_examples(tmp_path)
    assert records["premise"].tolist() == [r["premise"] for r in toy_rows]
    assert records["hypothesis"].tolist() == [r["hypothesis"] for r in toy_rows]
    assert dyn.manifest["text_columns"] == ["premise", "hypothesis"]


def test_epoch_end_mode_is_the_final_models_eval_prediction(tmp_path, tiny_model, toy_rows):
    tok, raw, data = _data(tiny_model, toy_rows)
    model = AutoModelForSequenceClassification.from_pretrained(tiny_model)
    trainer = CartographyTrainer(model=model, args=training_args(tmp_path), train_dataset=data,
                                 processing_class=tok, dynamics_mode="epoch_end")
    trainer.train()
    dyn = load_dynamics(tmp_path)
    assert dyn.manifest["mode"] == "epoch_end" and dyn.n_epochs == 2
    np.testing.assert_allclose(dyn.logits[:, -1], _eval_logits(model, tok, data), atol=1e-5)
    assert not np.allclose(dyn.logits[:, 0], dyn.logits[:, 1])  # the model moved between epochs


def test_callback_with_plain_trainer_and_snapshots(tmp_path, tiny_model, toy_rows):
    tok, raw, data = _data(tiny_model, toy_rows)
    model = AutoModelForSequenceClassification.from_pretrained(tiny_model)
    callback = CartographyCallback(snapshots_per_epoch=3, dataset=raw, label_names=["e", "n", "c"])
    Trainer(model=model, args=training_args(tmp_path, num_train_epochs=1), train_dataset=data,
            processing_class=tok, callbacks=[callback]).train()
    dyn = load_dynamics(tmp_path)
    assert dyn.n_epochs == 3  # one epoch, three snapshots
    steps = [s["global_step"] for s in dyn.manifest["snapshots"].values()]
    assert steps == sorted(set(steps)) and steps[-1] == 8
    assert dyn.label_names == ["e", "n", "c"]
    assert load_examples(tmp_path)["premise"].tolist() == [r["premise"] for r in toy_rows]
    np.testing.assert_allclose(dyn.logits[:, -1], _eval_logits(model, tok, data), atol=1e-5)


def test_callback_refuses_training_pass_mode():
    with pytest.raises(DatacartoError, match="CartographyTrainer"):
        CartographyCallback(mode="training_pass")


def test_raw_text_columns_need_no_custom_collator(tmp_path, tiny_model, toy_rows):
    # remove_unused_columns=False (as under DDP): the text columns reach the collator, which must cope
    tok, raw, data = _data(tiny_model, toy_rows)
    model = AutoModelForSequenceClassification.from_pretrained(tiny_model)
    CartographyTrainer(model=model, args=training_args(tmp_path, remove_unused_columns=False, num_train_epochs=1),
                       train_dataset=data, processing_class=tok).train()
    assert load_dynamics(tmp_path).logits.shape == (len(toy_rows), 1, 3)


def test_plain_torch_dataset(tmp_path, tiny_model_no_dropout, toy_rows):
    tok, raw, data = _data(tiny_model_no_dropout, toy_rows)

    class Plain(torch.utils.data.Dataset):
        def __len__(self):
            return len(data)

        def __getitem__(self, i):
            row = data[i]
            return {k: row[k] for k in ("input_ids", "attention_mask", "token_type_ids", "labels")}

    model = AutoModelForSequenceClassification.from_pretrained(tiny_model_no_dropout)
    CartographyTrainer(model=model, args=training_args(tmp_path, learning_rate=0.0, num_train_epochs=1),
                       train_dataset=Plain(), processing_class=tok).train()
    dyn = load_dynamics(tmp_path)
    np.testing.assert_allclose(dyn.logits[:, 0], _eval_logits(model, tok, data), atol=1e-5)


def test_eval_and_test_dynamics(tmp_path, tiny_model, toy_rows):
    tok, raw, data = _data(tiny_model, toy_rows)
    val = data.select(range(20))
    model = AutoModelForSequenceClassification.from_pretrained(tiny_model)
    trainer = CartographyTrainer(model=model, args=training_args(tmp_path, eval_strategy="epoch"),
                                 train_dataset=data, eval_dataset=val, processing_class=tok)
    trainer.train()
    dyn = load_dynamics(tmp_path, "validation")
    assert dyn.logits.shape == (20, 2, 3)
    np.testing.assert_array_equal(dyn.gold, [r["label"] for r in toy_rows[:20]])
    np.testing.assert_allclose(dyn.logits[:, -1], _eval_logits(model, tok, val), atol=1e-5)
    assert load_examples(tmp_path, "validation")["premise"].tolist() == [r["premise"] for r in toy_rows[:20]]
    trainer.predict(data.select(range(10)), metric_key_prefix="test")
    assert load_dynamics(tmp_path, "test").logits.shape == (10, 1, 3)


def test_labels_out_of_range_for_the_model(tmp_path, tiny_model, toy_rows):
    tok, raw, data = _data(tiny_model, toy_rows)
    data = data.map(lambda b: {"labels": [3] * len(b["labels"])}, batched=True)
    model = AutoModelForSequenceClassification.from_pretrained(tiny_model)
    trainer = CartographyTrainer(model=model, args=training_args(tmp_path), train_dataset=data, processing_class=tok)
    with pytest.raises(DatacartoError, match="model has 3 labels"):
        trainer.train()


def test_nan_logits_are_recorded_and_counted(tmp_path, tiny_model, toy_rows):
    tok, raw, data = _data(tiny_model, toy_rows)
    model = AutoModelForSequenceClassification.from_pretrained(tiny_model)
    with torch.no_grad():
        model.classifier.bias.fill_(float("nan"))
    trainer = CartographyTrainer(model=model, args=training_args(tmp_path, num_train_epochs=1),
                                 train_dataset=data, processing_class=tok)
    with pytest.warns(UserWarning, match="NaN logits"):
        trainer.train()
    dyn = load_dynamics(tmp_path)
    assert np.isnan(dyn.logits).all()
    assert dyn.manifest["nan_logits"] == len(toy_rows)


def test_output_dir_with_dynamics_of_another_data_set(tmp_path, tiny_model, toy_rows):
    tok, raw, data = _data(tiny_model, toy_rows)
    model = AutoModelForSequenceClassification.from_pretrained(tiny_model)
    args = training_args(tmp_path, num_train_epochs=1)
    CartographyTrainer(model=model, args=args, train_dataset=data, processing_class=tok).train()
    other = data.select(range(30))
    trainer = CartographyTrainer(model=model, args=args, train_dataset=other, processing_class=tok)
    with pytest.raises(DatacartoError, match="different data set") as refused:
        trainer.train()
    assert "overwrite_dynamics=True" in str(refused.value) and "--overwrite_output_dir" not in str(refused.value)
    assert load_dynamics(tmp_path).n_examples == len(toy_rows)  # nothing already written was lost


def test_gold_that_differs_from_the_data_stops_the_write(tmp_path):
    """The write-time invariant: a prediction stored under another row's id is refused, nothing written."""
    import pandas as pd

    from datacarto.record.recorder import SplitRecorder

    labels = np.array([0, 1, 2, 0, 1, 2])
    rec = SplitRecorder(tmp_path / "validation", mode="training_pass", meta={"split": "validation"})
    rec.begin(pd.DataFrame({"text": list("abcdef")}), labels, None, ["text"])
    rec.expect(labels)
    logits = np.zeros((6, 3), np.float32)
    assert rec.write(0, np.arange(6), labels, logits, epoch=1.0, global_step=1)
    shifted = np.roll(np.arange(6), 1)  # the i-th prediction under another row's id
    with pytest.raises(DatacartoError, match=r"validation split's snapshot 1: the gold stored for 6 of 6 examples"):
        rec.write(1, shifted, labels, logits, epoch=2.0, global_step=2)
    assert sorted(p.name for p in rec.directory.glob("epoch_*")) == ["epoch_000.parquet"]


def test_pipeline_prediction_uses_the_runs_cap_and_caps_nothing_again(tmp_path, tiny_model, toy_rows, monkeypatch):
    """A max_length beyond the model's 64 positions is capped once for the run (capped_max_length, as
    Context.max_length does); the pipeline's prediction takes that value as it is and caps nothing itself."""
    from datacarto import models
    from datacarto.pipeline.context import predict
    from datacarto.tasks import TaskSpec

    with pytest.warns(UserWarning, match="--max-length 512 is longer than the model's 64 positions: using 64"):
        max_length = models.capped_max_length(tiny_model, 512)
    tok = AutoTokenizer.from_pretrained(tiny_model)
    model = AutoModelForSequenceClassification.from_pretrained(tiny_model)
    long_rows = [dict(r, premise=" ".join([r["premise"]] * 40)) for r in toy_rows[:4]]
    spec = TaskSpec(text_columns=["premise", "hypothesis"], label_column="label", label_names=list("abc"))
    trainer = Trainer(model=model, args=training_args(tmp_path), processing_class=tok)

    def second_cap(*args, **kwargs):
        raise AssertionError("predict capped max_length again")

    monkeypatch.setattr(models, "effective_max_length", second_cap)
    gold, logits = predict(trainer, Dataset.from_list(long_rows), spec, max_length=max_length)
    assert gold.tolist() == [r["label"] for r in long_rows] and logits.shape == (4, 3)


@pytest.mark.parametrize("n,batch_size,world", [(61, 10, 2), (5, 2, 4), (1, 3, 2), (64, 8, 3)])
def test_each_rank_runs_as_many_forward_passes(monkeypatch, n, batch_size, world):
    """Sharded models (FSDP, ZeRO-3) gather their weights in every forward: an eval pass must run
    in lockstep on all ranks. Shares are padded to equal length; the union of ids is every row."""
    from datacarto.record import predict

    class Counting(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(1))
            self.calls = 0

        def forward(self, x, labels=None):
            self.calls += 1
            return type("Out", (), {"logits": torch.stack([x.float(), -x.float()], 1)})()

    data = [{"x": i, "labels": i % 2} for i in range(n)]
    collate = lambda rows: {k: torch.tensor([r[k] for r in rows]) for k in rows[0]}  # noqa: E731
    calls, seen = [], []
    for rank in range(world):
        monkeypatch.setattr(predict, "rank_world", lambda rank=rank: (rank, world))
        model = Counting()
        ids, gold, logits = predict.predict_logits(model, data, collate, batch_size)
        np.testing.assert_array_equal(logits[:, 0], ids)  # each logit under its own row's id
        np.testing.assert_array_equal(gold, ids % 2)
        calls.append(model.calls)
        seen.append(ids)
    assert len(set(calls)) == 1, f"forward passes per rank: {calls}"
    np.testing.assert_array_equal(np.unique(np.concatenate(seen)), np.arange(n))


@pytest.mark.parametrize("mode", ["training_pass", "epoch_end"])
def test_bf16_autocast_logits_are_stored_as_float32(tmp_path, tiny_model_no_dropout, toy_rows, mode):
    """``bf16=True`` (CPU autocast): the logits are bf16 values, stored as float32 without rounding, in
    both modes (accelerate wraps the model's forward in autocast, so the epoch-end pass runs in bf16
    too), and equal an eval pass of the final model within bf16 tolerance (lr 0, no dropout)."""
    tok, raw, data = _data(tiny_model_no_dropout, toy_rows)
    model = AutoModelForSequenceClassification.from_pretrained(tiny_model_no_dropout)
    trainer = CartographyTrainer(model=model, args=training_args(tmp_path, learning_rate=0.0, bf16=True),
                                 train_dataset=data, processing_class=tok, dynamics_mode=mode)
    trainer.train()
    dyn = load_dynamics(tmp_path)
    np.testing.assert_array_equal(dyn.ids, np.arange(len(toy_rows)))
    assert dyn.logits.dtype == np.float32 and np.isfinite(dyn.logits).all()
    assert not (dyn.logits.view(np.uint32) & 0xFFFF).any()  # bf16 values, upcast exactly
    expected = _eval_logits(model, tok, data)
    assert not (expected.view(np.uint32) & 0xFFFF).any()  # the eval pass ran in bf16 as well
    for e in range(2):
        # a few bf16 steps at the logits' scale (batches padded differently round differently)
        np.testing.assert_allclose(dyn.logits[:, e], expected, rtol=0, atol=2 ** -6 * np.abs(expected).max())


def test_causal_lm_statistics_of_bf16_logits_are_computed_in_float32():
    """bf16 logits (autocast) are upcast before the cross-entropy: the same statistics as their float32 copy."""
    from datacarto.record.causal_lm import token_stats

    g = torch.Generator().manual_seed(0)
    logits = (torch.randn(4, 9, 50, generator=g) * 4).to(torch.bfloat16)
    labels = torch.randint(0, 50, (4, 9), generator=g)
    labels[:, :3] = -100
    got = token_stats(labels, logits)
    assert got.dtype == torch.float64
    torch.testing.assert_close(got, token_stats(labels, logits.float()), rtol=0, atol=0)
