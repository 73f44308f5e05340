"""Metrics at SNLI scale: 550,152 examples x 5 epochs x 3 classes, float32.

Writes synthetic dynamics with DynamicsWriter to a temporary folder, then times load_dynamics,
compute_metrics and assign_regions (best of --repeats), measures their peak memory with
tracemalloc (NumPy reports its buffers to it; a separate run, as tracing slows allocation), and
compares with a straightforward per-example Python loop timed on a subsample and scaled to N.

Targets: load + all metrics < 1 s, >= 200x faster than the loop, peak memory < 3x the logits.

Then the import of allenai/cartography files (--import-n examples x --epochs, 12-digit sparse guids,
each epoch's lines shuffled): ``import_allenai`` next to the paper's own reader
(``read_training_dynamics``: json.loads per line into a dict), and the load time of the imported run
(row ids 0..N-1) next to the same dynamics stored under the sparse guids as row ids. Target: the
import at least as fast as the paper's reader. --snli imports 550,152 examples (a few minutes).

    .venv/bin/python benchmarks/metrics_scale.py [--n 550152] [--repeats 5] [--loop-sample 5000]
        [--import-n 100000 | --snli] [--skip-import]
"""

from __future__ import annotations

import argparse
import math
import os
import tempfile
import time
import tracemalloc

import numpy as np

from datacarto.dynamics.cache import get_metrics
from datacarto.dynamics.store import DynamicsWriter, dynamics_dir, load_dynamics
from datacarto.metrics import assign_regions, compute_metrics


def synthetic_dynamics(n: int, epochs: int, classes: int, seed: int = 0):
    """Examples of varying difficulty whose gold logit grows over epochs, with noise."""
    rng = np.random.default_rng(seed)
    gold = rng.integers(0, classes, size=n)
    difficulty = rng.normal(size=n).astype(np.float32)
    logits = rng.normal(size=(n, epochs, classes)).astype(np.float32)
    progress = np.linspace(0.5, 3.0, epochs, dtype=np.float32)
    logits[np.arange(n), :, gold] += progress[None, :] - difficulty[:, None]
    return np.arange(n, dtype=np.int64), gold, logits


def numpy_loop_metrics(gold: np.ndarray, logits: np.ndarray) -> list[dict]:
    """The paper's style (allenai/cartography's compute_train_dy_metrics, NumPy for torch): for each
    example, for each epoch, a softmax and an argmax on that epoch's logits; every column."""
    rows = []
    for i in range(logits.shape[0]):
        g = int(gold[i])
        probs, correct, margins, el2ns, dists, last = [], [], [], [], [], None
        for z in logits[i].astype(np.float64):
            p = np.exp(z - z.max())
            p /= p.sum()
            pred = int(np.argmax(z))
            onehot = np.zeros_like(p)
            onehot[g] = 1
            probs.append(p[g])
            correct.append(pred == g)
            margins.append(z[g] - np.max(np.delete(z, g)))
            el2ns.append(np.linalg.norm(p - onehot))
            dists.append(p)
            last = (pred, p[pred], -np.log(p[g]))
        probs = np.array(probs)
        var = np.var(probs)
        learnt, forgotten = False, 0
        for ok in correct:
            forgotten += learnt and not ok
            learnt = ok
        mean_dist = np.mean(dists, axis=0)
        nz = mean_dist[mean_dist > 0]
        rows.append(dict(
            gold=g, confidence=np.mean(probs), variability=np.std(probs),
            variability_ci=np.sqrt(var + var * var / (len(probs) - 1)) if len(probs) > 1 else 0.0,
            correctness=np.mean(correct), correct_count=sum(correct),
            forgetfulness=forgotten if any(correct) else len(probs), never_learned=not any(correct),
            threshold_closeness=np.mean(probs) * (1 - np.mean(probs)), aum=np.mean(margins),
            aleatoric=np.mean(probs * (1 - probs)), el2n=el2ns[0], el2n_mean=np.mean(el2ns),
            entropy=-np.sum(nz * np.log(nz)), last_pred=last[0], last_prob=last[1], last_loss=last[2],
            self_confidence=mean_dist[g], n_epochs_used=len(probs),
        ))
    return rows


def loop_metrics(gold: np.ndarray, logits: np.ndarray) -> list[dict]:
    """The same loop tuned: plain Python floats (``tolist``) and ``math`` instead of NumPy calls,
    several times faster than :func:`numpy_loop_metrics` for 3 classes."""
    rows = []
    for g, example in zip(gold.tolist(), logits.tolist()):
        probs, correct, margins, el2ns, dists, last = [], [], [], [], [], None
        for z in example:
            top = max(z)
            ex = [math.exp(v - top) for v in z]
            total = sum(ex)
            p = [v / total for v in ex]
            pred = z.index(top)  # first index on ties, as np.argmax
            probs.append(p[g])
            correct.append(pred == g)
            margins.append(z[g] - max(v for j, v in enumerate(z) if j != g))
            el2ns.append(math.sqrt(sum((q - (j == g)) ** 2 for j, q in enumerate(p))))
            dists.append(p)
            last = (pred, p[pred], -math.log(p[g]))
        n = len(probs)
        conf = sum(probs) / n
        var = sum((x - conf) ** 2 for x in probs) / n
        learnt, forgotten = False, 0
        for ok in correct:
            forgotten += learnt and not ok
            learnt = ok
        mean_dist = [sum(d[j] for d in dists) / n for j in range(len(dists[0]))]
        rows.append(dict(
            gold=g, confidence=conf, variability=math.sqrt(var),
            variability_ci=math.sqrt(var + var * var / (n - 1)) if n > 1 else 0.0,
            correctness=sum(correct) / n, correct_count=sum(correct),
            forgetfulness=forgotten if any(correct) else n, never_learned=not any(correct),
            threshold_closeness=conf * (1 - conf), aum=sum(margins) / n,
            aleatoric=sum(x * (1 - x) for x in probs) / n, el2n=el2ns[0], el2n_mean=sum(el2ns) / n,
            entropy=-sum(q * math.log(q) for q in mean_dist if q > 0), last_pred=last[0],
            last_prob=last[1], last_loss=last[2], self_confidence=mean_dist[g], n_epochs_used=n,
        ))
    return rows


def write_allenai(folder: str, logits: np.ndarray, gold: np.ndarray, guids: np.ndarray, seed: int = 0) -> None:
    """The paper's files: one ``{"guid", "logits_epoch_N", "gold"}`` line per example, shuffled per epoch."""
    import json

    rng = np.random.default_rng(seed)
    td = os.path.join(folder, "training_dynamics")
    os.makedirs(td, exist_ok=True)
    for e in range(logits.shape[1]):
        order = rng.permutation(len(guids))
        key = f"logits_epoch_{e}"
        with open(os.path.join(td, f"dynamics_epoch_{e}.jsonl"), "w") as f:
            for g, lg, y in zip(guids[order].tolist(), logits[order, e].tolist(), gold[order].tolist()):
                f.write(json.dumps({"guid": g, key: lg, "gold": y}) + "\n")


def paper_reader(folder: str) -> dict:
    """allenai/cartography's ``read_training_dynamics`` (cartography/selection/selection_utils.py, tqdm
    left out): json.loads per line into a dict guid -> {"gold", "logits": [one list per epoch]}."""
    import json

    train_dynamics: dict = {}
    td_dir = os.path.join(folder, "training_dynamics")
    num_epochs = len([f for f in os.listdir(td_dir) if os.path.isfile(os.path.join(td_dir, f))])
    for epoch_num in range(num_epochs):
        with open(os.path.join(td_dir, f"dynamics_epoch_{epoch_num}.jsonl")) as infile:
            for line in infile:
                record = json.loads(line.strip())
                guid = record["guid"]
                if guid not in train_dynamics:
                    assert epoch_num == 0
                    train_dynamics[guid] = {"gold": record["gold"], "logits": []}
                train_dynamics[guid]["logits"].append(record[f"logits_epoch_{epoch_num}"])
    return train_dynamics


def import_rows(args) -> list[tuple[str, float, float, str]]:
    """Time import_allenai against the paper's reader, and loading imported (contiguous) vs sparse ids."""
    import itertools

    from datacarto.dynamics.interop import import_allenai

    n = args.import_n
    _, gold, logits = synthetic_dynamics(n, args.epochs, args.classes, seed=1)
    guids = np.sort(np.random.default_rng(2).choice(9 * 10**11, size=n, replace=False)) + 10**11  # 12 digits
    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, "paper")
        t0 = time.perf_counter()
        write_allenai(src, logits, gold, guids)
        t_write = time.perf_counter() - t0
        counter = itertools.count()
        t_import, c_import, out = best_time(
            lambda: import_allenai(src, os.path.join(tmp, f"imported{next(counter)}")), args.import_repeats)
        t_paper, c_paper, _ = best_time(lambda: paper_reader(src), args.import_repeats)
        sparse = DynamicsWriter(os.path.join(tmp, "sparse", "training_dynamics"))
        rng = np.random.default_rng(3)
        for t in range(args.epochs):  # as the import wrote them before: guids as row ids, in file order
            order = rng.permutation(n)
            sparse.write_epoch(t, guids[order], gold[order], logits[order, t])
        t_contig, c_contig, dyn = best_time(lambda: load_dynamics(out), args.repeats)
        t_sparse, c_sparse, _ = best_time(lambda: load_dynamics(os.path.join(tmp, "sparse")), args.repeats)
        assert np.array_equal(dyn.ids, np.arange(n)) and np.array_equal(dyn.logits, logits)
    ratio = t_paper / t_import
    return [
        (f"write {n:,} x {args.epochs} allenai lines (setup)", t_write, float("nan"), ""),
        ("import_allenai (pyarrow.json, all or nothing)", t_import, c_import,
         f"{ratio:.1f}x the paper's reader: {'PASS' if t_import <= t_paper else 'FAIL'} (target >= 1x)"),
        ("paper's read_training_dynamics (json.loads per line)", t_paper, c_paper, ""),
        ("load_dynamics, imported run (row ids 0..N-1)", t_contig, c_contig, ""),
        ("load_dynamics, 12-digit sparse ids in file order (old import)", t_sparse, c_sparse,
         f"{t_sparse / t_contig:.2f}x the contiguous load"),
    ]


def print_import(args) -> None:
    rows = import_rows(args)
    width = max(len(r[0]) for r in rows)
    print(f"import of allenai/cartography files: {args.import_n:,} examples x {args.epochs} epochs "
          f"(best of {args.import_repeats}; loads best of {args.repeats})")
    for name, wall, cpu, note in rows:
        print(f"  {name:<{width}}  {wall:8.3f}  {cpu:8.3f}  {note}")


def best_time(fn, repeats: int) -> tuple[float, float, object]:
    """Best wall-clock and best CPU time (this process) over ``repeats`` calls, and the result.

    CPU time is reported too because on a shared machine wall time also counts waiting for a core.
    """
    wall, cpu, out = math.inf, math.inf, None
    for _ in range(repeats):
        w, c = time.perf_counter(), time.process_time()
        out = fn()
        wall, cpu = min(wall, time.perf_counter() - w), min(cpu, time.process_time() - c)
    return wall, cpu, out


def traced_peak(fn) -> int:
    """Peak bytes allocated (tracemalloc) while fn runs, above what was allocated before."""
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        fn()
        return tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=550_152)
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--classes", type=int, default=3)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--loop-sample", type=int, default=5000)
    p.add_argument("--import-n", type=int, default=100_000, help="examples in the import benchmark")
    p.add_argument("--import-repeats", type=int, default=2)
    p.add_argument("--snli", action="store_true", help="import at SNLI scale: 550,152 examples")
    p.add_argument("--skip-import", action="store_true", help="only the metrics benchmark")
    args = p.parse_args(argv)
    if args.snli:
        args.import_n = 550_152

    ids, gold, logits = synthetic_dynamics(args.n, args.epochs, args.classes)
    with tempfile.TemporaryDirectory() as tmp:
        writer = DynamicsWriter(dynamics_dir(tmp))
        for t in range(args.epochs):
            writer.write_epoch(t, ids, gold, logits[:, t])
        del logits

        t_load, c_load, dyn = best_time(lambda: load_dynamics(tmp), args.repeats)
        t_metrics, c_metrics, metrics = best_time(lambda: compute_metrics(dyn), args.repeats)
        t_regions, c_regions, _ = best_time(lambda: assign_regions(metrics), args.repeats)
        t_all, c_all, _ = best_time(lambda: assign_regions(compute_metrics(load_dynamics(tmp))), args.repeats)
        nbytes = dyn.logits.nbytes
        peak_load = traced_peak(lambda: load_dynamics(tmp))
        peak_metrics = traced_peak(lambda: assign_regions(compute_metrics(dyn)))
        table_bytes = int(metrics.memory_usage(index=True).sum())

        t_cold, c_cold, _ = best_time(lambda: get_metrics(tmp), 1)  # no cache yet: compute and write it
        t_warm, c_warm, _ = best_time(lambda: get_metrics(tmp), args.repeats)

        k = min(args.loop_sample, args.n)
        scale = args.n / k
        loops = {}
        for name, fn in (("NumPy per epoch, the paper's style", numpy_loop_metrics),
                         ("pure Python floats, tuned", loop_metrics)):
            wall, cpu, _ = best_time(lambda fn=fn: fn(dyn.gold[:k], dyn.logits[:k]), 1)
            loops[name] = (wall * scale, cpu * scale)

    def verdict(ok: bool) -> str:
        return "PASS" if ok else "FAIL"

    rows = [
        ("load_dynamics (5 Parquet epochs)", t_load, c_load, ""),
        ("compute_metrics", t_metrics, c_metrics, ""),
        ("assign_regions", t_regions, c_regions, ""),
        ("load + metrics + regions, one pass", t_all, c_all, f"target < 1 s: {verdict(t_all < 1)}"),
        ("get_metrics, cold (compute + write cache)", t_cold, c_cold, ""),
        ("get_metrics, cache hit", t_warm, c_warm, ""),
    ]
    rows += [(f"loop: {name} ({k} timed, x{scale:.0f})", wall, cpu, "") for name, (wall, cpu) in loops.items()]
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"N={args.n:,} E={args.epochs} C={args.classes} float32 | best of {args.repeats} | "
          f"{os.cpu_count()} CPUs, load average {load:.1f} | numpy {np.__version__}")
    width = max(len(r[0]) for r in rows)
    print(f"  {'':<{width}}  {'wall s':>8}  {'CPU s':>8}")
    for name, wall, cpu, note in rows:
        print(f"  {name:<{width}}  {wall:8.3f}  {cpu:8.3f}  {note}")
    for i, (name, (wall, cpu)) in enumerate(loops.items()):
        speed_wall, speed_cpu = wall / (t_metrics + t_regions), cpu / (c_metrics + c_regions)
        # the target is against the straightforward loop (the first); the tuned one is a harder reference
        note = (f"target >= 200x: {verdict(min(speed_wall, speed_cpu) >= 200)}" if i == 0
                else "(a hand-tuned loop, for reference)")
        print(f"  {'speed-up (metrics + regions) vs ' + name.split(',')[0]:<{width}}  {speed_wall:7.0f}x  "
              f"{speed_cpu:7.0f}x  {note}")
    print(f"  logits array: {nbytes / 2**20:.1f} MiB; metrics table: {table_bytes / 2**20:.1f} MiB "
          f"({table_bytes / nbytes:.2f}x)")
    print("  peak memory (tracemalloc: NumPy and pandas buffers, above what was allocated before):")
    print(f"    compute_metrics + assign_regions: {peak_metrics / 2**20:.1f} MiB = {peak_metrics / nbytes:.2f}x "
          f"the logits, target < 3x: {verdict(peak_metrics < 3 * nbytes)}")
    print(f"    load_dynamics: {peak_load / 2**20:.1f} MiB = {peak_load / nbytes:.2f}x the logits")
    if not args.skip_import:
        print_import(args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
