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
#: a model that learned, whose 90th percentile of confidence stays within this of chance (1/C):
#: its probabilities are near uniform, so the map's confidence axis is a narrow band
COMPRESSED_SPAN = 0.25


def learning_warning(metrics: pd.DataFrame, *, regions: pd.Series | None = None,
                     what: str = "training set") -> str | None:
    """One line when the model barely learned the training set, or learned it with probabilities
    still near uniform (compressed confidences), else None.

    The verdict of :func:`barely_learned`, followed by what it means for the map.
    """
    verdict = barely_learned(metrics, regions=regions, what=what)
    if verdict is None:
        return compressed_confidences(metrics, what=what)
    if "n_units" in metrics.columns:  # the units' line is already whole
        return verdict
    return (f"{verdict}: regions are relative to a model that knows little; train longer, or with a higher "
            "learning rate, before reading the map")


def barely_learned(metrics: pd.DataFrame, *, regions: pd.Series | None = None,
                   what: str = "training set") -> str | None:
    """"the model barely learned the <what> (figures)" when it did, else None.

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
    return f"the model barely learned the {what} ({detail})"


def compressed_confidences(metrics: pd.DataFrame, *, what: str = "training set") -> str | None:
    """The line for a model that learned but whose p(gold) stays near uniform (1/C), else None."""
    if not labelled(metrics) or "n_units" in metrics.columns or len(metrics) == 0:
        return None
    gold = metrics["gold"].to_numpy()
    classes = max(len(np.bincount(gold)), 2)
    accuracy = float(np.mean(metrics["last_pred"].to_numpy() == gold))
    uniform = 1.0 / classes
    top = float(np.nanquantile(metrics["confidence"].to_numpy(dtype=float), 0.9))
    if not top < uniform + COMPRESSED_SPAN:
        return None
    return (f"the confidences are compressed: 90% of the {what} has p(gold) below {top:.2f} (chance {uniform:.2f}) "
            f"although the last-epoch accuracy is {accuracy:.2f}: the model ranks the classes but its probabilities "
            "are still near uniform, so the regions split a narrow band; train longer, or with a higher learning "
            "rate, before reading the map")
