"""``datacarto map RUN``: the data map of a run as a figure (PNG/PDF/SVG) and an interactive HTML page.

Without ``--html`` or ``--png`` both are written into the run folder (``data_map.png`` and
``data_map.html``). The work is :func:`datacarto.maps.run_maps.write_run_maps`, which the pipeline's
maps stage calls too; this command parses the arguments and says what was written. ``--sample N``
maps one seeded random subset of N examples in both outputs (and, in a unit-level run, their units).
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
                   help="multi-label and token-classification runs: the level the figure shows and the page "
                        "opens at, one point per example (default) or per unit (label or word); the page "
                        "holds both and switches between them")
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

    from ..maps.run_maps import write_run_maps

    result = write_run_maps(args.run, split=args.split, html=html_path, png=png_path, color_by=args.color_by,
                            level=args.level, title=args.title, sample=args.sample, seed=args.seed,
                            compare=compare)
    for message in result.warnings:
        print(f"datacarto: warning: {message}", file=sys.stderr)
    if png_path is not None:
        print(f"wrote {png_path}")
    if html_path is not None:
        points = " and ".join(f"{n:,} {'points' if lv == 'example' else 'unit points'}"
                              for lv, n in result.points.items())
        print(f"wrote {html_path} ({html_path.stat().st_size / 1e6:.1f} MB, {points})")
    return 0
