"""``datacarto audit``: inject label noise, train, and measure how well each score finds it.

Two forms::

    datacarto audit --dataset D --model M --noise 0.1 [--noise-kind uniform|class-conditional]
                    [--seed S] [--text-columns a,b] [--label-column label] --output-dir DIR
                    [any TrainingArguments flag]
    datacarto audit --run RUN [--noisy-column is_flipped | --true-label-column COL] [--output-dir DIR]

The first flips labels itself; the second audits an existing run whose training data carries the
truth in a column. ``--seed`` seeds both the noise and the training (``--noise-seed`` overrides
the noise's). Both print the per-score table and write ``audit.json`` and ``roc.png``. The output
says "flipped" only for flips the audit injected; with ``--true-label-column`` the noisy labels
are "labels that differ from the true label", with ``--noisy-column`` "labels marked wrong".
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field

from ..errors import DatacartoError
from ..noise import NOISE_KINDS


@dataclass
class AuditArguments:
    """How much label noise to inject, of which kind, and what to score."""

    noise: float = field(default=0.1, metadata={"help": "share of training labels to flip, in [0, 1)"})
    noise_kind: str = field(default="uniform", metadata={
        "help": "uniform (new label uniform over the others) or class-conditional (follows --noise-matrix)",
        "choices": list(NOISE_KINDS)})
    noise_matrix: str | None = field(default=None, metadata={
        "help": "class-conditional C x C matrix, rows ';'-separated, entries ','-separated "
                "(e.g. '0,1,0;0,0,1;1,0,0'); default: class i flips to (i + 1) mod C"})
    noise_seed: int | None = field(default=None, metadata={"help": "seed of the noise (default: --seed)"})
    scores: str | None = field(default=None, metadata={
        "help": "comma-separated scores to audit (default: all known ones present)"})


def parse_matrix(text: str | None):
    """``'0,1;1,0'`` -> [[0.0, 1.0], [1.0, 0.0]]; None stays None."""
    if text is None or not text.strip():
        return None
    try:
        rows = [[float(v) for v in row.split(",")] for row in text.strip().strip(";").split(";")]
    except ValueError as e:
        raise DatacartoError(f"cannot read the noise matrix {text!r}: {e}") from e
    if len({len(r) for r in rows}) != 1:
        raise DatacartoError(f"the noise matrix {text!r} has rows of different lengths")
    return rows


def _run_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="datacarto audit --run",
                                description="audit an existing run whose training data carries the noise truth: "
                                            "with --true-label-column the noisy labels are those that differ "
                                            "from the true label, with --noisy-column those the column marks")
    p.add_argument("--run", required=True, help="run folder (holding training_dynamics/)")
    truth = p.add_mutually_exclusive_group()
    truth.add_argument("--noisy-column", "--noisy_column", default=None,
                       help="bool column of the training data: this label is wrong (default: is_flipped)")
    truth.add_argument("--true-label-column", "--true_label_column", default=None,
                       help="column with the correct label: noisy = it differs from the trained label")
    p.add_argument("--output-dir", "--output_dir", default=None,
                   help="where audit.json and roc.png go (default: the run folder)")
    p.add_argument("--scores", default=None, help="comma-separated scores to audit (default: all present)")
    p.add_argument("--split", default="train", help="which recorded split (default: train; oos or insample for "
                                                    "a cross-fitted run)")
    return p


MODES_HELP = """\
datacarto audit has two modes.

1. Inject noise, train, audit (the flags below the line, with every TrainingArguments flag):
     datacarto audit --dataset D --model M --noise 0.1 [--noise-kind uniform|class-conditional] --output-dir DIR
   The audit flips the labels itself, so the output counts "flipped labels".

2. Audit an existing run whose training data carries the truth:
     datacarto audit --run RUN [--noisy-column COL | --true-label-column COL] [--split S] [--output-dir DIR]
   --true-label-column: the noisy labels are the "labels that differ from the true label" (real
   annotation noise, nothing flipped); --noisy-column: a bool column, "labels marked wrong".
   --split oos audits a cross-fitted run's out-of-sample dynamics (datacarto train --folds K).
"""


def _is_run_mode(argv: list[str]) -> bool:
    return any(a == "--run" or a.startswith("--run=") for a in argv)


def main(argv: list[str]) -> int:
    from .train import DataArguments, explicit_flags, parse_with_training_args, resolve_task, split_list

    if any(a in ("-h", "--help") for a in argv) and not _is_run_mode(argv):
        print(MODES_HELP)
        print("--- mode 2 (--run) ---")
        _run_parser().print_help()
        print("\n--- mode 1 (inject noise and train) ---")
    if _is_run_mode(argv):
        from ..audit import audit_run

        ns = _run_parser().parse_args(argv)
        result = audit_run(ns.run, noisy_column=ns.noisy_column or "is_flipped",
                           true_label_column=ns.true_label_column, output_dir=ns.output_dir,
                           scores=split_list(ns.scores), split=ns.split)
        return _print_result(result)

    data, audit_args, args = parse_with_training_args(argv, DataArguments, AuditArguments,
                                                      prog="datacarto audit")
    from ..audit import run_audit

    if data.validation and "eval_strategy" not in explicit_flags(argv):
        args.eval_strategy = "epoch"
    from .._validation import check_fraction

    check_fraction(audit_args.noise, "noise", high_open=True)  # before the task line: bad input is one line
    from ..tasks import DEFAULT_TASK

    task = resolve_task(data)
    if task != DEFAULT_TASK:  # noise per unit: a choice flipped, a label added or dropped, a tag changed
        from ..audit_tasks import run_task_audit

        result = run_task_audit(
            task=task, dataset=data.dataset, model=data.model, output_dir=args.output_dir, noise=audit_args.noise,
            seed=args.seed if audit_args.noise_seed is None else audit_args.noise_seed,
            text_columns=split_list(data.text_columns), label_column=data.label_column,
            label_names=split_list(data.class_names), choice_columns=split_list(data.choice_columns),
            tokens_column=data.tokens_column, tags_column=data.tags_column, training_args=args,
            dynamics_mode=data.dynamics_mode, max_length=data.max_length, scores=split_list(audit_args.scores),
            generative={k: v for k, v in (("prompt_column", data.prompt_column),
                                          ("response_column", data.response_column)) if v})
        return 0 if result is None else _print_result(result)
    result = run_audit(
        dataset=data.dataset, model=data.model, output_dir=args.output_dir, noise=audit_args.noise,
        noise_kind=audit_args.noise_kind, matrix=parse_matrix(audit_args.noise_matrix),
        seed=args.seed if audit_args.noise_seed is None else audit_args.noise_seed,
        text_columns=split_list(data.text_columns), label_column=data.label_column,
        label_names=split_list(data.class_names), validation=data.validation, training_args=args,
        dynamics_mode=data.dynamics_mode, snapshots_per_epoch=data.snapshots_per_epoch,
        max_length=data.max_length, scores=split_list(audit_args.scores),
    )
    if result is None:  # a non-main rank of a distributed run
        return 0
    return _print_result(result)


def _print_result(result) -> int:
    print(result.summary())
    print(f"\nwrote {result.output_dir / 'audit.json'} and {result.output_dir / 'roc.png'}")
    return 0
