"""Did the model learn? Regions are relative to the model: a map of one that learned nothing misleads.

Pure NumPy/pandas over the metrics table (no torch, no store).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .metrics import labelled

#: last-epoch training accuracy within this many points of the chance rate counts as "barely learned"
MARGIN = 0.10
#: ... or more than this share of easy-to-learn examples never predicted correctly
EASY_NEVER_RIGHT = 0.25


def learning_warning(metrics: pd.DataFrame, *, regions: pd.Series | None = None,
                     what: str = "training set") -> str | None:
    """One line when the model barely learned the training set, else None.

    Parameters
    ----------
    metrics : DataFrame
        ``compute_metrics`` output (``gold``, ``last_pred``, ``never_learned``). A causal LM's table
        (with ``nll``) is never judged; an example table aggregated from units (with ``n_units``)
        gives the verdict on its units that ``get_metrics`` left in ``attrs["learning_warning"]``.
    regions : Series, optional
        Regions by row id (default: the table's ``region`` column, if any).
    what : str
        The split, for the message ("training set", "validation set").

    Returns
    -------
    str or None
        "the model barely learned ..." naming the figures, or None when it learned.
    """
    if not labelled(metrics):  # a causal LM: p(gold) > 1/2 is no accuracy; the check does not apply
        return None
    if "n_units" in metrics.columns:  # examples aggregated from units: the units' verdict, if it was judged
        return metrics.attrs.get("learning_warning")
    gold = metrics["gold"].to_numpy()
    if gold.size == 0:
        return None
    accuracy = float(np.mean(metrics["last_pred"].to_numpy() == gold))
    counts = np.bincount(gold)
    chance = max(float(counts.max() / gold.size), 1.0 / max(len(counts), 2))
    regions = metrics.get("region") if regions is None else regions
    easy_wrong = None
    if regions is not None:
        easy = (regions == "easy-to-learn").to_numpy()
        if easy.any():
            easy_wrong = float(metrics["never_learned"].to_numpy()[easy].mean())
    if accuracy >= chance + MARGIN and (easy_wrong is None or easy_wrong <= EASY_NEVER_RIGHT):
        return None
    detail = f"last-epoch accuracy {accuracy:.2f}, chance (majority class) {chance:.2f}"
    if easy_wrong is not None:
        detail += f"; {easy_wrong:.0%} of easy-to-learn examples were never predicted correctly"
    return (f"the model barely learned the {what} ({detail}): regions are relative to a model that "
            "knows little; train longer, or with a higher learning rate, before reading the map")
