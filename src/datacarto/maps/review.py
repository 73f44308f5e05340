"""Suspected label errors on the page: the label-error finder's flagged rows as table columns.

A run that supports an estimate (:func:`datacarto.dynamics.label_errors.run_label_errors`) gets a
``suspect`` column (the rank of a flagged row, most suspect first) and the suggested label with its
probability in the table of the level the flags belong to (examples; the units of multi-label and
token-classification runs). The reviewer's decisions made on the page (``review.js``) are exported
as the corrections file ``datacarto apply-corrections`` reads, with the run's data-set fingerprint.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..errors import DatacartoError


@dataclass
class Review:
    """The flagged rows of a run, for the page.

    ``flagged``: ``row_id`` (and ``sub_id`` for units), ``suggested_label`` (a class name of the
    page's level), ``suggested_probability``; most suspect first. ``fingerprint``: the run's data-set
    fingerprint, written into every exported decision. ``estimate``: the estimated number of wrong
    labels; ``note``: how it was estimated (one line). ``level``: "example" or "unit".
    """

    flagged: pd.DataFrame
    fingerprint: str
    estimate: int
    note: str = ""
    level: str = "example"


def review_arrays(review: Review, table: pd.DataFrame, ids: np.ndarray, names: list,
                  missing_label: int) -> tuple[dict[str, np.ndarray], dict]:
    """Per row of the page: ``suspect`` (rank, 0 = not flagged), ``suggested`` (label code,
    ``missing_label`` = none), ``suggested_p`` (percent, 255 = none); and what meta says."""
    flagged = review.flagged
    if review.level == "unit":
        rows = pd.MultiIndex.from_arrays([table["row_id"].to_numpy(np.int64), table["sub_id"].to_numpy(np.int64)])
        keys = pd.MultiIndex.from_arrays([flagged["row_id"].to_numpy(np.int64), flagged["sub_id"].to_numpy(np.int64)])
    else:
        rows, keys = pd.Index(ids), pd.Index(flagged["row_id"].to_numpy(np.int64))
    where = keys.get_indexer(rows)  # each page row's place among the flagged ones (-1: not flagged)
    hit = where >= 0
    names = [str(n) for n in names]
    suggestions = flagged["suggested_label"].astype(str)
    codes = pd.Categorical(suggestions, categories=names).codes.astype(np.int64)  # vectorised: every answer of serve
    if (codes < 0).any():
        unknown = sorted(set(suggestions[codes < 0]))
        raise DatacartoError(f"suggested labels {unknown[:3]} are not classes of the map ({', '.join(names)})")
    probs = pd.to_numeric(flagged["suggested_probability"], errors="coerce").to_numpy(dtype=np.float64)
    suspect = np.where(hit, where + 1, 0).astype(np.uint32)
    dtype = np.uint8 if missing_label == 255 else np.uint16
    suggested = np.full(rows.size, missing_label, dtype=dtype)
    suggested[hit] = codes[where[hit]]
    percent = np.full(rows.size, 255, dtype=np.uint8)
    ok = hit.copy()
    ok[hit] = np.isfinite(probs[where[hit]])
    percent[ok] = np.clip(np.round(probs[where[ok]] * 100), 0, 100).astype(np.uint8)
    meta = {"fingerprint": str(review.fingerprint), "estimate": int(review.estimate), "flagged": int(len(flagged)),
            "shown": int(hit.sum()), "note": str(review.note), "level": review.level}
    return {"suspect": suspect, "suggested": suggested, "suggested_p": percent}, meta


def review_of(found, fingerprint: str) -> Review:
    """The page's review of a label-error estimate (a :class:`~datacarto.label_errors.LabelErrors` of
    :func:`~datacarto.dynamics.label_errors.run_label_errors`) of a run with that data-set fingerprint."""
    from ..dynamics.label_errors import describe_method

    info = found.info
    note = (f"{describe_method(info)}, {info['epochs']} of {info['n_epochs']} epochs"
            + (f"; {info['warning']}" if info.get("warning") else ""))
    level = "unit" if "sub_id" in found.flagged.columns else "example"
    flagged = found.flagged[[c for c in ("row_id", "sub_id", "suggested_label", "suggested_probability")
                             if c in found.flagged.columns]]
    return Review(flagged.reset_index(drop=True), str(fingerprint), int(found.total), note, level)


def run_review(run_dir, split: str = "train") -> Review | None:
    """The flags of a run's label-error estimate for its page, or None where the run cannot support one
    (a causal LM, a model that barely learned, one epoch of in-sample dynamics, no fingerprint)."""
    import warnings

    from ..dynamics.label_errors import run_fingerprint, run_label_errors

    try:
        with warnings.catch_warnings():  # what the map's own reading of the run says already
            warnings.simplefilter("ignore")
            found = run_label_errors(run_dir, split=split)
            fingerprint = run_fingerprint(run_dir, split)
    except DatacartoError:
        return None
    return review_of(found, fingerprint)


__all__ = ["Review", "review_arrays", "review_of", "run_review"]
