"""Small rules shared by the whole library: checks, one rounding rule, one duration format.

NumPy only, no I/O. Every "share x n" count in datacarto (selected examples, flipped labels, demo
rows) goes through :func:`round_half_up`; every integer-label, fraction, number, choice, seed and
fold check through the functions below, so the rules and their messages agree everywhere.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable
from typing import Any

import numpy as np

from .errors import DatacartoError

# share x n is computed in floating point: 0.58 x 25 gives 14.499999999999998, which is meant as 14.5
_SLACK = 1e-9


def round_half_up(share: float, n: int = 1) -> int:
    """``share x n`` rounded to the nearest integer, halves up (0.15 x 30 = 4.5 -> 5).

    Parameters
    ----------
    share : float
        The share (or any real number when ``n`` is 1).
    n : int, default 1
        What the share is of.

    Returns
    -------
    int
        ``floor(share x n + 0.5)``, with a slack of 1e-9 so float error never rounds a half down
        (Python's ``round`` rounds halves to even instead: ``round(4.5) == 4``).
    """
    return int(math.floor(float(share) * n + 0.5 + _SLACK))


def check_number(value: Any, name: str) -> float:
    """``value`` as a float; DatacartoError unless it is a real number (not bool, not NaN)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or math.isnan(float(value)):
        raise DatacartoError(f"{name} must be a number, got {value!r}")
    return float(value)


def check_fraction(value: Any, name: str, *, low_open: bool = False, high_open: bool = False) -> float:
    """``value`` as a float in [0, 1] (``low_open``: 0 excluded, ``high_open``: 1 excluded).

    Raises
    ------
    DatacartoError
        ``"<name> must be a number in (0, 1], got ..."`` for a non-number, ``"<name> must be in
        (0, 1], got ..."`` for one out of range (brackets as the options say).
    """
    interval = f"{'(' if low_open else '['}0, 1{')' if high_open else ']'}"
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or math.isnan(float(value)):
        raise DatacartoError(f"{name} must be a number in {interval}, got {value!r}")
    f = float(value)
    if f < 0 or f > 1 or (low_open and f == 0) or (high_open and f == 1):
        raise DatacartoError(f"{name} must be in {interval}, got {value!r}")
    return f


def check_choice(value: Any, choices: Iterable[str], name: str) -> Any:
    """``value`` if it is one of ``choices``; DatacartoError ``"<name> must be one of ..."`` otherwise."""
    choices = tuple(choices)
    if value not in choices:
        raise DatacartoError(f"{name} must be one of {', '.join(map(str, choices))}, got {value!r}")
    return value


def check_int_labels(values: Any, name: str = "gold labels") -> np.ndarray:
    """``values`` as an int64 array of class ids (or row ids); DatacartoError otherwise.

    Integer and bool arrays pass; float arrays pass only when every value is a finite whole number
    (labels read back from CSV or pandas with NaN become floats); anything else (strings, objects)
    raises. Shape and range are the caller's to check.
    """
    arr = np.asarray(values)
    if arr.size == 0:
        return arr.astype(np.int64)
    if arr.dtype.kind == "f":
        if not np.isfinite(arr).all() or (arr != np.round(arr)).any():
            raise DatacartoError(f"{name} must be whole numbers (integer class ids)")
    elif arr.dtype.kind not in "iub":
        raise DatacartoError(f"{name} must be integers, got dtype {arr.dtype}")
    return arr.astype(np.int64)


#: the largest seed NumPy, torch and transformers' ``set_seed`` accept (seeds are in [0, 2**32 - 1])
SEED_MAX = 2**32 - 1


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def check_seed(value: Any, name: str = "seed") -> int:
    """``value`` as an int in [0, 2**32 - 1]; DatacartoError naming ``name`` otherwise."""
    if not _is_int(value) or not 0 <= value <= SEED_MAX:
        raise DatacartoError(f"{name} must be an integer between 0 and 2**32 - 1, got {value!r}")
    return int(value)


def check_seeds(values: Any, name: str = "seeds") -> list[int]:
    """At least two distinct seeds, each in [0, 2**32 - 1] (one run per seed), as a list of ints."""
    if not isinstance(values, (list, tuple)):
        raise DatacartoError(f"{name} must be a list of at least 2 different seeds, got {values!r}")
    bad = [v for v in values if not _is_int(v) or not 0 <= v <= SEED_MAX]
    if bad:
        raise DatacartoError(f"{name} must be integers between 0 and 2**32 - 1, got {bad[0]!r}")
    seeds = [int(v) for v in values]
    twice = [s for i, s in enumerate(seeds) if s in seeds[:i]]
    if twice:
        raise DatacartoError(f"{name}: seed {twice[0]} is given twice (each seed is one run): give at least 2 "
                             f"different seeds, each once")
    if len(seeds) < 2:
        raise DatacartoError(f"{name} needs at least 2 different seeds, got {values!r}")
    return seeds


def check_folds(folds: Any, labels: Any = None, *, label_names: Any = None, name: str = "folds") -> int:
    """``folds`` as an int >= 2; with ``labels`` (class ids), every class present has at least ``folds`` examples.

    Stratified folds put each class in every fold: the rarest class short of that is named with its count.
    """
    if not _is_int(folds) or folds < 2:
        raise DatacartoError(f"{name} must be >= 2 (an integer number of folds), got {folds!r}")
    if labels is None:
        return int(folds)
    classes, counts = np.unique(check_int_labels(labels, "labels"), return_counts=True)
    if counts.size == 0:
        raise DatacartoError(f"{name} is {folds}, but there are no examples to split into folds")
    rarest = int(np.argmin(counts))
    if counts[rarest] < folds:
        label = int(classes[rarest])
        shown = repr(str(label_names[label])) if label_names is not None and 0 <= label < len(label_names) else label
        count = int(counts[rarest])
        raise DatacartoError(f"{name} is {folds}, but class {shown} has {count} example{'s' if count != 1 else ''}: "
                             f"stratified folds need at least {folds} of every class (use fewer folds or drop "
                             "the class)")
    return int(folds)


def fmt_seconds(seconds: float) -> str:
    """A duration as datacarto prints it: ``"12.3 s"`` below two minutes, ``"4.5 min"`` above."""
    return f"{seconds:.1f} s" if seconds < 120 else f"{seconds / 60:.1f} min"
