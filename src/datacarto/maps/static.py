"""The static data map (matplotlib): variability on x, confidence on y, as in Swayamdipta et al. (2020).

One scatter call with small rasterized markers, so 550k points draw in seconds and PDF/SVG files
stay small; side histograms of confidence, variability and correctness use every row even when
the scatter shows a sample.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from .._io import atomic_write
from ..errors import DatacartoError
from . import (
    REGION_COLORS,
    REGIONS,
    UNASSIGNED_COLOR,
    check_color_by,
    check_metrics,
    correctness_colors,
    correctness_levels,
    gold_labels,
    label_colors,
    region_codes,
    region_guides,
    subsample,
)

FIGURE_FORMATS = (".png", ".pdf", ".svg")
# where the region names sit, in axes fractions: (x, y, horizontal alignment, vertical alignment)
_REGION_BOXES = {
    "easy-to-learn": (0.03, 0.97, "left", "top"),
    "ambiguous": (0.97, 0.5, "right", "center"),
    "hard-to-learn": (0.03, 0.03, "left", "bottom"),
}


def _new_figure(**kwargs):
    """A Figure on an Agg canvas, outside pyplot: no display needed, the caller's backend untouched,
    and nothing kept in pyplot's figure registry (no leak when drawing many maps).

    Its ``_repr_png_`` lets a notebook show it as a cell's result: outside pyplot, Jupyter's inline
    backend does not know the figure."""
    from functools import partial

    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(**kwargs)
    FigureCanvasAgg(fig)
    fig._repr_png_ = partial(_png_bytes, fig)
    return fig


def _png_bytes(fig) -> bytes:
    import io

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()


def _marker_size(n: int) -> float:
    """Marker area in pt^2: big enough to see a few hundred points, small enough for 550k."""
    if n <= 2_000:
        return 14.0
    if n <= 20_000:
        return 5.0
    if n <= 100_000:
        return 1.5
    return 0.5


def _hue(metrics: pd.DataFrame, color_by: str, label_names):
    """Per-row category codes, the colour and legend name of each code, and the legend title."""
    if color_by == "correctness":
        levels, e = correctness_levels(metrics)
        names = [f"{k}/{e}" for k in range(e + 1)]
        colors = correctness_colors(e)
        codes = levels
        title = "correctness"
    elif color_by == "label":
        codes, names = gold_labels(metrics, label_names)
        colors = label_colors(len(names))
        title = "gold label"
    else:
        codes = region_codes(metrics)
        names, colors = list(REGIONS), [REGION_COLORS[r] for r in REGIONS]
        title = "region"
    if (codes < 0).any():  # NaN correctness, or rows outside every region
        codes = np.where(codes < 0, len(names), codes)
        names = names + ["none"]
        colors = colors + [UNASSIGNED_COLOR]
    return codes, names, colors, title


def plot_data_map(metrics: pd.DataFrame, *, color_by: str = "correctness", label_names=None,
                  title: str | None = None, max_points: int | None = None, seed: int = 0):
    """Draw the data map of a metrics table; returns a ``matplotlib.figure.Figure``.

    ``color_by``: "correctness" (its E+1 levels, blue = never right, red = always), "label" (gold
    label, named by ``label_names``) or "region" (the ``region`` column). ``max_points`` draws a
    seeded random subset in the scatter; the histograms always use every row.
    """
    check_color_by(color_by)
    needed = ["confidence", "variability", "correctness"]
    needed += {"label": ["gold"], "region": ["region"]}.get(color_by, [])
    check_metrics(metrics, needed)
    conf_all = pd.to_numeric(metrics["confidence"], errors="coerce").to_numpy(dtype=float)
    var_all = pd.to_numeric(metrics["variability"], errors="coerce").to_numpy(dtype=float)
    finite = np.isfinite(conf_all) & np.isfinite(var_all)
    if not finite.any():
        raise DatacartoError("no example has a finite confidence and variability: nothing to map")
    codes, names, colors, legend_title = _hue(metrics, color_by, label_names)
    levels, n_epochs = correctness_levels(metrics)

    plotted = np.flatnonzero(finite)
    plotted = plotted[subsample(plotted.size, max_points, seed)]
    # shuffle the drawing order so no class is always painted on top of the others
    plotted = plotted[np.random.default_rng(seed).permutation(plotted.size)]

    from matplotlib.colors import BoundaryNorm, ListedColormap
    from matplotlib.lines import Line2D

    fig = _new_figure(figsize=(12, 8), layout="constrained")
    grid = fig.add_gridspec(3, 2, width_ratios=(3.2, 1))
    ax = fig.add_subplot(grid[:, 0])
    cmap = ListedColormap(colors)
    norm = BoundaryNorm(np.arange(len(colors) + 1) - 0.5, len(colors))
    ax.scatter(var_all[plotted], conf_all[plotted], c=codes[plotted], cmap=cmap, norm=norm,
               s=_marker_size(plotted.size), linewidths=0, alpha=0.85 if plotted.size < 20_000 else 0.6,
               rasterized=True)
    ax.set_xlabel("variability")
    ax.set_ylabel("confidence")
    ax.set_xlim(left=min(0.0, float(np.min(var_all[finite]))) - 0.01)
    ax.set_ylim(-0.02, 1.02)
    ax.grid(True, alpha=0.3)
    shown = f"{plotted.size:,} of {finite.sum():,} examples" if plotted.size < finite.sum() \
        else f"{plotted.size:,} examples"
    ax.set_title(f"{title}\n{shown}" if title else f"Data map ({shown})")

    present = np.unique(codes[plotted])
    handles = [Line2D([], [], ls="", marker="o", markersize=7, markerfacecolor=colors[k],
                      markeredgewidth=0, label=names[k]) for k in present]
    ax.legend(handles=handles, title=legend_title, loc="lower right", framealpha=0.9, fontsize=9)

    guides, kind = region_guides(metrics)
    if kind != "quantile guides":  # draw only boundaries the region rule really uses
        for g in guides:
            style = dict(color="#333333", lw=1.0, ls="--", alpha=0.7, zorder=4)
            if g.axis == "x":
                ax.axvline(g.value, **style)
            else:
                ax.plot([0.0 if g.start is None else g.start, g.end if g.end is not None else ax.get_xlim()[1]],
                        [g.value, g.value], **style)
    for region, (x, y, ha, va) in _REGION_BOXES.items():
        ax.text(x, y, region, transform=ax.transAxes, ha=ha, va=va, fontsize=11, zorder=5,
                bbox=dict(boxstyle="round,pad=0.3", fc="white", ec=REGION_COLORS[region], lw=2))

    rows = np.flatnonzero(finite)
    _histogram(fig.add_subplot(grid[0, 1]), conf_all[rows], "confidence", (0, 1))
    var_hi = max(0.5, float(np.max(var_all[rows])))
    _histogram(fig.add_subplot(grid[1, 1]), var_all[rows], "variability", (0, var_hi))
    hax = fig.add_subplot(grid[2, 1])
    counts = np.bincount(levels[levels >= 0], minlength=n_epochs + 1)
    ticks = np.arange(n_epochs + 1) / n_epochs
    hax.bar(ticks, counts, width=0.8 / n_epochs, color=correctness_colors(n_epochs), edgecolor="none")
    if n_epochs <= 10:
        hax.set_xticks(ticks, [f"{k}/{n_epochs}" for k in range(n_epochs + 1)])
    hax.set_xlabel("correctness")
    hax.set_ylabel("examples")
    hax.set_xlim(-0.1, 1.1)
    return fig


def _histogram(ax, values: np.ndarray, name: str, limits: tuple[float, float]) -> None:
    counts, edges = np.histogram(values, bins=30, range=limits)
    ax.stairs(counts, edges, fill=True, color="#4c72b0", alpha=0.85)
    ax.set_xlabel(name)
    ax.set_ylabel("examples")


def save_figure(fig, path: str | os.PathLike, *, dpi: int = 150) -> Path:
    """Save ``fig`` as .png, .pdf or .svg (by extension), atomically; returns the path."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in FIGURE_FORMATS:
        raise DatacartoError(f"unsupported figure format {suffix or path.name!r}: use .png, .pdf or .svg")
    return atomic_write(path, lambda tmp: fig.savefig(tmp, format=suffix[1:], dpi=dpi))
