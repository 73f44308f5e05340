"""Eval-mode logits over (part of) a data set: epoch-end snapshots, eval splits, filled rows."""

from __future__ import annotations

import numpy as np
import torch

from .distributed import rank_world
from .examples import LABEL_KEYS, ROW_ID


@torch.no_grad()
def predict_logits(model, dataset, collate_fn, batch_size: int, *, rows: np.ndarray | None = None):
    """Eval-mode logits over this rank's contiguous share of ``rows`` (default: every row).

    Returns (row ids, gold labels, logits); row ids are positions in ``dataset``. The model's
    training flag is restored afterwards.
    """
    rank, world = rank_world()
    rows = np.arange(len(dataset), dtype=np.int64) if rows is None else np.asarray(rows, dtype=np.int64)
    n = len(rows)
    mine = rows[n * rank // world: n * (rank + 1) // world]
    subset = torch.utils.data.Subset(dataset, mine.tolist())
    loader = torch.utils.data.DataLoader(subset, batch_size=batch_size, shuffle=False, collate_fn=collate_fn)
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    out_logits, out_gold = [], []
    try:
        for batch in loader:
            batch = dict(batch)
            batch.pop(ROW_ID, None)
            gold = next((batch.pop(k) for k in LABEL_KEYS if k in batch), None)
            batch = {k: v.to(device) if hasattr(v, "to") else v for k, v in batch.items()}
            logits = model(**batch).logits
            out_logits.append(logits.float().cpu().numpy())
            out_gold.append(np.full(len(logits), -1) if gold is None else gold.cpu().numpy())
    finally:
        model.train(was_training)
    c = model.config.num_labels if hasattr(model, "config") else out_logits[0].shape[1]
    logits = np.concatenate(out_logits) if out_logits else np.empty((0, c), np.float32)
    gold = np.concatenate(out_gold).astype(np.int64) if out_gold else np.empty(0, np.int64)
    return mine, gold, logits
