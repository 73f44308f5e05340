"""The one training routine: load data and model, tokenize, train with recording, save.

Used by ``datacarto train``, focused training, the audit and the pipeline, so hub names and local
files/folders always go through the same code path.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..data import LabelSpec, effective_max_length, load_model, load_table, prepare_labels, tokenize
from ..errors import DatacartoError

#: TrainingArguments defaults for datacarto (the Trainer's own defaults otherwise).
TRAINING_DEFAULTS: dict[str, Any] = {
    "num_train_epochs": 3,
    "learning_rate": 2e-5,
    "per_device_train_batch_size": 32,
    "per_device_eval_batch_size": 64,
    "report_to": "none",
    "save_strategy": "epoch",
    "save_total_limit": 1,
    "logging_strategy": "epoch",
    # transformers 5 would otherwise scale the loss by the world size under DDP
    "average_tokens_across_devices": False,
}


@dataclass
class TrainResult:
    """Where a training run put its dynamics and model."""

    output_dir: Path
    model_dir: Path
    label_spec: LabelSpec
    trainer: Any = field(repr=False, default=None)
    metrics: dict[str, float] = field(default_factory=dict)


def make_training_args(output_dir: str | os.PathLike | None, training_args=None, *, has_eval: bool = False):
    """``TrainingArguments`` from None, a dict of fields (over our defaults) or an instance."""
    import torch
    from transformers import TrainingArguments

    if isinstance(training_args, TrainingArguments):
        if output_dir is not None and Path(training_args.output_dir) != Path(output_dir):
            training_args.output_dir = str(output_dir)
        return training_args
    fields = dict(TRAINING_DEFAULTS)
    if has_eval:
        fields["eval_strategy"] = "epoch"
    if not torch.cuda.is_available():
        fields["dataloader_pin_memory"] = False  # nothing to pin to (and a warning per data loader)
    if not torch.cuda.is_available() and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        fields["ddp_backend"] = "gloo"  # several CPU processes (torchrun): gloo is the backend that works
    fields.update(training_args or {})
    if output_dir is None and "output_dir" not in fields:
        raise DatacartoError("an output_dir is needed")
    fields.setdefault("output_dir", str(output_dir))
    if output_dir is not None:
        fields["output_dir"] = str(output_dir)
    return TrainingArguments(**fields)


def load_split(data, *, split: str, spec: LabelSpec | None = None, text_columns=None, label_column="label",
               label_names=None, num_labels=None, what: str = "training set"):
    """A validated ``datasets.Dataset`` and its LabelSpec; ``spec`` forces the training set's labels."""
    ds = load_table(data, split) if isinstance(data, (str, os.PathLike)) else data
    if spec is not None:
        return prepare_labels(ds, text_columns=spec.text_columns, label_column=spec.label_column,
                              label_names=spec.label_names, num_labels=spec.num_labels, what=what)
    return prepare_labels(ds, text_columns=text_columns, label_column=label_column, label_names=label_names,
                          num_labels=num_labels, what=what)


def _gathered_prediction(trainer, dataset, *, split: str):
    """``PredictEachEpoch`` for several processes: each rank predicts its share, rank 0 writes.

    Under torchrun the mixin's evaluation recording reaches a collective on rank 0 only (an issue
    of ``record/``: ``record_eval`` returns on the other ranks before ``SplitRecorder.write``
    gathers), so this callback gathers on every rank and rank 0 writes with a ``DynamicsWriter``.
    """
    from transformers import TrainerCallback

    from ..dynamics.store import DynamicsWriter, dynamics_dir
    from ..record.distributed import gather_arrays, is_main
    from ..record.predict import predict_logits

    class GatheredPrediction(TrainerCallback):
        def on_epoch_end(self, args, state, control, model=None, **kwargs):
            ids, gold, logits = gather_arrays(*predict_logits(model, dataset, trainer.data_collator,
                                                              args.per_device_eval_batch_size))
            if is_main():
                order = np.argsort(ids, kind="stable")
                writer = DynamicsWriter(dynamics_dir(args.output_dir, split))
                writer.directory.mkdir(parents=True, exist_ok=True)
                writer.write_epoch(int(round(state.epoch)) - 1, ids[order], gold[order], logits[order],
                                   epoch=state.epoch, global_step=state.global_step)
                writer.update_manifest(mode="epoch_end", split=split, label_names=trainer.cartography.label_names)

    return GatheredPrediction()


def train_baseline(*, model: str, train, validation=None, text_columns: list[str] | None = None,
                   label_column: str = "label", label_names: list[str] | None = None,
                   num_labels: int | None = None, output_dir: str | os.PathLike | None = None,
                   training_args=None, dynamics_mode: str = "training_pass", snapshots_per_epoch: int = 1,
                   eval_dynamics: bool = True, max_length: int = 128, loss=None, record: bool = True,
                   resume_from_checkpoint=None, save_model: bool = True, test=None,
                   overwrite_dynamics: bool = False, predict_each_epoch: dict | None = None) -> TrainResult:
    """Fine-tune ``model`` on ``train`` while recording training dynamics.

    ``train``/``validation``/``test``: a hub name, a local jsonl/csv/parquet file or a
    ``datasets.Dataset``. ``model``: a hub name or a local folder. ``training_args``:
    TrainingArguments, a dict of its fields, or None for datacarto's defaults. With ``test``, the
    model predicts it at each epoch end and its dynamics are recorded (split ``"test"``), so test
    examples get regions too. The final model goes to ``<output_dir>/model``. ``max_length`` is
    capped at the model's positions. A folder holding recorded epochs is refused unless resuming
    or ``overwrite_dynamics`` (then a new store replaces the old one). ``predict_each_epoch``:
    ``{split: data}``, more data sets predicted at each epoch end and recorded like ``test``
    (cross-fitting records each fold model's held-out fold this way).
    """
    from ..record import CartographyTrainer, PredictEachEpoch

    train_ds, spec = load_split(train, split="train", text_columns=text_columns, label_column=label_column,
                                label_names=label_names, num_labels=num_labels)
    val_ds = None
    if validation is not None:
        val_ds, _ = load_split(validation, split="validation", spec=spec, what="validation set")
    test_ds = None  # checked before the model loads, like the other splits
    if test is not None:
        test_ds, _ = load_split(test, split="test", spec=spec, what="test set")
    extra = {split: load_split(data, split=split, spec=spec, what=f"{split} set")[0]
             for split, data in (predict_each_epoch or {}).items()}
    args = make_training_args(output_dir, training_args, has_eval=val_ds is not None)
    if val_ds is None and str(getattr(args, "eval_strategy", "no")) not in ("no", "IntervalStrategy.NO"):
        args.eval_strategy = "no"
    tokenizer, net = load_model(model, spec.num_labels, spec.label_names)
    max_length = effective_max_length(tokenizer, net, max_length)
    train_tok = tokenize(train_ds, tokenizer, spec, max_length=max_length)
    val_tok = tokenize(val_ds, tokenizer, spec, max_length=max_length) if val_ds is not None else None
    test_tok = tokenize(test_ds, tokenizer, spec, max_length=max_length) if test_ds is not None else None
    trainer = CartographyTrainer(
        model=net, args=args, train_dataset=train_tok, eval_dataset=val_tok, processing_class=tokenizer,
        dynamics_mode=dynamics_mode, snapshots_per_epoch=snapshots_per_epoch, eval_dynamics=eval_dynamics,
        loss=loss, label_names=spec.label_names, text_columns=spec.text_columns,
        dataset_name=str(train) if isinstance(train, (str, os.PathLike)) else None, record=record,
        overwrite_dynamics=overwrite_dynamics,
    )
    if test_tok is not None and record and eval_dynamics:
        trainer.add_callback(PredictEachEpoch(trainer, test_tok, split="test"))
    for split, ds in extra.items():
        if record and eval_dynamics:
            tok = tokenize(ds, tokenizer, spec, max_length=max_length)
            distributed = int(os.environ.get("WORLD_SIZE", "1")) > 1
            trainer.add_callback(_gathered_prediction(trainer, tok, split=split) if distributed
                                 else PredictEachEpoch(trainer, tok, split=split))
    if resume_from_checkpoint in ("", "false", "False"):
        resume_from_checkpoint = None
    result = trainer.train(resume_from_checkpoint=resume_from_checkpoint)
    out = Path(args.output_dir)
    model_dir = out / "model"
    if save_model:
        trainer.save_model(str(model_dir))
    return TrainResult(output_dir=out, model_dir=model_dir, label_spec=spec, trainer=trainer,
                       metrics=dict(result.metrics))
