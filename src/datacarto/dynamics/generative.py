"""The per-token statistics a causal-LM run stores beside its pseudo-logits, and the metrics they give.

Epoch files of a ``task: causal-lm`` run carry ``nll`` (mean token NLL of the response),
``token_accuracy`` and ``n_tokens`` per example (docs/format.md, docs/generative.md).
``load_dynamics`` ignores them; :func:`load_token_stats` reads them, sorted by row id (format 1 or 2).
"""

from __future__ import annotations

import os

import numpy as np
import pandas as pd

from ..errors import DatacartoError
from ..tasks import DEFAULT_TASK, TASK_TYPES
from .store import dynamics_dir, open_dynamics, read_manifest

STATS = ("nll", "token_accuracy", "n_tokens")


def is_generative(run_dir: str | os.PathLike, split: str = "train") -> bool:
    """The run's task is generative (its registry entry's ``generative``; a task not registered here: no)."""
    entry = TASK_TYPES.get(read_manifest(dynamics_dir(run_dir, split)).get("task") or DEFAULT_TASK)
    return entry is not None and entry.generative


def load_token_stats(run_dir: str | os.PathLike, split: str = "train") -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """(row ids (N,), {"nll", "token_accuracy", "n_tokens"}: (N, E) float64) of a causal-LM run."""
    dyn = open_dynamics(run_dir, split)  # the epochs' keys checked once, logits not read
    out = {name: [] for name in STATS}
    for j, path in enumerate(dyn.logits.files.values()):
        if not set(STATS) <= set(dyn.logits.columns(j)):
            raise DatacartoError(f"{path} holds no per-token statistics (nll, token_accuracy, n_tokens): "
                                 "not a causal-LM run")
        for name in STATS:
            out[name].append(dyn.logits.column(j, name).astype(np.float64))
    return dyn.ids, {name: np.stack(values, axis=1) for name, values in out.items()}


def loss_trajectories(run_dir: str | os.PathLike, split: str = "train") -> pd.DataFrame:
    """Each example's mean token NLL per epoch (columns ``epoch_0`` ...), indexed by ``row_id`` (S2L's input)."""
    ids, stats = load_token_stats(run_dir, split)
    frame = pd.DataFrame(stats["nll"], index=pd.Index(ids, name="row_id"))
    frame.columns = [f"epoch_{j}" for j in range(frame.shape[1])]
    return frame


def with_generative_metrics(metrics: pd.DataFrame, run_dir: str | os.PathLike, split: str = "train",
                            burn_out: int | None = None) -> pd.DataFrame:
    """``correctness`` as the mean token accuracy over epochs, plus ``nll`` (mean over epochs) and ``n_tokens``.

    Confidence and variability already are the mean and spread of exp(-mean NLL) (the
    pseudo-logits), so only the token-level columns come from the stored statistics.
    """
    ids, stats = load_token_stats(run_dir, split)
    epochs = slice(None, burn_out) if burn_out else slice(None)
    frame = pd.DataFrame({"correctness": np.nanmean(stats["token_accuracy"][:, epochs], axis=1),
                          "nll": np.nanmean(stats["nll"][:, epochs], axis=1),
                          "n_tokens": stats["n_tokens"][:, 0]}, index=pd.Index(ids, name="row_id"))
    out = metrics.copy()
    for column in frame.columns:
        out[column] = frame[column].reindex(out.index).to_numpy()
    out.attrs.update(metrics.attrs)
    return out


def run_trajectories(run_dir: str | os.PathLike, split: str = "train", burn_out: int | None = None) -> pd.DataFrame:
    """Each example's loss per epoch (columns ``epoch_0`` ...), by ``row_id``: S2L's input.

    A causal-LM run's stored mean token NLL (:func:`loss_trajectories`), else -log p(gold) per
    epoch of a run with one unit per example; ``burn_out``: the first N epochs only.
    """
    from .regression import is_numeric, squared_errors
    from .store import load_dynamics

    if is_generative(run_dir, split):
        frame = loss_trajectories(run_dir, split)
    elif is_numeric(run_dir, split):  # a regression's trajectory: its squared error per epoch
        frame = squared_errors(run_dir, split)
    else:
        dyn = load_dynamics(run_dir, split)
        if dyn.unit_level:
            raise DatacartoError("trajectory-clusters selection needs one unit per example (a classifier or "
                                 "causal-LM run), not a multi-label or token-classification run")
        z = dyn.logits.astype(np.float64)
        lse = np.log(np.exp(z - z.max(-1, keepdims=True)).sum(-1)) + z.max(-1)
        loss = lse - np.take_along_axis(z, dyn.gold[:, None, None].repeat(z.shape[1], 1), -1)[..., 0]
        frame = pd.DataFrame(loss, index=pd.Index(dyn.ids, name="row_id"),
                             columns=[f"epoch_{j}" for j in range(loss.shape[1])])
    return frame.iloc[:, :burn_out] if burn_out else frame
