"""The explorer inline in a notebook: ``datacarto.show(run_or_metrics)``.

The page is the one ``datacarto map`` writes (the same code path: :func:`~datacarto.maps.run_maps.write_run_maps`
for a run folder, :func:`~datacarto.maps.interactive.interactive_map` for a metrics table), shown in an
``<iframe srcdoc>`` of a cell's size: offline (plotly.js and the data are in the page), and its styles
and scripts stay inside the frame. Beyond ``max_points`` examples a seeded random sample is shown, and
the title says so. Jupyter, JupyterLab and VS Code render the returned object through its
``_repr_html_``; no IPython import is needed.
"""

from __future__ import annotations

import html
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from .._io import write_text_atomic
from ..errors import DatacartoError

MAX_POINTS = 20_000  # a notebook keeps its outputs: about 2 MB of page beyond plotly.js at this size
HEIGHT = 760


@dataclass
class NotebookMap:
    """The explorer page of one map, shown inline by Jupyter (``_repr_html_``); ``save(path)`` writes it."""

    page: str
    title: str
    points: int
    total: int
    height: int = HEIGHT

    def _repr_html_(self) -> str:
        return (f'<iframe class="datacarto-map" title="{html.escape(self.title)}" srcdoc="{html.escape(self.page)}" '
                f'style="box-sizing: border-box; width: 100%; height: {self.height}px; border: 1px solid #d0d7de; border-radius: 4px">'
                "</iframe>")

    def save(self, path: str | os.PathLike) -> Path:
        """Write the page (the file ``datacarto map --html`` writes), atomically."""
        return write_text_atomic(path, self.page)

    def __repr__(self) -> str:
        return f"NotebookMap({self.title!r}, {self.points:,} of {self.total:,} examples)"


def show(run_or_metrics, *, split: str = "train", records: pd.DataFrame | None = None, gold_probs=None,
         label_names=None, color_by: str = "correctness", level: str | None = None, title: str | None = None,
         max_points: int | None = MAX_POINTS, seed: int = 0, height: int = HEIGHT) -> NotebookMap:
    """The interactive data map and its table, for a notebook cell.

    Parameters
    ----------
    run_or_metrics : path or DataFrame
        A recorded run folder (its split ``split``, records, p(gold) per epoch and label names are read
        as ``datacarto map`` reads them), or a metrics table (``get_metrics``) with the optional
        ``records``, ``gold_probs`` and ``label_names`` of :func:`~datacarto.maps.interactive.interactive_map`.
    color_by, level, title
        The opening colouring, the level of a unit-level run, the title.
    max_points : int or None
        Show a seeded (``seed``) random sample of that many examples when there are more (the title
        says so); None shows every one.
    height : int
        The cell's height in pixels.
    """
    if not isinstance(height, int) or isinstance(height, bool) or height < 200:
        raise DatacartoError(f"height must be a whole number of pixels, at least 200; got {height!r}")
    if max_points is not None and (isinstance(max_points, bool) or not isinstance(max_points, int) or max_points < 1):
        raise DatacartoError(f"max_points must be a positive whole number or None, got {max_points!r}")
    if isinstance(run_or_metrics, pd.DataFrame):
        if level is not None:
            raise DatacartoError("level is for a run folder; a metrics table is mapped at its own level")
        return _table_map(run_or_metrics, records, gold_probs, label_names, color_by, title, max_points, seed, height)
    if not isinstance(run_or_metrics, (str, os.PathLike)):
        raise DatacartoError(f"show takes a run folder or a metrics DataFrame, got {type(run_or_metrics).__name__}")
    if not Path(run_or_metrics).is_dir():
        raise DatacartoError(f"run directory {os.fspath(run_or_metrics)} not found")
    from .run_maps import write_run_maps

    with tempfile.TemporaryDirectory(prefix="datacarto-show-") as tmp:
        page_path = Path(tmp) / "map.html"
        maps = write_run_maps(run_or_metrics, split=split, html=page_path, color_by=color_by, level=level,
                              title=title, sample=max_points, seed=seed)
        page = page_path.read_text(encoding="utf-8")
    return NotebookMap(page, maps.title, maps.points["example"], maps.total, height)


def _table_map(metrics, records, gold_probs, label_names, color_by, title, max_points, seed, height) -> NotebookMap:
    from .interactive import interactive_map
    from .run_maps import sampled_title

    n = len(metrics)
    title = sampled_title(title or "Data map", max_points, n)
    page = interactive_map(metrics, records, gold_probs=gold_probs, label_names=label_names, color_by=color_by,
                           title=title, max_points=max_points, seed=seed)
    return NotebookMap(page, title, min(n, max_points or n), n, height)


__all__ = ["show", "NotebookMap", "MAX_POINTS"]
