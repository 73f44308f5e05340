"""Scores of several models (accuracy and macro-F1, or the task's), on a whole evaluation set and per data-map region.

Regions of an evaluation set come from that set's own dynamics, recorded while the baseline trained:
``eval_regions(run_dir, "validation")`` uses the logits of the validation set at each evaluation
(``train_baseline(..., validation=...)`` with ``eval_strategy="epoch"``). Regions of a test set need
test dynamics: ``trainer.predict(test)`` called at several epochs of training (split ``"test"``);
without them only the overall numbers are meaningful.

The regions are defined by the *baseline's* behaviour, so the baseline's own per-region accuracy is
biased by construction (easy-to-learn = where it was confidently right); comparing other models to
it region by region is the informative part.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from ._validation import check_int_labels
from .errors import DatacartoError
from .metrics import REGIONS


def _predicted_labels(name: str, values, n: int) -> np.ndarray:
    """Predicted labels from (n, C) logits/probabilities (argmax) or (n,) integer labels."""
    arr = np.asarray(values)
    if arr.ndim == 2:
        if arr.shape[0] != n:
            raise DatacartoError(f"predictions of {name!r} have {arr.shape[0]} rows, the gold labels {n}")
        if arr.shape[1] == 0:
            raise DatacartoError(f"predictions of {name!r} have no classes")
        return arr.argmax(axis=1).astype(np.int64)
    if arr.ndim == 1:
        if arr.shape[0] != n:
            raise DatacartoError(f"predictions of {name!r} have {arr.shape[0]} rows, the gold labels {n}")
        return check_int_labels(arr, f"1-D predictions of {name!r}")
    raise DatacartoError(f"predictions of {name!r} must be (n, C) logits or (n,) labels, got shape {arr.shape}")


#: Every score :func:`evaluate_by_region` computes (a task's are its registry entry's, datacarto.tasks;
#: ``loss`` is lower-better).
EVALUATION_SCORES = ("accuracy", "macro_f1", "micro_f1", "micro_ap", "tag_f1", "loss", "token_accuracy", "rmse",
                     "spearman")
#: The scores of a classifier (sequence classification), the headline first.
CLASSIFIER_SCORES = ("accuracy", "macro_f1")
_LM_SCORES = ("loss", "token_accuracy")
_REGRESSION_SCORES = ("rmse", "spearman")


def check_scores(scores) -> tuple[str, ...]:
    """``scores`` as a tuple of names of :data:`EVALUATION_SCORES` (the headline first); one line otherwise."""
    names = (scores,) if isinstance(scores, str) else tuple(scores)
    unknown = [s for s in names if s not in EVALUATION_SCORES]
    if unknown or not names:
        raise DatacartoError(f"unknown score(s) {unknown}; scores: {', '.join(EVALUATION_SCORES)}")
    return names


def _f1_of(gold: np.ndarray, pred: np.ndarray, positive: np.ndarray) -> float:
    """Micro-F1 of the units whose gold or prediction is in ``positive`` (a boolean mask over classes)."""
    tp = np.sum((gold == pred) & positive[gold])
    denominator = np.sum(positive[pred]) + np.sum(positive[gold])
    return float(2 * tp / denominator) if denominator else float("nan")


def _average_precision(gold: np.ndarray, values: np.ndarray) -> float:
    """Average precision of the yes/no decisions ranked by ``z`` of their ``[0, z]`` rows (NaN: one class only).

    Threshold-free, so it tells models apart when none predicts a label above 1/2 (sparse labels).
    """
    from sklearn.metrics import average_precision_score

    if values.ndim != 2 or values.shape[1] != 2 or np.unique(gold).size < 2:
        return float("nan")
    return float(average_precision_score(gold, values[:, 1].astype(np.float64) - values[:, 0]))


def _lm_scores(values: np.ndarray) -> dict[str, float]:
    """Token-weighted mean NLL and token accuracy from a causal LM's unit rows ``[0, z, nll, acc, n]``."""
    if values.shape[1] >= 5:
        nll, acc, n = values[:, 2].astype(np.float64), values[:, 3].astype(np.float64), values[:, 4].astype(np.float64)
        return {"loss": float(np.sum(nll * n) / np.sum(n)), "token_accuracy": float(np.sum(acc * n) / np.sum(n))}
    z = values[:, 1].astype(np.float64)  # only the logits: the per-example NLL is softplus(-z)
    return {"loss": float(np.mean(np.logaddexp(0.0, -z))), "token_accuracy": float("nan")}


def _regression_scores(values: np.ndarray) -> dict[str, float]:
    """RMSE and Spearman correlation from a regression's unit rows ``[0, z, prediction, score]``."""
    if values.ndim != 2 or values.shape[1] < 4:
        return dict.fromkeys(_REGRESSION_SCORES, float("nan"))
    pred, score = values[:, 2].astype(np.float64), values[:, 3].astype(np.float64)
    rmse = float(np.sqrt(np.mean((pred - score) ** 2)))
    if len(pred) < 2 or np.ptp(pred) == 0 or np.ptp(score) == 0:
        return {"rmse": rmse, "spearman": float("nan")}
    from scipy.stats import spearmanr

    return {"rmse": rmse, "spearman": float(spearmanr(pred, score).statistic)}


def _scores(gold: np.ndarray, values: np.ndarray, pred: np.ndarray, names: tuple[str, ...],
            outside: int) -> dict[str, float]:
    """The scores ``names`` of one group of units (``pred``: their predicted labels, from
    :func:`_predicted_labels`); NaN when it is empty."""
    from sklearn.metrics import f1_score

    if gold.size == 0:
        return dict.fromkeys(names, float("nan"))
    out = _lm_scores(np.asarray(values)) if set(names) & set(_LM_SCORES) else {}
    if set(names) & set(_REGRESSION_SCORES):
        out.update(_regression_scores(np.asarray(values)))
    classes = max(int(gold.max()), int(pred.max())) + 1
    if "accuracy" in names:
        out["accuracy"] = float(np.mean(gold == pred))
    if "macro_f1" in names:
        out["macro_f1"] = float(f1_score(gold, pred, average="macro", zero_division=0))
    if "micro_f1" in names:  # yes/no units: class 1, the label applies
        out["micro_f1"] = _f1_of(gold, pred, np.arange(classes) == 1)
    if "micro_ap" in names:
        out["micro_ap"] = _average_precision(gold, np.asarray(values))
    if "tag_f1" in names:  # every tag but the outside one (O)
        out["tag_f1"] = _f1_of(gold, pred, np.arange(classes) != outside)
    return {k: out[k] for k in names}


def evaluate_by_region(predictions: Mapping[str, np.ndarray], gold, regions=None, *,
                       scores=CLASSIFIER_SCORES, outside: int = 0) -> pd.DataFrame:
    """One row per model: ``n``, ``overall_<score>`` and per region ``<region>_n``, ``<region>_<score>``.

    Parameters
    ----------
    predictions : mapping of str to array
        Model name -> (n, C) logits or probabilities (argmax taken) or (n,) labels, in the row
        order of ``gold``; one row per unit (an example, an (example, label) pair, a word). A
        causal LM's rows are ``[0, z, nll, token_accuracy, n_tokens]`` (or only ``[0, z]``).
    gold : array of shape (n,)
        The gold label of each unit.
    regions : array of shape (n,), optional
        Region names by position (a Series is taken by position too); units without a region (NaN)
        count only overall. The regions are :data:`datacarto.metrics.REGIONS` in that order, then
        any other names found.
    scores : sequence of str, default ("accuracy", "macro_f1")
        Which scores (of :data:`EVALUATION_SCORES`; a task's are its registry entry's ``scores``,
        :mod:`datacarto.tasks`): accuracy and sklearn's macro-F1 (classes present in the gold or
        predicted labels of that group); ``micro_f1`` of yes/no decisions (multi-label: class 1, the
        label applies) and their average precision (``micro_ap``, ranked by the logit,
        threshold-free); ``tag_f1``, the micro-F1 of the words' tags other than ``outside`` (word
        level, not entity spans); a causal LM's token-weighted mean NLL (``loss``) and token accuracy.
    outside : int, default 0
        Token classification: the id of the outside tag (O).

    Returns
    -------
    DataFrame
        Indexed by ``model``. An empty region has n = 0 and NaN scores.
    """
    if not isinstance(predictions, Mapping) or not predictions:
        raise DatacartoError("evaluate_by_region needs a non-empty dict of model name -> predictions")
    scores = check_scores(scores)  # an unknown score fails first
    gold = np.asarray(gold)
    if gold.ndim != 1:
        raise DatacartoError(f"gold labels must be 1-D, got shape {gold.shape}")
    gold = check_int_labels(gold, "gold labels")
    n = gold.shape[0]
    names_by_row = None
    order: list[str] = []
    if regions is not None:
        names_by_row = np.asarray(regions.astype(object) if isinstance(regions, pd.Series) else regions, dtype=object)
        if names_by_row.shape != (n,):
            raise DatacartoError(f"regions have shape {names_by_row.shape} but there are {n} gold labels")
        present = {r for r in names_by_row if isinstance(r, str)}
        order = list(REGIONS) + sorted(present - set(REGIONS))

    rows = []
    for name, values in predictions.items():
        values = np.asarray(values)
        pred = _predicted_labels(name, values, n)  # shapes checked before any score; one argmax per model
        row = {"model": name, "n": n,
               **{f"overall_{k}": v for k, v in _scores(gold, values, pred, scores, outside).items()}}
        for region in order:
            mask = names_by_row == region
            row[f"{region}_n"] = int(mask.sum())
            row.update({f"{region}_{k}": v
                        for k, v in _scores(gold[mask], values[mask], pred[mask], scores, outside).items()})
        rows.append(row)
    return pd.DataFrame(rows).set_index("model")


def accuracy_table(validation: Mapping[str, np.ndarray], gold, regions=None, *,
                   test: Mapping[str, np.ndarray] | None = None, test_gold=None, test_regions=None,
                   scores=CLASSIFIER_SCORES, outside: int = 0) -> pd.DataFrame:
    """One row per model: its test and validation scores, overall and per region.

    Parameters
    ----------
    validation : mapping of str to array
        Model name -> validation logits (or labels), as for :func:`evaluate_by_region`.
    gold : array
        The validation gold labels (one per unit).
    regions : array, optional
        Regions of the validation units, by position.
    test, test_gold, test_regions : optional
        The same for the test set; without them the test columns are NaN.
    scores, outside : optional
        Which scores, as for :func:`evaluate_by_region`.

    Returns
    -------
    DataFrame
        Index ``model``; columns ``test_<score>`` and ``validation_<score>`` for every score of
        ``scores`` (default ``accuracy``, ``macro_f1``), and for each region
        ``validation_<region>_<headline>`` and ``validation_<region>_n`` (with ``regions``),
        ``test_<region>_<headline>`` and ``test_<region>_n`` (with ``test_regions``), where the
        headline is the first score.
    """
    val = evaluate_by_region(validation, gold, regions, scores=scores, outside=outside)
    t = evaluate_by_region(test, test_gold, test_regions, scores=scores, outside=outside) \
        if test is not None and test_gold is not None else None
    names = check_scores(scores)
    table = pd.DataFrame(index=val.index)
    for column in names:
        table[f"test_{column}"] = t[f"overall_{column}"] if t is not None else np.nan
    for column in names:
        table[f"validation_{column}"] = val[f"overall_{column}"]
    for split, frame, split_regions in (("validation", val, regions), ("test", t, test_regions)):
        if frame is not None and split_regions is not None:
            for region in REGIONS:
                table[f"{split}_{region}_{names[0]}"] = frame[f"{region}_{names[0]}"]
                table[f"{split}_{region}_n"] = frame[f"{region}_n"]
    table.index.name = "model"
    return table
