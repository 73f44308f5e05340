"""Seed stability: does an example keep its data-map region when only the seed changes?

``seed_regions(runs)`` reads the regions of several runs of the same training set (one per seed)
and returns, per example, the region in each run, the majority region and whether all runs agree
(``stable``). It has the signature and output of the explorer's ``compare_runs`` so the two can be
swapped; ``region_agreement`` and ``stability_summary`` are the numbers the report prints.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import DatacartoError
from ..metrics import REGIONS


def run_labels(runs) -> list[str]:
    """A column name per run: its folder name, or its whole path where two names clash."""
    names = [Path(r).name for r in runs]
    return names if len(set(names)) == len(names) else [str(r) for r in runs]


def majority_regions(regions: pd.DataFrame) -> pd.DataFrame:
    """Add ``majority`` (the region most runs give; ties go to the first in REGIONS order) and ``stable``."""
    values = regions.astype(object).to_numpy()
    counts = np.stack([(values == r).sum(axis=1) for r in REGIONS], axis=1)
    out = regions.copy()
    out["majority"] = pd.Categorical(np.asarray(REGIONS, dtype=object)[counts.argmax(axis=1)],
                                     categories=list(REGIONS))
    out["stable"] = counts.max(axis=1) == regions.shape[1]
    return out


def seed_regions(runs: list[str | os.PathLike], *, split: str = "train") -> pd.DataFrame:
    """The region of every example in each run, its ``majority`` region and ``stable`` (all runs agree).

    ``runs``: two or more run folders trained on the same data (row ids must match). Indexed by
    ``row_id``; one categorical column per run (named by :func:`run_labels`).
    """
    from .cache import get_metrics

    runs = list(runs)
    if len(runs) < 2:
        raise DatacartoError(f"seed stability needs at least 2 runs, got {len(runs)}")
    columns = {}
    for label, run in zip(run_labels(runs), runs):
        columns[label] = get_metrics(run, split=split)["region"]
    first = next(iter(columns.values())).index
    for label, col in columns.items():
        if not col.index.equals(first):
            raise DatacartoError(f"run {label} covers other examples than {run_labels(runs)[0]}: seed stability "
                                 "compares runs of the same training set")
    regions = pd.DataFrame(columns, index=first)
    regions.index.name = "row_id"
    return majority_regions(regions)


def region_agreement(table: pd.DataFrame) -> pd.Series:
    """Per example, the share of runs that give it its majority region (1.0 = stable)."""
    runs = [c for c in table.columns if c not in ("majority", "stable")]
    values = table[runs].astype(object).to_numpy()
    return pd.Series((values == table["majority"].astype(object).to_numpy()[:, None]).mean(axis=1),
                     index=table.index, name="agreement")


def stability_summary(table: pd.DataFrame) -> dict:
    """How many examples keep their region across runs, overall and per majority region."""
    n = len(table)
    per_region = {}
    for region in REGIONS:
        rows = table["majority"] == region
        per_region[region] = {"n": int(rows.sum()), "stable": int(table.loc[rows, "stable"].sum())}
    return {"runs": [c for c in table.columns if c not in ("majority", "stable")], "n": n,
            "stable": int(table["stable"].sum()), "stable_share": float(table["stable"].mean()) if n else 0.0,
            "unstable": int(n - table["stable"].sum()), "per_region": per_region}
