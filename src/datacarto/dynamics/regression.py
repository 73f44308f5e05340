"""A regression run's stored predictions and gold scores, and the metrics they give.

Epoch files of a run whose task is numeric (``regression``) carry ``prediction`` and ``score`` (the
gold score) per example beside the pseudo-logits ``[0, z]`` (docs/format.md, docs/tasks.md).
``load_dynamics`` ignores them; :func:`load_scores` reads them, sorted by row id.
"""

from __future__ import annotations

import os

import numpy as np
import pandas as pd

from ..errors import DatacartoError
from ..tasks import DEFAULT_TASK, TASK_TYPES
from .store import dynamics_dir, open_dynamics, read_manifest

COLUMNS = ("prediction", "score")


def is_numeric(run_dir: str | os.PathLike, split: str = "train") -> bool:
    """The run's task has a numeric gold (its registry entry's ``numeric``)."""
    entry = TASK_TYPES.get(read_manifest(dynamics_dir(run_dir, split)).get("task") or DEFAULT_TASK)
    return entry is not None and entry.numeric


def load_scores(run_dir: str | os.PathLike, split: str = "train") -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """(row ids (N,), {"prediction", "score"}: (N, E) float64) of a regression run."""
    dyn = open_dynamics(run_dir, split)
    out = {name: [] for name in COLUMNS}
    for j, path in enumerate(dyn.logits.files.values()):
        if not set(COLUMNS) <= set(dyn.logits.columns(j)):
            raise DatacartoError(f"{path} holds no predictions and gold scores: not a regression run")
        for name in COLUMNS:
            out[name].append(dyn.logits.column(j, name).astype(np.float64))
    return dyn.ids, {name: np.stack(values, axis=1) for name, values in out.items()}


def squared_errors(run_dir: str | os.PathLike, split: str = "train") -> pd.DataFrame:
    """Each example's squared error per epoch (columns ``epoch_0`` ...), by ``row_id``: its trajectory."""
    ids, values = load_scores(run_dir, split)
    frame = pd.DataFrame((values["prediction"] - values["score"]) ** 2, index=pd.Index(ids, name="row_id"))
    frame.columns = [f"epoch_{j}" for j in range(frame.shape[1])]
    return frame


def with_regression_metrics(metrics: pd.DataFrame, run_dir: str | os.PathLike, split: str = "train",
                            burn_out: int | None = None) -> pd.DataFrame:
    """``gold_score``, ``prediction`` (last epoch) and ``squared_error`` (mean over epochs) added.

    Confidence, variability and correctness already come from the pseudo-logits (the closeness).
    """
    ids, values = load_scores(run_dir, split)
    epochs = slice(None, burn_out) if burn_out else slice(None)
    pred, gold = values["prediction"][:, epochs], values["score"][:, epochs]
    frame = pd.DataFrame({"gold_score": gold[:, 0], "prediction": pred[:, -1],
                          "squared_error": np.nanmean((pred - gold) ** 2, axis=1)}, index=pd.Index(ids, name="row_id"))
    out = metrics.copy()
    for column in frame.columns:
        out[column] = frame[column].reindex(out.index).to_numpy()
    out.attrs.update(metrics.attrs)
    return out
