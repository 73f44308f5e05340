"""``datacarto metrics RUN``: per-example metrics and regions of a run, summarized or written out."""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

from ..errors import DatacartoError

_FORMATS = (".parquet", ".csv", ".jsonl", ".json")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="datacarto metrics",
        description="Compute the per-example training-dynamics metrics of a run (confidence, variability, "
                    "correctness, forgetfulness, AUM, EL2N, ...) and the data-map region of each example. "
                    "Cached next to the dynamics. Definitions: docs/metrics.md.",
    )
    p.add_argument("run", help="training output folder (holding training_dynamics/)")
    p.add_argument("--out", help="write the table (row_id, metrics, region) here: .parquet, .csv or .jsonl")
    p.add_argument("--burn-out", type=int, metavar="K", help="use only the first K epochs")
    p.add_argument("--split", default="train", help="which recorded split (default: train)")
    return p


def summary(metrics, *, run: str, split: str, n_epochs: int, recorded: int | None = None) -> str:
    """A few lines: examples, epochs, region counts, mean confidence and variability."""
    from ..metrics import REGIONS

    n = len(metrics)
    of = f" (of {recorded} recorded)" if recorded is not None and recorded != n_epochs else ""
    lines = [f"{run} ({split}): {n} examples, {n_epochs} epochs{of}"]
    short = int((metrics["n_epochs_used"] < n_epochs).sum())
    if short:
        lines.append(f"{short} examples have epochs with NaN/inf logits left out "
                     f"({int((metrics['n_epochs_used'] == 0).sum())} have none usable)")
    if "region" in metrics.columns:
        counts = metrics["region"].value_counts(dropna=False)
        parts = [f"{r} {int(counts.get(r, 0))} ({100.0 * counts.get(r, 0) / n:.1f}%)" for r in REGIONS]
        missing = int(metrics["region"].isna().sum())
        if missing:
            parts.append(f"no region {missing}")
        lines.append("regions: " + ", ".join(parts))
    lines.append(f"mean confidence {metrics['confidence'].mean():.4f}, "
                 f"mean variability {metrics['variability'].mean():.4f}, "
                 f"mean correctness {metrics['correctness'].mean():.4f}")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    if not Path(args.run).exists():
        raise DatacartoError(f"run directory {args.run} not found")
    from .._io import check_output_file, write_frame

    if args.out:
        check_output_file(args.out, _FORMATS)
    from ..dynamics.cache import get_metrics

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        metrics = get_metrics(args.run, split=args.split, burn_out=args.burn_out)
    for w in caught:
        print(f"datacarto: warning: {w.message}", file=sys.stderr)
    from ..dynamics.store import dynamics_dir, list_epoch_files

    recorded = len(list_epoch_files(dynamics_dir(args.run, args.split)))
    print(summary(metrics, run=args.run, split=args.split, n_epochs=args.burn_out or recorded,
                  recorded=recorded))
    if args.out:
        write_frame(metrics, args.out)
        print(f"wrote {args.out}")
    return 0
