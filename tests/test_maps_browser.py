"""The interactive map in headless Chromium: real hover, XSS safety, selection and export, offline.

Skipped only when /usr/bin/chromium or the playwright package is missing.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from _browser import needs_browser

pytestmark = needs_browser

LABELS = ["entailment", "<i>neutral</i>", "contradiction"]
IMG_XSS = '<img src=x onerror="window.__xss=1">'
SCRIPT_XSS = "<script>window.__xss=2</script>"
N = 300


def isolated(metrics: pd.DataFrame, k: int) -> list[int]:
    """Positions of the k points farthest from their nearest neighbour (axes scaled to [0, 1])."""
    xy = np.column_stack([metrics["variability"] / metrics["variability"].max(), metrics["confidence"]])
    d = np.sqrt(((xy[:, None, :] - xy[None, :, :]) ** 2).sum(-1))
    np.fill_diagonal(d, np.inf)
    return np.argsort(-d.min(axis=1))[:k].tolist()


@pytest.fixture(scope="module")
def mapped(tmp_path_factory):
    from datacarto.maps.interactive import gold_probabilities, interactive_map
    from datacarto.metrics import assign_regions, compute_metrics

    rng = np.random.default_rng(7)
    ids = np.arange(N, dtype=np.int64) * 10 + 1000
    gold = rng.integers(0, 3, N)
    logits = rng.normal(0, 1, (N, 4, 3)).astype(np.float32)
    logits[np.arange(N), :, gold] += (rng.normal(1, 2, N)[:, None] + np.linspace(0, 2, 4)).astype(np.float32)
    metrics = compute_metrics((ids, gold, logits))
    metrics["region"] = assign_regions(metrics)
    records = pd.DataFrame({"premise": [f"premise of example {i}, a dog runs" for i in ids],
                            "hypothesis": [f"hypothesis {i}" for i in ids]}, index=metrics.index)
    known, evil = isolated(metrics, 2)
    records.iloc[evil] = [IMG_XSS, SCRIPT_XSS]
    path = tmp_path_factory.mktemp("map") / "map.html"
    interactive_map(metrics, records, gold_probs=gold_probabilities(logits, gold), label_names=LABELS, path=path)
    return {"path": path, "metrics": metrics, "records": records, "known": known, "evil": evil}


@pytest.fixture
def page(open_page, mapped):
    """The map, ready; offline and free of page errors (checked when the test ends)."""
    return open_page(mapped["path"])


# the pixel of a data point, from plotly's own axes (plot area offset + linear data-to-pixel map)
PIXEL = """([v, c]) => {
  const gd = document.getElementById('dc-plot'), box = gd.getBoundingClientRect();
  const xa = gd._fullLayout.xaxis, ya = gd._fullLayout.yaxis;
  return {x: box.left + xa._offset + xa.l2p(v), y: box.top + ya._offset + ya.l2p(c)};
}"""


def pixel(pg, metrics, i):
    return pg.evaluate(PIXEL, [float(metrics["variability"].iloc[i]), float(metrics["confidence"].iloc[i])])


def hover(pg, xy):
    """Move the real mouse onto a pixel (from outside the plot, in one step); return (index, tooltip text)."""
    pg.mouse.move(3, 3)
    pg.wait_for_selector("#dc-tooltip", state="hidden", timeout=5_000)
    pg.mouse.move(xy["x"], xy["y"])
    pg.wait_for_selector("#dc-tooltip:not([hidden])", timeout=5_000)
    return pg.evaluate("Number(document.getElementById('dc-tooltip').dataset.index)"), pg.text_content("#dc-tooltip")


def test_mouse_hover_shows_the_record(page, mapped):
    i, metrics, records = mapped["known"], mapped["metrics"], mapped["records"]
    xy = pixel(page, metrics, i)
    api = page.evaluate(f"window.datacarto.pointPixel({i})")
    assert abs(api["x"] - xy["x"]) < 0.5 and abs(api["y"] - xy["y"]) < 0.5
    shown, tip = hover(page, xy)
    assert shown == i
    assert f"row {metrics.index[i]}" in tip
    assert records["premise"].iloc[i] in tip and records["hypothesis"].iloc[i] in tip
    assert LABELS[metrics["gold"].iloc[i]] in tip and "p(gold) by epoch" in tip
    assert f"{metrics['confidence'].iloc[i]:.3f}" in tip and str(metrics["region"].iloc[i]) in tip
    assert page.evaluate(f"window.datacarto.rowIdAt({i})") == metrics.index[i]
    page.mouse.move(3, 3)
    page.wait_for_selector("#dc-tooltip", state="hidden", timeout=5_000)


def test_markup_in_records_and_labels_stays_text(page, mapped):
    i = mapped["evil"]
    shown, tip = hover(page, pixel(page, mapped["metrics"], i))
    page.wait_for_timeout(300)  # time for an <img onerror> to fire, if one had been created
    assert shown == i
    assert IMG_XSS in tip and SCRIPT_XSS in tip
    assert page.evaluate("typeof window.__xss") == "undefined"
    assert page.evaluate("document.querySelectorAll('#dc-tooltip img, #dc-tooltip script').length") == 0
    page.click("button[data-mode=label]")
    assert "<i>neutral</i>" in page.text_content("#dc-labels") and "<i>neutral</i>" in page.text_content("#dc-legend")
    assert page.evaluate("document.querySelectorAll('#dc-side i').length") == 0
    assert page.evaluate("typeof window.__xss") == "undefined"


def test_box_select_and_export(page, mapped):
    metrics, records = mapped["metrics"], mapped["records"]
    xy = page.evaluate(f"(vc) => vc.map({PIXEL})",
                       np.column_stack([metrics["variability"], metrics["confidence"]]).tolist())
    px = np.array([[p["x"], p["y"]] for p in xy])
    # a box over the upper left of the plot, its edges moved off any point by at least 2 px
    x0, y0 = px[:, 0].min() - 10, px[:, 1].min() - 10
    x1 = np.median(px[:, 0])
    y1 = np.median(px[:, 1])
    while np.any(np.abs(px[:, 0] - x1) < 2):
        x1 += 1
    while np.any(np.abs(px[:, 1] - y1) < 2):
        y1 += 1
    inside = np.flatnonzero((px[:, 0] > x0) & (px[:, 0] < x1) & (px[:, 1] > y0) & (px[:, 1] < y1))
    assert 5 < inside.size < N
    page.click("button[data-drag=select]")
    page.mouse.move(x0, y0)
    page.mouse.down()
    page.mouse.move((x0 + x1) / 2, (y0 + y1) / 2, steps=4)
    page.mouse.move(x1, y1, steps=4)
    page.mouse.up()
    page.wait_for_function("window.datacarto.selected().length > 0", timeout=10_000)
    assert sorted(page.evaluate("window.datacarto.selected()")) == inside.tolist()
    assert page.text_content("#dc-selcount").startswith(f"{inside.size} selected")
    with page.expect_download() as info:
        page.click("#dc-export")
    lines = [json.loads(line) for line in open(info.value.path(), encoding="utf-8")]
    assert info.value.suggested_filename.endswith(".jsonl")
    assert [r["row_id"] for r in lines] == metrics.index[inside].tolist()
    for r, pos in zip(lines, inside):
        assert r["premise"] == records["premise"].iloc[pos] and r["hypothesis"] == records["hypothesis"].iloc[pos]
        assert r["gold_label"] == LABELS[metrics["gold"].iloc[pos]]
        assert r["region"] == metrics["region"].iloc[pos]
        assert r["confidence"] == pytest.approx(metrics["confidence"].iloc[pos], abs=1e-6)
        assert len(r["gold_probs"]) == 4
    assert page.evaluate("document.getElementById('dc-plot').layout.selections.length") == 1
    page.click("#dc-clear")
    page.wait_for_function("window.datacarto.selected().length === 0")
    assert page.is_disabled("#dc-export")
    page.wait_for_function("document.getElementById('dc-plot').layout.selections.length === 0")


def test_api_selection_export_and_label_filter(page, mapped):
    metrics, records = mapped["metrics"], mapped["records"]
    chosen = [mapped["evil"], 0, 17]
    page.evaluate(f"window.datacarto.select({json.dumps(chosen)})")
    with page.expect_download() as info:
        page.click("#dc-export")
    lines = [json.loads(line) for line in open(info.value.path(), encoding="utf-8")]
    assert [r["row_id"] for r in lines] == metrics.index[sorted(chosen)].tolist()
    assert [r["premise"] for r in lines] == records["premise"].iloc[sorted(chosen)].tolist()
    assert IMG_XSS in {r["premise"] for r in lines}
    assert page.evaluate("typeof window.__xss") == "undefined"
    # hide one gold label: its points leave the plot, the others stay
    page.uncheck("#dc-labels input[data-label='1']")
    page.wait_for_function(f"window.datacarto.visibleCount() === {int((metrics['gold'] != 1).sum())}")
    hidden = int(np.flatnonzero(metrics["gold"].to_numpy() == 1)[0])
    kept = int(np.flatnonzero(metrics["gold"].to_numpy() != 1)[0])
    assert page.evaluate(f"window.datacarto.pointPixel({hidden})") is None
    assert page.evaluate(f"window.datacarto.pointPixel({kept})") is not None
    assert page.evaluate("window.datacarto.selected().length") == 0  # a new view clears the selection
    text = page.evaluate(f"window.datacarto.showTooltip({kept})")
    assert records["premise"].iloc[kept] in text


def test_fallbacks_without_workers_or_webgl(open_page, mapped):
    """No Web Worker (decoding on the page) and no WebGL (SVG drawing): the map still works."""
    pg = open_page(mapped["path"], init_script="""
        delete window.Worker;
        const getContext = HTMLCanvasElement.prototype.getContext;
        HTMLCanvasElement.prototype.getContext = function (type, ...rest) {
          return /webgl/.test(type) ? null : getContext.call(this, type, ...rest);
        };""")
    # drawn as SVG: one <path class="point"> per example
    assert pg.evaluate("document.querySelectorAll('#dc-plot .scatterlayer .point').length") == N
    i, metrics, records = mapped["known"], mapped["metrics"], mapped["records"]
    shown, tip = hover(pg, pixel(pg, metrics, i))
    assert shown == i and records["premise"].iloc[i] in tip
