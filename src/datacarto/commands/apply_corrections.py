"""``datacarto apply-corrections RUN --corrections FILE --out DATA``: the run's data with reviewed labels."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import DatacartoError


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="datacarto apply-corrections",
        description="Apply reviewed decisions (relabel, drop, keep per row; the queue of datacarto label-errors "
                    "with its decision and new_label filled in, or the Label Studio or Argilla export of it) to a run's training records and write the "
                    "corrected data with the columns given_label, new_label and decision. Refuses a "
                    "corrections file of other data. See docs/label_errors.md.",
    )
    p.add_argument("run", help="training output folder (holding training_dynamics/), or a pipeline run folder "
                               "(datacarto run: the records its estimate read)")
    p.add_argument("--corrections", required=True, help="corrections file: .csv, .jsonl, or .json (rows, or Label Studio's "
                                               "JSON export or Argilla's records export of the reviewed queue)")
    p.add_argument("--out", required=True, help="corrected data file: .jsonl, .csv or .parquet (a new file)")
    p.add_argument("--overwrite", action="store_true", help="replace --out if it exists (default: refused)")
    p.add_argument("--split", default="train", help="which recorded store's records (default: train)")
    return p


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    if not Path(args.run).exists():
        raise DatacartoError(f"run directory {args.run} not found")
    from ..dynamics.corrections import apply_corrections, check_corrected_output, write_corrected
    from ..pipeline.cleaning import folder_estimate_source

    source, split, *_ = folder_estimate_source(args.run, args.split)
    check_corrected_output(args.out, corrections=args.corrections, run_dir=source, split=split,
                           overwrite=args.overwrite)
    corrected, counts = apply_corrections(source, args.corrections, split=split)
    write_corrected(corrected, args.out)  # before anything is printed: a closed stdout loses nothing
    print(f"{args.corrections}: relabel {counts['relabel']}, drop {counts['drop']}, keep {counts['keep']}, "
          f"not reviewed {counts['unreviewed']}")
    print(f"wrote {args.out}: {counts['rows']} rows ({counts['dropped_rows']} dropped), labels corrected in "
          f"{', '.join(counts['label_columns'])}, provenance in given_label, new_label, decision")
    return 0
