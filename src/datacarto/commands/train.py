"""``datacarto train``: fine-tune a model while recording training dynamics.

Every ``TrainingArguments`` flag works (``--learning_rate``, ``--num_train_epochs``, ...), parsed
with ``HfArgumentParser``; dashes and underscores are both accepted.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .._validation import check_folds, check_seed, check_seeds
from ..errors import DatacartoError
from ..tasks import task_names
from ..train.baseline import TRAINING_DEFAULTS
from ._help import FULL_HELP_FLAG, asks_help, print_training_help


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
        "help": "comma-separated names of the labels 0..C-1 (default: the model's id2label when it names "
                "them, else 0..C-1; needed for string labels otherwise)"})
    max_length: int = field(default=128, metadata={"help": "tokenizer truncation length"})
    dynamics_mode: str = field(default="training_pass", metadata={
        "help": "training_pass (logits of the training forward pass, no extra cost) or epoch_end "
                "(eval-mode prediction over the training set, the paper's definition)"})
    snapshots_per_epoch: int = field(default=1, metadata={"help": "snapshots per epoch (epoch_end mode)"})
    task: str | None = field(default=None, metadata={
        "help": f"{', '.join(task_names())} (default: inferred from the columns, and printed)"})
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


@dataclass
class RepeatArguments:
    """Cross-fitting and seed repeats (``datacarto train`` only)."""

    folds: int | None = field(default=None, metadata={
        "help": "cross-fit: train K models, each on K-1 folds (stratified by label, seeded with --seed), "
                "each predicting its held-out fold at every epoch end; the merged out-of-sample dynamics "
                "cover every example once per epoch. Costs K trainings on (K-1)/K of the data"})
    dynamics: str = field(default="out-of-sample", metadata={
        "help": "with --folds: which dynamics go to OUTPUT_DIR/training_dynamics/ (what every command reads by "
                "default); the other one is split 'insample' (or 'oos'): datacarto metrics RUN --split insample",
        "choices": ["out-of-sample", "in-sample"]})
    seeds: list[int] | None = field(default=None, metadata={
        "help": "train one run per seed (OUTPUT_DIR/seed_<S>/, cross-fitted with --folds) and write each "
                "example's region per seed, its majority region and whether it is stable to "
                "OUTPUT_DIR/seed_stability.parquet"})


def split_list(value: str | None) -> list[str] | None:
    return [v.strip() for v in value.split(",") if v.strip()] if value else None


def parse_with_training_args(argv: list[str], *dataclass_types, prog: str = "datacarto",
                             defaults: dict | None = None):
    """Parse ``argv`` into the given dataclasses plus ``TrainingArguments`` (returned last).

    datacarto's training defaults apply unless a flag overrides them; ``--output-dir`` is required.
    ``--logging_steps N`` alone switches ``logging_strategy`` to "steps" (our default is "epoch").
    ``--help`` prints datacarto's flags without importing transformers; ``--help-all`` adds every
    TrainingArguments flag (HfArgumentParser's help).
    """
    if asks_help(argv) and FULL_HELP_FLAG not in argv:
        print_training_help(dataclass_types, prog=prog, defaults={**TRAINING_DEFAULTS, **(defaults or {})})
        raise SystemExit(0)
    argv = ["--help" if a == FULL_HELP_FLAG else a for a in argv]
    import torch
    from transformers import HfArgumentParser, TrainingArguments

    parser = HfArgumentParser((*dataclass_types, TrainingArguments), prog=prog)
    given = explicit_flags(argv)
    ours = dict(TRAINING_DEFAULTS)
    if "logging_steps" in given and "logging_strategy" not in given:
        ours["logging_strategy"] = "steps"  # --logging_steps N wins over our per-epoch default
    if not torch.cuda.is_available():
        ours["dataloader_pin_memory"] = False  # as the library does on CPU: nothing to pin to
    parser.set_defaults(**{**ours, **(defaults or {})})
    if not any(a.split("=")[0] in ("--output_dir", "--output-dir") for a in argv) and not asks_help(argv):
        parser.error("the following arguments are required: --output-dir")
    return parser.parse_args_into_dataclasses(argv)


def explicit_flags(argv: list[str]) -> set[str]:
    """TrainingArguments field names given on the command line (``--foo-bar`` -> ``foo_bar``)."""
    return {a[2:].split("=")[0].replace("-", "_") for a in argv if a.startswith("--")}


def resolve_task(data) -> str:
    """The task given with --task, else inferred from the training data's columns; printed unless the default."""
    import sys

    from ..data import load_table
    from ..tasks import DEFAULT_TASK, infer_task

    table = load_table(data.dataset, "train") if not data.task else None
    task, why = infer_task(table, task=data.task, label_column=data.label_column,
                           choice_columns=split_list(data.choice_columns), tokens_column=data.tokens_column,
                           tags_column=data.tags_column, prompt_column=data.prompt_column)
    if task != DEFAULT_TASK:  # the default says nothing; another task says why it was chosen
        print(f"task: {task} ({why})", file=sys.stderr)
    return task


def check_request(data, repeat, args, argv: list[str]):
    """Every flag, and the task with its options, checked before any model loads; returns the TaskSpec.

    The class counts against ``--folds`` and the chat template on the first row are checked by
    ``train_crossfit`` and ``train_baseline`` themselves, before their model loads.
    """
    from ..tasks import TaskSpec, check_repeats

    if data.max_length < 1:
        raise DatacartoError(f"--max-length must be at least 1, got {data.max_length}")
    check_seed(args.seed, "--seed")
    if repeat.seeds is not None:
        repeat.seeds = check_seeds(repeat.seeds, "--seeds")
    if repeat.folds is not None:
        check_folds(repeat.folds, name="--folds")
    if repeat.folds is None and "dynamics" in explicit_flags(argv):
        raise DatacartoError("--dynamics chooses between in-sample and out-of-sample dynamics: it needs --folds K")
    if (repeat.folds is not None or repeat.seeds) and args.resume_from_checkpoint:
        raise DatacartoError("--resume_from_checkpoint resumes one run; it cannot be combined with --folds or --seeds")
    task = resolve_task(data)
    spec = TaskSpec.from_options(task, text_columns=split_list(data.text_columns), label_column=data.label_column,
                                 label_names=split_list(data.class_names),
                                 choice_columns=split_list(data.choice_columns), tokens_column=data.tokens_column,
                                 tags_column=data.tags_column, prompt_column=data.prompt_column,
                                 response_column=data.response_column, chat_template=data.chat_template)
    check_repeats(task, folds=repeat.folds, seeds=repeat.seeds)
    return spec


def main(argv: list[str]) -> int:
    data, test, repeat, args = parse_with_training_args(argv, DataArguments, TestArguments, RepeatArguments,
                                                        prog="datacarto train")
    spec = check_request(data, repeat, args, argv)
    if data.validation and "eval_strategy" not in explicit_flags(argv):
        args.eval_strategy = "epoch"
    from ..record.recorder import entry_point

    with entry_point("cli"):  # a refusal to mix runs names this command's flags
        return _train(data, test, repeat, args, spec)


def _train(data, test, repeat, args, spec) -> int:
    if not repeat.seeds:
        _train_one(data, test, repeat, args, spec)
        return 0
    import dataclasses
    from pathlib import Path

    root, runs, main_process = Path(args.output_dir), [], True
    for seed in repeat.seeds:
        run_args = dataclasses.replace(args, seed=int(seed), output_dir=str(root / f"seed_{seed}"))
        main_process = _train_one(data, test, repeat, run_args, spec, quiet=True)
        runs.append(root / f"seed_{seed}")
    if main_process:
        _write_stability(root, runs)
    return 0


def _train_one(data, test, repeat, args, spec, *, quiet: bool = False) -> bool:
    """Train one run of the TaskSpec ``spec`` (cross-fitted with ``--folds``); True on the main process."""
    from ..train.baseline import train_baseline
    from ..train.crossfit import train_crossfit

    common = dict(model=data.model, train=data.dataset, validation=data.validation, task_spec=spec,
                  training_args=args, output_dir=args.output_dir,
                  dynamics_mode=data.dynamics_mode, max_length=data.max_length, test=test.test,
                  overwrite_dynamics=data.overwrite_output_dir)
    if repeat.folds is not None:
        result = train_crossfit(**common, folds=repeat.folds, seed=args.seed, dynamics=repeat.dynamics)
        if result.is_main_process():
            other = result.other_split
            print(f"{repeat.dynamics} training dynamics ({repeat.folds} folds): {result.output_dir / 'training_dynamics'}")
            print(f"{'in-sample' if other == 'insample' else 'out-of-sample'} dynamics: split {other!r} "
                  f"(datacarto metrics {result.output_dir} --split {other})")
        return result.is_main_process()
    result = train_baseline(**common, snapshots_per_epoch=data.snapshots_per_epoch,
                            resume_from_checkpoint=args.resume_from_checkpoint)
    if result.trainer.is_world_process_zero():
        print(f"training dynamics: {result.output_dir / 'training_dynamics'}")
        if not quiet:
            print(f"model: {result.model_dir}")
    return result.trainer.is_world_process_zero()


def _write_stability(root, runs) -> None:
    from .._io import write_frame
    from ..dynamics.stability import seed_regions, stability_summary

    table = seed_regions(runs)
    write_frame(table, root / "seed_stability.parquet")
    s = stability_summary(table)
    print(f"seed stability over {len(runs)} seeds: {s['stable']} of {s['n']} examples "
          f"({100 * s['stable_share']:.1f}%) keep their region in every seed; {s['unstable']} are unstable "
          f"(majority region per seed: {root / 'seed_stability.parquet'})")
