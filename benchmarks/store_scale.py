"""The store at scale: bytes per example-epoch, and metrics at 5M examples x 5 epochs x 3 classes.

Writes synthetic dynamics (a gold logit that grows over epochs, noise) with ``DynamicsWriter``, one
epoch at a time, to a temporary folder; checks that an epoch reads back exactly; then, each in a fresh
process, times ``get_metrics`` (logits read in blocks of rows, every metric, regions, the cache
written) and ``compute_metrics(open_dynamics(run))`` alone, and reports each process's peak memory
(VmHWM, interpreter and imports included; an idle process's is printed beside them). CPU seconds are
printed beside wall seconds: on a shared machine the wall time measures the other jobs too.

Targets (issue 25): <= 13 bytes per example-epoch at 3 classes; metrics at 5M x 5 in < 10 s, < 4 GB.

    nice -n 10 .venv/bin/python benchmarks/store_scale.py [--n 5000000] [--epochs 5] [--classes 3]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from datacarto.dynamics.store import DynamicsWriter, open_dynamics

CHILD = """
import json, resource, sys, time, warnings
warnings.simplefilter("ignore")
from datacarto.dynamics.store import open_dynamics
from datacarto.dynamics.cache import get_metrics
from datacarto.metrics import compute_metrics


def cpu():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def peak():  # VmHWM: this process's own peak (ru_maxrss would count the parent's pages forked before exec)
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmHWM:"))


run, what = sys.argv[1], sys.argv[2]
start, start_cpu = time.perf_counter(), cpu()
if what == "get_metrics":
    rows = len(get_metrics(run))
elif what == "compute_metrics":
    rows = len(compute_metrics(open_dynamics(run)))
else:
    rows = 0
print(json.dumps({"seconds": time.perf_counter() - start, "cpu": cpu() - start_cpu, "rows": rows, "rss": peak()}))
"""


def epoch_logits(n: int, classes: int, epoch: int, epochs: int, seed: int = 0):
    """Epoch ``epoch`` of the synthetic run (the same numbers whenever asked), and the gold labels."""
    base = np.random.default_rng(seed)
    gold = base.integers(0, classes, size=n)
    difficulty = base.normal(size=n).astype(np.float32)
    logits = np.random.default_rng([seed, epoch]).normal(size=(n, classes)).astype(np.float32)
    logits[np.arange(n), gold] += np.float32(0.5 + 2.5 * epoch / max(epochs - 1, 1)) - difficulty
    return gold, logits


def write_run(folder: Path, n: int, epochs: int, classes: int) -> float:
    writer = DynamicsWriter(folder)
    seconds = 0.0
    for e in range(epochs):
        gold, logits = epoch_logits(n, classes, e, epochs)
        start = time.perf_counter()
        writer.write_epoch(e, np.arange(n), gold, logits, epoch=e + 1.0)
        seconds += time.perf_counter() - start
    return seconds


def format1_bytes(folder: Path, n: int, classes: int, epochs: int) -> float:
    """Bytes per example of one epoch stored as format 1 wrote it (row_id, gold, logits; pyarrow defaults)."""
    gold, logits = epoch_logits(n, classes, 0, epochs)
    flat = pa.FixedSizeListArray.from_arrays(pa.array(logits.reshape(-1)), classes)
    path = folder / "format1_epoch.parquet"
    pq.write_table(pa.table({"row_id": np.arange(n), "gold": gold.astype(np.int32), "logits": flat}), path)
    size = path.stat().st_size
    path.unlink()
    return size / n


def child(run: Path, what: str) -> dict:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(Path(__file__).resolve().parents[1] / "src"),
                                                                      os.environ.get("PYTHONPATH")]))}
    out = subprocess.run([sys.executable, "-c", CHILD, str(run), what], capture_output=True, text=True, env=env,
                         check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=5_000_000)
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--classes", type=int, default=3)
    a = p.parse_args()
    n, e, c = a.n, a.epochs, a.classes
    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp) / "run"
        write_s = write_run(run, n, e, c)
        epochs = sum(p.stat().st_size for p in run.glob("epoch_*.parquet"))
        units = (run / "units.parquet").stat().st_size
        exact = np.array_equal(open_dynamics(run).logits.epoch(e - 1), epoch_logits(n, c, e - 1, e)[1])
        old = format1_bytes(Path(tmp), n, c, e)
        idle = child(run, "idle")
        computed = child(run, "compute_metrics")
        cold = child(run, "get_metrics")
    print(f"{n:,} examples x {e} epochs x {c} classes (float32 logits), written in {write_s:.1f} s")
    print(f"{'':44}{'measured':>14}{'target':>12}")
    print(f"{'bytes per example-epoch (epochs + units)':44}{(epochs + units) / (n * e):>14.2f}{'<= 13':>12}")
    print(f"{'  epoch files only':44}{epochs / (n * e):>14.2f}")
    print(f"{'  units.parquet, once per split':44}{units / n:>14.2f}")
    print(f"{'  format 1 (ids and gold in every epoch)':44}{old:>14.2f}")
    print(f"{'logits read back exactly':44}{str(exact):>14}")
    gib = 1024 ** 3
    for label, r, target in (("get_metrics, cold (read, metrics, regions, cache)", cold, ("< 10 s", "< 4 GB")),
                             ("compute_metrics(open_dynamics(run))", computed, ("", ""))):
        print(f"{label:44}{r['seconds']:>12.2f} s{target[0]:>12}")
        print(f"{'  CPU time':44}{r['cpu']:>12.2f} s")
        print(f"{'  peak memory (VmHWM)':44}{r['rss'] / gib:>10.2f} GiB{target[1]:>12}")
    print(f"{'an idle process (interpreter, imports)':44}{idle['rss'] / gib:>10.2f} GiB")
    print(f"{'the (N, E, C) float32 logits, for scale':44}{n * e * c * 4 / gib:>10.2f} GiB")
    print(f"load average at the end: {os.getloadavg()[0]:.1f} ({os.cpu_count()} CPUs)")


if __name__ == "__main__":
    main()
