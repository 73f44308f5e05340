"""``datacarto label-errors RUN``: how many labels are wrong, which, what they should be; a review queue."""

from __future__ import annotations

import argparse
import sys

from ..errors import DatacartoError


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="datacarto label-errors",
        description="Estimate the number of wrong labels per given class and in total (confident learning, "
                    "on out-of-sample dynamics when the run is cross-fitted), flag as many rows, most suspect "
                    "first, with a suggested label, and write them as a review queue. See docs/label_errors.md.",
    )
    p.add_argument("run", help="training output folder (holding training_dynamics/), or a pipeline run folder "
                               "(datacarto run: the estimate its report shows)")
    p.add_argument("--out", help="write the review queue here: .csv, .jsonl, or .json with --format "
                                 "label-studio|argilla")
    p.add_argument("--overwrite", action="store_true",
                   help="replace --out if it exists (default: refused, so a queue being reviewed is never lost)")
    p.add_argument("--format", help="csv, jsonl, label-studio or argilla (default: by --out's extension)")
    p.add_argument("--split", default="train", help="which recorded store (default: train)")
    p.add_argument("--method", default="auto",
                   help="auto (a cross-fitted run: the rows its out-of-sample and in-sample stores both flag; else the "
                        "store's own dynamics), agreement (refuse a run without both), out-of-sample (that store alone), "
                        "in-sample")
    p.add_argument("--score", help="rank by self_confidence (p of the given label) or normalized_margin (default: "
                                   "self_confidence; a pipeline run folder: its estimate's)")
    p.add_argument("--epochs", help="mean or last: which epochs' probabilities (default: mean, measured)")
    p.add_argument("--top", type=int, default=10, help="flagged rows to print (default 10)")
    return p


def _short(value, width: int = 48) -> str:
    text = " ".join(str(value).split())
    return text if len(text) <= width else text[: width - 1] + "…"


def summary(found, *, rows=None, texts: list[str] = (), top: int = 10) -> str:
    """The estimate per class and in total, the number flagged, the first ``top`` flagged rows (of ``rows``,
    default ``found.flagged``; the review queue adds the ``texts`` columns)."""
    from ..dynamics.label_errors import describe_method

    rows = found.flagged if rows is None else rows
    info, n = found.info, found.n
    unit = {"example": "examples", "label": "(example, label) decisions", "word": "words"}.get(info.get("unit"),
                                                                                                "units")
    lines = [f"{info.get('run')} ({info.get('split')}): {describe_method(info)}, "
             f"{info.get('epochs')} of {info.get('n_epochs')} epochs' probabilities, {n} {unit}",
             f"estimated wrong labels: {found.total} of {n} ({100.0 * found.total / max(n, 1):.1f}%)"]
    for name, row in found.per_class.iterrows():
        lines.append(f"  given {name}: {int(row['estimated_errors'])} of {int(row['n'])} "
                     f"({100.0 * row['share']:.1f}%)")
    lines.append(f"flagged: {len(rows)}, most suspect first (by {found.score})")
    shown = rows.head(max(int(top), 0))
    for _, row in shown.iterrows():
        where = f"row {row['row_id']}" + (f" [{row['unit']}]" if "unit" in row else "")
        text = " | ".join(_short(row[c]) for c in texts if c in row)
        lines.append(f"  {where}: {row['given_label']} -> {row['suggested_label']} "
                     f"(p {row['suggested_probability']:.2f}, {found.score} {row['score_value']:.3f})"
                     + (f"  {text}" if text else ""))
    if len(rows) > len(shown):
        lines.append(f"  ... {len(rows) - len(shown)} more")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    from .._validation import check_choice
    from ..label_errors import DEFAULT_SCORE, EPOCH_RULES, SCORES

    if args.score is not None:
        check_choice(args.score, SCORES, "--score")
    if args.epochs is not None:
        check_choice(args.epochs, EPOCH_RULES, "--epochs")
    if args.top < 0:
        raise DatacartoError(f"--top must be >= 0, got {args.top}")
    from ..dynamics.review import queue_format, write_review_queue

    fmt = None
    if args.out:
        fmt = queue_format(args.out, args.format, overwrite=args.overwrite)
    elif args.format is not None:
        raise DatacartoError("--format needs --out")
    from ..dynamics.label_errors import review_queue, run_label_errors, text_columns
    from ..pipeline.cleaning import folder_estimate_source

    source, split, agree_with, score = folder_estimate_source(args.run, args.split, args.method)
    found = run_label_errors(source, split=split, method=args.method, score=args.score or score or DEFAULT_SCORE,
                             epochs=args.epochs, agree_with=agree_with)
    queue = review_queue(source, found, split=split)
    texts = [c for c in ("sentence", *text_columns(source, split)) if c in queue.columns]
    if args.out:  # written before anything is printed: a closed stdout (``| head``) loses no queue
        write_review_queue(queue, args.out, fmt=fmt, texts=texts)
    if found.info.get("warning"):
        print(f"datacarto: warning: {found.info['warning']}", file=sys.stderr)
    print(summary(found, rows=queue, texts=texts, top=args.top))
    if args.out:
        print(f"wrote {args.out} ({fmt}, {len(queue)} rows)")
    return 0
