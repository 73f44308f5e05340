"""The unit/example switch and the folding of long texts, in headless Chromium with the network cut.

A token-classification run's page holds both levels (examples, words); a causal-LM-like record with a
5,000-character response is folded in the tooltip and the table and shown in full in the details view.
Skipped only when /usr/bin/chromium or the playwright package is missing.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from _browser import needs_browser
from test_maps_browser import hover, isolated, pixel

pytestmark = needs_browser

N = 60

@pytest.fixture(scope="module")
def token_run(tmp_path_factory):
    from datacarto.cli import main
    from datacarto.dynamics.cache import get_metrics
    from datacarto.dynamics.store import load_examples
    from datacarto.testing import write_toy_unit_run

    run = write_toy_unit_run(tmp_path_factory.mktemp("tokens") / "run", N, seed=5)
    out = run / "map.html"
    assert main(["map", str(run), "--html", str(out)]) == 0
    units = get_metrics(run, level="unit")
    return {"run": run, "html": out, "units": units, "tokens": load_examples(run)["tokens"].map(list)}


def test_the_switch_changes_the_points_the_tooltip_and_the_table(open_page, token_run):
    units, tokens = token_run["units"], token_run["tokens"]
    pg = open_page(token_run["html"])
    api = "window.datacarto"
    assert pg.evaluate(f"{api}.level()") == "example" and pg.evaluate(f"{api}.levels()") == ["example", "unit"]
    assert pg.is_visible("#dc-level") and pg.evaluate(f"{api}.visibleCount()") == N
    assert pg.evaluate(f"{api}.tableRows().length") == N
    assert pg.text_content("#dc-level button[data-level=unit]") == "words"

    pg.click("#dc-level button[data-level=unit]")
    pg.wait_for_function(f"{api}.level() === 'unit' && {api}.switchMs() !== null", timeout=10_000)
    assert pg.evaluate(f"{api}.visibleCount()") == len(units) > N
    assert pg.evaluate(f"{api}.tableRows().length") == len(units)
    assert pg.get_attribute("#dc-level button[data-level=unit]", "aria-pressed") == "true"
    assert {"unit_id", "row_id", "sub_id", "sentence", "word"} <= set(pg.evaluate(f"{api}.tableColumns()"))

    # a real hover on a unit's point: its sentence with the word marked, and which word it is
    i = isolated(units, 1)[0]
    r, s = int(units["row_id"].iloc[i]), int(units["sub_id"].iloc[i])
    shown, tip = hover(pg, pixel(pg, units, i))
    marked = " ".join(f"[{w}]" if k == s else w for k, w in enumerate(tokens[r]))
    assert shown == i and marked in tip and f"row {r} \u00b7 word {s}" in tip
    rec = pg.evaluate(f"{api}.record({i})")
    assert (rec["unit_id"], rec["row_id"], rec["sub_id"], rec["word"]) == (i, r, s, tokens[r][s])

    # search at the unit level: the units whose sentence holds the word; the map shows just those
    has = tokens.map(lambda ws: "london" in ws)
    want_units = int(units["row_id"].map(has).sum())
    assert 0 < pg.evaluate(f"{api}.search('london')") == want_units == pg.evaluate(f"{api}.visibleCount()")
    lines = [json.loads(x) for x in pg.evaluate(f"{api}.tableJSONL()").splitlines()]
    assert len(lines) == want_units and all("london" in x["sentence"] for x in lines)
    assert all(tokens[x["row_id"]][x["sub_id"]] == x["word"] for x in lines)

    # back to examples: the search is kept and runs on the examples' text
    pg.click("#dc-level button[data-level=example]")
    pg.wait_for_function(f"{api}.level() === 'example'", timeout=10_000)
    pg.wait_for_function(f"{api}.visibleCount() === {int(has.sum())}", timeout=10_000)
    assert pg.evaluate(f"{api}.tableRows()") == tokens.index[has.to_numpy()].tolist()
    assert pg.evaluate(f"{api}.search('')") == N and pg.evaluate(f"{api}.visibleCount()") == N
    tip = pg.evaluate(f"{api}.showTooltip(0)")
    assert tip.startswith("row 0") and " ".join(tokens[0]) in tip and "[" not in tip.split("tokens")[1][:60]


def test_a_unit_level_page_opens_at_units_and_marks_the_label(open_page, tmp_path):
    """Multi-label, ``--level unit``: the page opens at the units; a unit's tooltip names its label."""
    from datacarto.cli import main
    from datacarto.dynamics.cache import get_metrics
    from datacarto.testing import write_toy_unit_run

    run = write_toy_unit_run(tmp_path / "run", 40, task="multi-label", seed=2)
    out = tmp_path / "units.html"
    assert main(["map", str(run), "--level", "unit", "--html", str(out)]) == 0
    units = get_metrics(run, level="unit")
    pg = open_page(out)
    assert pg.evaluate("window.datacarto.level()") == "unit"
    assert pg.evaluate("window.datacarto.visibleCount()") == len(units) == 120
    assert pg.text_content("#dc-level button[data-level=unit]") == "labels"
    i = int(np.flatnonzero(units["sub_id"].to_numpy() == 1)[0])
    tip = pg.evaluate(f"window.datacarto.showTooltip({i})")
    r = int(units["row_id"].iloc[i])
    assert f"row {r} \u00b7 label 1" in tip and "rainy" in tip  # the example's decision about "rainy"
    assert pg.evaluate(f"window.datacarto.record({i})")["label"] == "rainy"
    assert pg.evaluate("window.datacarto.setLevel('example')") == 40
    assert pg.evaluate("window.datacarto.visibleCount()") == 40


def test_long_texts_are_folded_escaped_and_shown_in_full_on_demand(open_page, tmp_path):
    from datacarto.maps.interactive import interactive_map
    from datacarto.metrics import assign_regions, compute_metrics

    rng = np.random.default_rng(3)
    n = 30
    gold = rng.integers(0, 2, n)
    logits = rng.normal(0, 1, (n, 3, 2)).astype(np.float32)
    metrics = compute_metrics((np.arange(n), gold, logits))
    metrics["region"] = assign_regions(metrics)
    evil = '<script>window.__xss=1</script><img src=x onerror="window.__xss=2">'
    long_text = (evil + " " + "word " * 1200)[:5000]
    assert len(long_text) == 5000
    records = pd.DataFrame({"prompt": [f"prompt {i}" for i in range(n)], "response": [f"short {i}" for i in range(n)]},
                           index=metrics.index)
    records.loc[7, "response"] = long_text
    out = tmp_path / "long.html"
    interactive_map(metrics, records, label_names=["a", "b"], path=out)
    pg = open_page(out, viewport=(700, 500))
    tip = pg.evaluate("window.datacarto.showTooltip(7)")
    assert evil in tip and "\u2026 (+4700 chars)" in tip and "word " * 1000 not in tip
    assert len(tip) < 1200
    box = pg.evaluate("(() => { const b = document.getElementById('dc-tooltip').getBoundingClientRect();"
                      " return [b.left, b.top, b.right, b.bottom, innerWidth, innerHeight]; })()")
    assert box[0] >= 0 and box[1] >= 0 and box[2] <= box[4] and box[3] <= box[5]
    # the table folds the cell and says how much is left out
    cells = {row[0]: row for row in pg.evaluate("window.datacarto.renderedRows()")}
    column = pg.evaluate("window.datacarto.tableColumns()").index("response")
    assert "(+" in cells["7"][column] and len(cells["7"][column]) < 300
    assert cells["8"][column] == "short 8"
    # focusing the row (what a click on it or on its point does): the details view holds the whole text
    pg.evaluate("window.datacarto.focusRow(7)")
    pg.wait_for_selector("#dc-details:not([hidden])", timeout=5_000)
    details = pg.evaluate("window.datacarto.details()")
    assert long_text in details and "(5000 chars)" in details
    pg.wait_for_timeout(300)  # time for an <img onerror> to fire, if one had been created
    assert pg.evaluate("typeof window.__xss") == "undefined"
    assert pg.evaluate("document.querySelectorAll('#dc-tooltip img, #dc-tooltip script, #dc-details img, "
                       "#dc-details script, #dc-table img, #dc-table script').length") == 0
    assert pg.evaluate("window.datacarto.levels()") == ["example"] and not pg.is_visible("#dc-level")
