"""Label-noise audit: inject known label flips, train, and measure how well each score finds them.

The paper reports that hard-to-learn examples "often correspond to labeling errors". The audit
turns that into numbers for one model and data set: flip a known share of the training labels,
train with recording, then rank the examples by each per-example score and ask how well the
ranking puts the flipped ones first. See docs/audit.md for how to read the results.

The scoring itself (``inject_label_noise``, ``audit_scores``, ``noise_by_region``) lives in the pure
:mod:`datacarto.noise` and is re-exported here; torch and transformers are imported only by
``run_audit`` when it trains.
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
from .noise import (
    AUDIT_COLUMNS,
    NOISE_KINDS,
    audit_scores,
    chance_level,
    format_regions,
    format_table,
    inject_label_noise,
    n_flips,
    next_class_matrix,
    noise_by_region,
    noisy_mask,
    precision_recall_at_k,
    suspicion,
)

# ----------------------------------------------------------------------------------------------
# plot


#: What the noisy labels are, by where the truth came from (the printed summary and the ROC plot).
INJECTED = "flipped labels"
TRUE_LABEL = "labels that differ from the true label"
MARKED = "labels marked wrong"


def noise_noun(config: Mapping[str, Any] | None) -> str:
    """How to name the noisy labels of an audit: flipped only when the audit flipped them itself."""
    config = config or {}
    if config.get("true_label_column"):
        return f"{TRUE_LABEL} (column {config['true_label_column']!r})"
    if config.get("noisy_column"):
        return f"{MARKED} (column {config['noisy_column']!r})"
    return INJECTED


def plot_roc_curves(metrics: pd.DataFrame, is_noisy, path: str | os.PathLike | None = None, *, scores=None,
                    title: str | None = None, noun: str = INJECTED):
    """One ROC curve per score (AUROC in the legend, best first) and the chance diagonal.

    Returns the matplotlib ``Figure`` (Agg canvas, no pyplot state); saved atomically to ``path``
    when given (format from its extension).
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from sklearn.metrics import roc_curve

    noisy = noisy_mask(metrics, is_noisy)
    table = audit_scores(metrics, noisy, scores=scores)
    fig = Figure(figsize=(6.4, 5.6))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    for row in table.itertuples():
        s = suspicion(metrics, row.score, row.direction)
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
    ax.set_ylabel("true positive rate (noisy labels found)")
    ax.set_title(title or f"Finding {int(noisy.sum())} {noun}\namong {len(noisy)}", fontsize=10)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    if path is not None:
        from ._io import atomic_write

        path = Path(path)
        fmt = path.suffix.lstrip(".").lower() or "png"
        atomic_write(path, lambda tmp: fig.savefig(tmp, format=fmt, dpi=120))
    return fig



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

    @property
    def noun(self) -> str:
        """What the noisy labels are: "flipped labels" only when the audit injected the flips."""
        return noise_noun(self.config)

    def summary(self) -> str:
        """The printed report: both tables in plain text."""
        chance = chance_level(self.is_flipped.to_numpy())
        share = f"({100 * self.n_flipped / self.n_examples:.1f}%); best score: {self.best}"
        what = self.noun.replace(TRUE_LABEL, "labels differ from the true label").replace(INJECTED, "labels flipped")
        head = f"{self.n_flipped} of {self.n_examples} {what} {share}"
        return "\n".join([
            head,
            "",
            format_table(self.scores, chance),
            "",
            format_regions(self.regions, word="flipped" if self.noun == INJECTED else "noisy"),
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
    noisy = pd.Series(noisy_mask(metrics, is_noisy), index=metrics.index, name="is_flipped")
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
        "noisy_labels": result.noun,
        "scores": _records(table),
        "regions": _records(regions.reset_index()),
        **dict(extra or {}),
    }
    write_json_atomic(output_dir / "audit.json", report)
    plot_roc_curves(metrics, noisy, output_dir / "roc.png", scores=scores, noun=result.noun)
    return result


def audit_run(run_dir: str | os.PathLike, *, noisy_column: str | None = "is_flipped",
              true_label_column: str | None = None, output_dir: str | os.PathLike | None = None,
              scores=None, split: str = "train") -> AuditResult:
    """Audit an existing run whose training data carries the truth.

    Either ``noisy_column`` (bools: this label is wrong) or ``true_label_column`` (the correct label;
    noisy = it differs from the trained label) is read from the run's ``examples.parquet``.
    Writes ``audit.json`` and ``roc.png`` to ``output_dir`` (default: the run dir).
    """
    from .dynamics.cache import get_metrics
    from .dynamics.store import load_examples

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
        if noisy.map(lambda v: isinstance(v, str)).any():
            raise DatacartoError(f"column {noisy_column!r} must hold true/false or 0/1 per example, got "
                                 f"{noisy[noisy.map(lambda v: isinstance(v, str))].iloc[0]!r}")
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
    from .noise import check_score_names

    check_score_names(scores)
    from ._io import write_frame
    from .data import load_table, prepare_labels
    from .dynamics.cache import get_metrics
    from .dynamics.store import load_examples
    from .models import classifier_head
    from .train.baseline import train_baseline

    output_dir = Path(output_dir)
    ds = load_table(dataset)
    ds, spec = prepare_labels(ds, text_columns=list(text_columns) if text_columns else None,
                              label_column=label_column, label_names=list(label_names) if label_names else None,
                              head=classifier_head(model))  # the model's classes: noise may flip into any of them
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


__all__ = ["AUDIT_COLUMNS", "NOISE_KINDS", "AuditResult", "audit_frame", "audit_run",
           "audit_scores", "chance_level", "format_regions", "format_table", "inject_label_noise", "n_flips",
           "next_class_matrix", "noise_by_region", "plot_roc_curves", "precision_recall_at_k", "run_audit"]
