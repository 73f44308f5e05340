"""Per-example training-dynamics metrics and data-map regions (NumPy + pandas only).

``compute_metrics`` turns the (N examples, E epochs, C classes) logits of a run into one row per
example: the data-map coordinates of Swayamdipta et al. 2020 (confidence, variability,
correctness), the baselines their code reports (forgetfulness, threshold closeness) and a few
other per-example scores (AUM, Data-IQ aleatoric uncertainty, EL2N, entropy, last-epoch values).
Everything is vectorized over the whole array: no per-example Python loop.
``assign_regions`` splits examples into easy-to-learn / ambiguous / hard-to-learn, and
``datacarto.dynamics.cache.get_metrics`` caches both next to the stored dynamics. Definitions:
docs/metrics.md. :data:`SCORES` is the one registry of the per-example scores: selection, the
audit, the maps and the report read a score's direction from it; a score with a function is
computed after the fused pass (:mod:`datacarto.metrics_fused`), so adding one is one entry.

This module must import neither torch nor transformers (tests check ``sys.modules``).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ._validation import check_choice, check_int_labels
from .errors import DatacartoError
from .metrics_fused import FLOAT_COLUMNS, INT_COLUMNS, chunk_metrics

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

#: ``Score.level``: "unit" = from each unit's logits (multi-label pairs and tagged words are units;
#: an example table holds the mean over its units), "example" = per example only.
LEVELS = ("unit", "example")
#: ``Score.audits``: "labels" = flipped labels (every classifier task), "responses" = a causal LM's
#: swapped responses, "scores" = a regression's moved gold scores (with the "labels" scores).
AUDITS = ("labels", "responses", "scores")


@dataclass(frozen=True)
class Score:
    """A per-example score: its column, which end is hard, where it is defined, one line of meaning.

    ``direction`` ("high" or "low") is the hard end: ranked first by ``select(order="hardest")``,
    suspect in a label-noise audit. ``audits``: the audits that rank it by default. ``map``: a
    column of the interactive map's table (hover, colour) by default. ``compute``: None for the
    columns of the fused pass or of the run folder (``nll``); otherwise
    ``compute(logits (m, E, C), gold (m,), columns) -> (m,)`` values, run chunk by chunk after the
    fused pass (``columns``: that chunk's fused columns by name).
    """

    name: str
    direction: str
    level: str
    doc: str
    audits: tuple[str, ...] = ("labels",)
    map: bool = False
    compute: Callable[[np.ndarray, np.ndarray, dict], np.ndarray] | None = None

    def __post_init__(self):
        check_choice(self.direction, ("high", "low"), f"direction of score {self.name!r}")
        check_choice(self.level, LEVELS, f"level of score {self.name!r}")
        for audit in self.audits:
            check_choice(audit, AUDITS, f"audit of score {self.name!r}")
        if self.compute is not None and self.level != "unit":
            raise DatacartoError(f"score {self.name!r} is computed from the logits, so its level is 'unit'")


_BOTH = ("labels", "responses")
#: every per-example score by name (the order in which lists and tables show them)
SCORES: dict[str, Score] = {s.name: s for s in (
    Score("confidence", "low", "unit", "mean p(gold) over epochs (the map's y axis)", _BOTH),
    Score("variability", "high", "unit", "standard deviation of p(gold) over epochs (the map's x axis)", _BOTH),
    Score("variability_ci", "high", "unit", "variability with the paper's include_ci correction", ()),
    Score("correctness", "low", "unit", "share of epochs predicted right (causal LM: token accuracy)", _BOTH),
    Score("correct_count", "low", "unit", "epochs predicted right", ()),
    Score("forgetfulness", "high", "unit", "learned-then-forgotten events; E when never learned", map=True),
    Score("threshold_closeness", "high", "unit", "confidence x (1 - confidence), highest at 0.5", ()),
    Score("aum", "low", "unit", "mean margin of the gold logit over the largest other (AUM)", _BOTH, map=True),
    Score("aleatoric", "high", "unit", "mean p(gold) (1 - p(gold)) over epochs (Data-IQ)"),
    Score("el2n", "high", "unit", "L2 distance of the prediction from one-hot gold at one epoch", map=True),
    Score("el2n_mean", "high", "unit", "el2n averaged over epochs"),
    Score("entropy", "high", "unit", "entropy of the mean predicted distribution", ()),
    Score("last_loss", "high", "unit", "cross-entropy of the gold label at the last epoch", _BOTH),
    Score("self_confidence", "low", "unit", "p(gold) of the mean predicted distribution (cleanlab)"),
    Score("nll", "high", "example", "a causal LM's mean token NLL of the response (from the run folder)",
          ("responses",)),
    Score("squared_error", "high", "example", "a regression's squared error of the prediction, mean over epochs "
          "(from the run folder)", ("scores",), map=True),
)}


def register_score(score: Score) -> Score:
    """Add ``score`` to :data:`SCORES`; one with ``compute`` becomes a column of :func:`compute_metrics`."""
    if not isinstance(score, Score):
        raise DatacartoError(f"register_score expects a Score, got {type(score).__name__}")
    if score.name in SCORES or score.name in COLUMNS or score.name == "region":
        raise DatacartoError(f"score {score.name!r} exists already")
    SCORES[score.name] = score
    return score


def computed_scores() -> list[Score]:
    """The scores computed after the fused pass, in registry order."""
    return [s for s in SCORES.values() if s.compute is not None]


def metric_columns() -> tuple[str, ...]:
    """The columns of :func:`compute_metrics`: :data:`COLUMNS`, then each computed score."""
    return (*COLUMNS, *(s.name for s in computed_scores()))


def score_directions(audit: str | None = None) -> dict[str, str]:
    """Score name -> its hard (suspect) end, "high" or "low": every score, or those ``audit`` ranks."""
    return {n: s.direction for n, s in SCORES.items() if audit is None or audit in s.audits}


def map_scores() -> list[str]:
    """The scores the interactive map's table shows besides confidence, variability and correctness."""
    return [n for n, s in SCORES.items() if s.map]


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
    ids, gold = np.asarray(ids), np.asarray(gold)
    logits = logits if hasattr(logits, "blocks") else np.asarray(logits)  # a stored run's StoredLogits: streamed
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

def check_metrics_table(metrics: Any, columns, why: str = "") -> pd.DataFrame:
    """Raise DatacartoError unless ``metrics`` is a DataFrame holding ``columns`` (``why``: what needs them)."""
    if not isinstance(metrics, pd.DataFrame):
        raise DatacartoError(f"expected the metrics table as a pandas DataFrame, got {type(metrics).__name__}")
    missing = [c for c in columns if c not in metrics.columns]
    if missing:
        raise DatacartoError(f"the metrics table has no column(s) {missing}{why}; columns: {list(metrics.columns)}")
    return metrics


def labelled(metrics: pd.DataFrame) -> bool:
    """Whether the table's ``gold`` is a class: False for a causal LM's (per-token statistics, ``nll``) or
    a regression's (``gold_score``), whose gold is a placeholder. Maps, summaries and subset files show labels only when True."""
    return "nll" not in metrics.columns and "gold_score" not in metrics.columns


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
    end). Columns: :func:`metric_columns` (``COLUMNS``, defined in docs/metrics.md, then the scores
    of :data:`SCORES` that have a ``compute`` function, float64); floats are float64, counts int32,
    ``gold`` int64. Math runs in float32 (float64 for float64 logits) with a max-subtracted softmax,
    means over epochs accumulated in float64: within about 1e-7 (relative) of float64 math.
    Examples are processed in chunks, so peak memory is the result table plus a few MB; a stored
    run opened with ``datacarto.dynamics.store.open_dynamics`` is read from disk in blocks of rows.

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
    n, e, c = logits.shape
    e = e if burn_out is None else int(burn_out)
    if isinstance(el2n_epoch, bool) or not isinstance(el2n_epoch, (int, np.integer)) or not -e <= el2n_epoch < e:
        raise DatacartoError(f"el2n_epoch must be an epoch index in {-e}..{e - 1}, got {el2n_epoch!r}")
    index = pd.Index(ids, name="row_id", copy=False)
    if not index.is_unique:
        raise DatacartoError(f"ids must be unique, {int(index.duplicated().sum())} are repeated")

    work = np.float64 if logits.dtype == np.float64 else np.float32
    out: dict[str, np.ndarray] = {"gold": gold}
    out.update({k: np.empty(n, dtype=np.float64) for k in FLOAT_COLUMNS})
    out.update({k: np.empty(n, dtype=np.int32) for k in INT_COLUMNS})
    out["never_learned"] = np.empty(n, dtype=bool)
    extra = computed_scores()
    out.update({s.name: np.empty(n, dtype=np.float64) for s in extra})
    step = max(1, _CHUNK_LOGITS // (e * c))
    bad_epochs = bad_examples = empty_examples = 0
    for start, block in _chunks(logits, step, e):
        sl = slice(start, start + block.shape[0])
        chunk = {k: v[sl] for k, v in out.items()}
        counts = chunk_metrics(block, gold[sl], int(el2n_epoch), work, chunk)
        for score in extra:
            chunk[score.name][:] = score.compute(block, gold[sl], chunk)
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
    table = {k: out[k] for k in (*COLUMNS, *(s.name for s in extra))}
    # copy=False keeps one block per column: no consolidation copy of the whole table.
    return pd.DataFrame(table, index=index, copy=False)


def _chunks(logits, step: int, e: int):
    """(first row, (m <= step, e, C) logits) over the rows: slices of an array, or the blocks of a
    stored run (``datacarto.dynamics.store.StoredLogits``) read from disk one at a time."""
    if isinstance(logits, np.ndarray):
        for start in range(0, logits.shape[0], step):
            yield start, logits[start:start + step, :e]
        return
    for first, block in logits.blocks(epochs=e):
        for start in range(0, block.shape[0], step):
            yield first + start, block[start:start + step]


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
