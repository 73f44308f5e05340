"""Comparing the regions of several runs over the same training data ("differential" cartography).

``compare_runs([run_a, run_b, ...])`` gives, per example, its region in each run (from each run's
cached metrics, :func:`datacarto.dynamics.cache.get_metrics`), the majority region and whether the
region is the same in every run. ``transition_matrix(a, b)`` counts examples by their region in
two runs. The runs must have recorded the same training set: their ``training_dynamics``
manifests must carry the same ``dataset_fingerprint``, and a run without one is compared only when
its recorded rows (texts and labels by row id) equal the other runs'.
"""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import DatacartoError
from ..metrics import REGIONS
from .cache import get_metrics
from .store import dynamics_dir, load_examples, read_manifest, runs_inside


def run_names(runs) -> list[str]:
    """Each run folder's name, made unique by a ``-2``, ``-3``, ... suffix where two share one."""
    names, seen = [], Counter()
    for run in runs:
        base = Path(run).resolve().name or str(run)
        seen[base] += 1
        name = base if seen[base] == 1 else f"{base}-{seen[base]}"
        while name in names:
            seen[base] += 1
            name = f"{base}-{seen[base]}"
        names.append(name)
    return names


def _check_same_data(runs: list[Path], names: list[str]) -> None:
    """One DatacartoError unless every run recorded the same training set.

    By ``dataset_fingerprint``; a run whose manifest has none is the same data only if its recorded
    rows (row ids, text columns and labels of ``examples.parquet``) equal every other run's.
    """
    prints = {}
    for run, name in zip(runs, names):
        directory = dynamics_dir(run, "train")
        if not directory.is_dir():
            raise DatacartoError(f"{run} holds no training dynamics ({directory} not found)" + runs_inside(directory))
        prints[name] = read_manifest(directory).get("dataset_fingerprint")
    known = {p for p in prints.values() if p is not None}
    if len(known) > 1:
        listed = ", ".join(f"{n}: {p}" for n, p in prints.items())
        raise DatacartoError(f"the runs were trained on different data (dataset_fingerprint {listed}): "
                             "compare only runs over the same training set")
    if None not in prints.values():
        return
    rows = {name: _recorded_rows(run) for run, name in zip(runs, names)}
    bare = next(n for n, p in prints.items() if p is None)  # compared with every other run by its rows
    for name in names:
        if name == bare:
            continue
        culprit = name if prints[name] is None else bare
        where = f"{culprit} ({dynamics_dir(runs[names.index(culprit)], 'train') / 'manifest.json'}) has no " \
                "dataset_fingerprint"
        lacking = [n for n in (bare, name) if rows[n] is None]
        if lacking:
            what = "no recorded examples" if lacking[0] == culprit else f"{lacking[0]} has no recorded examples"
            raise DatacartoError(f"{where} and {what} to compare: cannot tell whether the runs saw the same "
                                 "training set")
        if not rows[name].equals(rows[bare]):
            other = bare if culprit == name else name
            raise DatacartoError(f"{where} and its recorded rows differ from {other}'s: compare only runs over "
                                 "the same training set")


def _recorded_rows(run: Path) -> pd.DataFrame | None:
    """The recorded examples' text columns and label by row id (what a fingerprint hashes), or None."""
    examples = load_examples(run, "train")
    if examples is None:
        return None
    columns = read_manifest(dynamics_dir(run, "train")).get("text_columns") or [
        c for c in examples.columns if c not in ("fingerprint", "label")
        and (examples[c].dtype == object or pd.api.types.is_string_dtype(examples[c]))]
    columns = [c for c in columns if c in examples.columns] + (["label"] if "label" in examples.columns else [])
    return examples[columns].astype(str)


def _majority(regions: pd.DataFrame) -> pd.Series:
    """The most frequent region per row; a tie goes to the earliest run among the tied regions."""
    values = regions.to_numpy(dtype=object)
    out = []
    for row in values:
        counts = Counter(v for v in row if isinstance(v, str))
        if not counts:
            out.append(None)
            continue
        top = max(counts.values())
        out.append(next(v for v in row if isinstance(v, str) and counts[v] == top))
    return pd.Series(out, index=regions.index, name="majority", dtype=object)


def compare_runs(runs: list[str | os.PathLike], *, split: str = "train") -> pd.DataFrame:
    """Regions of the same examples in several runs, indexed by row id.

    One column per run (named by the run folder's name, made unique), holding its region
    (``REGIONS`` names, None where a run gives none), then ``majority`` (the most frequent region;
    a tie goes to the earliest run's region among the tied) and ``stable`` (True where every run
    gives the same region). The runs must share the training data (``dataset_fingerprint``) and
    the row ids of ``split``; DatacartoError otherwise.
    """
    if isinstance(runs, (str, os.PathLike)):
        raise DatacartoError("compare_runs takes a list of run folders")
    paths = [Path(r) for r in runs]
    if not paths:
        raise DatacartoError("compare_runs needs at least one run")
    for p in paths:
        if not p.exists():
            raise DatacartoError(f"run directory {p} not found")
    names = run_names(paths)
    _check_same_data(paths, names)
    columns = {}
    index = None
    for path, name in zip(paths, names):
        region = get_metrics(path, split=split)["region"]
        if index is None:
            index = region.index
        elif not region.index.sort_values().equals(index.sort_values()):
            only = len(region.index.difference(index)) + len(index.difference(region.index))
            raise DatacartoError(f"{name} and {names[0]} do not hold the same examples of {split} "
                                 f"({only} row ids in only one of them)")
        columns[name] = region.astype(object).where(region.notna(), None)
    table = pd.DataFrame(columns).reindex(index.sort_values())
    table.index.name = "row_id"
    return with_majority(table)


def with_majority(regions: pd.DataFrame) -> pd.DataFrame:
    """``regions`` (one region column per run) plus ``majority`` and ``stable`` (every run agrees)."""
    names = list(regions.columns)
    table = regions.copy()
    table["majority"] = _majority(regions[names])
    values = regions[names].to_numpy(dtype=object)
    first = values[:, :1]
    table["stable"] = np.all(values == first, axis=1) & pd.notna(first[:, 0])
    return table


def transition_matrix(a: pd.Series, b: pd.Series) -> pd.DataFrame:
    """Counts of examples by region in ``a`` (rows) and in ``b`` (columns), over their shared row ids.

    ``a`` and ``b``: region Series by row id, e.g. two columns of :func:`compare_runs`. Rows and
    columns are the three ``REGIONS`` in order; an example without a region in either is left out.
    """
    a, b = a.align(b, join="inner")
    keep = a.notna() & b.notna()
    table = pd.crosstab(pd.Categorical(a[keep], categories=list(REGIONS)),
                        pd.Categorical(b[keep], categories=list(REGIONS)), dropna=False)
    table = table.reindex(index=list(REGIONS), columns=list(REGIONS), fill_value=0).astype(np.int64)
    table.index.name = a.name if a.name is not None else "a"
    table.columns.name = b.name if b.name is not None else "b"
    return table


def stable_share(table: pd.DataFrame) -> float:
    """Share of examples of a :func:`compare_runs` table that keep their region in every run."""
    return float(table["stable"].mean()) if len(table) else float("nan")


__all__ = ["compare_runs", "transition_matrix", "stable_share", "run_names", "with_majority"]
