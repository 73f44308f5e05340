"""``datacarto map RUN``: the data map of a run as a figure (PNG/PDF/SVG) and an interactive HTML page.

Without ``--html`` or ``--png`` both are written into the run folder (``data_map.png`` and
``data_map.html``). ``--sample N`` maps one seeded random subset of N examples in both outputs.
``--compare RUN_B [RUN_C ...]`` adds, for runs over the same training data, each example's region
in every run, the region transition matrix and the share of examples keeping their region.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

from ..errors import DatacartoError
from ..maps import COLOR_MODES

FIGURE_SUFFIXES = (".png", ".pdf", ".svg")
HTML_SUFFIXES = (".html", ".htm")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="datacarto map",
        description="Draw the data map of a run: variability (x) against confidence (y) per training "
                    "example, as a static figure and as one self-contained interactive HTML file "
                    "(hover shows the example; filter, select and export). See docs/maps.md.",
    )
    p.add_argument("run", help="training output folder (holding training_dynamics/)")
    p.add_argument("--html", help="write the interactive map here (.html)")
    p.add_argument("--png", help="write the static figure here (.png, .pdf or .svg)")
    p.add_argument("--level", default="example", choices=("example", "unit"),
                   help="multi-label and token-classification runs: one point per example (default) or per "
                        "unit (label or word; the tooltip marks it)")
    p.add_argument("--color-by", "--color_by", default="correctness", choices=COLOR_MODES,
                   help="hue: correctness (default), gold label, or region")
    p.add_argument("--sample", type=int, metavar="N", help="map a seeded random subset of N examples")
    p.add_argument("--seed", type=int, default=0, help="seed of --sample (default 0)")
    p.add_argument("--split", default="train", help="which recorded split (default: train)")
    p.add_argument("--title", help="title of both maps (default: the run folder's name)")
    p.add_argument("--compare", nargs="+", metavar="RUN", default=None,
                   help="other runs over the same training data: regions per run and their transitions")
    return p


def _outputs(args) -> tuple[Path | None, Path | None]:
    html, png = args.html, args.png
    if html is None and png is None and getattr(args, "compare", None):
        return Path(args.run) / "compare.html", None
    if html is None and png is None:
        return Path(args.run) / "data_map.html", Path(args.run) / "data_map.png"
    if png is not None and Path(png).suffix.lower() not in FIGURE_SUFFIXES:
        raise DatacartoError(f"--png {png}: unsupported figure format; use .png, .pdf or .svg")
    if html is not None and Path(html).suffix.lower() not in HTML_SUFFIXES:
        raise DatacartoError(f"--html {html}: the interactive map is an .html file")
    return (Path(html) if html else None), (Path(png) if png else None)


def gold_probs_for(run, split: str, index):
    """(p(gold) per epoch in the row order of ``index``, label names) from the stored dynamics."""
    import numpy as np
    import pandas as pd

    from ..dynamics.store import load_dynamics
    from ..maps.interactive import gold_probabilities

    dynamics = load_dynamics(run, split)
    if dynamics.unit_level and index.name != "unit_id":  # an example's p(gold) by epoch: the mean of its units'
        probs = pd.DataFrame(gold_probabilities(dynamics.logits, dynamics.gold)).groupby(dynamics.row_ids).mean()
        return probs.reindex(index).to_numpy(), dynamics.label_names
    where = pd.Index(dynamics.ids).get_indexer(pd.Index(index))
    if (where < 0).any():
        raise DatacartoError(f"{int((where < 0).sum())} examples of the metrics table are not in the "
                             f"dynamics of {run} ({split}): recompute the metrics")
    probs = gold_probabilities(dynamics.logits[where], dynamics.gold[where])
    return np.asarray(probs), dynamics.label_names


def _compare(args):
    """The compare_runs table of RUN and the --compare runs (None without --compare); says the share kept."""
    if not args.compare:
        return None
    from ..dynamics.compare import compare_runs, stable_share

    with warnings.catch_warnings():  # each run's "barely learned" warning was said for RUN already
        warnings.simplefilter("ignore")
        table = compare_runs([args.run, *args.compare], split=args.split)
    runs = [c for c in table.columns if c not in ("majority", "stable")]
    print(f"{stable_share(table):.1%} of {len(table):,} examples keep their region in all {len(runs)} runs "
          f"({', '.join(runs)})")
    return table


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    if not Path(args.run).exists():
        raise DatacartoError(f"run directory {args.run} not found")
    if args.sample is not None and args.sample < 1:
        raise DatacartoError(f"--sample must be at least 1, got {args.sample}")
    html_path, png_path = _outputs(args)
    compare = _compare(args)  # first: runs over other data fail before anything is written

    from ..dynamics.cache import get_metrics
    from ..dynamics.store import load_examples
    from ..learning_check import learning_warning
    from ..maps import inferred_thresholds, subsample

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        metrics = get_metrics(args.run, split=args.split, level=args.level)
    for w in caught:
        print(f"datacarto: warning: {w.message}", file=sys.stderr)
    if len(metrics) == 0:
        raise DatacartoError(f"{args.run} ({args.split}) has no examples to map")
    probs, label_names = gold_probs_for(args.run, args.split, metrics.index)
    records = load_examples(args.run, args.split)
    from ..dynamics.store import dynamics_dir, read_manifest

    task = read_manifest(dynamics_dir(args.run, args.split)).get("task", "")
    if metrics.index.name == "unit_id" and records is not None:  # one point per label or word
        from ..units import unit_records

        records = unit_records(records, metrics, task=task, label_names=label_names)
        metrics = metrics.drop(columns=["row_id", "sub_id"])
    if task == "multi-label":  # each unit is a yes/no decision about one label
        label_names = ["no", "yes"]
    if records is None:
        print("datacarto: warning: no recorded examples (examples.parquet): tooltips show row ids only",
              file=sys.stderr)

    # the region boundaries of the whole table, kept when only a sample is drawn
    found = inferred_thresholds(metrics)
    title = args.title or f"{Path(args.run).resolve().name} ({args.split})"
    if learning_warning(metrics) is not None:  # said on stderr by get_metrics; the map says it too
        title += " - the model barely learned: regions are relative"
    if args.sample is not None and args.sample < len(metrics):
        title += f", random sample of {args.sample:,} of {len(metrics):,}"
        keep = subsample(len(metrics), args.sample, args.seed)
        metrics, probs = metrics.iloc[keep].copy(), probs[keep]
    if found is not None:
        metrics.attrs.update(variability_threshold=found[0], confidence_threshold=found[1])
    if png_path is not None:
        from ..maps.static import plot_data_map, save_figure

        fig = plot_data_map(metrics, color_by=args.color_by, label_names=label_names, title=title)
        save_figure(fig, png_path)
        print(f"wrote {png_path}")
    if html_path is not None:
        from ..maps.interactive import interactive_map

        interactive_map(metrics, records, gold_probs=probs, label_names=label_names, path=html_path,
                        color_by=args.color_by, title=title, compare=compare)
        print(f"wrote {html_path} ({html_path.stat().st_size / 1e6:.1f} MB, {len(metrics):,} points)")
    return 0
