"""Seed stability: does an example keep its data-map region when only the seed changes?

``seed_regions(runs)`` reads the regions of several runs of the same training set (one per seed)
and returns, per example, the region in each run, the majority region and whether all runs agree
(``stable``), through the explorer's ``compare_runs``; ``region_agreement`` and ``stability_summary``
are the numbers the report prints.
"""

from __future__ import annotations

import os

import pandas as pd

from ..errors import DatacartoError
from ..metrics import REGIONS


def seed_regions(runs: list[str | os.PathLike], *, split: str = "train") -> pd.DataFrame:
    """The region of every example in each seed's run, its ``majority`` region and ``stable``.

    :func:`datacarto.dynamics.compare.compare_runs` (the one implementation, also behind
    ``datacarto map --compare``) for two or more runs of the same training set.
    """
    from .compare import compare_runs

    runs = list(runs)
    if len(runs) < 2:
        raise DatacartoError(f"seed stability needs at least 2 runs, got {len(runs)}")
    return compare_runs(runs, split=split)


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
