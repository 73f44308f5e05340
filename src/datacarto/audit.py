"""Label-noise audit: inject known label flips, train, and measure how well each score finds them.

The paper reports that hard-to-learn examples "often correspond to labeling errors". The audit
turns that into numbers for one model and data set: flip a known share of the training labels,
train with recording, then rank the examples by each per-example score and ask how well the
ranking puts the flipped ones first (AUROC, average precision, precision and recall at k, where
k is the number of flipped examples). See docs/audit.md for how to read the results.

The scoring part (``inject_label_noise``, ``audit_scores``, ``noise_by_region``) is NumPy, pandas
and scikit-learn only; torch and transformers are imported only by ``run_audit`` when it trains.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .errors import DatacartoError
from .metrics import REGIONS

#: Which end of each score is suspicious (more likely a wrong label): "low" or "high".
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
SCORE_DIRECTIONS: dict[str, str] = {
    "confidence": "low",
    "aum": "low",
    "correctness": "low",
    "self_confidence": "low",
    "forgetfulness": "high",
    "el2n": "high",
    "el2n_mean": "high",
    "last_loss": "high",
    "variability": "high",
    "aleatoric": "high",
}

NOISE_KINDS = ("uniform", "class-conditional")
AUDIT_COLUMNS = ("score", "direction", "auroc", "average_precision", "precision_at_k", "recall_at_k", "n")


# ----------------------------------------------------------------------------------------------
# noise injection


def n_flips(noise: float, n: int) -> int:
    """round(noise x n), rounding halves up (so 0.5 -> 1, not Python's banker's rounding)."""
    return int(math.floor(noise * n + 0.5))


def next_class_matrix(num_labels: int) -> np.ndarray:
    """The default class-conditional matrix: class i always flips to (i + 1) mod C."""
    matrix = np.zeros((num_labels, num_labels))
    matrix[np.arange(num_labels), (np.arange(num_labels) + 1) % num_labels] = 1.0
    return matrix


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

    ``num_labels`` defaults to the matrix's size or ``max(labels) + 1``. Rounding is half up.
    """
    y = _as_labels(labels)
    if kind not in NOISE_KINDS:
        raise DatacartoError(f"noise kind must be one of {NOISE_KINDS}, got {kind!r}")
    try:
        noise = float(noise)
    except (TypeError, ValueError) as e:
        raise DatacartoError(f"noise must be a number in [0, 1), got {noise!r}") from e
    if not 0.0 <= noise < 1.0:
        raise DatacartoError(f"noise must be in [0, 1), got {noise}")
    if matrix is not None and kind != "class-conditional":
        raise DatacartoError("a noise matrix needs kind='class-conditional'")
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
        m = next_class_matrix(c) if matrix is None else matrix.copy()
        if not np.isfinite(m).all() or (m < 0).any():
            raise DatacartoError("the noise matrix must hold finite, non-negative numbers")
        np.fill_diagonal(m, 0.0)
        mass = m.sum(axis=1)
        weights = mass[y]
        flippable = int((weights > 0).sum())
        if flippable < k:
            zero = [i for i in range(c) if mass[i] == 0]
            raise DatacartoError(
                f"cannot flip {k} labels: only {flippable} examples belong to classes the noise matrix "
                f"lets flip (rows {zero} have no off-diagonal mass)")
        rows = rng.choice(n, size=k, replace=False, p=weights / weights.sum())
        # draw each new label from its row's off-diagonal distribution (inverse CDF, vectorised);
        # the CDF is pinned to 1 from each row's last allowed class on, so round-off cannot step past it
        cdf = np.cumsum(m / np.where(mass > 0, mass, 1.0)[:, None], axis=1)
        for i in np.flatnonzero(mass > 0):
            cdf[i, np.flatnonzero(m[i])[-1]:] = 1.0
        new = (cdf[y[rows]] <= rng.random(k)[:, None]).sum(axis=1)
        noisy[rows] = new
    flipped[rows] = True
    assert (noisy[flipped] != y[flipped]).all()
    return noisy, flipped


def _as_labels(labels) -> np.ndarray:
    y = np.asarray(labels)
    if y.ndim != 1:
        raise DatacartoError(f"labels must be one-dimensional, got shape {y.shape}")
    if len(y) == 0:
        raise DatacartoError("no labels given")
    if y.dtype.kind == "f" and np.isfinite(y).all() and (y == np.round(y)).all():
        y = y.astype(np.int64)
    if y.dtype.kind not in "iub":
        raise DatacartoError(f"labels must be integer class ids, got {y.dtype}")
    y = y.astype(np.int64)
    if y.min() < 0:
        raise DatacartoError(f"labels must be >= 0, got {int(y.min())}")
    return y


# ----------------------------------------------------------------------------------------------
# scoring


def _noisy_mask(metrics: pd.DataFrame, is_noisy) -> np.ndarray:
    """``is_noisy`` as a bool array aligned with ``metrics`` rows; validated."""
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
    if n_noisy == 0:
        raise DatacartoError("no example is marked noisy: nothing to find")
    if n_noisy == len(mask):
        raise DatacartoError("every example is marked noisy: there is nothing to tell apart")
    return mask


def _resolve_scores(metrics: pd.DataFrame, scores) -> dict[str, str]:
    """Score name -> direction. None: every known score present in ``metrics``."""
    if scores is None:
        chosen = {s: d for s, d in SCORE_DIRECTIONS.items() if s in metrics.columns}
        if not chosen:
            raise DatacartoError(f"the metrics hold none of the scores {list(SCORE_DIRECTIONS)} "
                                 f"(columns: {list(metrics.columns)})")
        return chosen
    if isinstance(scores, str):
        scores = [scores]
    if isinstance(scores, Mapping):
        items = list(scores.items())
    else:
        items = [(s, SCORE_DIRECTIONS.get(s)) for s in scores]
    if not items:
        raise DatacartoError("no scores given")
    chosen = {}
    for name, direction in items:
        if direction is None:
            raise DatacartoError(f"unknown score {name!r}: known scores are {list(SCORE_DIRECTIONS)}; "
                                 "give a custom one as {name: 'low' | 'high'}")
        if direction not in ("low", "high"):
            raise DatacartoError(f"direction of score {name!r} must be 'low' or 'high', got {direction!r}")
        if name not in metrics.columns:
            raise DatacartoError(f"score {name!r} is not a column of the metrics")
        chosen[name] = direction
    return chosen


def _suspicion(metrics: pd.DataFrame, name: str, direction: str) -> np.ndarray:
    """The score oriented so that higher = more suspicious (NaN kept)."""
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


def audit_scores(metrics: pd.DataFrame, is_noisy, *, scores=None) -> pd.DataFrame:
    """How well each score ranks the noisy examples first; one row per score, best AUROC first.

    ``is_noisy``: bools aligned with the metrics rows (a Series is aligned by row id). ``scores``:
    None (every score of ``SCORE_DIRECTIONS`` present), a list of known names, or a mapping
    ``{name: "low" | "high"}`` (which end is suspicious) for any numeric column.

    Columns: ``score``, ``direction``, ``auroc`` (chance 0.5), ``average_precision`` (chance =
    noise rate), ``precision_at_k`` and ``recall_at_k`` with k = number of noisy examples (equal to
    each other when every row is scored; chance = noise rate), ``n`` (rows scored: rows where the
    score is NaN are left out of that score).
    """
    from sklearn.metrics import average_precision_score, roc_auc_score

    noisy = _noisy_mask(metrics, is_noisy)
    chosen = _resolve_scores(metrics, scores)
    k = int(noisy.sum())
    rows = []
    for name, direction in chosen.items():
        s = _suspicion(metrics, name, direction)
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
    adds one); without it regions are assigned with ``datacarto.metrics.assign_regions``.
    """
    noisy = _noisy_mask(metrics, is_noisy)
    if "region" in metrics.columns:
        region = metrics["region"]
    else:
        try:
            from .metrics import assign_regions
        except ImportError as e:
            raise DatacartoError("the metrics have no 'region' column") from e
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
    out["share_of_flipped"] = out["n_flipped"] / int(noisy.sum())
    out.index.name = "region"
    return out


# ----------------------------------------------------------------------------------------------
# plot


def plot_roc_curves(metrics: pd.DataFrame, is_noisy, path: str | os.PathLike | None = None, *, scores=None,
                    title: str | None = None):
    """One ROC curve per score (AUROC in the legend, best first) and the chance diagonal.

    Returns the matplotlib ``Figure`` (Agg canvas, no pyplot state); saved atomically to ``path``
    when given (format from its extension).
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from sklearn.metrics import roc_curve

    noisy = _noisy_mask(metrics, is_noisy)
    table = audit_scores(metrics, noisy, scores=scores)
    fig = Figure(figsize=(6.4, 5.6))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    for row in table.itertuples():
        s = _suspicion(metrics, row.score, row.direction)
        ok = ~np.isnan(s)
        if np.isnan(row.auroc):
            continue
        fpr, tpr, _ = roc_curve(noisy[ok], s[ok])
        style = "-" if row.Index < 10 else "--"
        ax.plot(fpr, tpr, style, lw=1.6, label=f"{row.score} ({row.direction}) AUROC {row.auroc:.3f}")
    ax.plot([0, 1], [0, 1], ":", color="grey", lw=1, label="chance (0.500)")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.01)
    ax.set_xlabel("false positive rate (clean examples flagged)")
    ax.set_ylabel("true positive rate (flipped labels found)")
    ax.set_title(title or f"Finding {int(noisy.sum())} flipped labels among {len(noisy)}")
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    if path is not None:
        from ._io import atomic_write

        path = Path(path)
        fmt = path.suffix.lstrip(".").lower() or "png"
        atomic_write(path, lambda tmp: fig.savefig(tmp, format=fmt, dpi=120))
    return fig


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


def format_regions(regions: pd.DataFrame) -> str:
    """The region spread as plain aligned text."""
    header = f"{'region':<16} {'n':>7} {'flipped':>8} {'% flipped':>10} {'% of flips':>11}"
    lines = [header, "-" * len(header)]
    for name, r in regions.iterrows():
        share = "-" if pd.isna(r.flipped_share) else f"{100 * r.flipped_share:9.1f}%"
        lines.append(f"{name!s:<16} {int(r.n):>7d} {int(r.n_flipped):>8d} {share:>10} "
                     f"{100 * r.share_of_flipped:10.1f}%")
    return "\n".join(lines)


@dataclass
class AuditResult:
    """What an audit found; ``scores`` and ``regions`` are the tables also written to audit.json."""

    scores: pd.DataFrame
    regions: pd.DataFrame
    n_examples: int
    n_flipped: int
    output_dir: Path
    is_flipped: pd.Series = field(repr=False)
    metrics: pd.DataFrame = field(repr=False)
    config: dict[str, Any] = field(default_factory=dict)

    @property
    def best(self) -> str:
        return str(self.scores["score"].iloc[0])

    def summary(self) -> str:
        """The printed report: both tables in plain text."""
        chance = chance_level(self.is_flipped.to_numpy())
        return "\n".join([
            f"{self.n_flipped} of {self.n_examples} labels flipped "
            f"({100 * self.n_flipped / self.n_examples:.1f}%); best score: {self.best}",
            "",
            format_table(self.scores, chance),
            "",
            format_regions(self.regions),
        ])


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    out = []
    for rec in frame.to_dict(orient="records"):
        out.append({k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in rec.items()})
    return out


def audit_frame(metrics: pd.DataFrame, is_noisy: pd.Series, output_dir: str | os.PathLike, *, scores=None,
                config: Mapping[str, Any] | None = None, extra: Mapping[str, Any] | None = None) -> AuditResult:
    """Score, spread by region, and write ``audit.json`` and ``roc.png`` under ``output_dir``."""
    from ._io import write_json_atomic

    output_dir = Path(output_dir)
    noisy = pd.Series(_noisy_mask(metrics, is_noisy), index=metrics.index, name="is_flipped")
    table = audit_scores(metrics, noisy, scores=scores)
    regions = noise_by_region(metrics, noisy)
    result = AuditResult(scores=table, regions=regions, n_examples=len(noisy), n_flipped=int(noisy.sum()),
                         output_dir=output_dir, is_flipped=noisy, metrics=metrics, config=dict(config or {}))
    report = {
        "config": result.config,
        "n_examples": result.n_examples,
        "n_flipped": result.n_flipped,
        "noise_rate": result.n_flipped / result.n_examples,
        "chance": chance_level(noisy.to_numpy()),
        "best_score": result.best,
        "scores": _records(table),
        "regions": _records(regions.reset_index()),
        **dict(extra or {}),
    }
    write_json_atomic(output_dir / "audit.json", report)
    plot_roc_curves(metrics, noisy, output_dir / "roc.png", scores=scores)
    return result


def audit_run(run_dir: str | os.PathLike, *, noisy_column: str | None = "is_flipped",
              true_label_column: str | None = None, output_dir: str | os.PathLike | None = None,
              scores=None, split: str = "train") -> AuditResult:
    """Audit an existing run whose training data carries the truth.

    Either ``noisy_column`` (bools: this label is wrong) or ``true_label_column`` (the correct label;
    noisy = it differs from the trained label) is read from the run's ``examples.parquet``.
    Writes ``audit.json`` and ``roc.png`` to ``output_dir`` (default: the run dir).
    """
    from .dynamics.store import load_examples
    from .metrics import get_metrics

    run_dir = Path(run_dir)
    if not run_dir.exists():
        raise DatacartoError(f"run folder not found: {run_dir}")
    metrics = get_metrics(run_dir, split=split)
    examples = load_examples(run_dir, split=split)
    if examples is None:
        raise DatacartoError(f"{run_dir} has no examples.parquet: cannot read the noise truth")
    if true_label_column is not None:
        if true_label_column not in examples.columns:
            raise DatacartoError(f"column {true_label_column!r} not in the run's examples "
                                 f"(columns: {list(examples.columns)})")
        truth = examples[true_label_column].to_numpy() != examples["label"].to_numpy()
        noisy = pd.Series(truth, index=examples.index)
        what = {"true_label_column": true_label_column}
    else:
        if noisy_column not in examples.columns:
            raise DatacartoError(f"column {noisy_column!r} not in the run's examples "
                                 f"(columns: {list(examples.columns)})")
        noisy = examples[noisy_column]
        what = {"noisy_column": noisy_column}
    config = {"run": str(run_dir), "split": split, **what}
    return audit_frame(metrics, noisy, output_dir or run_dir, scores=scores, config=config)


def run_audit(*, dataset, model: str, output_dir: str | os.PathLike, noise: float = 0.1,
              noise_kind: str = "uniform", matrix=None, seed: int = 0, text_columns: Sequence[str] | None = None,
              label_column: str = "label", label_names: Sequence[str] | None = None, validation=None,
              training_args=None, dynamics_mode: str = "training_pass", snapshots_per_epoch: int = 1,
              max_length: int = 128, scores=None, verbose: bool = False) -> AuditResult | None:
    """Inject label noise into ``dataset``, train ``model`` with recording, and audit the scores.

    Writes under ``output_dir``: ``noisy_train.jsonl`` (the training data as trained, with
    ``is_flipped`` and ``original_label`` columns, which also land in examples.parquet), the run
    (``training_dynamics/``, ``model/``), ``audit.json`` and ``roc.png``. ``dataset``: a hub name,
    a local file or a ``datasets.Dataset``; ``training_args``: as for ``train_baseline``.
    Returns None on the non-main ranks of a distributed run (only rank 0 scores and writes).
    """
    from ._io import write_frame
    from .data import load_table, prepare_labels
    from .dynamics.store import load_examples
    from .metrics import get_metrics
    from .train.baseline import train_baseline

    output_dir = Path(output_dir)
    ds = load_table(dataset) if isinstance(dataset, (str, os.PathLike)) else dataset
    ds, spec = prepare_labels(ds, text_columns=list(text_columns) if text_columns else None,
                              label_column=label_column, label_names=list(label_names) if label_names else None)
    taken = [c for c in ("is_flipped", "original_label") if c in ds.column_names]
    if taken:
        raise DatacartoError(f"the data set already has column(s) {taken}, which the audit writes; "
                             "rename them, or audit the existing run with --run")
    original = np.asarray(ds[spec.label_column], dtype=np.int64)
    noisy, flipped = inject_label_noise(original, noise, kind=noise_kind, num_labels=spec.num_labels,
                                        matrix=matrix, seed=seed)
    frame = ds.to_pandas()
    frame[spec.label_column] = noisy
    frame["is_flipped"] = flipped
    frame["original_label"] = original
    noisy_file = output_dir / "noisy_train.jsonl"
    write_frame(frame, noisy_file, index=False)

    # train on the saved file, so the run's manifest names the data it was trained on
    result = train_baseline(model=model, train=str(noisy_file), validation=validation, text_columns=spec.text_columns,
                            label_column=spec.label_column, label_names=spec.label_names,
                            output_dir=output_dir, training_args=training_args, dynamics_mode=dynamics_mode,
                            snapshots_per_epoch=snapshots_per_epoch, max_length=max_length)
    trainer = getattr(result, "trainer", None)
    if trainer is not None and not trainer.is_world_process_zero():
        return None
    run_dir = Path(result.output_dir)
    metrics = get_metrics(run_dir)
    examples = load_examples(run_dir)
    if examples is None or "is_flipped" not in examples.columns:
        raise DatacartoError(f"the run at {run_dir} did not record the is_flipped column in examples.parquet")
    truth = examples["is_flipped"]
    recorded = examples["label"].to_numpy()
    if len(recorded) != len(noisy) or (recorded != noisy).any():
        raise DatacartoError("the recorded training labels differ from the noisy labels the audit injected")
    transitions = pd.crosstab(pd.Series(original[flipped], name="original"),
                              pd.Series(noisy[flipped], name="noisy"))
    config = {
        "dataset": str(dataset) if isinstance(dataset, (str, os.PathLike)) else None,
        "model": str(model), "noise": float(noise), "noise_kind": noise_kind, "seed": int(seed),
        "matrix": None if matrix is None else np.asarray(matrix, dtype=float).tolist(),
        "text_columns": spec.text_columns, "label_column": spec.label_column, "label_names": spec.label_names,
        "dynamics_mode": dynamics_mode, "snapshots_per_epoch": int(snapshots_per_epoch),
        "max_length": int(max_length),
        "epochs": int(metrics["n_epochs_used"].max()) if "n_epochs_used" in metrics else None,
        "noisy_train": str(noisy_file),
    }
    extra = {"flips": {f"{spec.label_names[i]} -> {spec.label_names[j]}": int(transitions.loc[i, j])
                       for i in transitions.index for j in transitions.columns if transitions.loc[i, j]}}
    audit = audit_frame(metrics, truth, run_dir, scores=scores, config=config, extra=extra)
    if verbose:
        print(audit.summary())
    return audit
