"""float16 or float32 logits on disk: what it does to file size and to the metrics.

Makes SNLI-scale synthetic dynamics (550,152 examples x 5 epochs x 3 classes) whose logits grow
sharper over epochs like a real fine-tune, stores one epoch's logits as float32 (what datacarto
writes: an epoch file of store format 2) and as float16 with the same encoding, and prints the file
sizes and how far each metric and the regions move.

    python benchmarks/storage_precision.py [--n 550152]
"""

from __future__ import annotations

import argparse
import os
import tempfile

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from datacarto.dynamics.epochs import parquet_options
from datacarto.metrics import assign_regions, compute_metrics


def synthetic(n, epochs=5, classes=3, seed=0):
    rng = np.random.default_rng(seed)
    gold = rng.integers(0, classes, n)
    skill = rng.normal(1.0, 1.5, n)  # how learnable each example is
    logits = rng.normal(0, 1, (n, epochs, classes)).astype(np.float32)
    for e in range(epochs):
        logits[np.arange(n), e, gold] += skill * (e + 1) * 1.5
    return gold, logits * 2.0  # fine-tuned logits reach magnitudes of 10-20


def file_size(logits, dtype, path):
    """Bytes of one epoch file holding the logits only, encoded as the store encodes them."""
    flat = pa.array(logits[:, 0].astype(dtype).reshape(-1))
    table = pa.table({"logits": pa.FixedSizeListArray.from_arrays(flat, logits.shape[2])})
    pq.write_table(table, path, **parquet_options(table))
    return os.path.getsize(path)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=550_152)
    a = p.parse_args()
    gold, logits = synthetic(a.n)
    ids = np.arange(a.n)
    m32 = compute_metrics((ids, gold, logits))
    m16 = compute_metrics((ids, gold, logits.astype(np.float16).astype(np.float32)))
    with tempfile.TemporaryDirectory() as tmp:
        s32, s16 = file_size(logits, np.float32, f"{tmp}/a"), file_size(logits, np.float16, f"{tmp}/b")
    print(f"{a.n} examples x {logits.shape[1]} epochs x {logits.shape[2]} classes")
    print(f"one epoch file: float32 {s32 / 1e6:.1f} MB ({s32 / a.n:.2f} bytes per example), "
          f"float16 {s16 / 1e6:.1f} MB ({s16 / a.n:.2f})")
    print(f"{'metric':<20}{'max |diff|':>14}{'mean |diff|':>14}{'rows changed':>14}")
    for col in ("confidence", "variability", "aum", "el2n_mean", "last_loss", "correct_count", "forgetfulness"):
        d = np.abs(m32[col].to_numpy(float) - m16[col].to_numpy(float))
        print(f"{col:<20}{d.max():>14.2e}{d.mean():>14.2e}{int((d > 0).sum()):>14d}")
    r32, r16 = assign_regions(m32), assign_regions(m16)
    print(f"examples whose region changes under float16: {int((r32 != r16).sum())}")


if __name__ == "__main__":
    main()
