"""S2L selection (Yang et al. 2024): cluster the loss trajectories, then sample evenly across clusters.

Pure NumPy and scikit-learn. ``trajectory_clusters(trajectories, ids, fraction=0.3, clusters=K)``:
k-means on the per-example loss trajectories (N, E), then a balanced sample: clusters are visited
from the smallest, each takes an equal share of what is left of the budget, a cluster smaller than
its share is taken whole; seeded, and exactly ``round_half_up(fraction, N)`` ids.
"""

from __future__ import annotations

import numbers

import numpy as np
import pandas as pd

from ._validation import check_fraction, round_half_up
from .errors import DatacartoError


def check_trajectory_selection(fraction, clusters=8) -> tuple[float, int]:
    """``(fraction, clusters)`` of an S2L selection: a fraction in (0, 1] and a positive number of clusters."""
    fraction = check_fraction(fraction, "fraction", low_open=True)
    if isinstance(clusters, bool) or not isinstance(clusters, numbers.Integral) or clusters < 1:
        raise DatacartoError(f"clusters must be a positive integer, got {clusters!r}")
    return fraction, int(clusters)


def cluster_trajectories(trajectories: np.ndarray, clusters: int, *, seed: int = 0) -> np.ndarray:
    """k-means labels (N,) of the trajectories (rows with a NaN epoch use that row's mean there)."""
    from sklearn.cluster import KMeans

    x = np.asarray(trajectories, dtype=np.float64)
    if x.ndim != 2 or len(x) == 0:
        raise DatacartoError(f"loss trajectories must be a non-empty (N, E) array, got shape {x.shape}")
    if not 1 <= int(clusters) <= len(x):
        raise DatacartoError(f"--clusters must be between 1 and the number of examples ({len(x)}), got {clusters}")
    if np.isnan(x).all(axis=1).any():
        raise DatacartoError("an example has no finite loss in any epoch: it cannot be clustered")
    x = np.where(np.isnan(x), np.nanmean(x, axis=1, keepdims=True), x)
    return KMeans(n_clusters=int(clusters), n_init=10, random_state=seed).fit_predict(x)


def balanced_sample(labels: np.ndarray, n: int, *, seed: int = 0) -> np.ndarray:
    """Positions of ``n`` rows spread evenly over the clusters in ``labels`` (smallest clusters whole)."""
    rng = np.random.default_rng(seed)
    labels = np.asarray(labels)
    groups = [np.flatnonzero(labels == c) for c in np.unique(labels)]
    groups.sort(key=len)
    chosen, left = [], int(n)
    for k, members in enumerate(groups):
        share = left // (len(groups) - k)
        share += int(left % (len(groups) - k) > 0 and len(members) > share)  # exact size: spread the rest
        take = min(len(members), share)
        chosen.append(members if take == len(members) else rng.choice(members, take, replace=False))
        left -= take
    return np.sort(np.concatenate(chosen)) if chosen else np.empty(0, np.int64)


def trajectory_clusters(trajectories: np.ndarray, ids: np.ndarray, *, fraction: float, clusters: int,
                        seed: int = 0) -> np.ndarray:
    """Row ids (sorted int64) of the S2L subset: ``round_half_up(fraction, N)`` of them, balanced over clusters."""
    fraction, clusters = check_trajectory_selection(fraction, clusters)
    ids = np.asarray(ids, dtype=np.int64)
    labels = cluster_trajectories(trajectories, clusters, seed=seed)
    return np.sort(ids[balanced_sample(labels, round_half_up(fraction, len(ids)), seed=seed)])


def sample_pool(trajectories: pd.DataFrame | None, pool: np.ndarray, *, fraction: float, clusters: int,
                seed: int = 0) -> np.ndarray:
    """S2L on a pool of row ids (what region and bounds leave): :func:`trajectory_clusters` of their trajectories.

    ``trajectories``: one row per row id (index), one column per epoch. The pool is clustered in
    ascending row id; an empty pool gives an empty result.
    """
    if not isinstance(trajectories, pd.DataFrame):
        raise DatacartoError("method trajectory-clusters needs the loss trajectories (trajectories=: a DataFrame "
                             "of one row per row id, one column per epoch)")
    pool = np.sort(np.asarray(pool, dtype=np.int64))
    if pool.size == 0:
        return pool
    lacking = np.setdiff1d(pool, trajectories.index.to_numpy())
    if lacking.size:
        raise DatacartoError(f"{lacking.size} row ids of the metrics table have no loss trajectory, "
                             f"e.g. {lacking[:5].tolist()}")
    if clusters > pool.size:
        raise DatacartoError(f"clusters={clusters} is more than the {pool.size} examples to cluster "
                             "(the pool that region and bounds leave)")
    values = trajectories.loc[pool].to_numpy(dtype=np.float64)
    return trajectory_clusters(values, pool, fraction=fraction, clusters=clusters, seed=seed)
