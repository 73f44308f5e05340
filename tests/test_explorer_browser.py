"""The explorer in headless Chromium: the linked table (search, sort, filter, selection, focus,
export, hostile text) and the comparison of two runs, driven through ``window.datacarto`` and
checked against what the test computes from the data.

Skipped only when /usr/bin/chromium or the playwright package is missing.
"""

from __future__ import annotations

import csv
import io
import json

import numpy as np
import pandas as pd
import pytest

# the shared page: this module's `mapped` map, opened by conftest's open_page (offline, no page error)
import test_maps_browser as shared
from _browser import needs_browser

page = shared.page

pytestmark = needs_browser

LABELS = ["entailment", "neutral", "contradiction"]
IMG_XSS = 'a zebra <img src=x onerror="window.__xss=1">'
SCRIPT_XSS = "<script>window.__xss=2</script> Zebra"
N = 400
WORDS = ["a", "dog", "runs", "cat", "sleeps", "on", "the", "mat", "bird", "sings", "red", "blue"]


def make_metrics(seed: int, n: int = N):
    from datacarto.metrics import assign_regions, compute_metrics

    rng = np.random.default_rng(seed)
    ids = np.arange(n, dtype=np.int64) * 3 + 7
    gold = np.random.default_rng(0).integers(0, 3, n)
    logits = rng.normal(0, 1, (n, 4, 3)).astype(np.float32)
    logits[np.arange(n), :, gold] += (rng.normal(1, 2, n)[:, None] + np.linspace(0, 2, 4)).astype(np.float32)
    metrics = compute_metrics((ids, gold, logits))
    metrics["region"] = assign_regions(metrics)
    return metrics, logits, gold


@pytest.fixture(scope="module")
def mapped(tmp_path_factory):
    from datacarto.maps.interactive import decode_payload, gold_probabilities, interactive_map

    metrics, logits, gold = make_metrics(3)
    rng = np.random.default_rng(5)
    premise = [" ".join(rng.choice(WORDS, rng.integers(3, 8))) for _ in range(N)]
    hypothesis = [f"hypothesis {i}" for i in range(N)]
    premise[11], premise[250] = "the Zebra crossing", IMG_XSS
    hypothesis[250] = SCRIPT_XSS
    premise[40] = 'quotes " and, commas\nand a newline'
    records = pd.DataFrame({"premise": premise, "hypothesis": hypothesis}, index=metrics.index)
    path = tmp_path_factory.mktemp("explorer") / "map.html"
    html = interactive_map(metrics, records, gold_probs=gold_probabilities(logits, gold), label_names=LABELS,
                           path=path)
    _, arrays, _ = decode_payload(html)
    return {"path": path, "metrics": metrics, "records": records, "arrays": arrays}


def ids_of(mapped, positions):
    return mapped["metrics"].index[np.asarray(positions, dtype=int)].tolist()


def rendered_ids(pg):
    return [int(r[0]) for r in pg.evaluate("window.datacarto.renderedRows()")]


def test_table_lists_every_row_with_its_columns(page, mapped):
    metrics, records = mapped["metrics"], mapped["records"]
    cols = page.evaluate("window.datacarto.tableColumns()")
    assert cols[:5] == ["row_id", "premise", "hypothesis", "gold_label", "last_pred_label"]
    assert {"region", "confidence", "variability", "correctness", "forgetfulness", "aum", "el2n"} <= set(cols)
    assert page.evaluate("window.datacarto.tableRows()") == metrics.index.tolist()
    rows = page.evaluate("window.datacarto.renderedRows()")
    assert 10 < len(rows) < 80  # virtualised: only the rows around the visible window exist
    first = dict(zip(cols, rows[0]))
    assert first["premise"] == records["premise"].iloc[0]
    assert first["gold_label"] == LABELS[metrics["gold"].iloc[0]] and first["region"] == metrics["region"].iloc[0]
    assert first["confidence"] == f"{metrics['confidence'].iloc[0]:.3f}"
    # scrolling renders the rows further down
    page.evaluate("document.getElementById('dc-table').scrollTop = 24 * 300")
    page.wait_for_function(f"window.datacarto.renderedRows().some(r => r[0] === '{metrics.index[300]}')")
    assert page.evaluate("document.querySelectorAll('#dc-table .dc-tr').length") < 80
    page.evaluate("window.datacarto.sort('variability', true)")  # a new view starts at its top
    top = int(np.argmax(mapped["arrays"]["variability"]))
    assert rendered_ids(page)[0] == metrics.index[top] and page.evaluate("document.getElementById('dc-table').scrollTop") == 0


def test_search_finds_records_and_the_map_follows(page, mapped):
    records = mapped["records"]
    for query in ["zebra", "dog runs", "HYPOTHESIS 12"]:
        expected = np.flatnonzero(records["premise"].str.lower().str.contains(query.lower(), regex=False)
                                  | records["hypothesis"].str.lower().str.contains(query.lower(), regex=False))
        assert expected.size > 0, query
        n = page.evaluate(f"window.datacarto.search({json.dumps(query)})")
        assert n == expected.size
        assert page.evaluate("window.datacarto.tableRows()") == ids_of(mapped, expected)
        assert page.evaluate("window.datacarto.mapIndices()") == expected.tolist()
        assert page.evaluate("window.datacarto.visibleCount()") == expected.size
    assert page.evaluate("window.datacarto.search('zebra')") == 2
    assert set(rendered_ids(page)) == set(ids_of(mapped, [11, 250]))
    assert page.evaluate("window.datacarto.search('')") == N
    assert page.evaluate("window.datacarto.visibleCount()") == N


def test_sort_and_filter_change_table_and_map_consistently(page, mapped):
    metrics, arrays = mapped["metrics"], mapped["arrays"]
    conf = arrays["confidence"]
    page.evaluate("window.datacarto.sort('confidence', true)")
    order = np.lexsort((-np.arange(N), -conf.astype(np.float64)))  # descending; ties: later row first
    assert page.evaluate("window.datacarto.tableRows()") == ids_of(mapped, order)
    assert rendered_ids(page)[:5] == ids_of(mapped, order[:5])
    # a text column sorts word by word
    page.evaluate("window.datacarto.sort('premise', false)")
    words = [p.split(" ") for p in mapped["records"]["premise"]]
    by_text = sorted(range(N), key=lambda i: (words[i], i))
    assert page.evaluate("window.datacarto.tableRows()") == ids_of(mapped, by_text)
    # region + predicted label + score range + gold label, in the sort by a score
    page.evaluate("window.datacarto.sort('aum', false)")
    spec = {"region": ["ambiguous", "hard-to-learn"], "pred": ["neutral", 2], "gold": ["entailment", "neutral"],
            "ranges": {"confidence": [0.1, 0.8], "el2n": [None, 1.2]}}
    n = page.evaluate(f"window.datacarto.filter({json.dumps(spec)})")
    region = metrics["region"].astype(str).to_numpy()
    keep = (np.isin(region, spec["region"]) & np.isin(metrics["last_pred"], [1, 2]) & np.isin(metrics["gold"], [0, 1])
            & (conf >= 0.1) & (conf <= 0.8) & (arrays["el2n"] <= 1.2))
    chosen = np.flatnonzero(keep)
    assert 5 < chosen.size < N and n == chosen.size
    chosen = chosen[np.lexsort((chosen, np.round(arrays["aum"][chosen], 9)))]
    assert page.evaluate("window.datacarto.tableRows()") == ids_of(mapped, chosen)
    assert page.evaluate("window.datacarto.mapIndices()") == sorted(chosen.tolist())
    assert page.is_checked("#dc-regions input[data-code='1']") and not page.is_checked("#dc-regions input[data-code='0']")
    assert not page.is_checked("#dc-labels input[data-label='2']")
    assert page.input_value("#dc-ranges .dc-range[data-score=confidence] input[data-end=lo]") == "0.1"
    # the same filter from the side panel's controls
    page.click("#dc-clear-filters")
    page.wait_for_function(f"window.datacarto.tableRows().length === {N}")
    page.uncheck("#dc-regions input[data-code='0']")
    page.wait_for_function(f"window.datacarto.tableRows().length === {int((region != 'easy-to-learn').sum())}")
    # a filter paints the table first, then redraws the map on a later frame (on a busy machine, later still)
    page.wait_for_function(f"window.datacarto.mapIndices().length === {int((region != 'easy-to-learn').sum())}")
    assert page.evaluate("window.datacarto.mapIndices()") == np.flatnonzero(region != "easy-to-learn").tolist()
    for bad, message in [("{region: ['nowhere']}", "unknown region"), ("{gold: ['maybe']}", "unknown label"),
                         ("{ranges: {nope: [0, 1]}}", "no score nope")]:
        with pytest.raises(Exception, match=message):
            page.evaluate(f"window.datacarto.filter({bad})")
    assert len(page.evaluate("window.datacarto.tableRows()")) == int((region != "easy-to-learn").sum())


def test_map_selection_fills_the_table_and_a_row_click_focuses_its_point(page, mapped):
    metrics, records = mapped["metrics"], mapped["records"]
    chosen = [300, 5, 77, 250]
    page.evaluate(f"window.datacarto.select({json.dumps(chosen)})")
    assert page.evaluate("window.datacarto.tableRows()") == ids_of(mapped, sorted(chosen))
    assert rendered_ids(page) == ids_of(mapped, sorted(chosen))
    assert "4 of 400 rows selected on the map" in page.text_content("#dc-rowcount")
    row = page.locator(f"#dc-table .dc-tr[data-row-id='{metrics.index[77]}']")
    row.click()
    page.wait_for_selector("#dc-tooltip:not([hidden])")
    assert page.evaluate("window.datacarto.focused()") == 77
    tip = page.text_content("#dc-tooltip")
    assert f"row {metrics.index[77]}" in tip and records["premise"].iloc[77] in tip
    ring = page.evaluate("document.getElementById('dc-plot').layout.shapes.slice(-1)[0]")
    assert ring["xanchor"] == pytest.approx(metrics["variability"].iloc[77], abs=1e-6)
    assert ring["yanchor"] == pytest.approx(metrics["confidence"].iloc[77], abs=1e-6)
    assert "dc-focus" in row.get_attribute("class")
    page.evaluate("window.datacarto.clearSelection()")
    assert len(page.evaluate("window.datacarto.tableRows()")) == N
    text = page.evaluate(f"window.datacarto.focusRow({int(metrics.index[390])})")
    assert records["hypothesis"].iloc[390] in text
    assert metrics.index[390] in rendered_ids(page)  # scrolled into view


def test_export_matches_the_source_rows(page, mapped):
    metrics, records = mapped["metrics"], mapped["records"]
    page.evaluate("window.datacarto.filter({region: ['hard-to-learn']})")
    page.evaluate("window.datacarto.sort('variability', true)")
    expected = page.evaluate("window.datacarto.tableRows()")
    want = metrics.index[metrics["region"] == "hard-to-learn"]
    assert sorted(expected) == want.tolist()
    with page.expect_download() as info:
        page.click("#dc-export-jsonl")
    lines = [json.loads(line) for line in open(info.value.path(), encoding="utf-8")]
    assert info.value.suggested_filename.endswith(".jsonl")
    assert [r["row_id"] for r in lines] == expected
    for r in lines:
        src = records.loc[r["row_id"]]
        assert r["premise"] == src["premise"] and r["hypothesis"] == src["hypothesis"]
        assert r["region"] == "hard-to-learn" and r["gold_label"] == LABELS[metrics.loc[r["row_id"], "gold"]]
        assert r["confidence"] == pytest.approx(metrics.loc[r["row_id"], "confidence"], abs=1e-6)
    # CSV, with a record holding quotes, a comma and a newline
    page.evaluate("window.datacarto.filter({})")
    page.evaluate("window.datacarto.sort('row_id', false)")
    page.evaluate("window.datacarto.select([40, 250, 3])")
    with page.expect_download() as info:
        page.click("#dc-export-csv")
    body = open(info.value.path(), encoding="utf-8", newline="").read()
    rows = list(csv.DictReader(io.StringIO(body, newline="")))
    assert [int(r["row_id"]) for r in rows] == ids_of(mapped, [3, 40, 250])
    assert [r["premise"] for r in rows] == records["premise"].iloc[[3, 40, 250]].tolist()
    assert [r["hypothesis"] for r in rows] == records["hypothesis"].iloc[[3, 40, 250]].tolist()
    assert json.loads(rows[0]["gold_probs"]) == pytest.approx(np.round(mapped["arrays"]["gold_probs"][3] / 100, 2))


def test_hostile_text_stays_text_in_the_table(page, mapped):
    assert page.evaluate("window.datacarto.search('onerror')") == 1
    page.wait_for_timeout(300)  # time for an <img onerror> to fire, if one had been created
    row = page.evaluate("window.datacarto.renderedRows()")[0]
    assert IMG_XSS in row and SCRIPT_XSS in row
    assert page.evaluate("document.querySelectorAll('#dc-table img, #dc-table script').length") == 0
    assert IMG_XSS in page.text_content("#dc-table")
    page.evaluate(f"window.datacarto.focusRow({int(mapped['metrics'].index[250])})")
    assert page.evaluate("document.querySelectorAll('#dc-tooltip img, #dc-tooltip script').length") == 0
    assert page.evaluate("typeof window.__xss") == "undefined"


# ----------------------------------------------------------------------------------------------
# two runs compared


def write_run(folder, seed, fingerprint="same-data"):
    from datacarto.dynamics.store import DynamicsWriter, dynamics_dir

    metrics, logits, gold = make_metrics(seed, n=240)
    writer = DynamicsWriter(dynamics_dir(folder))
    writer.update_manifest(label_names=LABELS, dataset_fingerprint=fingerprint)
    ids = metrics.index.to_numpy()
    for t in range(logits.shape[1]):
        writer.write_epoch(t, ids, gold, logits[:, t])
    return folder


def test_compare_page_gives_the_transition_matrix(open_page, tmp_path):
    from datacarto.cli import main
    from datacarto.dynamics.cache import get_metrics

    a, b = write_run(tmp_path / "seed0", 1), write_run(tmp_path / "seed1", 2)
    out = tmp_path / "compare.html"
    assert main(["map", str(a), "--compare", str(b), "--html", str(out)]) == 0
    ra, rb = get_metrics(a)["region"].astype(str), get_metrics(b)["region"].astype(str)
    expected = pd.crosstab(ra, rb).reindex(index=["easy-to-learn", "ambiguous", "hard-to-learn"],
                                           columns=["easy-to-learn", "ambiguous", "hard-to-learn"], fill_value=0)
    pg = open_page(out, viewport=(1300, 900))
    got = pg.evaluate("window.datacarto.compareMatrix()")
    assert got["runs"] == ["seed0", "seed1"]
    assert got["counts"] == expected.to_numpy().tolist()
    shown = [[int(x.replace(",", "")) for x in pg.locator(f"#dc-matrix tr:nth-child({r + 2}) td").all_text_contents()]
             for r in range(3)]
    assert shown == expected.to_numpy().tolist()
    stable = float((ra == rb).mean())
    assert f"{100 * stable:.1f}%" in pg.text_content("#dc-stable")
    # a click on a cell selects those examples (and the table lists them)
    pg.click("#dc-matrix button[data-from='easy-to-learn'][data-to='ambiguous']")
    want = np.flatnonzero((ra == "easy-to-learn").to_numpy() & (rb == "ambiguous").to_numpy())
    assert want.size == expected.loc["easy-to-learn", "ambiguous"] > 0
    pg.wait_for_function(f"window.datacarto.selected().length === {want.size}")
    assert pg.evaluate("window.datacarto.selected()") == want.tolist()
    assert pg.evaluate("window.datacarto.tableRows()") == ra.index[want].tolist()
    # colour by transition: one legend entry per transition present
    pg.evaluate("window.datacarto.setColorBy('transition')")
    legend = pg.text_content("#dc-legend")
    assert "kept easy-to-learn" in legend and "easy-to-learn \u2192 ambiguous" in legend
    rec = pg.evaluate("window.datacarto.record(0)")
    assert rec["region:seed0"] == ra.iloc[0] and rec["region:seed1"] == rb.iloc[0]


# ----------------------------------------------------------------------------------------------
# what a user tripped on (issue 26)

FRAMES = "new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))"
RECT = "(id) => { const r = document.getElementById(id).getBoundingClientRect(); return [r.left, r.top, r.right, r.bottom]; }"


def overlap(a, b) -> float:
    """The area two client rectangles [left, top, right, bottom] share."""
    return max(0.0, min(a[2], b[2]) - max(a[0], b[0])) * max(0.0, min(a[3], b[3]) - max(a[1], b[1]))


def test_a_search_after_a_box_selection_clears_the_box_and_its_dimming(page, mapped):
    records = mapped["records"]
    area = page.evaluate("""() => { const gd = document.getElementById('dc-plot'), r = gd.getBoundingClientRect();
      const xa = gd._fullLayout.xaxis, ya = gd._fullLayout.yaxis;
      return [r.left + xa._offset, r.top + ya._offset, xa._length, ya._length]; }""")
    page.click("button[data-drag=select]")
    page.mouse.move(area[0] + 0.05 * area[2], area[1] + 0.05 * area[3])
    page.mouse.down()
    page.mouse.move(area[0] + 0.5 * area[2], area[1] + 0.6 * area[3], steps=8)
    page.mouse.up()
    page.wait_for_function("window.datacarto.selected().length > 0", timeout=10_000)
    assert page.evaluate("document.getElementById('dc-plot')._fullLayout.selections.length") == 1
    page.fill("#dc-search", "dog")  # typed, as a user does (the box waits for its debounce)
    hits = np.flatnonzero(records["premise"].str.contains("dog") | records["hypothesis"].str.contains("dog"))
    page.wait_for_function(f"window.datacarto.tableRows().length === {hits.size} && "
                           f"window.datacarto.visibleCount() === {hits.size}", timeout=10_000)
    page.evaluate(FRAMES)
    state = page.evaluate("""() => { const gd = document.getElementById('dc-plot');
      return {outline: gd._fullLayout.selections.length,
              dimmed: gd._fullData.filter(t => Array.isArray(t.selectedpoints) || ArrayBuffer.isView(t.selectedpoints)).length,
              selected: window.datacarto.selected().length}; }""")
    assert state == {"outline": 0, "dimmed": 0, "selected": 0}  # every match drawn at full strength, no stale box
    assert page.evaluate("window.datacarto.mapIndices()") == hits.tolist()


def test_a_clicked_rows_tooltip_leaves_the_details_view_free(page, mapped):
    metrics = mapped["metrics"]
    vw, vh = page.evaluate("[window.innerWidth, window.innerHeight]")
    for k in range(0, N, 19):
        page.evaluate(f"document.getElementById('dc-table').scrollTop = {24 * k}")
        page.evaluate(FRAMES)  # the rows of the new scroll position are rendered before the click
        page.locator(f"#dc-table .dc-tr[data-row-id='{metrics.index[k]}']").click()
        page.wait_for_function(f"window.datacarto.focused() === {k} && "
                               f"document.getElementById('dc-tooltip').dataset.index === '{k}' && "
                               "!document.getElementById('dc-tooltip').hidden && !document.getElementById('dc-details').hidden")
        tip, details = page.evaluate(RECT, "dc-tooltip"), page.evaluate(RECT, "dc-details")
        assert overlap(tip, details) == 0, (k, tip, details)
        assert tip[0] >= 0 and tip[1] >= 0 and tip[2] <= vw and tip[3] <= vh, (k, tip)


def test_compared_runs_fit_the_side_panel_and_their_columns_read_apart(open_page, tmp_path):
    from datacarto.cli import main

    a = write_run(tmp_path / "snli-minilm-baseline-seed0", 1)
    b = write_run(tmp_path / "snli-minilm-baseline-seed1", 2)
    out = tmp_path / "compare.html"
    assert main(["map", str(a), "--compare", str(b), "--html", str(out)]) == 0
    pg = open_page(out, viewport=(1300, 900))
    pg.evaluate("document.getElementById('dc-compare').scrollIntoView()")
    side = pg.evaluate(RECT, "dc-side")
    assert pg.evaluate("(() => { const s = document.getElementById('dc-side'); return s.scrollWidth <= s.clientWidth; })()")
    rights = pg.evaluate("Array.from(document.querySelectorAll('#dc-compare *')).map(e => e.getBoundingClientRect().right)")
    assert max(rights) <= side[2] + 0.5  # nothing of the comparison is cut off at the right edge
    heads = pg.evaluate("""Array.from(document.querySelectorAll('#dc-table .dc-th button'))
      .filter(b => b.dataset.column.startsWith('region:'))
      .map(b => ({text: b.textContent, clipped: b.scrollWidth > b.clientWidth}))""")
    assert len(heads) == 2 and not any(h["clipped"] for h in heads), heads
    assert heads[0]["text"] != heads[1]["text"] and heads[0]["text"].endswith("seed0") and heads[1]["text"].endswith("seed1")
