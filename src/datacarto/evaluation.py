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

import os
from collections.abc import Mapping

import numpy as np
import pandas as pd

from .errors import DatacartoError


def _labels_of(name: str, values, n: int) -> np.ndarray:
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
        if arr.size and not np.issubdtype(arr.dtype, np.integer):
            if not np.all(np.equal(np.mod(arr, 1), 0)):
                raise DatacartoError(f"1-D predictions of {name!r} must be integer labels")
        return arr.astype(np.int64)
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
    if gold.size and not np.issubdtype(gold.dtype, np.integer):
        raise DatacartoError(f"gold labels must be integers, got dtype {gold.dtype}")
    gold = gold.astype(np.int64)
    n = gold.shape[0]
    from .selection import REGIONS

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
        pred = _labels_of(name, values, n)
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


def eval_regions(run_dir: str | os.PathLike, split: str = "validation") -> pd.Series:
    """Regions of an evaluation split from the dynamics the baseline recorded for it, by row id.

    ``assign_regions(compute_metrics(load_dynamics(run_dir, split)))``. Row id = position in the
    evaluation set as the Trainer saw it (rows without a gold label dropped). Needs at least two
    recorded evaluations for the variability to mean anything; with one, a warning is given.
    """
    import warnings

    from .dynamics.store import load_dynamics
    from .metrics import assign_regions, compute_metrics

    dyn = load_dynamics(run_dir, split)
    if dyn.n_epochs < 2:
        warnings.warn(f"the {split!r} dynamics of {run_dir} hold {dyn.n_epochs} evaluation(s): regions need "
                      "several (variability is 0 with one)", stacklevel=2)
    return assign_regions(compute_metrics(dyn))
