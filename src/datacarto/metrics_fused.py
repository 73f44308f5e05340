"""The fused pass of :func:`datacarto.metrics.compute_metrics`: every column of one chunk of logits at once.

One pass over a chunk (m examples, E epochs, C classes) fills the columns in :data:`FLOAT_COLUMNS`
and :data:`INT_COLUMNS` (and ``never_learned``) in place, reusing its work arrays: splitting it into
one function per column would add passes over the logits. Scores declared with a function in
:data:`datacarto.metrics.SCORES` run after it, on the same chunk. NumPy only.
"""

from __future__ import annotations

import numpy as np

# Up to this many classes, argmax / gold logit / runner-up are found with one elementwise pass per
# class; above it, with reductions over the class axis (a Python loop per class would dominate).
CLASS_LOOP_MAX = 16

FLOAT_COLUMNS = (
    "confidence", "variability", "variability_ci", "correctness", "threshold_closeness", "aum",
    "aleatoric", "el2n", "el2n_mean", "entropy", "last_prob", "last_loss", "self_confidence",
)
INT_COLUMNS = ("correct_count", "forgetfulness", "last_pred", "n_epochs_used")


def class_stats(X: np.ndarray, gold: np.ndarray):
    """Per (epoch, example) of X (C, E, m): max, runner-up (2nd largest value, ties counted),
    gold logit and argmax (first index on ties, as np.argmax in the paper's code)."""
    c = X.shape[0]
    if c > CLASS_LOOP_MAX:
        top = X.max(axis=0)
        second = np.partition(X, c - 2, axis=0)[c - 2]
        pred = X.argmax(axis=0)
        gold_logit = np.take_along_axis(X, gold[None, None, :], axis=0)[0]
        return top, second, gold_logit, pred
    # One elementwise pass per class, arithmetic instead of masked assignment (np.where and
    # copyto(where=) are several times slower here).
    top = X[0].copy()
    second = np.full_like(top, -np.inf)
    pred = np.zeros(top.shape, dtype=np.int8)
    gold_logit = X[0] * (gold == 0)
    for j in range(1, c):
        xj = X[j]
        gold_logit += xj * (gold == j)  # exact: adds the gold logit to zeros
        np.maximum(second, xj, out=second)
        np.minimum(second, top, out=second)  # new runner-up = min(max(second, x), old top)
        better = xj > top  # strict: the first index keeps ties
        pred += (np.int8(j) - pred) * better
        np.maximum(top, xj, out=top)
    return top, second, gold_logit, pred


# Long on purpose (tests/test_architecture.py allow-lists it): one fused pass over a chunk of
# logits that reuses the work arrays in place; split into functions it would need extra passes.
def chunk_metrics(L: np.ndarray, gold: np.ndarray, el2n_epoch: int, work, out: dict[str, np.ndarray]):
    """Fill ``out`` (views of the result columns) for one chunk of logits L (m, E, C).

    Returns (unusable example-epochs, examples with one, examples with none).
    """
    m, e, c = L.shape
    # Class-major copy (C, E, m): each class is a contiguous (E, m) plane, so reductions over classes
    # and epochs are elementwise passes (NumPy reduces a short innermost axis several times slower).
    X = np.empty((c, e, m), dtype=work)
    np.copyto(X, L.transpose(2, 1, 0), casting="unsafe")
    # A NaN or inf anywhere makes the plain sum non-finite (so does an overflowing sum of huge
    # logits, which merely takes the exact path): one read of X instead of an isfinite pass.
    with np.errstate(over="ignore", invalid="ignore"):
        masked = not np.isfinite(np.sum(X))
    valid = np.isfinite(X).all(axis=0) if masked else None  # (E, m): epoch usable for this example
    if masked:
        X[:, ~valid] = 0  # finite stand-in; weight 0 below
        weight = valid.astype(work)
        n_used = valid.sum(axis=0)
    else:
        weight = None
        n_used = np.full(m, e)
    with np.errstate(divide="ignore"):
        inv_n = 1.0 / n_used  # inf where no epoch is usable: those means come out NaN

    def emean(x: np.ndarray) -> np.ndarray:
        """Mean over usable epochs of an (E, m) array, accumulated in float64."""
        if weight is not None:
            x = x * weight
        with np.errstate(invalid="ignore"):
            return np.sum(x, axis=0, dtype=np.float64) * inv_n

    top, second, gold_logit, pred = class_stats(X, gold)
    correct = pred == gold
    if masked:
        correct &= valid
    # AUM margin: gold logit - largest other logit. Where gold is the argmax that is
    # top - runner-up (and gold - top = 0); elsewhere gold - top. In float64: exact differences
    # of float32 logits, whatever their magnitude.
    margin = gold_logit.astype(np.float64) - top
    margin += correct * (top.astype(np.float64) - second)
    out["aum"][:] = emean(margin)
    del margin, second
    # Last usable epoch: the predicted label's probability is exp(0) / s, and the loss is
    # log(s) - (gold logit - max), exact where p(gold) underflows to 0.
    if masked:
        last = (e - 1 - np.argmax(valid[::-1], axis=0), np.arange(m))
        g_last, t_last, out["last_pred"][:] = gold_logit[last], top[last], pred[last]
    else:
        g_last, t_last, out["last_pred"][:] = gold_logit[-1], top[-1], pred[-1]
    g_last = g_last.astype(np.float64) - t_last

    # Softmax, max-subtracted, in place: X becomes the probabilities.
    with np.errstate(over="ignore"):  # a gap beyond float range is -inf, exp -> 0: right
        X -= top
    np.exp(X, out=X)
    s = X.sum(axis=0)  # >= 1: the top class contributes exp(0)
    X /= s
    gold_logit -= top  # <= 0
    p_gold = np.exp(gold_logit) / s
    s_last = (s[last] if masked else s[-1]).astype(np.float64)
    out["last_prob"][:] = 1.0 / s_last
    out["last_loss"][:] = np.log(s_last) - g_last

    confidence = emean(p_gold)
    out["confidence"][:] = confidence
    out["threshold_closeness"][:] = confidence * (1 - confidence)
    dev = p_gold - confidence.astype(work)
    variance = emean(dev * dev)
    out["variability"][:] = np.sqrt(variance)
    with np.errstate(invalid="ignore", divide="ignore"):
        out["variability_ci"][:] = np.where(n_used > 1, np.sqrt(variance + variance * variance / (n_used - 1)),
                                            variance)
    out["aleatoric"][:] = emean(p_gold * (1 - p_gold))

    # Mean predicted distribution (C, m), in the work precision (a float64 log costs several times
    # more): entropy and its p(gold). 0 log 0 = 0: the log's argument is floored at the smallest
    # normal number, which leaves every other term as it is.
    if masked:
        X *= weight
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_dist = np.sum(X, axis=1) * inv_n.astype(work)
        plogp = mean_dist * np.log(np.maximum(mean_dist, np.finfo(work).tiny))
        out["entropy"][:] = -np.sum(plogp, axis=0, dtype=np.float64)
    out["self_confidence"][:] = np.take_along_axis(mean_dist, gold[None, :], axis=0)[0]

    # EL2N per epoch: ||p - onehot(gold)||_2.
    if c > CLASS_LOOP_MAX:
        g_idx = gold[None, None, :]
        np.put_along_axis(X, g_idx, np.take_along_axis(X, g_idx, axis=0) - 1, axis=0)
    else:
        for j in range(c):
            X[j] -= gold == j
    np.square(X, out=X)
    el2n = np.sqrt(X.sum(axis=0))
    out["el2n_mean"][:] = emean(el2n)
    out["el2n"][:] = np.where(valid[el2n_epoch], el2n[el2n_epoch], np.nan) if masked else el2n[el2n_epoch]

    # Correctness and forgetting events (learned at t-1, wrong at t, over usable epochs).
    correct_count = np.sum(correct.view(np.uint8), axis=0, dtype=np.int64)
    never = correct_count == 0
    if masked:
        prev = np.zeros(m, dtype=bool)  # correctness at the last usable epoch so far
        forgotten = np.zeros(m, dtype=np.int64)
        for t in range(e):
            cur = np.where(valid[t], correct[t], prev)
            forgotten += prev & ~cur
            prev = cur
    else:
        forgotten = np.sum((correct[:-1] & ~correct[1:]).view(np.uint8), axis=0, dtype=np.int64)
    out["correct_count"][:] = correct_count
    out["never_learned"][:] = never
    out["forgetfulness"][:] = np.where(never, n_used, forgotten)
    with np.errstate(invalid="ignore"):
        out["correctness"][:] = correct_count * inv_n
    out["n_epochs_used"][:] = n_used
    if not masked:
        return 0, 0, 0
    empty = n_used == 0
    out["last_prob"][empty] = np.nan
    out["last_loss"][empty] = np.nan
    out["last_pred"][empty] = -1
    out["entropy"][empty] = np.nan
    return int((~valid).sum()), int((n_used < e).sum()), int(empty.sum())
