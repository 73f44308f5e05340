"""Small rules shared by the whole library: checks, one rounding rule, one duration format.

NumPy only, no I/O. Every "share x n" count in datacarto (selected examples, flipped labels, demo
rows) goes through :func:`round_half_up`; every integer-label, fraction, number and choice check
through the functions below, so the rules and their messages agree everywhere.
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


def fmt_seconds(seconds: float) -> str:
    """A duration as datacarto prints it: ``"12.3 s"`` below two minutes, ``"4.5 min"`` above."""
    return f"{seconds:.1f} s" if seconds < 120 else f"{seconds / 60:.1f} min"
