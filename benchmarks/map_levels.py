"""The two-level page of a token-classification run: 50k examples / 250k words (one point per unit).

A synthetic run (:func:`datacarto.testing.write_toy_unit_run`: 5 epochs, 3 tags, 3-7 words per
sentence drawn Zipf-like from a 20k-word vocabulary) is mapped by
:func:`datacarto.maps.run_maps.write_run_maps`, as ``datacarto map RUN`` does, and measured:

* html MB         the page holding both levels, against an examples-only page of the same run
* write s         write_run_maps (metrics, records, both payloads, the file)
* ready s         headless Chromium: page.goto until window.datacartoReady, median of the loads,
                  for the page opening at the examples and for ``--level unit`` (opening at the words)
* switch ms       examples -> words through the page's switch (``datacarto.setLevel``), until the map
                  and the table show the words; the other level is decoded in the background after
                  "ready", so this is the redraw (first switch; then back and again: median)
* hover ms        at the word level: mouse move onto a point -> the tooltip visible (median of 5)
* search ms       at the word level: ``datacarto.search(word)`` until the next frame, and its hits

Run: ``.venv/bin/python benchmarks/map_levels.py [--examples 50000] [--loads 3] [--keep DIR]``.
Needs Chromium at /usr/bin/chromium and the playwright package for the browser figures. No
targets are asserted: the figures are printed (docs/maps.md quotes them).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from map_scale import CHROMIUM, CHROMIUM_ARGS, TIMED, hover_times, make_vocabulary  # noqa: E402

READY = "window.datacartoReady === true || !!window.datacartoError"


def load(browser, path: Path) -> tuple[object, float]:
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    page.route("**/*", lambda r: r.continue_() if r.request.url.startswith(("file:", "blob:", "data:")) else r.abort())
    t0 = time.perf_counter()
    page.goto(path.resolve().as_uri(), timeout=180_000)
    page.wait_for_function(READY, timeout=180_000, polling=20)
    seconds = time.perf_counter() - t0
    error = page.evaluate("window.datacartoError || null")
    if error:
        raise RuntimeError(f"the page failed: {error}")
    return page, seconds


def switch_ms(page, level: str) -> float:
    ms, _ = page.evaluate(TIMED, f"api.setLevel({level!r})")
    return ms


def hover_ms(page, units, k: int = 5) -> float:
    return statistics.median(hover_times(page, units, k)[0])


def browser_figures(both: Path, units_first: Path, units, word: str, loads: int) -> dict:
    from playwright.sync_api import sync_playwright

    out = {}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        for key, path in (("ready_examples", both), ("ready_units", units_first)):
            times = []
            for _ in range(loads):
                page, seconds = load(browser, path)
                times.append(seconds)
                page.close()
            out[key] = times
        page, _ = load(browser, both)
        page.wait_for_timeout(3000)  # the background decode of the words' level
        out["switch_first"] = switch_ms(page, "unit")
        assert page.evaluate("window.datacarto.visibleCount()") == len(units)
        again = []
        for _ in range(2):
            switch_ms(page, "example")
            again.append(switch_ms(page, "unit"))
        out["switch_again"] = statistics.median(again)
        out["back_to_examples"] = switch_ms(page, "example")
        switch_ms(page, "unit")
        out["hover"] = hover_ms(page, units)
        ms, hits = page.evaluate(TIMED, f"api.search({word!r})")
        out["search"], out["hits"] = ms, hits
        browser.close()
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--examples", type=int, default=50_000)
    parser.add_argument("--loads", type=int, default=3)
    parser.add_argument("--keep", default=None, help="keep the run and the pages in this folder")
    parser.add_argument("--no-browser", action="store_true")
    args = parser.parse_args(argv)
    from datacarto.dynamics.cache import get_metrics
    from datacarto.dynamics.store import load_examples
    from datacarto.maps.interactive import interactive_map
    from datacarto.maps.run_maps import run_levels, write_run_maps
    from datacarto.testing import write_toy_unit_run

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(args.keep or tmp)
        out.mkdir(parents=True, exist_ok=True)
        t = time.perf_counter()
        vocab = make_vocabulary(20_000, np.random.default_rng(0))
        run = write_toy_unit_run(out / "run", args.examples, epochs=5, words=(3, 7), vocabulary=list(vocab))
        print(f"synthetic run written in {time.perf_counter() - t:.1f} s", flush=True)
        t = time.perf_counter()
        result = write_run_maps(run, html=out / "both.html")
        write_s = time.perf_counter() - t
        write_run_maps(run, html=out / "units_first.html", level="unit")
        examples, _ = run_levels(run)
        interactive_map(examples.metrics, examples.records, gold_probs=examples.probs,
                        label_names=examples.label_names, path=out / "examples_only.html")
        units = get_metrics(run, level="unit")
        tokens = load_examples(run)["tokens"].head(5000).explode().value_counts()
        word = str(tokens.index[len(tokens) // 50])
        figures = {}
        if not args.no_browser and os.path.exists(CHROMIUM):
            figures = browser_figures(out / "both.html", out / "units_first.html", units, word, args.loads)
        mb = {k: (out / f"{k}.html").stat().st_size / 1e6 for k in ("both", "units_first", "examples_only")}
    load_avg = os.getloadavg()
    print(f"\nload average during the run: {load_avg[0]:.1f} {load_avg[1]:.1f} {load_avg[2]:.1f} on {os.cpu_count()} cores")
    print(f"run: {result.points['example']:,} examples, {result.points['unit']:,} words, 5 epochs")
    print(f"html MB: {mb['both']:.1f} (both levels; {mb['examples_only']:.1f} examples only, "
          f"{mb['both'] - mb['examples_only']:.1f} for the words' level)")
    print(f"write s: {write_s:.1f} (write_run_maps, both levels)")
    if figures:
        for key, what in (("ready_examples", "opening at the examples"), ("ready_units", "opening at the words")):
            t = figures[key]
            print(f"ready s ({what}): median {statistics.median(t):.2f}, max {max(t):.2f} of {len(t)} loads")
        print(f"switch ms (examples -> words): first {figures['switch_first']:.0f}, again {figures['switch_again']:.0f}; "
              f"words -> examples {figures['back_to_examples']:.0f}")
        print(f"hover ms (words): {figures['hover']:.0f}")
        print(f"search ms (words, {word!r}): {figures['search']:.0f}, {figures['hits']:,} hits")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
