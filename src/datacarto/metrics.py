"""Per-example training-dynamics metrics and data-map regions (NumPy + pandas only).

``compute_metrics`` turns the (N examples, E epochs, C classes) logits of a run into one row per
example: the data-map coordinates of Swayamdipta et al. 2020 (confidence, variability,
correctness), the baselines their code reports (forgetfulness, threshold closeness) and a few
other per-example scores (AUM, Data-IQ aleatoric uncertainty, EL2N, entropy, last-epoch values).
Everything is vectorized over the whole array: no per-example Python loop.
``assign_regions`` splits examples into easy-to-learn / ambiguous / hard-to-learn, and
``get_metrics`` caches both next to the stored dynamics. Definitions: docs/metrics.md.

This module must import neither torch nor transformers (tests check ``sys.modules``).
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pandas as pd

from ._validation import check_choice, check_int_labels
from .errors import DatacartoError

REGIONS = ("easy-to-learn", "ambiguous", "hard-to-learn")
#: ``method`` of :func:`assign_regions`.
REGION_METHODS = ("quantile", "threshold")

COLUMNS = (
    "gold", "confidence", "variability", "variability_ci", "correctness", "correct_count",
    "forgetfulness", "never_learned", "threshold_closeness", "aum", "aleatoric", "el2n", "el2n_mean",
    "entropy", "last_pred", "last_prob", "last_loss", "self_confidence", "n_epochs_used",
)

# Fixed thresholds of method="threshold" (see assign_regions).
DEFAULT_VARIABILITY_THRESHOLD = 0.2
DEFAULT_CONFIDENCE_THRESHOLD = 0.5



# ----------------------------------------------------------------------------------------------
# input checking


def _unpack(dynamics: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(ids, gold, logits) from a ``Dynamics`` or a 3-tuple, checked; DatacartoError otherwise."""
    if all(hasattr(dynamics, a) for a in ("ids", "gold", "logits")):
        ids, gold, logits = dynamics.ids, dynamics.gold, dynamics.logits
    elif isinstance(dynamics, (tuple, list)) and len(dynamics) == 3:
        ids, gold, logits = dynamics
    else:
        raise DatacartoError(
            f"compute_metrics expects a Dynamics or a tuple (ids, gold, logits), got {type(dynamics).__name__}"
        )
    ids, gold, logits = np.asarray(ids), np.asarray(gold), np.asarray(logits)
    if logits.ndim != 3:
        hint = "; for a single epoch use logits[:, None, :]" if logits.ndim == 2 else ""
        raise DatacartoError(
            f"logits must have shape (examples, epochs, classes), got {logits.ndim}-D shape {logits.shape}{hint}"
        )
    n, e, c = logits.shape
    if n == 0:
        raise DatacartoError("no examples: logits have shape " + str(logits.shape))
    if e == 0:
        raise DatacartoError("no epochs: logits have shape " + str(logits.shape))
    if c < 2:
        raise DatacartoError(f"need at least 2 classes, logits have {c}")
    if logits.dtype.kind not in "fiub":
        raise DatacartoError(f"logits must be numeric, got dtype {logits.dtype}")
    if ids.ndim != 1 or ids.shape[0] != n:
        raise DatacartoError(f"ids must have shape ({n},) to match the logits, got {ids.shape}")
    if gold.ndim != 1 or gold.shape[0] != n:
        raise DatacartoError(f"gold must have shape ({n},) to match the logits, got {gold.shape}")
    gold = check_int_labels(gold, "gold labels")
    bad = (gold < 0) | (gold >= c)
    if bad.any():
        raise DatacartoError(
            f"{int(bad.sum())} gold labels lie outside 0..{c - 1} (the logits have {c} classes), "
            f"e.g. {int(gold[np.argmax(bad)])}"
        )
    ids = check_int_labels(ids, "ids")
    return ids, gold, logits


# ----------------------------------------------------------------------------------------------
# metrics

# Examples are processed in chunks of about this many logits, so the work arrays stay small and in
# cache: peak memory is the output table plus a few MB, whatever N is.
_CHUNK_LOGITS = 1 << 19
# Up to this many classes, argmax / gold logit / runner-up are found with one elementwise pass per
# class; above it, with reductions over the class axis (a Python loop per class would dominate).
_CLASS_LOOP_MAX = 16

_FLOAT_COLUMNS = (
    "confidence", "variability", "variability_ci", "correctness", "threshold_closeness", "aum",
    "aleatoric", "el2n", "el2n_mean", "entropy", "last_prob", "last_loss", "self_confidence",
)
_INT_COLUMNS = ("correct_count", "forgetfulness", "last_pred", "n_epochs_used")


def check_metrics_table(metrics: Any, columns, why: str = "") -> pd.DataFrame:
    """Raise DatacartoError unless ``metrics`` is a DataFrame holding ``columns`` (``why``: what needs them)."""
    if not isinstance(metrics, pd.DataFrame):
        raise DatacartoError(f"expected the metrics table as a pandas DataFrame, got {type(metrics).__name__}")
    missing = [c for c in columns if c not in metrics.columns]
    if missing:
        raise DatacartoError(f"the metrics table has no column(s) {missing}{why}; columns: {list(metrics.columns)}")
    return metrics


def labelled(metrics: pd.DataFrame) -> bool:
    """Whether the table's ``gold`` is a class: False for a causal LM's (per-token statistics, ``nll``),
    whose gold "response" is a placeholder. Maps, summaries and subset files show labels only when True."""
    return "nll" not in metrics.columns


def row_ids(metrics: pd.DataFrame) -> np.ndarray:
    """The index of a metrics table as int64 row ids (a clear error if it is not integer)."""
    try:
        return metrics.index.to_numpy(dtype=np.int64)
    except (TypeError, ValueError) as e:
        raise DatacartoError(f"the metrics table must be indexed by integer row ids: {e}") from e


def compute_metrics(dynamics: Any, burn_out: int | None = None, el2n_epoch: int = 0) -> pd.DataFrame:
    """One row of per-example metrics per example, indexed by ``row_id``.

    ``dynamics``: a :class:`~datacarto.dynamics.store.Dynamics` or a tuple ``(ids, gold, logits)``
    of shapes (N,), (N,), (N, E, C). ``burn_out=k`` uses only the first k epochs (the paper's
    ``--burn_out``). ``el2n_epoch`` picks the epoch of ``el2n`` (0 = first; negative counts from the
    end). Columns: ``COLUMNS``, defined in docs/metrics.md; floats are float64, counts int32,
    ``gold`` int64. Math runs in float32 (float64 for float64 logits) with a max-subtracted softmax,
    means over epochs accumulated in float64: within about 1e-7 (relative) of float64 math.
    Examples are processed in chunks, so peak memory is the result table plus a few MB.

    ``variability_ci`` is the paper's ``include_ci`` variant ``sqrt(var + var**2 / (E - 1))``; with a
    single usable epoch it is 0 (var is 0), where the paper's code divides 0 by 0.

    An epoch whose logits hold NaN or inf is left out for that example (``n_epochs_used`` counts
    the rest) with a warning; an example with no usable epoch keeps a row of NaN metrics
    (``correct_count`` 0, ``never_learned`` True, ``forgetfulness`` 0, ``last_pred`` -1) and a
    second warning. ``last_*`` use the last usable epoch; ``el2n`` is NaN when its epoch is unusable.
    """
    ids, gold, logits = _unpack(dynamics)
    e_total = logits.shape[1]
    if burn_out is not None:
        if isinstance(burn_out, bool) or not isinstance(burn_out, (int, np.integer)):
            raise DatacartoError(f"burn_out must be a whole number of epochs, got {burn_out!r}")
        if not 1 <= burn_out <= e_total:
            raise DatacartoError(f"burn_out must be between 1 and {e_total} (the recorded epochs), got {burn_out}")
        logits = logits[:, : int(burn_out)]
    n, e, c = logits.shape
    if isinstance(el2n_epoch, bool) or not isinstance(el2n_epoch, (int, np.integer)) or not -e <= el2n_epoch < e:
        raise DatacartoError(f"el2n_epoch must be an epoch index in {-e}..{e - 1}, got {el2n_epoch!r}")
    index = pd.Index(ids, name="row_id", copy=False)
    if not index.is_unique:
        raise DatacartoError(f"ids must be unique, {int(index.duplicated().sum())} are repeated")

    work = np.float64 if logits.dtype == np.float64 else np.float32
    out: dict[str, np.ndarray] = {"gold": gold}
    out.update({k: np.empty(n, dtype=np.float64) for k in _FLOAT_COLUMNS})
    out.update({k: np.empty(n, dtype=np.int32) for k in _INT_COLUMNS})
    out["never_learned"] = np.empty(n, dtype=bool)
    step = max(1, _CHUNK_LOGITS // (e * c))
    bad_epochs = bad_examples = empty_examples = 0
    for start in range(0, n, step):
        sl = slice(start, min(n, start + step))
        counts = _chunk_metrics(logits[sl], gold[sl], int(el2n_epoch), work, {k: v[sl] for k, v in out.items()})
        bad_epochs += counts[0]
        bad_examples += counts[1]
        empty_examples += counts[2]
    if bad_epochs:
        warnings.warn(
            f"{bad_epochs} example-epochs ({bad_examples} examples) have NaN or infinite logits: "
            "those epochs are left out of the metrics",
            stacklevel=2,
        )
    if empty_examples:
        warnings.warn(
            f"{empty_examples} examples have no epoch with finite logits: their metrics are NaN", stacklevel=2
        )
    table = {k: out[k] for k in COLUMNS}
    # copy=False keeps one block per column: no consolidation copy of the whole table.
    return pd.DataFrame(table, index=index, copy=False)


def _class_stats(X: np.ndarray, gold: np.ndarray):
    """Per (epoch, example) of X (C, E, m): max, runner-up (2nd largest value, ties counted),
    gold logit and argmax (first index on ties, as np.argmax in the paper's code)."""
    c = X.shape[0]
    if c > _CLASS_LOOP_MAX:
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
def _chunk_metrics(L: np.ndarray, gold: np.ndarray, el2n_epoch: int, work, out: dict[str, np.ndarray]):
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

    top, second, gold_logit, pred = _class_stats(X, gold)
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
    if c > _CLASS_LOOP_MAX:
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


# ----------------------------------------------------------------------------------------------
# regions


def assign_regions(
    metrics: pd.DataFrame,
    method: str = "quantile",
    *,
    ambiguous_quantile: float = 0.67,
    hard_confidence_quantile: float = 0.33,
    variability_threshold: float | None = None,
    confidence_threshold: float | None = None,
) -> pd.Series:
    """The data-map region of each example: a categorical Series named ``region`` (categories REGIONS).

    Ambiguous = high variability; among the others, hard-to-learn = low confidence and
    easy-to-learn = high confidence.

    * ``method="quantile"`` (default, relative to this data set): ``v* =`` the
      ``ambiguous_quantile`` quantile of variability; ambiguous = ``variability > v*`` (strictly, so
      ties at ``v*``, e.g. all-zero variability with one epoch, are not all called ambiguous).
      ``c* =`` the ``hard_confidence_quantile`` quantile of confidence *among the non-ambiguous*;
      hard-to-learn = ``confidence <= c*``, easy-to-learn = ``confidence > c*``. With the defaults
      about 33% / 22% / 45% are ambiguous / hard / easy.
    * ``method="threshold"`` (absolute): ambiguous = ``variability >= variability_threshold``
      (default 0.2); otherwise easy-to-learn if ``confidence >= confidence_threshold`` (default
      0.5), else hard-to-learn. The thresholds are only accepted with this method.

    Every example with finite confidence and variability gets exactly one region; one without (no
    usable epoch) gets none (NaN). The thresholds used are in ``result.attrs``.
    """
    for col in ("confidence", "variability"):
        if col not in getattr(metrics, "columns", ()):
            raise DatacartoError(f"assign_regions needs a metrics table with a {col!r} column")
    conf = metrics["confidence"].to_numpy(dtype=np.float64)
    var = metrics["variability"].to_numpy(dtype=np.float64)
    ok = np.isfinite(conf) & np.isfinite(var)
    if method == "quantile":
        if variability_threshold is not None or confidence_threshold is not None:
            raise DatacartoError("variability_threshold and confidence_threshold apply to method='threshold'")
        for name, q in (("ambiguous_quantile", ambiguous_quantile),
                        ("hard_confidence_quantile", hard_confidence_quantile)):
            if not 0 < q < 1:
                raise DatacartoError(f"{name} must lie strictly between 0 and 1, got {q}")
        v_star = float(np.quantile(var if ok.all() else var[ok], ambiguous_quantile)) if ok.any() else np.nan
        ambiguous = ok & (var > v_star)
        rest = ok & ~ambiguous
        c_star = float(np.quantile(conf[rest], hard_confidence_quantile)) if rest.any() else np.nan
        easy = rest & (conf > c_star)
        attrs = {"method": method, "ambiguous_quantile": ambiguous_quantile,
                 "hard_confidence_quantile": hard_confidence_quantile,
                 "variability_threshold": v_star, "confidence_threshold": c_star,
                 "variability_rule": ">", "confidence_rule": ">"}
    elif method == "threshold":
        v_star = DEFAULT_VARIABILITY_THRESHOLD if variability_threshold is None else float(variability_threshold)
        c_star = DEFAULT_CONFIDENCE_THRESHOLD if confidence_threshold is None else float(confidence_threshold)
        if not (np.isfinite(v_star) and np.isfinite(c_star)):
            raise DatacartoError("region thresholds must be finite numbers")
        ambiguous = ok & (var >= v_star)
        rest = ok & ~ambiguous
        easy = rest & (conf >= c_star)
        attrs = {"method": method, "variability_threshold": v_star, "confidence_threshold": c_star,
                 "variability_rule": ">=", "confidence_rule": ">="}
    else:
        check_choice(method, REGION_METHODS, "region method")
    hard = rest & ~easy
    # Codes by arithmetic on the disjoint masks (faster than masked assignment); -1 = no region.
    codes = ambiguous.view(np.int8) * np.int8(REGIONS.index("ambiguous"))
    codes += hard.view(np.int8) * np.int8(REGIONS.index("hard-to-learn"))
    codes += easy.view(np.int8) * np.int8(REGIONS.index("easy-to-learn"))
    codes -= (~ok).view(np.int8)
    region = pd.Series(pd.Categorical.from_codes(codes, categories=list(REGIONS)), index=metrics.index,
                       name="region")
    region.attrs.update(attrs)
    return region


# ----------------------------------------------------------------------------------------------
# the cached metrics of a run moved to datacarto.dynamics.cache (this module stays free of the store)


def __getattr__(name: str):
    """``datacarto.metrics.get_metrics`` keeps working (lazy re-export of the run-folder cache)."""
    if name in ("get_metrics", "CACHE_FILE", "CACHE_KEY_FILE", "CACHE_SCHEMA"):
        from .dynamics import cache

        return getattr(cache, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
