"""Start-up of the commands that train nothing, and ``datacarto metrics`` on a 100k x 5 run.

Each figure is the median wall time of ``--repeats`` fresh processes (``python -m datacarto.cli
...``: the interpreter's own start included), printed beside its target:

* ``datacarto metrics --help``, ``map --help``, ``select --help``: under 1.5 s (they import neither
  torch nor transformers; tests/test_startup.py checks that);
* ``datacarto metrics RUN`` on generated dynamics of --n examples x --epochs epochs x 3 classes:
  about 1 s in all, computed (the metrics cache removed before each repeat) and cached.

    .venv/bin/python benchmarks/startup.py [--n 100000] [--epochs 5] [--repeats 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from datacarto.dynamics.cache import CACHE_FILE, CACHE_KEY_FILE
from datacarto.dynamics.store import DynamicsWriter, dynamics_dir

SRC = Path(__file__).resolve().parents[1] / "src"
START_TARGET_S = 1.5
METRICS_TARGET_S = 1.0


def write_run(run: Path, n: int, epochs: int, classes: int = 3, seed: int = 0) -> None:
    """A run's store: examples with a text column, and logits whose gold logit grows over epochs."""
    import pandas as pd

    rng = np.random.default_rng(seed)
    gold = rng.integers(0, classes, size=n)
    ids = np.arange(n, dtype=np.int64)
    writer = DynamicsWriter(dynamics_dir(run))
    writer.write_examples(ids, rng.integers(0, 2**63, size=n, dtype=np.uint64), gold,
                          pd.DataFrame({"text": [f"example {i}" for i in range(n)]}))
    writer.update_manifest(mode="training_pass", n_examples=n, num_labels=classes, text_columns=["text"])
    difficulty = rng.normal(size=n).astype(np.float32)
    for e in range(epochs):
        logits = rng.normal(size=(n, classes)).astype(np.float32)
        logits[ids, gold] += 0.5 + 2.5 * e / max(epochs - 1, 1) - difficulty
        writer.write_epoch(e, ids, gold, logits, epoch=e + 1.0)


def median_s(args: list[str], repeats: int, before=None) -> float:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(SRC), os.environ.get("PYTHONPATH")]))}
    times = []
    for _ in range(repeats):
        if before is not None:
            before()
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "datacarto.cli", *args], env=env, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _line(what: str, seconds: float, target: float, about: bool = False) -> str:
    ok = seconds <= (1.5 * target if about else target)
    return f"{what:<42} {seconds:6.2f} s   target {'~' if about else '<'}{target:g} s   {'ok' if ok else 'MISSED'}"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=100_000)
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--repeats", type=int, default=5)
    a = p.parse_args()
    for command in ("metrics", "map", "select"):
        print(_line(f"datacarto {command} --help", median_s([command, "--help"], a.repeats), START_TARGET_S),
              flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp) / "run"
        write_run(run, a.n, a.epochs)
        folder = dynamics_dir(run)

        def drop_cache():
            for name in (CACHE_FILE, CACHE_KEY_FILE):
                (folder / name).unlink(missing_ok=True)

        what = f"datacarto metrics ({a.n:,} x {a.epochs})"
        print(_line(f"{what}, computed", median_s(["metrics", str(run)], a.repeats, drop_cache),
                    METRICS_TARGET_S, about=True), flush=True)
        print(_line(f"{what}, cached", median_s(["metrics", str(run)], a.repeats), METRICS_TARGET_S, about=True))


if __name__ == "__main__":
    main()
