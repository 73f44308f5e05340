"""How many labels are wrong, which, and what they should be: confident learning, NumPy/pandas only.

The count follows Northcutt, Jiang and Chuang (2021), "Confident Learning: Estimating Uncertainty in
Dataset Labels" (JAIR 70), implemented from the paper:

1. per-class thresholds ``t_j`` = the mean probability of class j over the rows *given* label j
   (the class's mean self-confidence);
2. the confident joint ``C[i, j]`` counts the rows given label i whose probability of class j
   reaches ``t_j`` (of several such j, the most probable one); a row that reaches no threshold is
   not counted;
3. each row of ``C`` is calibrated to the number of rows given label i
   (``C~[i] = C[i] / sum(C[i]) * n_i``); the off-diagonal sum of row i is the estimated number of
   wrong labels among the rows given label i, their sum the estimate in total;
4. "prune by class": in each given class, the estimated number of rows with the lowest label
   quality (the ``score``) are flagged; the flagged rows are ranked by that score, most suspect first.

The suggested label is the most probable class (``argmax`` of the probabilities used). Which
probabilities to use (out-of-sample, the mean over epochs, the last epoch) is the caller's choice;
:mod:`datacarto.dynamics.label_errors` makes it for a run (docs/label_errors.md).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ._validation import check_choice, check_int_labels
from .errors import DatacartoError

#: label-quality scores by name (lower = more likely a wrong label), after cleanlab's ``rank`` names:
#: ``self_confidence`` = p(given label); ``normalized_margin`` = p(given) - max over the other classes.
SCORES = ("self_confidence", "normalized_margin")
#: the score that ranks the flags unless one is named
DEFAULT_SCORE = SCORES[0]
#: how :func:`probabilities_from_logits` turns several epochs into one distribution per row
EPOCH_RULES = ("mean", "last")
#: the columns of :attr:`LabelErrors.flagged`
FLAGGED_COLUMNS = ("row_id", "given_label", "suggested_label", "suggested_probability", "score", "score_value")


@dataclass
class LabelErrors:
    """What :func:`find_label_errors` found.

    ``per_class``: by given class, ``n`` rows, ``estimated_errors`` (int) and ``share`` (of n).
    ``total``: the estimated number of wrong labels (the sum of ``estimated_errors``).
    ``flagged``: :data:`FLAGGED_COLUMNS`, ``total`` rows, most suspect first.
    ``joint``: the calibrated confident joint (given class x true class), floats.
    ``thresholds``: ``t_j`` by class. ``info``: how the probabilities were obtained (set by callers).
    """

    per_class: pd.DataFrame
    flagged: pd.DataFrame
    joint: pd.DataFrame
    thresholds: pd.Series
    score: str
    n: int
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return int(self.per_class["estimated_errors"].sum())


# ----------------------------------------------------------------------------------------------
# probabilities and scores


def softmax(logits: np.ndarray) -> np.ndarray:
    """Softmax over the last axis, in float64, the row maximum subtracted first."""
    z = np.asarray(logits, dtype=np.float64)
    z = z - np.max(z, axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def probabilities_from_logits(logits, *, epochs: str = "mean") -> np.ndarray:
    """One distribution per row from logits of shape (N, E, C): ``epochs="mean"`` (of the per-epoch
    softmax, epochs with a non-finite logit left out) or ``"last"`` (the last usable epoch).

    A row without a usable epoch gets NaN probabilities.
    """
    check_choice(epochs, EPOCH_RULES, "epochs")
    logits = np.asarray(logits)
    if logits.ndim != 3 or logits.shape[1] == 0 or logits.shape[2] < 2:
        raise DatacartoError(f"logits must have shape (rows, epochs >= 1, classes >= 2), got {logits.shape}")
    usable = np.isfinite(logits).all(axis=2)  # (N, E)
    probs = softmax(np.where(usable[:, :, None], logits, 0.0))
    if epochs == "mean":
        count = usable.sum(axis=1)
        total = np.where(usable[:, :, None], probs, 0.0).sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            out = total / count[:, None]
    else:
        last = logits.shape[1] - 1 - np.argmax(usable[:, ::-1], axis=1)
        out = probs[np.arange(len(probs)), last]
        out[~usable.any(axis=1)] = np.nan
    return out


def label_quality(labels, probabilities, *, score: str = DEFAULT_SCORE) -> np.ndarray:
    """Each row's label quality (lower = more suspect): see :data:`SCORES`."""
    check_choice(score, SCORES, "score")
    labels, probs = _check_inputs(labels, probabilities)
    given = probs[np.arange(len(labels)), labels]
    if score == "self_confidence":
        return given
    others = probs.copy()
    others[np.arange(len(labels)), labels] = -np.inf
    return given - others.max(axis=1)


def _check_inputs(labels, probabilities, num_classes: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    probs = np.asarray(probabilities, dtype=np.float64)
    if probs.ndim != 2 or probs.shape[1] < 2 or probs.shape[0] == 0:
        raise DatacartoError(f"probabilities must have shape (rows >= 1, classes >= 2), got {probs.shape}")
    labels = check_int_labels(np.asarray(labels), "labels")
    if labels.shape != (probs.shape[0],):
        raise DatacartoError(f"{labels.size} labels for {probs.shape[0]} rows of probabilities")
    c = probs.shape[1] if num_classes is None else int(num_classes)
    if c != probs.shape[1]:
        raise DatacartoError(f"num_classes is {c} but the probabilities have {probs.shape[1]} columns")
    if labels.size and (labels.min() < 0 or labels.max() >= c):
        raise DatacartoError(f"labels must lie in 0..{c - 1}, got {int(labels.min())}..{int(labels.max())}")
    finite = np.isfinite(probs)
    if (probs[finite] < -1e-9).any() or (probs[finite] > 1 + 1e-9).any():
        raise DatacartoError("probabilities must lie in [0, 1] (pass softmax(logits), not logits)")
    sums = probs.sum(axis=1)
    if (np.abs(sums[np.isfinite(sums)] - 1) > 1e-3).any():
        raise DatacartoError("each row of probabilities must sum to 1 (pass softmax(logits), not logits)")
    return labels, probs


# ----------------------------------------------------------------------------------------------
# the confident-learning count


def confident_joint(labels, probabilities, *, num_classes: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(``C``, ``t``): the confident joint counts (given x true, int) and the per-class thresholds.

    A class no row is given has threshold +inf (no row is counted as it). Rows with NaN
    probabilities are left out.
    """
    labels, probs = _check_inputs(labels, probabilities, num_classes)
    ok = np.isfinite(probs).all(axis=1)
    labels, probs = labels[ok], probs[ok]
    c = probs.shape[1]
    counts = np.bincount(labels, minlength=c)
    sums = np.zeros(c)
    np.add.at(sums, labels, probs[np.arange(len(labels)), labels])
    with np.errstate(invalid="ignore", divide="ignore"):
        thresholds = np.where(counts > 0, sums / np.maximum(counts, 1), np.inf)
    above = probs >= thresholds[None, :]
    counted = above.any(axis=1)
    true = np.argmax(np.where(above, probs, -np.inf), axis=1)
    joint = np.zeros((c, c), dtype=np.int64)
    np.add.at(joint, (labels[counted], true[counted]), 1)
    return joint, thresholds


def calibrate_joint(joint, label_counts) -> np.ndarray:
    """Each row of the confident joint scaled to sum to the number of rows given that label.

    A row that counted nothing stays on the diagonal (no evidence of errors in that class).
    """
    joint = np.asarray(joint, dtype=np.float64)
    n = np.asarray(label_counts, dtype=np.float64)
    sums = joint.sum(axis=1)
    out = np.where(sums[:, None] > 0, joint / np.maximum(sums, 1)[:, None] * n[:, None], 0.0)
    empty = sums == 0
    out[empty, np.flatnonzero(empty)] = n[empty]
    return out


def _round(x: np.ndarray) -> np.ndarray:
    return np.floor(np.asarray(x) + 0.5 + 1e-9).astype(np.int64)


def _count(labels: np.ndarray, probs: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(calibrated joint, thresholds, estimated errors per given class as ints) of one problem."""
    c = probs.shape[1]
    joint, thresholds = confident_joint(labels, probs)
    counts = np.bincount(labels, minlength=c)
    calibrated = calibrate_joint(joint, counts)
    off = calibrated.sum(axis=1) - np.diag(calibrated)
    return calibrated, thresholds, np.minimum(_round(off), counts)


def _one_problem(labels: np.ndarray, probs: np.ndarray, index: list, names: list):
    """(per-class counts, calibrated joint, thresholds, estimated errors) of one C-class problem, named."""
    c = probs.shape[1]
    calibrated, t, errors = _count(labels, probs)
    counts = np.bincount(labels, minlength=c)
    per_class = pd.DataFrame({"n": counts, "estimated_errors": errors,
                              "share": np.where(counts > 0, errors / np.maximum(counts, 1), 0.0)}, index=index)
    return per_class, pd.DataFrame(calibrated, index=index, columns=list(names)), pd.Series(t, index=index), errors


def _flag(labels: np.ndarray, quality: np.ndarray, ids: np.ndarray, errors: np.ndarray) -> np.ndarray:
    """Positions of the ``errors[i]`` lowest-quality rows of each given class i (ties: lower id first)."""
    picked = []
    for i, k in enumerate(errors):
        if k <= 0:
            continue
        rows = np.flatnonzero(labels == i)
        order = np.lexsort((ids[rows], quality[rows]))
        picked.append(rows[order[:k]])
    return np.concatenate(picked) if picked else np.empty(0, dtype=np.int64)


def find_label_errors(labels, probabilities, *, score: str = DEFAULT_SCORE, ids=None,
                      class_names=None, groups=None, group_names=None) -> LabelErrors:
    """Estimate how many labels are wrong (per given class and in total) and flag that many rows.

    Parameters
    ----------
    labels : array of int, shape (N,)
        The given labels, 0..C-1.
    probabilities : array, shape (N, C)
        Each row's predicted class distribution, best out-of-sample. Rows with NaN are left out.
    score : {"self_confidence", "normalized_margin"}
        The label-quality score that ranks the rows within a class and in the flagged table.
    ids : array of int, optional
        Row ids (default 0..N-1), the ``row_id`` column of the flagged rows.
    class_names : list of str, optional
        Names of the C classes (default: the ids), used in every table.
    groups : array of int, optional
        One group per row: the count runs per group, each its own C-class problem (multi-label
        units: one binary problem per label). Per-class rows are then named "group: class".
    group_names : list of str, optional
        Names of the groups (default: the group ids).

    Returns
    -------
    LabelErrors

    Examples
    --------
    Two classes, row 3 given "cat" but predicted "dog":

    >>> import numpy as np
    >>> p = np.array([[.9, .1], [.8, .2], [.7, .3], [.2, .8], [.1, .9], [.3, .7]])
    >>> found = find_label_errors([0, 0, 0, 0, 1, 1], p, class_names=["cat", "dog"])
    >>> found.total
    1
    >>> found.flagged[["row_id", "given_label", "suggested_label", "suggested_probability"]].to_dict("records")
    [{'row_id': 3, 'given_label': 'cat', 'suggested_label': 'dog', 'suggested_probability': 0.8}]
    """
    labels, probs = _check_inputs(labels, probabilities)
    n, c = probs.shape
    ids = np.arange(n, dtype=np.int64) if ids is None else check_int_labels(np.asarray(ids), "ids")
    if ids.shape != (n,):
        raise DatacartoError(f"{ids.size} ids for {n} rows of probabilities")
    names = _names(class_names, c, "class_names")
    grouped = groups is not None
    groups = np.zeros(n, dtype=np.int64) if groups is None else check_int_labels(np.asarray(groups), "groups")
    if groups.shape != (n,) or (n and groups.min() < 0):
        raise DatacartoError(f"groups must be {n} ids >= 0, one per row of probabilities")
    gnames = _names(group_names, int(groups.max()) + 1 if n else 0, "group_names")
    quality = label_quality(labels, probs, score=score)
    usable = np.isfinite(probs).all(axis=1)
    per_class, joints, thresholds, flagged = [], [], [], []
    for g in np.unique(groups):
        rows = np.flatnonzero((groups == g) & usable)
        index = [_problem_class(gnames[g], x) for x in names] if grouped else list(names)
        counts, joint, t, errors = _one_problem(labels[rows], probs[rows], index, names)
        per_class.append(counts)
        joints.append(joint)
        thresholds.append(t)
        flagged.append(rows[_flag(labels[rows], quality[rows], ids[rows], errors)])
    per_class = pd.concat(per_class)
    per_class.index.name = "given_label"
    picked = np.concatenate(flagged)
    picked = picked[np.lexsort((ids[picked], quality[picked]))]
    suggested = np.argmax(probs[picked], axis=1)
    table = pd.DataFrame({
        "row_id": ids[picked],
        "given_label": np.asarray(names, dtype=object)[labels[picked]],
        "suggested_label": np.asarray(names, dtype=object)[suggested],
        "suggested_probability": probs[picked, suggested],
        "score": score,
        "score_value": quality[picked],
    })
    if grouped:
        table.insert(1, "group", np.asarray(gnames, dtype=object)[groups[picked]])
    return LabelErrors(per_class=per_class, flagged=table.reset_index(drop=True), joint=pd.concat(joints),
                       thresholds=pd.concat(thresholds), score=score, n=int(usable.sum()))


def agreeing_errors(first: LabelErrors, *others: LabelErrors) -> LabelErrors:
    """The rows every estimate flags: ``first``'s flagged rows (its order, suggestions and scores) that
    each of ``others`` flags too, counted per given class (the estimate is their number).

    Two estimates of the same rows from different models (out-of-sample and in-sample dynamics)
    disagree most on the models' own mistakes and agree on wrong labels: on SNLI with 10% flipped
    labels the agreement flagged fewer clean rows than either (docs/label_errors.md, measured).

    >>> import numpy as np
    >>> p = np.array([[.9, .1], [.8, .2], [.2, .8], [.1, .9], [.1, .9], [.3, .7]])
    >>> q = np.array([[.9, .1], [.8, .2], [.6, .4], [.1, .9], [.1, .9], [.3, .7]])
    >>> labels = [0, 0, 0, 0, 1, 1]
    >>> a, b = find_label_errors(labels, p), find_label_errors(labels, q)
    >>> a.flagged["row_id"].tolist(), b.flagged["row_id"].tolist(), agreeing_errors(a, b).flagged["row_id"].tolist()
    ([3, 2], [3], [3])
    """
    keys = [c for c in ("row_id", "sub_id", "group") if c in first.flagged.columns]
    kept = np.ones(len(first.flagged), dtype=bool)
    ours = pd.MultiIndex.from_frame(first.flagged[keys].astype(str))
    for other in others:
        if list(other.per_class.index) != list(first.per_class.index):
            raise DatacartoError("the estimates to agree are of different classes: "
                                 f"{list(first.per_class.index)} and {list(other.per_class.index)}")
        kept &= ours.isin(pd.MultiIndex.from_frame(other.flagged[keys].astype(str)))
    flagged = first.flagged[kept].reset_index(drop=True)
    names = pd.Series([_problem_class(g, c) for g, c in zip(flagged["group"], flagged["given_label"])]
                      if "group" in keys else flagged["given_label"].astype(str).tolist(), dtype=object)
    per_class = first.per_class.copy()
    per_class["estimated_errors"] = names.value_counts().reindex(per_class.index.astype(str), fill_value=0).to_numpy()
    per_class["share"] = np.where(per_class["n"] > 0, per_class["estimated_errors"] / per_class["n"].clip(lower=1), 0.0)
    return LabelErrors(per_class=per_class, flagged=flagged, joint=first.joint, thresholds=first.thresholds,
                       score=first.score, n=first.n, info=dict(first.info))


def _problem_class(group, name) -> str:
    """A class of one grouped problem as the per-class tables name it: "group: class"."""
    return f"{group}: {name}"


def _names(names, count: int, what: str) -> list:
    if names is None:
        return list(range(count))
    names = list(names)
    if len(names) < count:
        raise DatacartoError(f"{what} has {len(names)} names for {count} values")
    return names
