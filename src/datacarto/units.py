"""Per-example scores from per-unit metrics (multi-label pairs, token-classification words).

The metrics of every unit come from :func:`datacarto.metrics.compute_metrics`, the one
implementation; this module only aggregates them by example, so that selection, focused training
and the pipeline work on examples, and summarises them by label or tag. NumPy/pandas only.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .errors import DatacartoError
from .metrics import REGIONS, assign_regions, metric_columns

#: columns of the example table beyond the metric means
EXTRA_COLUMNS = ("confidence_min", "hard_share", "ambiguous_share", "hardest_unit", "n_units")


def aggregate_units(unit_metrics: pd.DataFrame, row_ids: np.ndarray, sub_ids: np.ndarray) -> pd.DataFrame:
    """One row per example: the mean of each unit metric, plus the hardest unit and region shares.

    Parameters
    ----------
    unit_metrics : DataFrame
        ``compute_metrics`` of the units (one row per unit, in unit order) with a ``region`` column.
    row_ids, sub_ids : array of shape (U,)
        The example and the index within it of each unit.

    Returns
    -------
    DataFrame
        Indexed by ``row_id``: every metric of :func:`~datacarto.metrics.metric_columns` averaged over the
        example's units (``gold``, ``last_pred`` and ``last_prob`` are the hardest unit's, i.e. the
        one of lowest confidence; ``never_learned`` is True when some unit was never learned),
        ``confidence_min``, ``hard_share`` and ``ambiguous_share`` (shares of the units in those
        regions), ``hardest_unit`` (its sub id), ``n_units``, and ``region`` of the example, assigned
        from the mean confidence and variability by :func:`~datacarto.metrics.assign_regions`.
    """
    row_ids, sub_ids = np.asarray(row_ids), np.asarray(sub_ids)
    if len(unit_metrics) != len(row_ids) or len(row_ids) != len(sub_ids):
        raise DatacartoError(f"{len(unit_metrics)} unit metrics but {len(row_ids)} row ids and {len(sub_ids)} sub ids")
    frame = unit_metrics.reset_index(drop=True).assign(row_id=row_ids, sub_id=sub_ids)
    groups = frame.groupby("row_id", sort=True)
    columns = metric_columns()
    numeric = [c for c in columns if c not in ("gold", "last_pred", "last_prob", "never_learned")]
    out = groups[numeric].mean()
    hardest = frame.loc[groups["confidence"].idxmin().to_numpy()].set_index("row_id")
    for c in ("gold", "last_pred", "last_prob"):
        out[c] = hardest[c]
    out["never_learned"] = groups["never_learned"].any()
    out["confidence_min"] = groups["confidence"].min()
    region = frame["region"].astype(object)
    out["hard_share"] = (region == "hard-to-learn").groupby(frame["row_id"]).mean()
    out["ambiguous_share"] = (region == "ambiguous").groupby(frame["row_id"]).mean()
    out["hardest_unit"] = hardest["sub_id"].astype(np.int64)
    out["n_units"] = groups.size()
    out = out[[*columns, *EXTRA_COLUMNS]]
    out.index.name = "row_id"
    regions = assign_regions(out)
    out["region"] = regions
    out.attrs.update(regions.attrs)
    return out


def summary_by(unit_metrics: pd.DataFrame, groups: np.ndarray, names: list[str] | None = None) -> pd.DataFrame:
    """Per label (multi-label: by sub id) or per tag (token classification: by gold): which are hard.

    Returns a DataFrame indexed by group name with ``n`` units, mean ``confidence`` and
    ``variability``, and the share of units in each region.
    """
    groups = np.asarray(groups)
    frame = unit_metrics.reset_index(drop=True).assign(group=groups)
    out = frame.groupby("group").agg(n=("confidence", "size"), confidence=("confidence", "mean"),
                                     variability=("variability", "mean"))
    region = frame["region"].astype(object)
    for r in REGIONS:
        out[r] = (region == r).groupby(frame["group"]).mean()
    if names is not None:
        out.index = [names[int(g)] if 0 <= int(g) < len(names) else str(g) for g in out.index]
    out.index.name = "label"
    return out.sort_values("confidence")


def words_column(examples: pd.DataFrame) -> str | None:
    """The column of recorded token-classification examples that holds each sentence's words (None: none)."""
    return next((c for c in examples.columns if len(examples) and isinstance(examples[c].iloc[0], (list, np.ndarray))
                 and len(examples[c].iloc[0]) and isinstance(examples[c].iloc[0][0], str)), None)


def unit_records(examples: pd.DataFrame, units: pd.DataFrame, *, unit: str, label_names: list[str]) -> pd.DataFrame:
    """One record per unit for map tooltips: the example's text with the unit marked, gold and predicted.

    ``units``: the unit table of ``get_metrics(..., level="unit")`` (``row_id``, ``sub_id``,
    ``gold``, ``last_pred``); ``unit``: what a unit is (its task's registry entry's). ``"word"``
    (token classification): the sentence with the word in [brackets], the word, its gold and
    predicted tags. ``"label"`` (multi-label, a yes/no decision): the example's text, the label,
    whether it is gold and predicted, and the example's gold labels.
    """
    rows, subs = units["row_id"].to_numpy(), units["sub_id"].to_numpy()
    name = np.asarray(label_names, dtype=object)
    gold, pred = units["gold"].to_numpy(), units["last_pred"].to_numpy()
    ex = examples.reindex(rows)
    if unit == "word":
        words_col = words_column(ex)
        if words_col is None:
            raise DatacartoError("the recorded examples hold no list of words to show the tagged word in")
        words = ex[words_col].to_list()
        sentence = [" ".join(f"[{w}]" if i == s else str(w) for i, w in enumerate(ws)) for ws, s in zip(words, subs)]
        out = {"sentence": sentence, "word": [ws[s] if s < len(ws) else "" for ws, s in zip(words, subs)],
               "gold tag": name[gold], "predicted tag": name[pred]}
    elif unit == "label":
        text_cols = [c for c in ex.columns if pd.api.types.is_string_dtype(ex[c]) and c != "fingerprint"]
        out = {c: ex[c].to_list() for c in text_cols}
        out.update({"label": name[subs], "gold": np.where(gold == 1, "yes", "no"),
                    "predicted": np.where(pred == 1, "yes", "no"),
                    "gold labels": [", ".join(name[list(v)]) for v in ex["label"]]})
    else:
        raise DatacartoError(f"unit maps are for units that are words or labels, not {unit!r}")
    return pd.DataFrame(out, index=units.index)
