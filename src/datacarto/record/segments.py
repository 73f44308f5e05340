"""Packed and padding-free batches: which example each predicted token belongs to.

A packed row holds several examples (TRL ``packing=True``); a padding-free batch puts all its
examples into one row (``DataCollatorWithFlattening``, TRL ``padding_free=True``). The collator
wrapper knows each example's tokens and row id (a scalar per example, or one per token in a packed
row), so on the host it marks the *segment* of every position whose next token is a target of the
same example: ``segments[b, t] = s`` when the logits at ``(b, t)`` predict token ``t + 1`` of segment
``s`` (a run of one example's tokens), -1 where ``t + 1`` starts another example, another collated
feature, or is padding. A prediction across a boundary never counts, as in an unpacked forward pass,
where an example's first token is never predicted. The device then sums per segment
(:mod:`datacarto.record.causal_lm`), and an example split across rows (TRL ``"wrapped"``) has its
pieces' sums added on the host (:func:`merge_pieces`).
"""

from __future__ import annotations

import numpy as np

from ..errors import DatacartoError


def _as_array(value) -> np.ndarray:
    return np.asarray(value.tolist() if hasattr(value, "tolist") else value).reshape(-1)


def _layout(ids: list[np.ndarray], batch_ids: np.ndarray) -> list[tuple[int, int]]:
    """(batch row, first position) of each feature's tokens in the collated ``batch_ids``, checked token by token."""
    n_rows, width = batch_ids.shape
    places = []
    if n_rows == len(ids):  # one feature per row, padded on either side
        for i, x in enumerate(ids):
            k = len(x)
            if k <= width and np.array_equal(batch_ids[i, :k], x):
                places.append((i, 0))
            elif k <= width and np.array_equal(batch_ids[i, width - k:], x):
                places.append((i, width - k))
            else:
                raise DatacartoError(f"the data collator changed the tokens of example {i} of a batch (not padding): "
                                     "datacarto cannot tell which example each packed token belongs to")
        return places
    if n_rows == 1:  # flattened: the features one after another (empty ones dropped)
        start = 0
        for x in ids:
            places.append((0, start))
            start += len(x)
        flat = np.concatenate(ids) if ids else np.empty(0, np.int64)
        if start <= width and np.array_equal(batch_ids[0, :start], flat):
            return places
    raise DatacartoError(f"the data collator put {len(ids)} examples into {n_rows} rows of {width} tokens, not one "
                         "per row nor all in one row (padding-free): datacarto cannot key its predictions by example")


def segment_batch(row_ids: list, input_ids: list, batch_ids) -> tuple[np.ndarray, np.ndarray]:
    """(row id of each segment (S,), segment of each position's target (B, T), -1 for none) of a collated batch.

    ``row_ids``: per feature, its row id or one row id per token (a packed row); ``input_ids``: the
    features' tokens before collation; ``batch_ids``: the collated (B, T) input ids.
    """
    ids = [_as_array(x) for x in input_ids]
    rows = [np.full(len(x), int(r)) if np.ndim(r) == 0 else _as_array(r) for r, x in zip(row_ids, ids)]
    if any(len(r) != len(x) for r, x in zip(rows, ids)):
        raise DatacartoError("a packed row's datacarto_row_id column does not hold one row id per token")
    batch_ids = np.asarray(batch_ids.cpu() if hasattr(batch_ids, "cpu") else batch_ids)
    grid = np.full(batch_ids.shape, -1, dtype=np.int64)
    feature = np.full(batch_ids.shape, -1, dtype=np.int64)
    for i, ((b, start), r) in enumerate(zip(_layout(ids, batch_ids), rows)):
        grid[b, start:start + len(r)] = r
        feature[b, start:start + len(r)] = i
    valid = grid >= 0
    starts = valid.copy()
    starts[:, 1:] &= (grid[:, 1:] != grid[:, :-1]) | (feature[:, 1:] != feature[:, :-1])
    run = np.cumsum(starts.reshape(-1)).reshape(grid.shape) - 1
    segments = np.full(grid.shape, -1, dtype=np.int64)
    segments[:, :-1] = np.where(valid[:, 1:] & ~starts[:, 1:], run[:, 1:], -1)
    return grid[starts], segments


def merge_pieces(rows: np.ndarray, stats: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One (mean NLL, token accuracy, n_tokens) per example from its pieces' statistics (k, 3).

    The pieces' sums are added: NLL sum / token count over every piece, hits / token count. A
    piece without a target token (n_tokens 0) adds nothing.
    """
    rows, stats = np.asarray(rows, np.int64), np.asarray(stats, np.float64).reshape(-1, 3)
    keep = stats[:, 2] > 0
    rows, stats = rows[keep], stats[keep]
    unique, inverse = np.unique(rows, return_inverse=True)
    sums = np.zeros((len(unique), 3))
    np.add.at(sums, inverse, np.column_stack([stats[:, :2] * stats[:, 2:], stats[:, 2]]))
    return unique, np.column_stack([sums[:, :2] / sums[:, 2:], sums[:, 2]])
