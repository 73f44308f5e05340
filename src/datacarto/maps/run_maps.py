"""A run's data maps, one code path: ``datacarto map RUN`` and the pipeline's maps stage both call it.

:func:`write_run_maps` reads a run folder (metrics, p(gold) per epoch, recorded examples, label
names), titles the maps (with the learning warning), samples, keeps the region thresholds of the
whole table, and writes the static figures and the interactive page. A run whose store keys units
by ``(row_id, sub_id)`` (multi-label, token classification) gets one page holding both levels, one
point per example and one per unit, with a switch between them; its figures show the level asked for.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import DatacartoError
from ..tasks import task_type
from . import inferred_thresholds, subsample
from .review import Review, run_review

LEVELS = ("example", "unit")
#: Above this many examples the one-file page holds a seeded random sample of this many (it is about
#: 45 MB at 550k points); ``datacarto serve`` (:mod:`datacarto.maps.serve`) shows every point.
PAGE_MAX_POINTS = 600_000


@dataclass
class RunMaps:
    """What :func:`write_run_maps` wrote: paths, the title, points per level (``total``: examples before
    any sample), and what it warned about."""

    written: list[Path]
    title: str
    points: dict[str, int]
    level: str
    warnings: list[str] = field(default_factory=list)
    total: int = 0
    suspects: int | None = None  # rows flagged as label errors on the page (None: the run supports no estimate)


@dataclass
class _Level:
    """One level of a run's maps: its metrics, p(gold) by epoch, records and label names."""

    metrics: pd.DataFrame
    probs: np.ndarray
    records: pd.DataFrame | None
    label_names: list[str]
    kind: str = "example"  # at the unit level: what a unit is ("word", "label")


def write_run_maps(run_dir: str | os.PathLike, *, split: str = "train", html: str | os.PathLike | None = None,
                   png: str | os.PathLike | None = None, extra_pngs: Mapping | None = None,
                   color_by: str = "correctness", level: str | None = None, title: str | None = None,
                   sample: int | None = None, seed: int = 0, compare: pd.DataFrame | None = None,
                   dpi: int | None = None, label_errors: bool = True, review: Review | None = None) -> RunMaps:
    """Write the data maps of a recorded run: figures and one interactive page.

    Parameters
    ----------
    run_dir : path
        A training output folder (holding ``training_dynamics/``).
    split : str
        Which recorded split to map.
    html : path, optional
        The interactive page (.html). For a unit-level run it holds both levels and a switch.
    png : path, optional
        The static figure (.png, .pdf or .svg), coloured by ``color_by``.
    extra_pngs : mapping of path to colouring, optional
        More figures, e.g. ``{"data_map_regions.png": "region"}``.
    color_by : {"correctness", "label", "region"}
        The figure's hue and the page's opening colouring.
    level : {"example", "unit"}, optional
        The level the figures show and the page opens at (default "example"); "unit" needs a run
        whose store keys units (multi-label, token classification).
    title : str, optional
        Title of every map (default: the run folder's name and the split); a learning warning and
        the sample are added to it.
    sample : int, optional
        Map a seeded (``seed``) random subset of that many examples (and, at the unit level, their units).
        Without it, a run of more than :data:`PAGE_MAX_POINTS` examples with ``html`` is mapped by a
        sample of that many, and a warning names ``datacarto serve``, which shows every point.
    compare : DataFrame, optional
        A :func:`datacarto.compare_runs` table of this run and others: regions per run on the page.
    dpi : int, optional
        Resolution of the figures (default that of :func:`~datacarto.maps.static.save_figure`).
    label_errors : bool
        Where the run supports a label-error estimate, the page's table gets the flagged rows
        (``suspect``, suggested label) and the review controls (:func:`datacarto.maps.review.run_review`);
        where it does not, neither, and no error.
    review : Review, optional
        Flags estimated already (the pipeline's clean stage): shown as they are, nothing estimated again.

    Returns
    -------
    RunMaps
        The paths written, the title, the number of points per level, the warnings raised on the way.
    """
    level = level or "example"
    if level not in LEVELS:
        raise DatacartoError(f"level must be 'example' or 'unit', got {level!r}")
    if sample is not None and sample < 1:
        raise DatacartoError(f"sample must be at least 1, got {sample}")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        examples, units = run_levels(run_dir, split)
    said = [str(w.message) for w in caught]
    if level == "unit" and units is None:
        raise DatacartoError(f"{run_dir} ({split}) records one unit per example: there is no unit level to map "
                             "(units are labels of multi-label and words of token-classification runs)")
    if examples.records is None:
        said.append("no recorded examples (examples.parquet): tooltips show row ids only")
    total = len(examples.metrics)
    if sample is None and html is not None:
        sample = _page_sample(run_dir, total, said)
    title = run_title(run_dir, split, title, units or examples, total, sample)
    if sample is not None and sample < len(examples.metrics):
        examples, units = _sampled(examples, units, sample, seed)
    shown = units if level == "unit" else examples
    figures = {**({png: color_by} if png is not None else {}), **dict(extra_pngs or {})}
    written = _write_figures(shown, figures, title, dpi)
    if html is not None:
        review = page_review(run_dir, split, review=review, label_errors=label_errors)
        written.append(_write_page(html, examples, units, level=level, color_by=color_by, title=title,
                                   compare=compare, review=review))
    points = {"example": len(examples.metrics), **({"unit": len(units.metrics)} if units is not None else {})}
    return RunMaps(written=written, title=title, points=points, level=level, warnings=said, total=total,
                   suspects=None if review is None else len(review.flagged))


def page_review(run_dir: str | os.PathLike, split: str = "train", *, review: Review | None = None,
                label_errors: bool = True) -> Review | None:
    """The label-error review a run's page shows (``datacarto map`` and ``datacarto serve``): ``review``
    where given, else the run's own estimate (:func:`~datacarto.maps.review.run_review`; None where the
    run supports none, or with ``label_errors=False``)."""
    if review is None and label_errors:
        review = run_review(run_dir, split)
    return review


def run_levels(run_dir: str | os.PathLike, split: str = "train") -> tuple[_Level, _Level | None]:
    """The example level of a run and, where its store keys units, the unit level (else None).

    Both come from one load of the dynamics: the unit metrics (``get_metrics(level="unit")``) and
    their aggregate per example (:func:`datacarto.units.aggregate_units`, as ``get_metrics`` does).
    Region thresholds read off the whole table are kept in each table's ``attrs``.
    """
    from ..dynamics.cache import get_metrics
    from ..dynamics.store import dynamics_dir, load_dynamics, load_examples, read_manifest
    from ..units import aggregate_units, unit_records
    from .interactive import gold_probabilities

    table = get_metrics(run_dir, split=split, level="unit")
    if len(table) == 0:
        raise DatacartoError(f"{run_dir} ({split}) has no examples to map")
    dyn = load_dynamics(run_dir, split)
    probs = gold_probabilities(dyn.logits, dyn.gold)
    records = load_examples(run_dir, split)
    names = dyn.label_names
    if table.index.name != "unit_id":
        return _Level(_thresholds(table), _aligned(probs, dyn.ids, table.index, run_dir, split),
                      _example_records(records), names), None
    manifest = read_manifest(dynamics_dir(run_dir, split))
    task = task_type(manifest.get("task"))
    rows, subs = table["row_id"].to_numpy(), table["sub_id"].to_numpy()
    per_example = aggregate_units(table.drop(columns=["row_id", "sub_id"]), rows, subs)
    example_probs = pd.DataFrame(probs).groupby(dyn.row_ids).mean().reindex(per_example.index).to_numpy()
    unit_texts = None if records is None else unit_records(records, table, unit=task.unit, label_names=names)
    map_names = ["no", "yes"] if task.unit == "label" else names  # a unit is a yes/no decision about a label
    examples = _Level(_thresholds(per_example), example_probs, _example_records(records, task.unit, names), map_names)
    units = _Level(_thresholds(table), _aligned(probs, dyn.ids, table.index, run_dir, split), unit_texts, map_names,
                   kind=manifest.get("unit") or task.unit)
    return examples, units


def _aligned(probs: np.ndarray, ids: np.ndarray, index: pd.Index, run_dir, split: str) -> np.ndarray:
    where = pd.Index(ids).get_indexer(pd.Index(index))
    if (where < 0).any():
        raise DatacartoError(f"{int((where < 0).sum())} examples of the metrics table are not in the "
                             f"dynamics of {run_dir} ({split}): recompute the metrics")
    return np.asarray(probs)[where]


def _thresholds(metrics: pd.DataFrame) -> pd.DataFrame:
    """The table with the region boundaries of the whole of it in ``attrs`` (kept when a sample is drawn)."""
    found = inferred_thresholds(metrics)
    if found is not None:
        metrics.attrs.update(variability_threshold=found[0], confidence_threshold=found[1])
    return metrics


def _example_records(records: pd.DataFrame | None, unit: str = "example", names=None) -> pd.DataFrame | None:
    """Records as the page shows them: lists (a sentence's words, its tags) as space-joined text."""
    if records is None:
        return None
    out = records.copy()
    for col in out.columns:
        values = out[col]
        if col != "label" and len(values) and isinstance(values.iloc[0], (list, tuple, np.ndarray)):
            out[col] = [" ".join(map(str, v)) for v in values]
    if unit == "label" and "label" in out.columns and names is not None:  # the names of each example's labels
        named = np.asarray(names, dtype=object)
        out["gold labels"] = [", ".join(named[list(v)]) for v in records["label"]]
    return out


def _page_sample(run_dir, total: int, said: list[str]) -> int | None:
    """The sample a page of ``total`` examples needs (None: every example fits), said in ``said``."""
    if total <= PAGE_MAX_POINTS:
        return None
    said.append(f"{total:,} examples: the page holds a random sample of {PAGE_MAX_POINTS:,}; "
                f"`datacarto serve {run_dir}` shows all of them")
    return PAGE_MAX_POINTS


def run_title(run_dir, split: str, title: str | None, judged: _Level, n: int, sample: int | None) -> str:
    """A run's map title: the folder and split (or ``title``), the learning warning's head, the sample."""
    from ..learning_check import learning_warning

    title = title or f"{Path(run_dir).resolve().name} ({split})"
    warning = learning_warning(judged.metrics)
    if warning is not None:  # get_metrics says it on stderr; the map says its head too
        head = "the model barely learned" if warning.startswith("the model barely") else warning.split(":")[0]
        title += f" - {head}: regions are relative"
    return sampled_title(title, sample, n)


def sampled_title(title: str, sample: int | None, n: int) -> str:
    """A map's title, saying when it shows a random sample of ``sample`` of ``n`` examples."""
    if sample is not None and sample < n:
        title += f", random sample of {sample:,} of {n:,}"
    return title


def _sampled(examples: _Level, units: _Level | None, sample: int, seed: int) -> tuple[_Level, _Level | None]:
    """A seeded random subset of ``sample`` examples and, at the unit level, the units of those."""
    keep = subsample(len(examples.metrics), sample, seed)
    examples = _Level(examples.metrics.iloc[keep].copy(), examples.probs[keep], examples.records, examples.label_names)
    if units is None:
        return examples, None
    mask = units.metrics["row_id"].isin(examples.metrics.index).to_numpy()
    return examples, _Level(units.metrics.loc[mask].copy(), units.probs[mask], units.records, units.label_names,
                            units.kind)


def _write_page(path, examples: _Level, units: _Level | None, *, level: str, color_by: str, title: str,
                compare, review=None) -> Path:
    from .interactive import UnitLevel, interactive_map

    unit_level = None
    if units is not None:
        unit_level = UnitLevel(units.metrics, units.records, gold_probs=units.probs, label_names=units.label_names,
                               kind=units.kind)
    interactive_map(examples.metrics, examples.records, gold_probs=examples.probs, label_names=examples.label_names,
                    path=path, color_by=color_by, title=title, compare=compare, units=unit_level, open_level=level,
                    review=review)
    return Path(path)


__all__ = ["write_run_maps", "run_levels", "page_review", "run_title", "sampled_title", "RunMaps", "LEVELS", "PAGE_MAX_POINTS"]


def _write_figures(shown, figures: Mapping, title: str, dpi: int | None) -> list:
    """The static figures ``{path: colouring}`` of one level's metrics; the paths written."""
    if not figures:
        return []
    from .static import plot_data_map, save_figure

    written = []
    for path, hue in figures.items():
        fig = plot_data_map(shown.metrics, color_by=hue, label_names=shown.label_names, title=title)
        written.append(save_figure(fig, path, **({"dpi": dpi} if dpi else {})))
    return written
