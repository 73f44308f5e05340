"""Writes the format-1 run in ``run/`` (checked in): a store as datacarto wrote it before format 2.

Run once with the writer of commit b297970 (format 1: every epoch file holds row_id, gold and the
logits), ``PYTHONPATH=<checkout of b297970>/src python tests/data/format1/make_run.py``.
``arrays()`` rebuilds what the files hold; tests/test_store_format.py reads the files and compares.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
N, EPOCHS, CLASSES, UNITS_PER_ROW = 7, 3, 3, 2


def arrays(seed: int = 0) -> dict[str, np.ndarray]:
    """The stored numbers: a train split (rows shuffled in each file, 2 rows filled in epoch 1), a
    split with two units per row (sub_id), and a causal-LM split (nll, token_accuracy, n_tokens)."""
    rng = np.random.default_rng(seed)
    out = {
        "logits": rng.normal(size=(N, EPOCHS, CLASSES)).astype(np.float32),
        "gold": rng.integers(0, CLASSES, size=N),
        "orders": np.stack([rng.permutation(N) for _ in range(EPOCHS)]),
        "unit_logits": rng.normal(size=(N * UNITS_PER_ROW, 2, 2)).astype(np.float32),
        "unit_gold": rng.integers(0, 2, size=N * UNITS_PER_ROW),
        "lm_logits": np.stack([np.zeros((N, 2)), rng.normal(size=(N, 2))], axis=2).astype(np.float32),
        "lm_stats": rng.uniform(0, 3, size=(3, N, 2)).astype(np.float32),
    }
    out["logits"][3, 2] = np.nan  # a NaN row, recorded as NaN
    return out


def main() -> None:
    from datacarto.dynamics.store import DynamicsWriter, dynamics_dir

    a = arrays()
    run = HERE / "run"
    if run.exists():
        shutil.rmtree(run)
    writer = DynamicsWriter(dynamics_dir(run))
    writer.write_examples(np.arange(N), np.arange(N, dtype=np.uint64), a["gold"], None)
    writer.update_manifest(mode="training_pass", n_examples=N, label_names=["a", "b", "c"], num_labels=CLASSES)
    for e in range(EPOCHS):
        order = a["orders"][e]
        filled = np.isin(order, [1, 4]) if e == 1 else None
        writer.write_epoch(e, order, a["gold"][order], a["logits"][order, e], epoch=e + 1.0,
                           global_step=10 * (e + 1), filled=filled)
    units = DynamicsWriter(dynamics_dir(run, "units"))
    rows, subs = np.repeat(np.arange(N), UNITS_PER_ROW), np.tile(np.arange(UNITS_PER_ROW), N)
    units.update_manifest(task="multi-label", unit="label", n_units=int(rows.size))
    for e in range(2):
        back = np.arange(rows.size)[::-1]  # stored in reverse order
        units.write_epoch(e, rows[back], a["unit_gold"][back], a["unit_logits"][back, e], sub_ids=subs[back])
    lm = DynamicsWriter(dynamics_dir(run, "lm"))
    lm.update_manifest(task="causal-lm")
    for e in range(2):
        extra = dict(zip(("nll", "token_accuracy", "n_tokens"), a["lm_stats"][:, :, e]))
        lm.write_epoch(e, np.arange(N), np.ones(N, np.int64), a["lm_logits"][:, e], extra=extra)


if __name__ == "__main__":
    main()
