"""Eval-mode logits over (part of) a data set: epoch-end snapshots, eval splits, filled rows."""

from __future__ import annotations

import random
from contextlib import contextmanager

import numpy as np
import torch

from .causal_lm import Segments
from .distributed import equal_share, rank_world
from .examples import ROW_ID, SEGMENTS, IndexedDataset, RowIdCollator, label_column_of, units_of


@contextmanager
def preserved_rng():
    """Every random generator a pass could draw from (Python, NumPy, torch CPU and devices), restored after.

    A DataLoader draws its base seed from torch's generator each time it is iterated, so a pass
    that a plain Trainer would not run would shift every later dropout mask: recording would
    change what is trained.
    """
    py, np_state = random.getstate(), np.random.get_state()
    devices = list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []
    try:
        with torch.random.fork_rng(devices=devices):
            yield
    finally:
        random.setstate(py)
        np.random.set_state(np_state)


@torch.no_grad()
def predict_logits(model, dataset, collate_fn, batch_size: int, *, rows: np.ndarray | None = None,
                   task=None, units=None):
    """Eval-mode logits over this rank's contiguous share of ``rows`` (default: every row).

    Under several processes the shares have equal length (padded with repeated rows:
    :func:`~datacarto.record.distributed.equal_share`), so all ranks run the same number of
    forward passes, as a sharded model (FSDP, ZeRO-3) needs; gathered ids must be deduplicated.

    Returns (ids, gold labels, logits): row ids (positions in ``dataset``), or with ``task`` and
    ``units`` (:mod:`datacarto.record.tasks`) the unit ids of those rows. Each example carries its
    row id through the collator, and the ids stored are those the batches hold. The model's
    training flag and every random generator's state are restored afterwards.
    """
    rows = np.arange(len(dataset), dtype=np.int64) if rows is None else np.asarray(rows, dtype=np.int64)
    mine = equal_share(rows, *rank_world())
    subset = torch.utils.data.Subset(IndexedDataset(dataset), mine.tolist())
    loader = torch.utils.data.DataLoader(subset, batch_size=batch_size, shuffle=False,
                                         collate_fn=RowIdCollator(collate_fn))
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    out_ids, out_logits, out_gold = [], [], []
    try:
        with preserved_rng():
            for batch in loader:
                batch = dict(batch)
                batch_rows = batch.pop(ROW_ID).numpy()
                segments = batch.pop(SEGMENTS, None)
                gold = batch.pop(label_column_of(batch), None)
                batch = {k: v.to(device) if hasattr(v, "to") else v for k, v in batch.items()}
                logits = model(**batch).logits
                if task is not None and gold is not None:
                    segments = None if segments is None else Segments(segments, len(batch_rows))
                    gold, logits = task.reduce(gold, logits, segments)  # a causal LM's (B, T, V) stays on the device
                else:
                    gold = None if gold is None else gold.cpu().numpy()
                    logits = logits.float().cpu().numpy()
                gold = np.full(len(logits), -1) if gold is None else gold
                if task is not None:
                    batch_rows, gold, logits = task.to_units(batch_rows, gold, logits, units)
                out_ids.append(batch_rows)
                out_logits.append(logits)
                out_gold.append(gold)
    finally:
        model.train(was_training)
    if not out_logits:
        c = model.config.num_labels if hasattr(model, "config") else 0
        return np.empty(0, np.int64), np.empty(0, np.int64), np.empty((0, c), np.float32)
    return (np.concatenate(out_ids).astype(np.int64), np.concatenate(out_gold).astype(np.int64),
            np.concatenate(out_logits))


def predict_split(trainer, dataset, *, what: str = "evaluation set",
                  task: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(gold, logits) of every unit of a tokenized labelled ``dataset``, in unit order, with ``trainer.model``.

    The one prediction of the pipeline, for every task: examples (sequence classification,
    multiple choice), (example, label) pairs, words, or a causal LM's per-example response
    statistics (:mod:`datacarto.record.tasks`). It goes through the trainer's own test data loader
    (its collator and column removal) and the recorder's :func:`predict_logits`, so the units are
    those the recorded evaluation dynamics hold. Single process: every row is predicted here.
    ``task``: the registered task (checked against the model's head; None: the head says it).
    """
    from .tasks import task_of

    model = trainer.model
    task = task_of(model, task)
    loader = trainer.get_test_dataloader(dataset)
    _, units, _ = units_of(task, loader.dataset, model, what)
    ids, gold, logits = predict_logits(model, loader.dataset, loader.collate_fn,
                                       trainer.args.per_device_eval_batch_size, task=task, units=units)
    order = np.argsort(ids, kind="stable")
    if not np.array_equal(ids[order], np.arange(units.n)):
        raise RuntimeError(f"predicted {len(ids)} units of the {what}, expected {units.n}")
    return gold[order], np.ascontiguousarray(logits[order], dtype=np.float32)
