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
from ..data import load_table
from ..errors import DatacartoError
from ..models import classifier_head, effective_max_length, load_model, load_tokenizer
from ..task_data import check_chat_template
from ..tasks import DEFAULT_TASK, TaskSpec, collator_for, prepare_for_task, tokenize_task

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
    label_spec: TaskSpec  # the resolved spec
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


#: train_baseline's task keywords and their defaults: a thin adapter to a TaskSpec (:func:`task_spec_of`)
TASK_KEYWORDS: dict[str, Any] = {
    "task": DEFAULT_TASK, "text_columns": None, "label_column": "label", "label_names": None,
    "choice_columns": None, "tokens_column": "tokens", "tags_column": "ner_tags", "prompt_column": None,
    "response_column": None, "chat_template": False,
}


def task_spec_of(task_spec: TaskSpec | None = None, **keywords: Any) -> TaskSpec:
    """``task_spec``, or the spec that the task keywords (:data:`TASK_KEYWORDS`) describe; not both."""
    given = [k for k, v in keywords.items() if v not in (None, [], ()) and v != TASK_KEYWORDS[k]]
    if task_spec is not None:
        if given:
            raise DatacartoError(f"give task_spec or the task keywords, not both ({', '.join(given)} given)")
        if not isinstance(task_spec, TaskSpec):
            raise DatacartoError(f"task_spec must be a datacarto.tasks.TaskSpec, got {type(task_spec).__name__}")
        return task_spec
    options = {**TASK_KEYWORDS, **keywords}
    return TaskSpec.from_options(options.pop("task"), **options)


def load_split(data, spec: TaskSpec, *, split: str, what: str = "training set", model: str | None = None,
               num_labels: int | None = None):
    """A validated ``datasets.Dataset`` and its resolved spec.

    With ``model``, the training split, resolved against ``spec`` (a request): the classes follow
    one rule (:func:`datacarto.data.class_names`), those of ``model``'s classification head when it
    has one, so data lacking some classes still fits it; classes without an example are said in
    one warning. Without ``model``, another split, forced to the training set's resolved ``spec``.
    """
    ds = load_table(data, split)
    if model is None:
        return prepare_for_task(ds, spec, num_labels=spec.num_labels, what=what)
    return prepare_for_task(ds, spec, num_labels=num_labels, what=what, head=classifier_head(model, spec.task),
                            warn_absent=True)


def train_baseline(*, model: str, train, validation=None, text_columns: list[str] | None = None,
                   label_column: str = "label", label_names: list[str] | None = None,
                   num_labels: int | None = None, output_dir: str | os.PathLike | None = None,
                   training_args=None, dynamics_mode: str = "training_pass", snapshots_per_epoch: int = 1,
                   eval_dynamics: bool = True, max_length: int = 128, loss=None, record: bool = True,
                   resume_from_checkpoint=None, save_model: bool = True, test=None,
                   overwrite_dynamics: bool = False, task: str = DEFAULT_TASK,
                   choice_columns: list[str] | None = None, tokens_column: str = "tokens",
                   tags_column: str = "ner_tags", prompt_column: str | None = None,
                   response_column: str | None = None, chat_template: bool = False,
                   predict_each_epoch: dict | None = None, task_spec: TaskSpec | None = None) -> TrainResult:
    """Fine-tune ``model`` on ``train`` while recording training dynamics.

    ``train``/``validation``/``test``: a hub name, a local jsonl/csv/parquet file or a
    ``datasets.Dataset``. ``model``: a hub name or a local folder. ``training_args``:
    TrainingArguments, a dict of its fields, or None for datacarto's defaults. With ``test``, the
    model predicts it at each epoch end and its dynamics are recorded (split ``"test"``), so test
    examples get regions too. The final model goes to ``<output_dir>/model``. ``max_length`` is
    capped at the model's positions. A folder holding recorded epochs is refused unless resuming
    or ``overwrite_dynamics`` (then a new store replaces the old one). ``task_spec``: the task and
    its columns (:class:`datacarto.tasks.TaskSpec`), resolved on ``train`` and written whole into
    the manifest; or, instead of it, the task keywords: ``task`` (one of
    ``datacarto.tasks.task_names()``), with ``choice_columns`` (multiple choice; ``text_columns``
    is the context), a ``label_column`` of label-id lists (multi-label) or ``tokens_column`` and
    ``tags_column`` (token classification, words pre-split), ``prompt_column`` and
    ``response_column`` (causal LM; labels -100 on the prompt; ``chat_template``: as the user and
    assistant turns of the tokenizer's chat template) or one of ``text_columns`` (plain LM).
    ``predict_each_epoch``: ``{split: data}``, more data sets predicted at each epoch end and
    recorded like ``test`` (cross-fitting records each fold model's held-out fold this way).
    """
    from ..record import CartographyTrainer, PredictEachEpoch

    spec = task_spec_of(task_spec, task=task, text_columns=text_columns, label_column=label_column,
                        label_names=label_names, choice_columns=choice_columns, tokens_column=tokens_column,
                        tags_column=tags_column, prompt_column=prompt_column, response_column=response_column,
                        chat_template=chat_template)
    train_ds, spec = load_split(train, spec, split="train", num_labels=num_labels, model=model)
    val_ds = None
    if validation is not None:
        val_ds, _ = load_split(validation, spec, split="validation", what="validation set")
    # the test set is one more split predicted each epoch; all are checked before the model loads
    each_epoch = {**({"test": test} if test is not None else {}), **(predict_each_epoch or {})}
    extra = {split: load_split(data, spec, split=split, what=f"{split} set")[0] for split, data in each_epoch.items()}
    args = make_training_args(output_dir, training_args, has_eval=val_ds is not None)
    if val_ds is None and str(getattr(args, "eval_strategy", "no")) not in ("no", "IntervalStrategy.NO"):
        args.eval_strategy = "no"
    check_seed(args.seed, "training_args.seed")
    if spec.chat_template:  # rendered once on the first row before a large model loads
        check_chat_template(load_tokenizer(model), spec, train_ds)
    tokenizer, net = load_model(model, spec.num_labels, spec.label_names, task=spec.task)
    max_length = effective_max_length(tokenizer, net, max_length)
    train_tok = tokenize_task(train_ds, tokenizer, spec, max_length=max_length)
    val_tok = tokenize_task(val_ds, tokenizer, spec, max_length=max_length) if val_ds is not None else None
    trainer = CartographyTrainer(
        model=net, args=args, train_dataset=train_tok, eval_dataset=val_tok, processing_class=tokenizer,
        dynamics_mode=dynamics_mode, snapshots_per_epoch=snapshots_per_epoch, eval_dynamics=eval_dynamics,
        loss=loss, label_names=spec.label_names, text_columns=spec.text_columns,
        dataset_name=str(train) if isinstance(train, (str, os.PathLike)) else None, record=record,
        overwrite_dynamics=overwrite_dynamics, data_collator=collator_for(spec.task, tokenizer), task_spec=spec,
    )
    for split, ds in extra.items():
        if record and eval_dynamics:
            trainer.add_callback(PredictEachEpoch(trainer, tokenize_task(ds, tokenizer, spec, max_length=max_length),
                                                  split=split))
    if resume_from_checkpoint in ("", "false", "False"):
        resume_from_checkpoint = None
    result = trainer.train(resume_from_checkpoint=resume_from_checkpoint)
    out = Path(args.output_dir)
    model_dir = out / "model"
    if save_model:
        trainer.save_model(str(model_dir))
    return TrainResult(output_dir=out, model_dir=model_dir, label_spec=spec, trainer=trainer,
                       metrics=dict(result.metrics))
