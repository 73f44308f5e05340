"""Label-noise scoring: inject known label flips and measure how well each score finds them.

Pure NumPy, pandas and scikit-learn: no torch, no transformers, no run folder. The workflow that
trains a model on the noisy labels and writes ``audit.json`` is :mod:`datacarto.audit`.
A score's quality is how well its ranking puts the flipped examples first (AUROC, average
precision, precision and recall at k, where k is the number of flipped examples); see
docs/audit.md for how to read the results.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import pandas as pd

from ._validation import check_choice, check_fraction, check_int_labels, round_half_up
from .errors import DatacartoError
from .metrics import REGIONS, SCORES, score_directions

#: The audits rank each score by the end :data:`datacarto.metrics.SCORES` declares hard ("low" or
#: "high"), the suspicious end (more likely a wrong label); a label audit ranks by default the
#: scores whose ``audits`` hold "labels" (:func:`datacarto.metrics.score_directions`).
#:
#: * low ``confidence`` / ``aum`` / ``correctness`` / ``self_confidence``: the model keeps giving
#:   the (possibly wrong) gold label little probability or margin.
#: * high ``forgetfulness`` / ``el2n`` / ``el2n_mean`` / ``last_loss``: the prediction stays far
#:   from the gold label, or is learned and forgotten again.
#: * ``variability`` and ``aleatoric`` measure how much the model wavers, not whether it disagrees
#:   with the label. We rank their *high* end first, as uncertainty scores are used (the paper's
#:   "ambiguous" region). A flipped label that the model never fits has a steadily low p(gold),
#:   hence LOW variability and aleatoric, like an easy example; one it memorises late has high
#:   variability. So expect these two to be weak detectors; an AUROC below 0.5 means the low end
#:   holds more of the noise.
NOISE_KINDS = ("uniform", "class-conditional")
AUDIT_COLUMNS = ("score", "direction", "auroc", "average_precision", "precision_at_k", "recall_at_k", "n")


# ----------------------------------------------------------------------------------------------
# noise injection


def n_flips(noise: float, n: int) -> int:
    """How many of ``n`` labels a noise rate flips: ``round_half_up(noise x n)`` (0.15 x 30 gives 5)."""
    return round_half_up(noise, n)


def next_class_matrix(num_labels: int) -> np.ndarray:
    """The default class-conditional matrix: class i always flips to (i + 1) mod C."""
    matrix = np.zeros((num_labels, num_labels))
    matrix[np.arange(num_labels), (np.arange(num_labels) + 1) % num_labels] = 1.0
    return matrix


def inject_score_noise(scores, noise: float = 0.1, *, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Move exactly ``round(noise x N)`` gold scores (seeded) far away; return ``(noisy_scores, is_noisy)``.

    A chosen score below the middle of the scores' range [lo, hi] gets a value drawn uniformly from
    the top quarter of the range, one above it from the bottom quarter: at least (hi - lo) / 4 away.
    """
    values = np.asarray(scores, dtype=np.float64)
    if values.ndim != 1 or not np.all(np.isfinite(values)):
        raise DatacartoError("inject_score_noise: scores must be one finite number per example")
    noise = check_fraction(noise, "noise", high_open=True)
    rng = np.random.default_rng(seed)
    n_noisy = round_half_up(noise, len(values))
    chosen = rng.choice(len(values), size=n_noisy, replace=False)
    lo, hi = float(values.min()), float(values.max())
    quarter = (hi - lo) / 4
    low_half = values[chosen] < (lo + hi) / 2
    noisy = values.copy()
    noisy[chosen] = np.where(low_half, rng.uniform(hi - quarter, hi, n_noisy), rng.uniform(lo, lo + quarter, n_noisy))
    flags = np.zeros(len(values), dtype=bool)
    flags[chosen] = True
    return noisy, flags


def inject_label_noise(labels, noise: float = 0.1, *, kind: str = "uniform", num_labels: int | None = None,
                       matrix=None, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Flip exactly ``round(noise x N)`` labels (seeded); return ``(noisy_labels, is_flipped)``.

    A flipped label never stays the same.

    * ``kind="uniform"``: the flipped rows are drawn uniformly at random; each new label is uniform
      over the C - 1 other labels.
    * ``kind="class-conditional"``: ``matrix`` is C x C, rows = true label, entry (i, j) = how
      likely class i flips to class j; the diagonal is ignored. Rows are drawn to flip with weights
      proportional to their class's off-diagonal mass (numpy's weighted sampling without
      replacement), so a row-stochastic matrix with per-class flip rates keeps their ratios while
      the total stays exactly round(noise x N); a class whose row has no off-diagonal mass never
      flips. Each new label is drawn from the row's off-diagonal entries, normalised. Default
      matrix: i -> (i + 1) mod C, a common asymmetric-noise choice.

    ``num_labels`` defaults to the matrix's size or ``max(labels) + 1``. Rounding is half up
    (:func:`datacarto._validation.round_half_up`).
    """
    y = _as_labels(labels)
    check_choice(kind, NOISE_KINDS, "noise kind")
    noise = check_fraction(noise, "noise", high_open=True)
    if matrix is not None and kind != "class-conditional":
        raise DatacartoError("a noise matrix needs kind='class-conditional'")
    c, matrix = _num_labels(y, num_labels, matrix)
    n = len(y)
    k = n_flips(noise, n)
    rng = np.random.default_rng(seed)
    noisy = y.copy()
    flipped = np.zeros(n, dtype=bool)
    if k == 0:
        return noisy, flipped
    if kind == "uniform":
        rows = rng.choice(n, size=k, replace=False)
        noisy[rows] = (y[rows] + rng.integers(1, c, size=k)) % c
    else:
        rows, noisy[rows] = _class_conditional_flips(y, k, next_class_matrix(c) if matrix is None else matrix, rng)
    flipped[rows] = True
    assert (noisy[flipped] != y[flipped]).all()
    return noisy, flipped


def _num_labels(y: np.ndarray, num_labels: int | None, matrix) -> tuple[int, np.ndarray | None]:
    """(number of classes C, the matrix as a float array or None), both checked against ``y``."""
    if matrix is not None:
        matrix = np.asarray(matrix, dtype=float)
        if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1]:
            raise DatacartoError(f"the noise matrix must be square (C x C), got shape {matrix.shape}")
        if num_labels is not None and matrix.shape[0] != int(num_labels):
            raise DatacartoError(f"the noise matrix is {matrix.shape[0]} x {matrix.shape[1]} but there are "
                                 f"{num_labels} labels")
        num_labels = matrix.shape[0]
    c = int(num_labels) if num_labels is not None else int(y.max()) + 1
    if c < 2:
        raise DatacartoError(f"label noise needs at least 2 labels, got {c}")
    if y.max() >= c:
        raise DatacartoError(f"label {int(y.max())} is out of range for {c} labels")
    return c, matrix


def _class_conditional_flips(y: np.ndarray, k: int, matrix: np.ndarray,
                             rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(rows to flip, their new labels): rows weighted by their class's off-diagonal mass."""
    m = matrix.copy()
    if not np.isfinite(m).all() or (m < 0).any():
        raise DatacartoError("the noise matrix must hold finite, non-negative numbers")
    np.fill_diagonal(m, 0.0)
    mass = m.sum(axis=1)
    weights = mass[y]
    flippable = int((weights > 0).sum())
    if flippable < k:
        zero = [i for i in range(len(m)) if mass[i] == 0]
        raise DatacartoError(
            f"cannot flip {k} labels: only {flippable} examples belong to classes the noise matrix "
            f"lets flip (rows {zero} have no off-diagonal mass)")
    rows = rng.choice(len(y), size=k, replace=False, p=weights / weights.sum())
    # draw each new label from its row's off-diagonal distribution (inverse CDF, vectorised);
    # the CDF is pinned to 1 from each row's last allowed class on, so round-off cannot step past it
    cdf = np.cumsum(m / np.where(mass > 0, mass, 1.0)[:, None], axis=1)
    for i in np.flatnonzero(mass > 0):
        cdf[i, np.flatnonzero(m[i])[-1]:] = 1.0
    return rows, (cdf[y[rows]] <= rng.random(k)[:, None]).sum(axis=1)


def _as_labels(labels) -> np.ndarray:
    y = np.asarray(labels)
    if y.ndim != 1:
        raise DatacartoError(f"labels must be one-dimensional, got shape {y.shape}")
    if len(y) == 0:
        raise DatacartoError("no labels given")
    y = check_int_labels(y, "labels")
    if y.min() < 0:
        raise DatacartoError(f"labels must be >= 0, got {int(y.min())}")
    return y


# ----------------------------------------------------------------------------------------------
# scoring


def noisy_mask(metrics: pd.DataFrame, is_noisy, *, allow_one_class: bool = False) -> np.ndarray:
    """``is_noisy`` as a bool array aligned with ``metrics`` rows (a Series by row id); validated.

    Raises DatacartoError on missing values, non-boolean values, or (unless ``allow_one_class``)
    when no row or every row is marked noisy: then there is nothing to tell apart.
    """
    if not isinstance(metrics, pd.DataFrame):
        raise DatacartoError(f"metrics must be a pandas DataFrame, got {type(metrics).__name__}")
    if isinstance(is_noisy, pd.Series):
        if len(is_noisy) != len(metrics):
            raise DatacartoError(f"is_noisy has {len(is_noisy)} rows but the metrics have {len(metrics)}")
        if not is_noisy.index.equals(metrics.index):
            missing = metrics.index.difference(is_noisy.index)
            if len(missing):
                raise DatacartoError(f"is_noisy has no value for {len(missing)} metrics rows "
                                     f"(e.g. row id {missing[0]})")
            is_noisy = is_noisy.reindex(metrics.index)
        values = is_noisy.to_numpy()
    else:
        values = np.asarray(is_noisy)
        if values.ndim != 1 or len(values) != len(metrics):
            raise DatacartoError(f"is_noisy has {values.size} values but the metrics have {len(metrics)} rows")
    if values.dtype == object:
        if pd.isna(values).any():
            raise DatacartoError("is_noisy has missing values")
        values = values.astype(float)
    if values.dtype.kind == "f" and np.isnan(values).any():
        raise DatacartoError("is_noisy has missing values")
    if values.dtype.kind not in "biuf" or not np.isin(values, (0, 1)).all():
        raise DatacartoError("is_noisy must hold booleans (or 0/1)")
    mask = values.astype(bool)
    n_noisy = int(mask.sum())
    if allow_one_class:
        return mask
    if n_noisy == 0:
        raise DatacartoError("no example is marked noisy: nothing to find")
    if n_noisy == len(mask):
        raise DatacartoError("every example is marked noisy: there is nothing to tell apart")
    return mask


def check_score_names(scores) -> None:
    """Unknown score names fail at once, before anything trains (a mapping may name custom columns)."""
    if scores is None or isinstance(scores, Mapping):
        return
    unknown = [s for s in ([scores] if isinstance(scores, str) else scores) if s not in SCORES]
    if unknown:
        raise DatacartoError(f"unknown score(s) {unknown}: known scores are {list(SCORES)}")


def _resolve_scores(metrics: pd.DataFrame, scores) -> dict[str, str]:
    """Score name -> direction. None: every score of the label audit present in ``metrics``."""
    if scores is None:
        default = score_directions("labels")
        chosen = {s: d for s, d in default.items() if s in metrics.columns}
        if not chosen:
            raise DatacartoError(f"the metrics hold none of the scores {list(default)} "
                                 f"(columns: {list(metrics.columns)})")
        return chosen
    if isinstance(scores, str):
        scores = [scores]
    if isinstance(scores, Mapping):
        items = list(scores.items())
    else:
        items = [(s, SCORES[s].direction if s in SCORES else None) for s in scores]
    if not items:
        raise DatacartoError("no scores given")
    chosen = {}
    for name, direction in items:
        if direction is None:
            raise DatacartoError(f"unknown score {name!r}: known scores are {list(SCORES)}; "
                                 "give a custom one as {name: 'low' | 'high'}")
        if direction not in ("low", "high"):
            raise DatacartoError(f"direction of score {name!r} must be 'low' or 'high', got {direction!r}")
        if name not in metrics.columns:
            raise DatacartoError(f"score {name!r} is not a column of the metrics")
        chosen[name] = direction
    return chosen


def suspicion(metrics: pd.DataFrame, name: str, direction: str) -> np.ndarray:
    """Score ``name`` of ``metrics`` oriented so that higher = more suspicious (NaN kept)."""
    try:
        values = metrics[name].to_numpy(dtype=float)
    except (TypeError, ValueError) as e:
        raise DatacartoError(f"score {name!r} is not numeric") from e
    return values if direction == "high" else -values


def precision_recall_at_k(suspicion: np.ndarray, noisy: np.ndarray, k: int) -> tuple[float, float]:
    """Precision and recall of the top ``k`` by suspicion, ties at the cut shared out evenly.

    Discrete scores (correctness, forgetfulness) tie a lot; instead of an arbitrary order we take
    the expected value over random tie-breaking, so the number does not depend on row order.
    """
    k = min(int(k), len(suspicion))
    if k <= 0:
        return float("nan"), float("nan")
    order = np.sort(suspicion)[::-1]
    cut = order[k - 1]
    above = suspicion > cut
    tied = suspicion == cut
    n_above = int(above.sum())
    hits = noisy[above].sum() + (k - n_above) * noisy[tied].sum() / tied.sum()
    return float(hits / k), float(hits / noisy.sum())


def precision_at_recall(suspicion: np.ndarray, noisy: np.ndarray, recall: float) -> float:
    """The best precision of any cut of the ranking by ``suspicion`` that finds ``recall`` of ``noisy``.

    No single cut of this ranking that flags that share of the noisy rows is more precise
    (interpolated precision; a cut never splits tied scores). Rows whose score is NaN are left out.

    >>> precision_at_recall(np.array([0.9, 0.8, 0.7, 0.1]), np.array([True, False, True, False]), 1.0)
    0.6666666666666666
    """
    from sklearn.metrics import precision_recall_curve

    recall = check_fraction(recall, "recall", low_open=True)
    suspicion, noisy = np.asarray(suspicion, dtype=float), np.asarray(noisy, dtype=bool)
    scored = ~np.isnan(suspicion)  # as audit_scores: a row without a score is left out
    if not noisy[scored].any():
        raise DatacartoError("precision at a recall needs at least one noisy row with a score")
    precision, reached, _ = precision_recall_curve(noisy[scored], suspicion[scored])
    return float(precision[reached >= recall].max())


def audit_scores(metrics: pd.DataFrame, is_noisy, *, scores=None) -> pd.DataFrame:
    """How well each score ranks the noisy examples first; one row per score, best AUROC first.

    ``is_noisy``: bools aligned with the metrics rows (a Series is aligned by row id). ``scores``:
    None (every score of the label audit present: ``score_directions("labels")``), a list of names
    of :data:`~datacarto.metrics.SCORES`, or a mapping
    ``{name: "low" | "high"}`` (which end is suspicious) for any numeric column.

    Columns: ``score``, ``direction``, ``auroc`` (chance 0.5), ``average_precision`` (chance =
    noise rate), ``precision_at_k`` and ``recall_at_k`` with k = number of noisy examples (equal to
    each other when every row is scored; chance = noise rate), ``n`` (rows scored: rows where the
    score is NaN are left out of that score).
    """
    from sklearn.metrics import average_precision_score, roc_auc_score

    noisy = noisy_mask(metrics, is_noisy)
    chosen = _resolve_scores(metrics, scores)
    k = int(noisy.sum())
    rows = []
    for name, direction in chosen.items():
        s = suspicion(metrics, name, direction)
        ok = ~np.isnan(s)
        s, y = s[ok], noisy[ok]
        row = {"score": name, "direction": direction, "n": int(ok.sum())}
        if 0 < y.sum() < len(y):
            row["auroc"] = float(roc_auc_score(y, s))
            row["average_precision"] = float(average_precision_score(y, s))
            row["precision_at_k"], row["recall_at_k"] = precision_recall_at_k(s, y, k)
        else:
            row.update(auroc=np.nan, average_precision=np.nan, precision_at_k=np.nan, recall_at_k=np.nan)
        rows.append(row)
    table = pd.DataFrame(rows, columns=list(AUDIT_COLUMNS))
    table = table.sort_values(["auroc", "average_precision"], ascending=False, na_position="last",
                              kind="stable")
    return table.reset_index(drop=True)


def chance_level(is_noisy) -> dict[str, float]:
    """What a random ranking scores: AUROC 0.5; AP, precision@k and recall@k = the noise rate."""
    rate = float(np.asarray(is_noisy, dtype=bool).mean())
    return {"auroc": 0.5, "average_precision": rate, "precision_at_k": rate, "recall_at_k": rate}


def noise_by_region(metrics: pd.DataFrame, is_noisy) -> pd.DataFrame:
    """Where the noisy examples landed on the data map, one row per region plus ``all``.

    Columns: ``n`` (examples in the region), ``n_flipped``, ``flipped_share`` (share of the region
    that is flipped; compare with the ``all`` row, the noise rate) and ``share_of_flipped`` (share
    of all flipped examples that fell in the region). Needs a ``region`` column (``get_metrics``
    adds one); without it regions are assigned with ``datacarto.metrics.assign_regions``. With no
    noisy example, ``share_of_flipped`` is NaN.
    """
    noisy = noisy_mask(metrics, is_noisy, allow_one_class=True)
    if "region" in metrics.columns:
        region = metrics["region"]
    else:
        from .metrics import assign_regions

        region = assign_regions(metrics)
    region = pd.Series(np.asarray(region, dtype=object), name="region")
    if region.isna().any():
        region = region.fillna("(none)")
    known = REGIONS
    order = list(known) + sorted(set(region) - set(known), key=str)
    frame = pd.DataFrame({"region": region.to_numpy(), "flipped": noisy})
    grouped = frame.groupby("region", sort=False)["flipped"].agg(["size", "sum"]).reindex(order, fill_value=0)
    out = pd.DataFrame({"n": grouped["size"].astype(int), "n_flipped": grouped["sum"].astype(int)})
    out.loc["all"] = [len(noisy), int(noisy.sum())]
    out["flipped_share"] = out["n_flipped"] / out["n"].where(out["n"] > 0)
    out["share_of_flipped"] = out["n_flipped"] / (int(noisy.sum()) or np.nan)
    out.index.name = "region"
    return out



# ----------------------------------------------------------------------------------------------
# reports


def format_table(table: pd.DataFrame, chance: Mapping[str, float] | None = None) -> str:
    """The per-score table as plain aligned text (for the terminal)."""
    header = f"{'score':<16} {'dir':<4} {'AUROC':>6} {'AP':>6} {'P@k':>6} {'R@k':>6} {'n':>7}"
    lines = [header, "-" * len(header)]

    def num(v):
        return "   nan" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:6.3f}"

    for r in table.itertuples():
        lines.append(f"{r.score:<16} {r.direction:<4} {num(r.auroc)} {num(r.average_precision)} "
                     f"{num(r.precision_at_k)} {num(r.recall_at_k)} {r.n:>7d}")
    if chance:
        lines.append(f"{'(chance)':<16} {'':<4} {num(chance['auroc'])} {num(chance['average_precision'])} "
                     f"{num(chance['precision_at_k'])} {num(chance['recall_at_k'])}")
    return "\n".join(lines)


def format_regions(regions: pd.DataFrame, *, word: str = "flipped") -> str:
    """The region spread as plain aligned text; ``word`` names the noisy labels ("flipped", "noisy")."""
    plural = "flips" if word == "flipped" else word
    header = f"{'region':<16} {'n':>7} {word:>8} {'% ' + word:>10} {'% of ' + plural:>11}"
    lines = [header, "-" * len(header)]
    for name, r in regions.iterrows():
        share = "-" if pd.isna(r.flipped_share) else f"{100 * r.flipped_share:9.1f}%"
        lines.append(f"{name!s:<16} {int(r.n):>7d} {int(r.n_flipped):>8d} {share:>10} "
                     f"{100 * r.share_of_flipped:10.1f}%")
    return "\n".join(lines)

