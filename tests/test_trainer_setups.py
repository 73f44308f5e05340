"""Every Trainer set-up either records each training row exactly once per epoch, or refuses in one line.

Each set-up runs in both modes as a user would write them: ``CartographyTrainer`` in place of
``Trainer`` (training_pass), and a plain ``Trainer(callbacks=[CartographyCallback()])`` (epoch_end).
The store is then checked with ``load_dynamics`` row by row.
"""

from __future__ import annotations

import warnings

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
from datasets import ClassLabel, Dataset
from transformers import (
    AutoModelForMaskedLM,
    AutoModelForSequenceClassification,
    AutoTokenizer,
    DataCollatorWithPadding,
    Trainer,
    TrainerCallback,
)

from conftest import stop_at, training_args
from datacarto import CartographyCallback, CartographyMixin, CartographyTrainer, load_dynamics, load_examples
from datacarto.data import prepare_labels, tokenize
from datacarto.dynamics.store import dynamics_dir, list_epoch_files
from datacarto.errors import DatacartoError

MODES = ["training_pass", "epoch_end"]
N = 60  # toy rows; batch 8 -> 8 steps an epoch


class CountSteps(TrainerCallback):
    def __init__(self):
        self.steps = 0

    def on_step_end(self, args, state, control, **kwargs):
        self.steps += 1



class WeightedLossTrainer(Trainer):
    """A user's Trainer subclass with its own loss (class weights), returning (loss, outputs)."""

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        labels = inputs.pop("labels")
        outputs = model(**inputs)
        weight = torch.tensor([1.0, 2.0, 1.0])
        loss = torch.nn.functional.cross_entropy(outputs.logits, labels, weight=weight)
        return (loss, outputs) if return_outputs else loss


class LossOnlyTrainer(Trainer):
    """A user's compute_loss that ignores return_outputs and returns the loss alone."""

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        return model(**inputs).loss


@pytest.fixture(scope="module")
def toy(tiny_model, toy_rows):
    tok = AutoTokenizer.from_pretrained(tiny_model)
    raw, spec = prepare_labels(Dataset.from_list(toy_rows), text_columns=["premise", "hypothesis"])
    return tok, raw, tokenize(raw, tok, spec)


def _trainer(mode, model_dir, tok, data, out, *, base=Trainer, model=None, callbacks=(), eval_dataset=None,
             callback_options=None, trainer_options=None, **args):
    model = model if model is not None else AutoModelForSequenceClassification.from_pretrained(model_dir)
    targs = training_args(out, **args)
    common = dict(model=model, args=targs, train_dataset=data, eval_dataset=eval_dataset, processing_class=tok)
    if mode == "plain":  # the same run without recording
        return base(**common, callbacks=list(callbacks))
    if mode == "training_pass":
        cls = CartographyTrainer if base is Trainer else type("Recorded" + base.__name__, (CartographyMixin, base), {})
        return cls(**common, callbacks=list(callbacks), **(trainer_options or {}))
    callback = CartographyCallback(**(callback_options or {}))
    return base(**common, callbacks=[callback, *callbacks])


def _assert_recorded(out, labels, n_epochs, split="train"):
    """Every row exactly once per epoch, the right epochs, finite logits, gold equal to the labels given."""
    dyn = load_dynamics(out, split)
    assert dyn.epochs == list(range(n_epochs)), dyn.epochs
    np.testing.assert_array_equal(dyn.ids, np.arange(len(labels)))
    np.testing.assert_array_equal(dyn.gold, labels)
    assert np.isfinite(dyn.logits).all()
    assert [s["n"] for s in dyn.manifest["snapshots"].values()] == [len(labels)] * n_epochs
    return dyn


def _labels(rows):
    return [r["label"] for r in rows]


SETUPS = {
    "plain": {},
    "gradient accumulation, batch not dividing N": dict(per_device_train_batch_size=7, gradient_accumulation_steps=3),
    "group by length": dict(train_sampling_strategy="group_by_length"),
    "sequential sampler": dict(train_sampling_strategy="sequential"),
    "dataloader workers": dict(dataloader_num_workers=2),
    "label smoothing": dict(label_smoothing_factor=0.1),
    "drop last batch": dict(dataloader_drop_last=True),
}


EVAL_ROWS = list(range(0, N, 3))  # 20 rows of mixed lengths: a length-grouped sampler reorders them
TEST_ROWS = list(range(1, N, 4))  # 15 rows


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("setup", list(SETUPS))
def test_setup_records_every_row_once_per_epoch(tmp_path, tiny_model, toy, toy_rows, mode, setup):
    """Training, validation and (mixin) test stores: each row once a snapshot, its gold the data's label."""
    tok, raw, data = toy
    labels = _labels(toy_rows)
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        trainer = _trainer(mode, tiny_model, tok, data, tmp_path, eval_dataset=data.select(EVAL_ROWS),
                           eval_strategy="epoch", **SETUPS[setup])
        trainer.train()
        if mode == "training_pass":
            trainer.predict(data.select(TEST_ROWS))
    dyn = _assert_recorded(tmp_path, labels, 2)
    assert dyn.manifest["mode"] == mode
    val = _assert_recorded(tmp_path, [labels[i] for i in EVAL_ROWS], 2, split="validation")
    if mode == "training_pass":
        _assert_recorded(tmp_path, [labels[i] for i in TEST_ROWS], 1, split="test")
    if setup == "drop last batch" and mode == "training_pass":
        # 60 rows, batch 8: 4 rows are dropped each epoch, predicted at the epoch end and marked
        assert [s["filled"] for s in dyn.manifest["snapshots"].values()] == [4, 4]
        assert pq.read_table(dynamics_dir(tmp_path) / "epoch_000.parquet").column("filled").to_numpy().sum() == 4
        # the evaluation loop drops 4 of 20 rows (batch 16): they are predicted too, the set is recorded whole
        assert [s["filled"] for s in val.manifest["snapshots"].values()] == [4, 4]
    else:
        assert not any("filled" in s for s in dyn.manifest["snapshots"].values())
        assert not any("filled" in s for s in val.manifest["snapshots"].values())


def test_a_list_evaluation_set_dropped_whole_is_recorded_as_an_arrow_one(tmp_path, tiny_model, toy, toy_rows):
    """drop_last drops every batch of a 5-row set (batch 16): it is predicted whole, found labelled by the
    same label-column rule as the training set, whether it is an arrow table or a list of dicts."""
    tok, raw, data = toy
    labels = _labels(toy_rows)
    rows = [{k: v for k, v in data[i].items() if k in ("input_ids", "attention_mask", "label")} for i in range(5)]
    for name, eval_set in (("arrow", data.select(range(5))), ("list", rows)):
        out = tmp_path / name
        _trainer("training_pass", tiny_model, tok, data, out, eval_dataset=eval_set, eval_strategy="epoch",
                 dataloader_drop_last=True).train()
        val = _assert_recorded(out, labels[:5], 2, split="validation")
        assert [s["filled"] for s in val.manifest["snapshots"].values()] == [5, 5], name


def test_raw_text_columns_reach_the_collator(tmp_path, tiny_model, toy, toy_rows):
    # remove_unused_columns=False (as under DDP): the mixin keeps text away from the user's collator
    tok, raw, data = toy
    _trainer("training_pass", tiny_model, tok, data, tmp_path, remove_unused_columns=False).train()
    _assert_recorded(tmp_path, _labels(toy_rows), 2)


@pytest.mark.parametrize("mode", MODES)
def test_padding_collator_and_records(tmp_path, tiny_model, toy, toy_rows, mode):
    tok, raw, data = toy
    collator = DataCollatorWithPadding(tok, pad_to_multiple_of=8)
    model = AutoModelForSequenceClassification.from_pretrained(tiny_model)
    args = training_args(tmp_path)
    if mode == "training_pass":
        CartographyTrainer(model=model, args=args, train_dataset=data, data_collator=collator,
                           processing_class=tok).train()
    else:
        Trainer(model=model, args=args, train_dataset=data, data_collator=collator, processing_class=tok,
                callbacks=[CartographyCallback()]).train()
    _assert_recorded(tmp_path, _labels(toy_rows), 2)
    records = load_examples(tmp_path)
    if mode == "training_pass":
        assert records["premise"].tolist() == [r["premise"] for r in toy_rows]
    else:  # the Trainer dropped the text columns: the input ids are decoded for tooltips
        assert records["text"].tolist()[0] == f"{toy_rows[0]['premise']} {toy_rows[0]['hypothesis']}"


@pytest.mark.parametrize("mode", MODES)
def test_eval_every_k_steps_numbers_snapshots_in_order(tmp_path, tiny_model, toy, toy_rows, mode):
    tok, raw, data = toy
    _trainer(mode, tiny_model, tok, data, tmp_path, eval_dataset=data.select(range(20)), eval_strategy="steps",
             eval_steps=3).train()
    _assert_recorded(tmp_path, _labels(toy_rows), 2)
    # every 3 steps, and the Trainer's own evaluation at the last step (16)
    val = _assert_recorded(tmp_path, _labels(toy_rows)[:20], 6, split="validation")
    assert [s["global_step"] for s in val.manifest["snapshots"].values()] == [3, 6, 9, 12, 15, 16]
    assert val.manifest["snapshots"]["0"]["epoch"] == pytest.approx(3 / 8)


@pytest.mark.parametrize("mode", MODES)
def test_an_evaluation_before_training_is_not_a_snapshot(tmp_path, tiny_model, toy, toy_rows, mode):
    tok, raw, data = toy
    _trainer(mode, tiny_model, tok, data, tmp_path, eval_dataset=data.select(range(20)), eval_strategy="epoch",
             eval_on_start=True).train()
    val = _assert_recorded(tmp_path, _labels(toy_rows)[:20], 2, split="validation")  # the two epoch ends only
    assert [s["global_step"] for s in val.manifest["snapshots"].values()] == [8, 16]


@pytest.mark.parametrize("mode", MODES)
def test_user_trainer_subclass_with_its_own_loss(tmp_path, tiny_model, toy, toy_rows, mode):
    tok, raw, data = toy
    _trainer(mode, tiny_model, tok, data, tmp_path, base=WeightedLossTrainer).train()
    _assert_recorded(tmp_path, _labels(toy_rows), 2)


@pytest.mark.parametrize("mode", MODES)
def test_lora(tmp_path, tiny_model, toy, toy_rows, mode):
    peft = pytest.importorskip("peft")
    tok, raw, data = toy
    base = AutoModelForSequenceClassification.from_pretrained(tiny_model)
    config = peft.LoraConfig(task_type="SEQ_CLS", r=4, lora_alpha=8, target_modules=["query", "value"])
    model = peft.get_peft_model(base, config)
    _trainer(mode, tiny_model, tok, data, tmp_path, model=model, label_names=["labels"]).train()
    _assert_recorded(tmp_path, _labels(toy_rows), 2)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("stop", [dict(max_steps=12), dict(num_train_epochs=1.5)])
def test_training_that_ends_inside_an_epoch(tmp_path, tiny_model, toy, toy_rows, mode, stop):
    # both modes record the whole epoch 0 only, and say so before training
    tok, raw, data = toy
    with pytest.warns(UserWarning, match="ends inside epoch 1: epochs 0..0 are recorded, epoch 1 is not"):
        _trainer(mode, tiny_model, tok, data, tmp_path, **stop).train()
    _assert_recorded(tmp_path, _labels(toy_rows), 1)


@pytest.mark.parametrize("mode", MODES)
def test_resume_at_a_step_inside_an_epoch(tmp_path, tiny_model, toy, toy_rows, mode):
    tok, raw, data = toy
    args = dict(num_train_epochs=3, save_strategy="steps", save_steps=5)
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        _trainer(mode, tiny_model, tok, data, tmp_path, callbacks=[stop_at(13)], **args).train()
    assert sorted(list_epoch_files(dynamics_dir(tmp_path))) == [0]
    _trainer(mode, tiny_model, tok, data, tmp_path, **args).train(resume_from_checkpoint=True)
    dyn = _assert_recorded(tmp_path, _labels(toy_rows), 3)
    assert not any("filled" in s for s in dyn.manifest["snapshots"].values())


@pytest.mark.parametrize("mode", MODES)
def test_class_label_names_reach_the_manifest(tmp_path, tiny_model, toy, mode):
    tok, raw, data = toy
    data = data.cast_column("labels", ClassLabel(names=["entailment", "neutral", "contradiction"]))
    _trainer(mode, tiny_model, tok, data, tmp_path, num_train_epochs=1).train()
    assert load_dynamics(tmp_path).label_names == ["entailment", "neutral", "contradiction"]


@pytest.mark.parametrize("mode", MODES)
def test_a_second_run_never_mixes_with_the_first(tmp_path, tiny_model, toy, toy_rows, mode):
    tok, raw, data = toy
    _trainer(mode, tiny_model, tok, data, tmp_path, num_train_epochs=3).train()
    before = {p.name: p.read_bytes() for p in dynamics_dir(tmp_path).glob("*.parquet")}
    with pytest.raises(DatacartoError, match="already holds 3 recorded epoch") as refused:
        _trainer(mode, tiny_model, tok, data, tmp_path, num_train_epochs=2).train()
    assert {p.name: p.read_bytes() for p in dynamics_dir(tmp_path).glob("*.parquet")} == before
    # the refusal names this entry point's own option (transformers 5 has no --overwrite_output_dir)
    named, other = (("overwrite_dynamics=True", "CartographyCallback(") if mode == "training_pass"
                    else ("CartographyCallback(overwrite=True)", "overwrite_dynamics"))
    assert named in str(refused.value) and other not in str(refused.value)
    assert "--overwrite_output_dir" not in str(refused.value) and "resume_from_checkpoint=" in str(refused.value)
    options = ({"trainer_options": {"overwrite_dynamics": True}} if mode == "training_pass"
               else {"callback_options": {"overwrite": True}})
    _trainer(mode, tiny_model, tok, data, tmp_path, num_train_epochs=2, **options).train()
    _assert_recorded(tmp_path, _labels(toy_rows), 2)  # a fresh store: the old epoch_002 is gone


# ---------------------------------------------------------------------------------------------
# set-ups that cannot be recorded: one line, before the first training step, nothing written


def _refused(mode, tiny_model, tok, data, out, match, **kwargs):
    steps = CountSteps()
    trainer = _trainer(mode, tiny_model, tok, data, out, callbacks=[steps], **kwargs)
    with pytest.raises(DatacartoError, match=match) as info:
        trainer.train()
    assert steps.steps == 0 and "\n" not in str(info.value)
    assert not list_epoch_files(dynamics_dir(out))


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("args,match", [
    (dict(max_steps=5), "inside the first epoch"),
    (dict(num_train_epochs=0), "nothing to train"),
])
def test_runs_that_would_record_no_epoch_are_refused(tmp_path, tiny_model, toy, mode, args, match):
    tok, raw, data = toy
    _refused(mode, tiny_model, tok, data, tmp_path, match, **args)


@pytest.mark.parametrize("mode", MODES)
def test_string_labels_are_refused(tmp_path, tiny_model, toy, mode):
    tok, raw, data = toy
    names = ["entailment", "neutral", "contradiction"]
    data = data.remove_columns("labels").map(lambda r: {"label": names[r["label"]]})
    _refused(mode, tiny_model, tok, data, tmp_path, "holds strings", remove_unused_columns=False)


@pytest.mark.parametrize("mode", MODES)
def test_a_list_of_labels_for_a_single_label_model_is_refused(tmp_path, tiny_model, toy, mode):
    # multi-hot labels handed to a single-label classifier (problem_type not set): one line, not a NumPy error
    tok, raw, data = toy
    data = data.map(lambda r: {"labels": [float(r["labels"] == k) for k in range(3)]})
    _refused(mode, tiny_model, tok, data, tmp_path, "holds a list per row")


@pytest.mark.parametrize("mode", MODES)
def test_a_one_output_model_records_its_gold_scores(tmp_path, tiny_model, toy, mode):
    # labels in [0, 1) once trained and stored gold = 0 for every row, silently: a one-output head is a
    # regression, and each row's float score is what the store keeps
    from datacarto.dynamics.regression import load_scores

    tok, raw, data = toy
    data = data.map(lambda r: {"labels": r["labels"] / 3.0})
    model = AutoModelForSequenceClassification.from_pretrained(tiny_model, num_labels=1,
                                                               ignore_mismatched_sizes=True)
    assert "label" in data.column_names  # the padding collator trains on this column instead: refused
    with pytest.raises(DatacartoError, match="the collator takes the labels from another column"):
        _trainer(mode, tiny_model, tok, data, tmp_path / "both", model=model).train()
    data = data.remove_columns("label")
    _trainer(mode, tiny_model, tok, data, tmp_path, model=model).train()
    ids, values = load_scores(tmp_path)
    gold = np.asarray(data["labels"], dtype=np.float64)[ids]
    np.testing.assert_allclose(values["score"], np.repeat(gold[:, None], values["score"].shape[1], 1), rtol=1e-6)


@pytest.mark.parametrize("mode", MODES)
def test_other_heads_are_refused(tmp_path, tiny_model, toy, mode):
    tok, raw, data = toy
    model = AutoModelForMaskedLM.from_pretrained(tiny_model)
    _refused(mode, tiny_model, tok, data, tmp_path, "masked language modelling model", model=model)


@pytest.mark.parametrize("mode", MODES)
def test_iterable_dataset_is_refused(tmp_path, tiny_model, toy, mode):
    tok, raw, data = toy
    stream = data.remove_columns(["premise", "hypothesis"]).to_iterable_dataset()
    if mode == "training_pass":
        with pytest.raises(DatacartoError, match="map-style training set"):
            _trainer(mode, tiny_model, tok, stream, tmp_path, max_steps=10)
    else:
        _refused(mode, tiny_model, tok, stream, tmp_path, "map-style training set", max_steps=10)


def test_mixin_after_trainer_in_the_bases_is_refused():
    with pytest.raises(DatacartoError, match=r"write class Mine\(CartographyMixin, WeightedLossTrainer\)"):
        type("Mine", (WeightedLossTrainer, CartographyMixin), {})


def test_compute_loss_without_outputs(tmp_path, tiny_model, toy, toy_rows):
    tok, raw, data = toy
    with pytest.raises(DatacartoError, match="returned only the loss"):
        _trainer("training_pass", tiny_model, tok, data, tmp_path, base=LossOnlyTrainer).train()
    # the epoch-end callback needs no outputs from compute_loss: it records
    _trainer("epoch_end", tiny_model, tok, data, tmp_path / "callback", base=LossOnlyTrainer).train()
    _assert_recorded(tmp_path / "callback", _labels(toy_rows), 2)


def test_compute_loss_override_that_bypasses_the_mixin(tmp_path, tiny_model, toy):
    class Bypass(CartographyTrainer):
        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            outputs = model(**inputs)
            return (outputs.loss, outputs) if return_outputs else outputs.loss

    tok, raw, data = toy
    model = AutoModelForSequenceClassification.from_pretrained(tiny_model)
    trainer = Bypass(model=model, args=training_args(tmp_path), train_dataset=data, processing_class=tok)
    with pytest.raises(DatacartoError, match="does not call super"):
        trainer.train()
    assert trainer.state.global_step == 1  # found at the first step, before an epoch could be lost


def test_resume_from_a_missing_checkpoint(tmp_path, tiny_model, toy):
    tok, raw, data = toy
    trainer = _trainer("training_pass", tiny_model, tok, data, tmp_path)
    with pytest.raises(DatacartoError, match="checkpoint folder not found"):
        trainer.train(resume_from_checkpoint=str(tmp_path / "nope"))
    with pytest.raises(DatacartoError, match="no checkpoint to resume from"):
        trainer.train(resume_from_checkpoint=True)


def _weights(model) -> dict[str, np.ndarray]:
    return {k: v.detach().cpu().numpy().copy() for k, v in model.state_dict().items()}


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("setup", ["plain", "drop last batch"])
def test_recording_never_changes_what_is_trained(tmp_path, tiny_model, toy, mode, setup):
    """Dropout on: a recorded run ends with exactly the weights and losses of the same plain-Trainer run.

    The epoch-end pass (and the eval-mode fill of dropped rows) iterates data loaders, which draw
    their seeds from torch's generator: without restoring it, later dropout masks would differ.
    """
    tok, raw, data = toy
    options = dict(eval_dataset=data.select(EVAL_ROWS), eval_strategy="epoch", logging_strategy="epoch",
                   **SETUPS[setup])
    torch.manual_seed(0)
    plain = _trainer("plain", tiny_model, tok, data, tmp_path / "plain", **options)
    plain.train()
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        recorded = _trainer(mode, tiny_model, tok, data, tmp_path / "recorded", **options)
        recorded.train()
    want, got = _weights(plain.model), _weights(recorded.model)
    assert want.keys() == got.keys()
    for name in want:
        np.testing.assert_array_equal(got[name], want[name], err_msg=name)
    losses = [[h["loss"] for h in t.state.log_history if "loss" in h] for t in (plain, recorded)]
    assert losses[0] == losses[1] and len(losses[0]) == 2
    assert load_dynamics(tmp_path / "recorded").epochs == [0, 1]


@pytest.mark.parametrize("mode", MODES)
def test_a_best_model_from_an_earlier_epoch_is_said_in_one_line(tmp_path, tiny_model, toy, mode):
    """load_best_model_at_end with early stopping: 2 epochs recorded, epoch 1's model kept; one line says so."""
    from transformers import EarlyStoppingCallback

    tok, raw, data = toy
    scores = iter([1.0, 0.5, 0.2])  # the first evaluation is the best: training stops after the second

    def compute_metrics(_):
        return {"score": next(scores)}

    trainer = _trainer(mode, tiny_model, tok, data, tmp_path, eval_dataset=data, num_train_epochs=3,
                       eval_strategy="epoch", save_strategy="epoch", load_best_model_at_end=True,
                       metric_for_best_model="score", callbacks=[EarlyStoppingCallback(early_stopping_patience=1)])
    trainer.compute_metrics = compute_metrics
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        trainer.train()
    said = [str(w.message) for w in caught if "load_best_model_at_end" in str(w.message)]
    assert len(said) == 1 and "epoch 1's" in said[0] and "checkpoint-8" in said[0], said
    assert "score" in said[0] and "\n" not in said[0]
    assert load_dynamics(tmp_path).epochs == [0, 1]  # both epochs are recorded
