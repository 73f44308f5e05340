"""The one training routine: load data and model, tokenize, train with recording, save.

Used by ``datacarto train``, focused training, the audit and the pipeline, so hub names and local
files/folders always go through the same code path.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._validation import check_seed
from ..data import LabelSpec, load_table
from ..dynamics.store import DynamicsWriter, dynamics_dir
from ..errors import DatacartoError
from ..models import classifier_head, effective_max_length, load_model, load_tokenizer
from ..task_data import check_chat_template, collator_for, encode, prepare_for_task
from ..task_options import check_task_options

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
               label_names=None, num_labels=None, what: str = "training set", task: str = "sequence-classification",
               model: str | None = None, **task_columns):
    """A validated ``datasets.Dataset`` and its spec; ``spec`` forces the training set's columns and labels.

    Without ``spec`` the classes follow one rule (:func:`datacarto.data.class_names`): those of
    ``model``'s classification head when it has one, so data lacking some classes still fits it;
    classes without an example are said in one warning. ``task_columns``: ``choice_columns``,
    ``tokens_column``, ``tags_column`` of the other task types.
    """
    ds = load_table(data, split)
    head = classifier_head(model, task) if model is not None and spec is None else None
    if spec is not None:
        return prepare_for_task(ds, task, spec=spec, num_labels=spec.num_labels, what=what)
    return prepare_for_task(ds, task, text_columns=text_columns, label_column=label_column, label_names=label_names,
                            num_labels=num_labels, what=what, head=head, warn_absent=True, **task_columns)


def train_baseline(*, model: str, train, validation=None, text_columns: list[str] | None = None,
                   label_column: str = "label", label_names: list[str] | None = None,
                   num_labels: int | None = None, output_dir: str | os.PathLike | None = None,
                   training_args=None, dynamics_mode: str = "training_pass", snapshots_per_epoch: int = 1,
                   eval_dynamics: bool = True, max_length: int = 128, loss=None, record: bool = True,
                   resume_from_checkpoint=None, save_model: bool = True, test=None,
                   overwrite_dynamics: bool = False, task: str = "sequence-classification",
                   choice_columns: list[str] | None = None, tokens_column: str = "tokens",
                   tags_column: str = "ner_tags", prompt_column: str | None = None,
                   response_column: str | None = None, chat_template: bool = False,
                   predict_each_epoch: dict | None = None) -> TrainResult:
    """Fine-tune ``model`` on ``train`` while recording training dynamics.

    ``train``/``validation``/``test``: a hub name, a local jsonl/csv/parquet file or a
    ``datasets.Dataset``. ``model``: a hub name or a local folder. ``training_args``:
    TrainingArguments, a dict of its fields, or None for datacarto's defaults. With ``test``, the
    model predicts it at each epoch end and its dynamics are recorded (split ``"test"``), so test
    examples get regions too. The final model goes to ``<output_dir>/model``. ``max_length`` is
    capped at the model's positions. A folder holding recorded epochs is refused unless resuming
    or ``overwrite_dynamics`` (then a new store replaces the old one). ``task``: one of
    ``datacarto.record.tasks.TASKS``, with ``choice_columns`` (multiple choice; ``text_columns``
    is the context), a ``label_column`` of label-id lists (multi-label) or ``tokens_column`` and
    ``tags_column`` (token classification, words pre-split), ``prompt_column`` and
    ``response_column`` (causal LM; labels -100 on the prompt; ``chat_template``: as the user and
    assistant turns of the tokenizer's chat template) or one of ``text_columns`` (plain LM).
    ``predict_each_epoch``: ``{split: data}``, more data sets predicted at each epoch end and
    recorded like ``test`` (cross-fitting records each fold model's held-out fold this way).
    """
    from ..record import CartographyTrainer, PredictEachEpoch

    check_task_options(task, choice_columns=choice_columns, tokens_column=tokens_column, tags_column=tags_column,
                       prompt_column=prompt_column, response_column=response_column, chat_template=chat_template)
    train_ds, spec = load_split(train, split="train", text_columns=text_columns, label_column=label_column,
                                label_names=label_names, num_labels=num_labels, task=task, model=model,
                                choice_columns=choice_columns, tokens_column=tokens_column, tags_column=tags_column,
                                prompt_column=prompt_column, response_column=response_column,
                                chat_template=chat_template)
    val_ds = None
    if validation is not None:
        val_ds, _ = load_split(validation, split="validation", spec=spec, what="validation set", task=task)
    # the test set is one more split predicted each epoch; all are checked before the model loads
    each_epoch = {**({"test": test} if test is not None else {}), **(predict_each_epoch or {})}
    extra = {split: load_split(data, split=split, spec=spec, what=f"{split} set", task=task)[0]
             for split, data in each_epoch.items()}
    args = make_training_args(output_dir, training_args, has_eval=val_ds is not None)
    if val_ds is None and str(getattr(args, "eval_strategy", "no")) not in ("no", "IntervalStrategy.NO"):
        args.eval_strategy = "no"
    check_seed(args.seed, "training_args.seed")
    if getattr(spec, "chat_template", False):  # rendered once on the first row before a large model loads
        check_chat_template(load_tokenizer(model), spec, train_ds)
    tokenizer, net = load_model(model, spec.num_labels, spec.label_names, task=task)
    max_length = effective_max_length(tokenizer, net, max_length)
    train_tok = encode(train_ds, tokenizer, spec, max_length=max_length)
    val_tok = encode(val_ds, tokenizer, spec, max_length=max_length) if val_ds is not None else None
    trainer = CartographyTrainer(
        model=net, args=args, train_dataset=train_tok, eval_dataset=val_tok, processing_class=tokenizer,
        dynamics_mode=dynamics_mode, snapshots_per_epoch=snapshots_per_epoch, eval_dynamics=eval_dynamics,
        loss=loss, label_names=spec.label_names, text_columns=spec.text_columns,
        dataset_name=str(train) if isinstance(train, (str, os.PathLike)) else None, record=record,
        overwrite_dynamics=overwrite_dynamics, data_collator=collator_for(task, tokenizer),
    )
    for split, ds in extra.items():
        if record and eval_dynamics:
            trainer.add_callback(PredictEachEpoch(trainer, encode(ds, tokenizer, spec, max_length=max_length),
                                                  split=split))
    if resume_from_checkpoint in ("", "false", "False"):
        resume_from_checkpoint = None
    result = trainer.train(resume_from_checkpoint=resume_from_checkpoint)
    out = Path(args.output_dir)
    if record and task != "sequence-classification" and trainer.is_world_process_zero():
        _write_task_columns(out, spec, task, train_tok.column_names)
    model_dir = out / "model"
    if save_model:
        trainer.save_model(str(model_dir))
    return TrainResult(output_dir=out, model_dir=model_dir, label_spec=spec, trainer=trainer,
                       metrics=dict(result.metrics))


def _write_task_columns(out: Path, spec, task: str, tokenized_columns: list[str]) -> None:
    """What focused training on a subset of these records needs to prepare it the same way.

    Token classification: the data's tag column, one tag per word; the records' label holds the
    recorded words' tags only, which a word without a token or truncated away makes shorter.
    """
    tags = spec.label_column if task == "token-classification" and spec.label_column in tokenized_columns else None
    DynamicsWriter(dynamics_dir(out)).update_manifest(task_columns={
        "choice_columns": getattr(spec, "choice_columns", None) or None,
        "tokens_column": getattr(spec, "tokens_column", None), "tags_column": tags,
        "prompt_column": getattr(spec, "prompt_column", None),
        "response_column": getattr(spec, "response_column", None),
        "chat_template": bool(getattr(spec, "chat_template", False))})
