"""How ``datacarto serve`` scales: a synthetic run of 550k and 5M examples (5 epochs, 3 labels).

For each size: a run folder written with DynamicsWriter (SNLI-like records as in map_scale.py:
premise ~100 characters, hypothesis ~50, Zipf-distributed words, every row unique), then:

* start-up s     ``serve(run, port=0)`` until it listens with the run in memory, the metrics cache
                 warm (a first, cold start computes and caches the metrics: "cold s")
* RSS MB         this process's resident memory with the server started (and before it; the peak
                 includes writing the run)
* ready s        headless Chromium: ``page.goto`` until ``window.datacartoReady`` (the server builds
                 the page on the first request: "first"; then the median of 2 more loads)
* zoom ms        ``datacarto.zoom(...)`` to a view of about a quarter of the run, then to one of
                 about 1%, until the page drew the server's answer (includes the page's 150 ms wait
                 for the mouse to settle)
* search ms      ``datacarto.search(word)`` (a word of mid frequency) over all rows, the whole map in
                 view, until drawn
* filter ms      ``datacarto.filter({region: ['ambiguous']})`` over all rows (a third of them), the
                 whole map in view, until drawn
* server ms      of each action, the server's part alone (``ServedRun.answer``, no browser)

Targets: every action under 1 s (interactive); search and filter under 300 ms at 550k (issue 25).

Run: ``.venv/bin/python benchmarks/serve_scale.py [--sizes 550000,5000000] [--keep DIR]``.
Needs Chromium at /usr/bin/chromium and the playwright package for the browser columns.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from map_scale import CHROMIUM, CHROMIUM_ARGS, LABELS, make_sentences, make_vocabulary

TARGET_ACTION_MS, TARGET_TABLE_MS_550K, TARGET_READY_S = 1000.0, 300.0, 5.0
CHUNK = 500_000

# one page action, timed until the page drew the server's answer (serverAnswers() moved on)
TIMED = """async (code) => {
  const api = window.datacarto, before = api.serverAnswers(), t = performance.now();
  const result = await (new Function('api', 'return ' + code))(api);
  while (api.serverAnswers() <= before) await new Promise(r => setTimeout(r, 5));
  await new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)));
  return [performance.now() - t, result];
}"""


def write_run(folder: Path, n: int, epochs: int = 5, seed: int = 0) -> pd.Series:
    """A run folder of ``n`` synthetic examples; returns the premises (to pick a search word)."""
    from datacarto.dynamics.store import DynamicsWriter, dynamics_dir

    rng = np.random.default_rng(seed)
    gold = rng.integers(0, len(LABELS), n)
    vocab = make_vocabulary(20_000, rng)
    premise, hypothesis = [], []
    for start in range(0, n, CHUNK):  # chunks: the word draws of 5M rows at once would need GBs
        k = min(CHUNK, n - start)
        premise += make_sentences(k, 100, vocab, rng)
        hypothesis += make_sentences(k, 50, vocab, rng)
    writer = DynamicsWriter(dynamics_dir(folder))
    ids = np.arange(n, dtype=np.int64)
    writer.write_examples(ids, ids.astype(np.uint64), gold, pd.DataFrame({"premise": premise, "hypothesis": hypothesis}))
    writer.update_manifest(label_names=LABELS, num_labels=len(LABELS), n_examples=n, mode="training_pass",
                           text_columns=["premise", "hypothesis"])
    skill, pace = rng.normal(1.2, 2.0, n), rng.random(n)
    for e in range(epochs):
        logits = rng.normal(0, 1, (n, len(LABELS))).astype(np.float32)
        logits[ids, gold] += (skill + 2 * e / max(epochs - 1, 1) * pace).astype(np.float32)
        writer.write_epoch(e, ids, gold, logits, epoch=float(e + 1))
    return pd.Series(premise[:2000])


def rss_mb() -> tuple[float, float]:
    """(current, peak) resident memory of this process in MB."""
    with open("/proc/self/statm") as f:
        current = int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6
    return current, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e3


def server_times(server, word: str, boxes: list) -> dict:
    """Milliseconds of the server's part of each action (best of 3)."""
    out = {}
    for key, spec in [("zoom", {"box": boxes[0]}), ("zoom_small", {"box": boxes[1]}), ("search", {"search": word, "box": boxes[2]}),
                      ("filter", {"region": ["ambiguous"], "box": boxes[2]})]:
        runs = []
        for _ in range(3):
            t = time.perf_counter()
            server.run.answer(spec)
            runs.append((time.perf_counter() - t) * 1000)
        out[key] = min(runs)
    return out


def browser_times(url: str, word: str, boxes: list) -> dict:
    from playwright.sync_api import sync_playwright

    out = {"ready": []}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        for _ in range(3):
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            t0 = time.perf_counter()
            page.goto(url, timeout=300_000)
            page.wait_for_function("window.datacartoReady === true || !!window.datacartoError", timeout=300_000,
                                   polling=20)
            out["ready"].append(time.perf_counter() - t0)
            if page.evaluate("window.datacartoError || null"):
                raise RuntimeError(f"the page failed: {page.evaluate('window.datacartoError')}")
            if len(out["ready"]) < 3:
                page.close()
        for key, code in [("zoom", "api.zoom({}, {}, {}, {})".format(*boxes[0])),
                          ("zoom_small", "api.zoom({}, {}, {}, {})".format(*boxes[1])),
                          ("search", f"api.search({word!r})"), ("filter", "api.filter({region: ['ambiguous']})")]:
            if key == "search":  # untimed: back to the whole map
                page.evaluate(TIMED, "api.zoom({}, {}, {}, {})".format(*boxes[2]))
            if key == "filter":
                page.evaluate(TIMED, "api.search('')")  # untimed: back to every row
            out[key], result = page.evaluate(TIMED, code)
            if key == "search":
                out["hits"] = page.evaluate("window.datacarto.server().matched")
        browser.close()
    return out


def measure(n: int, root: Path, browser: bool) -> dict:
    from datacarto.maps.serve import serve

    t = time.perf_counter()
    premises = write_run(root / f"run{n}", n)
    row = {"n": n, "write_s": time.perf_counter() - t}
    t = time.perf_counter()
    serve(root / f"run{n}", port=0).stop()  # cold: computes and caches the metrics
    row["cold_s"] = time.perf_counter() - t
    row["rss_before_mb"] = rss_mb()[0]
    t = time.perf_counter()
    server = serve(root / f"run{n}", port=0).start()
    row["start_s"] = time.perf_counter() - t
    row["rss_mb"], row["peak_mb"] = rss_mb()
    words = pd.Series(" ".join(premises).split(" ")).value_counts()
    word = str(words.index[len(words) // 50])
    m = server.run
    boxes = [[float(np.quantile(m.x, q0)), float(np.quantile(m.x, q1)), float(np.quantile(m.y, p0)),
              float(np.quantile(m.y, p1))] for (q0, q1, p0, p1) in [(0.0, 0.5, 0.5, 1.0), (0.45, 0.55, 0.45, 0.55)]]
    boxes.append(m._padded_extent())
    row["server"] = server_times(server, word, boxes)
    try:
        if browser:
            row.update(browser_times(server.url, word, boxes))
    finally:
        server.stop()
    return row


def report(row: dict) -> None:
    n = row["n"]
    action_target = TARGET_TABLE_MS_550K if n <= 550_000 else TARGET_ACTION_MS

    def verdict(value, target):
        return "ok" if value < target else "MISSED"

    print(f"\n{n:,} examples (run written in {row['write_s']:.1f} s)")
    print(f"  start-up       {row['start_s']:8.1f} s   (cold, computing the metrics: {row['cold_s']:.1f} s)")
    print(f"  memory (RSS)   {row['rss_mb']:8.0f} MB  ({row['rss_before_mb']:.0f} MB before the start; "
          f"peak {row['peak_mb']:.0f} MB, writing the run included)")
    if "ready" in row:
        r = row["ready"]
        print(f"  page ready     {r[0]:8.2f} s   first (builds the page); then {statistics.median(r[1:]):.2f} s"
              f"   target < {TARGET_READY_S:g} s: {verdict(statistics.median(r[1:]), TARGET_READY_S)}")
    for key, name, target in [("zoom", "zoom (1/4)", TARGET_ACTION_MS), ("zoom_small", "zoom (1%)", TARGET_ACTION_MS),
                              ("search", "search", action_target), ("filter", "filter", action_target)]:
        server_ms = row["server"][key]
        if key in row:
            extra = f" ({row['hits']:,} hits)" if key == "search" else ""
            print(f"  {name:<14} {row[key]:8.0f} ms  (server {server_ms:.0f} ms){extra}   target < {target:g} ms: "
                  f"{verdict(row[key], target)}")
        else:
            print(f"  {name:<14} server {server_ms:.0f} ms   target < {target:g} ms: {verdict(server_ms, target)}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="550000,5000000")
    parser.add_argument("--keep", help="write the runs here (default: a temporary folder, removed)")
    parser.add_argument("--no-browser", action="store_true", help="the server's times only")
    args = parser.parse_args(argv)
    browser = not args.no_browser and os.path.exists(CHROMIUM)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(args.keep or tmp)
        for n in [int(s) for s in args.sizes.split(",")]:
            report(measure(n, root, browser))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
