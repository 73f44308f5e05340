"""Accuracy and macro-F1 of several models, on the whole evaluation set and on each data-map region.

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


def _scores(gold: np.ndarray, pred: np.ndarray) -> tuple[float, float]:
    from sklearn.metrics import f1_score

    if gold.size == 0:
        return float("nan"), float("nan")
    acc = float(np.mean(gold == pred))
    f1 = float(f1_score(gold, pred, average="macro", zero_division=0))
    return acc, f1


def evaluate_by_region(predictions: Mapping[str, np.ndarray], gold, regions=None) -> pd.DataFrame:
    """One row per model: ``n``, ``overall_accuracy``, ``overall_macro_f1`` and per region
    ``<region>_n``, ``<region>_accuracy``, ``<region>_macro_f1``.

    ``predictions``: model name -> (n, C) logits or probabilities (argmax taken) or (n,) labels, in
    the row order of ``gold``. ``regions``: (n,) region names by position (a Series is taken by
    position too), or None for overall numbers only; examples without a region (NaN) count only
    overall. The regions are :data:`datacarto.metrics.REGIONS` in that order, then any other names
    found. Macro-F1 is sklearn's (classes present in the gold or predicted labels of that group).
    An empty region has n = 0 and NaN scores.
    """
    if not isinstance(predictions, Mapping) or not predictions:
        raise DatacartoError("evaluate_by_region needs a non-empty dict of model name -> predictions")
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
        pred = _predicted_labels(name, values, n)
        acc, f1 = _scores(gold, pred)
        row = {"model": name, "n": n, "overall_accuracy": acc, "overall_macro_f1": f1}
        for region in order:
            mask = names_by_row == region
            r_acc, r_f1 = _scores(gold[mask], pred[mask])
            row[f"{region}_n"] = int(mask.sum())
            row[f"{region}_accuracy"] = r_acc
            row[f"{region}_macro_f1"] = r_f1
        rows.append(row)
    return pd.DataFrame(rows).set_index("model")


def accuracy_table(validation: Mapping[str, np.ndarray], gold, regions=None, *,
                   test: Mapping[str, np.ndarray] | None = None, test_gold=None, test_regions=None) -> pd.DataFrame:
    """One row per model: test and validation accuracy and macro-F1, overall and per region.

    Parameters
    ----------
    validation : mapping of str to array
        Model name -> validation logits (or labels), as for :func:`evaluate_by_region`.
    gold : array
        The validation gold labels.
    regions : array, optional
        Regions of the validation examples, by position.
    test, test_gold, test_regions : optional
        The same for the test set; without them the test columns are NaN.

    Returns
    -------
    DataFrame
        Index ``model``; columns ``test_accuracy``, ``test_macro_f1``, ``validation_accuracy``,
        ``validation_macro_f1``, and for each region ``validation_<region>_accuracy`` and
        ``validation_<region>_n`` (with ``regions``), ``test_<region>_accuracy`` and
        ``test_<region>_n`` (with ``test_regions``).
    """
    val = evaluate_by_region(validation, gold, regions)
    t = evaluate_by_region(test, test_gold, test_regions) if test is not None and test_gold is not None else None
    table = pd.DataFrame(index=val.index)
    for column in ("accuracy", "macro_f1"):
        table[f"test_{column}"] = t[f"overall_{column}"] if t is not None else np.nan
    table["validation_accuracy"] = val["overall_accuracy"]
    table["validation_macro_f1"] = val["overall_macro_f1"]
    for split, frame, split_regions in (("validation", val, regions), ("test", t, test_regions)):
        if frame is not None and split_regions is not None:
            for region in REGIONS:
                table[f"{split}_{region}_accuracy"] = frame[f"{region}_accuracy"]
                table[f"{split}_{region}_n"] = frame[f"{region}_n"]
    table.index.name = "model"
    return table


def __getattr__(name: str):
    """``datacarto.evaluation.eval_regions`` keeps working (lazy re-export: it reads a run folder)."""
    if name == "eval_regions":
        from .dynamics.cache import eval_regions

        return eval_regions
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
