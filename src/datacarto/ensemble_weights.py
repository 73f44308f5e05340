"""Ensemble weights: combine members' logits, tune the weights on validation (NumPy/SciPy only).

The numeric core of :class:`datacarto.train.ensemble.Ensemble`: ``combine_logits`` (a weighted mean
of logits or probabilities) and ``tune_weights`` (a simplex grid for up to
:data:`GRID_MAX_MEMBERS` members, log-loss minimisation above). No torch, no store.
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np

from .errors import DatacartoError

COMBINES = ("logits", "probs")
OBJECTIVES = ("accuracy", "log_loss")
#: members up to which weights are tuned on a simplex grid; above it, by log-loss minimisation
GRID_MAX_MEMBERS = 4




def _softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    z = x - x.max(axis=axis, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=axis, keepdims=True)


def _log_softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    z = x - x.max(axis=axis, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=axis, keepdims=True))


def check_weights(weights, n_members: int) -> np.ndarray:
    """Weights as float64 summing to 1; DatacartoError unless n_members finite values >= 0, sum > 0."""
    try:
        w = np.asarray(weights, dtype=np.float64).ravel()
    except (TypeError, ValueError) as e:
        raise DatacartoError(f"weights must be numbers: {e}") from e
    if w.size != n_members:
        raise DatacartoError(f"{w.size} weights given for {n_members} models")
    if not np.all(np.isfinite(w)) or np.any(w < 0) or w.sum() <= 0:
        raise DatacartoError(f"weights must be >= 0 with a positive sum, got {w.tolist()}")
    return w / w.sum()


def combine_logits(member_logits, weights, combine: str = "logits") -> np.ndarray:
    """(n, C) combined scores of (M, n, C) member logits.

    ``"logits"``: the weighted mean of logits (members with weight 0 are left out, so ``[1, 0]``
    returns model A's logits exactly). ``"probs"``: the log of the weighted mean of softmax
    probabilities (so a softmax of the result gives the mixed probabilities back).
    """
    if combine not in COMBINES:
        raise DatacartoError(f"combine must be one of {COMBINES}, got {combine!r}")
    L = np.asarray(member_logits)
    if L.ndim != 3:
        raise DatacartoError(f"member logits must be (models, examples, classes), got shape {L.shape}")
    w = check_weights(weights, L.shape[0])
    used = np.flatnonzero(w > 0)
    if combine == "logits":
        out = np.zeros(L.shape[1:], dtype=np.float64)
        for m in used:
            out += w[m] * L[m].astype(np.float64)
        return out.astype(np.float32)
    p = np.zeros(L.shape[1:], dtype=np.float64)
    for m in used:
        p += w[m] * _softmax(L[m].astype(np.float64))
    return np.log(np.maximum(p, np.finfo(np.float64).tiny)).astype(np.float32)


def log_loss_of(scores: np.ndarray, gold: np.ndarray) -> float:
    """Mean cross-entropy of ``gold`` under softmax(scores) (scores: combined logits or log-probs)."""
    lp = _log_softmax(np.asarray(scores, dtype=np.float64))
    return float(-lp[np.arange(len(gold)), gold].mean()) if len(gold) else float("nan")


def simplex_grid(n_members: int, step: float) -> np.ndarray:
    """Every weight vector with entries in multiples of ``step`` summing to 1, (G, M), in lexicographic
    order of the first member's weight descending (so ``[1, 0, ...]`` comes first)."""
    if not (0 < step <= 1):  # also NaN; before the division
        raise DatacartoError(f"grid step must divide 1 (e.g. 0.05 or 0.1), got {step}")
    k = round(1.0 / step)
    if abs(k * step - 1.0) > 1e-9:
        raise DatacartoError(f"grid step must divide 1 (e.g. 0.05 or 0.1), got {step}")
    points = [c for c in itertools.product(range(k, -1, -1), repeat=n_members - 1) if sum(c) <= k]
    grid = np.array([[*c, k - sum(c)] for c in points], dtype=np.float64) / k
    return grid


def _grid_scores(L: np.ndarray, gold: np.ndarray, grid: np.ndarray, combine: str) -> tuple[np.ndarray, np.ndarray]:
    """Accuracy and log-loss of each grid point, chunked to bound memory."""
    n = L.shape[1]
    X = L.astype(np.float64) if combine == "logits" else _softmax(L.astype(np.float64))
    acc = np.empty(len(grid))
    loss = np.empty(len(grid))
    chunk = max(1, int(2e7 // max(1, X.shape[1] * X.shape[2])))
    rows = np.arange(n)
    for lo in range(0, len(grid), chunk):
        g = grid[lo:lo + chunk]
        Z = np.einsum("gm,mnc->gnc", g, X)
        acc[lo:lo + chunk] = (Z.argmax(axis=2) == gold).mean(axis=1)
        if combine == "logits":
            lp = _log_softmax(Z, axis=2)[:, rows, gold]
        else:
            lp = np.log(np.maximum(Z[:, rows, gold], np.finfo(np.float64).tiny))
        loss[lo:lo + chunk] = -lp.mean(axis=1)
    return acc, loss


def _optimize_log_loss(L: np.ndarray, gold: np.ndarray, combine: str) -> np.ndarray:
    """Weights minimising the log-loss, parametrised as softmax(theta) (scipy L-BFGS), from uniform."""
    from scipy.optimize import minimize

    M, n, _ = L.shape
    X = L.astype(np.float64) if combine == "logits" else _softmax(L.astype(np.float64))
    rows = np.arange(n)
    onehot = np.zeros(X.shape[1:])
    onehot[rows, gold] = 1.0

    def fun(theta):
        w = _softmax(theta)
        Z = np.einsum("m,mnc->nc", w, X)
        if combine == "logits":
            lp = _log_softmax(Z)
            value = -lp[rows, gold].mean()
            grad_w = np.einsum("nc,mnc->m", np.exp(lp) - onehot, X) / n
        else:
            pg = np.maximum(Z[rows, gold], np.finfo(np.float64).tiny)
            value = -np.log(pg).mean()
            grad_w = -(X[:, rows, gold] / pg).mean(axis=1)
        grad_theta = w * (grad_w - np.dot(w, grad_w))  # through the softmax: (diag(w) - w w^T) g
        return value, grad_theta

    res = minimize(fun, np.zeros(M), jac=True, method="L-BFGS-B")
    return _softmax(res.x)


def tune_weights(member_logits, gold, *, combine: str = "logits", step: float = 0.05,
                 objective: str = "accuracy", method: str = "auto") -> tuple[np.ndarray, dict[str, Any]]:
    """Ensemble weights chosen on (M, n, C) member logits and gold labels: call it with validation data only.

    ``method="auto"``: a grid of step ``step`` on the simplex for M <= 4 (``objective`` accuracy,
    ties broken by lower log-loss then grid order; or ``log_loss``), else log-loss minimisation
    (``"optimize"``). Returns (weights summing to 1, info with method, objective, accuracy, log_loss).
    """
    if combine not in COMBINES:
        raise DatacartoError(f"combine must be one of {COMBINES}, got {combine!r}")
    if objective not in OBJECTIVES:
        raise DatacartoError(f"objective must be one of {OBJECTIVES}, got {objective!r}")
    L = np.asarray(member_logits, dtype=np.float64)
    gold = np.asarray(gold)
    if L.ndim != 3 or gold.shape != (L.shape[1],):
        raise DatacartoError(f"tune_weights needs (M, n, C) logits and n gold labels, got {L.shape} and {gold.shape}")
    if gold.size == 0:
        raise DatacartoError("cannot tune weights on an empty data set")
    if gold.min() < 0 or gold.max() >= L.shape[2]:
        raise DatacartoError("gold labels out of range for the members' classes")
    M = L.shape[0]
    if method == "auto":
        method = "grid" if M <= GRID_MAX_MEMBERS else "optimize"
    if method == "grid":
        grid = simplex_grid(M, step)
        acc, loss = _grid_scores(L, gold, grid, combine)
        if objective == "accuracy":
            best = int(np.lexsort((np.arange(len(grid)), loss, -acc))[0])
        else:
            best = int(np.lexsort((np.arange(len(grid)), loss))[0])
        w = grid[best]
    elif method == "optimize":
        w = _optimize_log_loss(L, gold, combine)
        objective = "log_loss"
    else:
        raise DatacartoError(f"method must be 'auto', 'grid' or 'optimize', got {method!r}")
    scores = combine_logits(L, w, combine)
    info = {"method": method, "objective": objective, "combine": combine,
            "step": step if method == "grid" else None, "n_examples": int(gold.size),
            "accuracy": float((scores.argmax(axis=1) == gold).mean()), "log_loss": log_loss_of(scores, gold)}
    return w, info


