"""``datacarto train``: fine-tune a model while recording training dynamics.

Every ``TrainingArguments`` flag works (``--learning_rate``, ``--num_train_epochs``, ...), parsed
with ``HfArgumentParser``; dashes and underscores are both accepted.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..errors import DatacartoError
from ..train.baseline import TRAINING_DEFAULTS


@dataclass
class DataArguments:
    """What to train on and how to record."""

    model: str = field(metadata={"help": "hub name or local folder of a (pretrained) model"})
    dataset: str = field(metadata={"help": "training data: hub name (NAME or NAME:SPLIT) or a local "
                                           ".jsonl/.csv/.parquet file"})
    validation: str | None = field(default=None, metadata={"help": "validation data, like --dataset"})
    text_columns: str | None = field(default=None, metadata={
        "help": "comma-separated text columns (default: every string column but the label)"})
    label_column: str = field(default="label", metadata={"help": "label column"})
    class_names: str | None = field(default=None, metadata={
        "help": "comma-separated names of the labels 0..C-1 (needed when labels are strings)"})
    max_length: int = field(default=128, metadata={"help": "tokenizer truncation length"})
    dynamics_mode: str = field(default="training_pass", metadata={
        "help": "training_pass (logits of the training forward pass, no extra cost) or epoch_end "
                "(eval-mode prediction over the training set, the paper's definition)"})
    snapshots_per_epoch: int = field(default=1, metadata={"help": "snapshots per epoch (epoch_end mode)"})
    task: str | None = field(default=None, metadata={
        "help": "sequence-classification, multiple-choice, multi-label, token-classification or causal-lm "
                "(default: inferred from the columns, and printed)"})
    choice_columns: str | None = field(default=None, metadata={
        "help": "multiple choice: comma-separated choice columns (--text-columns is the context)"})
    tokens_column: str = field(default="tokens", metadata={"help": "token classification: the words column"})
    tags_column: str = field(default="ner_tags", metadata={"help": "token classification: one tag id per word"})
    prompt_column: str | None = field(default=None, metadata={
        "help": "causal-lm: the prompt column (not predicted: labels -100); without it --text-columns is plain LM text"})
    response_column: str | None = field(default=None, metadata={"help": "causal-lm: the response column (predicted)"})
    chat_template: bool = field(default=False, metadata={
        "help": "causal-lm: prompt and response as the user and assistant turns of the tokenizer's chat template"})
    overwrite_output_dir: bool = field(default=False, metadata={
        "help": "start a new store where --output-dir already holds recorded epochs (else refused, so two "
                "runs are never mixed; --resume_from_checkpoint continues the old one)"})


@dataclass
class TestArguments:
    """A test set recorded during training (``datacarto train`` only)."""

    test: str | None = field(default=None, metadata={
        "help": "test data, like --dataset: predicted at each epoch end and recorded (split 'test'), so "
                "test examples get regions (datacarto ensemble --regions-from RUN --split test)"})


def split_list(value: str | None) -> list[str] | None:
    return [v.strip() for v in value.split(",") if v.strip()] if value else None


def parse_with_training_args(argv: list[str], *dataclass_types, prog: str = "datacarto",
                             defaults: dict | None = None):
    """Parse ``argv`` into the given dataclasses plus ``TrainingArguments`` (returned last).

    datacarto's training defaults apply unless a flag overrides them; ``--output-dir`` is required.
    """
    from transformers import HfArgumentParser, TrainingArguments

    parser = HfArgumentParser((*dataclass_types, TrainingArguments), prog=prog)
    parser.set_defaults(**{**TRAINING_DEFAULTS, **(defaults or {})})
    if not any(a.split("=")[0] in ("--output_dir", "--output-dir") for a in argv) and not any(
            a in ("-h", "--help") for a in argv):
        parser.error("the following arguments are required: --output-dir")
    return parser.parse_args_into_dataclasses(argv)


def explicit_flags(argv: list[str]) -> set[str]:
    """TrainingArguments field names given on the command line (``--foo-bar`` -> ``foo_bar``)."""
    return {a[2:].split("=")[0].replace("-", "_") for a in argv if a.startswith("--")}


def resolve_task(data) -> str:
    """The task given with --task, else inferred from the training data's columns; printed either way."""
    import sys

    from ..data import load_table
    from ..task_data import infer_task

    table = load_table(data.dataset, "train") if not data.task else None
    task, why = infer_task(table, task=data.task, label_column=data.label_column,
                           choice_columns=split_list(data.choice_columns), tokens_column=data.tokens_column,
                           tags_column=data.tags_column)
    print(f"task: {task} ({why})", file=sys.stderr)
    return task


def main(argv: list[str]) -> int:
    from ..train.baseline import train_baseline

    data, test, args = parse_with_training_args(argv, DataArguments, TestArguments, prog="datacarto train")
    if data.max_length < 1:
        raise DatacartoError(f"--max-length must be at least 1, got {data.max_length}")
    if data.validation and "eval_strategy" not in explicit_flags(argv):
        args.eval_strategy = "epoch"
    task = resolve_task(data)
    result = train_baseline(
        model=data.model, train=data.dataset, validation=data.validation,
        text_columns=split_list(data.text_columns), label_column=data.label_column,
        label_names=split_list(data.class_names), training_args=args, output_dir=args.output_dir,
        dynamics_mode=data.dynamics_mode, snapshots_per_epoch=data.snapshots_per_epoch,
        max_length=data.max_length, resume_from_checkpoint=args.resume_from_checkpoint, test=test.test,
        overwrite_dynamics=data.overwrite_output_dir, task=task, choice_columns=split_list(data.choice_columns),
        tokens_column=data.tokens_column, tags_column=data.tags_column, prompt_column=data.prompt_column,
        response_column=data.response_column, chat_template=data.chat_template,
    )
    if result.trainer.is_world_process_zero():
        print(f"training dynamics: {result.output_dir / 'training_dynamics'}")
        print(f"model: {result.model_dir}")
    return 0
