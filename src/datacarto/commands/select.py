"""``datacarto select RUN --out subset.jsonl``: write a focused subset (and/or its random control)."""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

import numpy as np

from ..errors import DatacartoError
from ..selection import DEFAULT_CLUSTERS, METHODS, ORDERS

EXIT_EMPTY = 1


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="datacarto select",
        description="Select a focused subset of a run's training data and write it with every original "
                    "column and a row_id column. Bounds are inclusive. See docs/select.md.",
    )
    p.add_argument("run", help="training output folder (holding training_dynamics/)")
    p.add_argument("--out", required=True, help="output file: .jsonl, .csv or .parquet")
    for name in ("confidence", "variability", "correctness"):
        p.add_argument(f"--min-{name}", type=float, help=f"keep examples with {name} >= this")
        p.add_argument(f"--max-{name}", type=float, help=f"keep examples with {name} <= this")
    p.add_argument("--region", action="append",
                   help="easy-to-learn, ambiguous or hard-to-learn (repeat or comma-separate for several)")
    p.add_argument("--metric", help="rank by this metric (e.g. variability, confidence, aum, el2n)")
    p.add_argument("--fraction", type=float,
                   help="with --metric: fraction of the filtered examples; with one --region and no "
                        "--metric: fraction of the whole data set, ranked by the region's metric")
    p.add_argument("--order", choices=ORDERS, help="which end of the ranking to take")
    p.add_argument("--both-ends", type=float,
                   help="share taken from the --order end (default hardest), the rest from the other end")
    p.add_argument("--stratify-by-label", action="store_true",
                   help="apply the fraction within each gold label (exact counts by largest remainder)")
    p.add_argument("--seed", type=int, default=0, help="seed for random fractions and the random control")
    p.add_argument("--random-control", action="store_true",
                   help="write a random control of the same size and label mix to --out instead")
    p.add_argument("--control-out", help="also write the random control of the same size here")
    p.add_argument("--control-disjoint", action="store_true",
                   help="draw the random control from examples outside the selection")
    p.add_argument("--method", choices=METHODS, default="rules",
                   help="rules: the filters above; trajectory-clusters: S2L, k-means on the loss trajectories of "
                        "the examples that --region and the bounds leave, and a balanced sample of --fraction "
                        "of them across --clusters (docs/generative.md)")
    p.add_argument("--clusters", type=int,
                   help=f"trajectory-clusters: number of k-means clusters (default {DEFAULT_CLUSTERS})")
    p.add_argument("--burn-out", type=int, help="use only the first N epochs for the metrics")
    p.add_argument("--split", default="train", help="which recorded split to select from")
    return p


def _regions(values: list[str] | None) -> list[str] | None:
    if not values:
        return None
    return [r for v in values for r in v.split(",") if r.strip()]


def _summary(ids: np.ndarray, metrics, label_names: list[str] | None, title: str) -> str:
    """How many were selected, per region and per label (with the manifest's label names)."""
    from ..metrics import REGIONS, labelled

    n, total = len(ids), len(metrics)
    lines = [f"{title}: {n} of {total} examples ({100.0 * n / max(total, 1):.1f}%)"]
    rows = metrics.loc[ids]
    if "region" in rows.columns:
        counts = rows["region"].astype(object).value_counts()
        known = list(REGIONS) + sorted(set(counts.index) - set(REGIONS), key=str)
        lines.append("  by region: " + ", ".join(f"{r} {int(counts.get(r, 0))}" for r in known))
    if "gold" in rows.columns and labelled(metrics):  # a causal LM has no classes to count
        counts = rows["gold"].value_counts()
        labels = sorted(set(np.unique(metrics["gold"]).tolist()))
        def name(g):
            return label_names[g] if label_names and 0 <= g < len(label_names) else str(g)
        lines.append("  by label: " + ", ".join(f"{name(g)} {int(counts.get(g, 0))}" for g in labels))
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    from ..dynamics.store import dynamics_dir, read_manifest
    from ..dynamics.subsets import SUBSET_SUFFIXES, export_subset, select_from_run, subset_rows
    from ..selection import random_control

    if args.random_control and args.control_out:
        raise DatacartoError("use either --random-control (control to --out) or --control-out, not both")
    if args.control_out and Path(args.control_out).resolve() == Path(args.out).resolve():
        raise DatacartoError("--control-out must differ from --out")
    if args.control_disjoint and not (args.random_control or args.control_out):
        raise DatacartoError("--control-disjoint needs --random-control or --control-out")
    if not Path(args.run).exists():
        raise DatacartoError(f"run directory {args.run} not found")
    from .._io import check_output_file

    for flag, path in (("--out", args.out), ("--control-out", args.control_out)):
        if path:
            check_output_file(path, SUBSET_SUFFIXES, flag=flag)

    from ..dynamics.cache import get_metrics

    metrics = get_metrics(args.run, split=args.split, burn_out=args.burn_out)
    label_names = read_manifest(dynamics_dir(args.run, args.split)).get("label_names")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ids = select_from_run(
            args.run, metrics, split=args.split, burn_out=args.burn_out, seed=args.seed,
            min_confidence=args.min_confidence, max_confidence=args.max_confidence,
            min_variability=args.min_variability, max_variability=args.max_variability,
            min_correctness=args.min_correctness, max_correctness=args.max_correctness,
            region=_regions(args.region), metric=args.metric, fraction=args.fraction, order=args.order,
            both_ends=args.both_ends, stratify_by_label=args.stratify_by_label, method=args.method,
            clusters=args.clusters,
        )
    for w in caught:
        print(f"datacarto: warning: {w.message}", file=sys.stderr)
    if ids.size == 0:
        print(f"nothing written: {args.out} left as it was", file=sys.stderr)
        return EXIT_EMPTY

    control = None
    if args.random_control or args.control_out:
        from ..tasks import task_type

        task = task_type(read_manifest(dynamics_dir(args.run, args.split)).get("task"))
        control = random_control(ids, metrics, match_labels=task.single_label, seed=args.seed,
                                 exclude=ids if args.control_disjoint else None)

    if args.random_control:
        export_subset(subset_rows(args.run, control, split=args.split), args.out)
        print(_summary(ids, metrics, label_names, "selected"))
        print(_summary(control, metrics, label_names, f"random control (seed {args.seed})"))
        print(f"wrote the random control to {args.out}")
        return 0
    export_subset(subset_rows(args.run, ids, split=args.split), args.out)
    print(_summary(ids, metrics, label_names, "selected"))
    print(f"wrote {args.out}")
    if control is not None:
        export_subset(subset_rows(args.run, control, split=args.split), args.control_out)
        print(_summary(control, metrics, label_names, f"random control (seed {args.seed})"))
        print(f"wrote {args.control_out}")
    return 0
