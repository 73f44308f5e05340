"""A served run in headless Chromium with the network cut (only the local server answers): the page
is ready, a zoom asks the server for exactly the view's points, a search finds rows the first
sample did not hold, a region filter and a gold-label box are answered over all rows.

Skipped only when /usr/bin/chromium or the playwright package is missing.
"""

from __future__ import annotations

import pytest

import test_serve as shared  # the served run (a module fixture) and its sizes
from _browser import needs_browser

pytestmark = needs_browser

served, CAP, N = shared.served, shared.CAP, shared.N


@pytest.fixture
def page(open_page, served):
    """The served page, ready, the network cut (only the server itself answers): tests/_browser.py."""
    return open_page(served["server"].url)


def answered(pg, before: int) -> None:
    """Wait until the page applied a server answer newer than ``before``."""
    pg.wait_for_function(f"window.datacarto.serverAnswers() > {before}", timeout=30_000)


def test_a_served_page_zooms_searches_and_filters_over_every_row(page, served):
    m, records = served["metrics"], served["records"]
    api = "window.datacarto"
    first = page.evaluate(f"{api}.tableRows()")
    assert len(first) == CAP and page.evaluate(f"{api}.server().n_total") == N
    assert "examples in view" in page.text_content("#dc-status")
    assert page.evaluate("document.getElementById('dc-plot').data.some(t => t.type === 'heatmap')")

    # a zoom (plotly_relayout, as the mouse does it) asks for the view's points: all of them when few
    box = [*m.variability.quantile([0.45, 0.6]), *m.confidence.quantile([0.2, 0.8])]
    inside = m.index[m.variability.between(*box[:2]) & m.confidence.between(*box[2:])]
    assert 0 < len(inside) <= CAP
    page.evaluate(f"{api}.zoom({box[0]}, {box[1]}, {box[2]}, {box[3]})")
    answered(page, 0)
    assert page.evaluate(f"{api}.tableRows()") == inside.tolist()
    assert page.evaluate(f"{api}.mapIndices().length") == len(inside)

    # back to the whole map, then a search for a row the first sample did not hold
    before = page.evaluate(f"{api}.serverAnswers()")
    page.evaluate(f"{api}.zoom(-0.01, 1, -0.03, 1.03)")
    answered(page, before)
    assert page.evaluate(f"{api}.server().in_view") == N
    missing = [i for i in m.index if i not in set(first)]
    target = records.loc[missing[0], "premise"]
    want = records.index[records.premise.str.lower().str.contains(target.lower(), regex=False)
                         | records.hypothesis.str.lower().str.contains(target.lower(), regex=False)]
    assert len(want) <= CAP
    shown = page.evaluate(f"{api}.search({target!r})")
    assert shown == len(want) and page.evaluate(f"{api}.tableRows()") == sorted(want.tolist())
    assert missing[0] in page.evaluate(f"{api}.tableRows()")

    # a region filter over all rows (and the search cleared)
    page.evaluate(f"{api}.filter({{region: ['hard-to-learn'], search: ''}})")
    hard = m.index[m.region == "hard-to-learn"]
    rows = page.evaluate(f"{api}.tableRows()")
    assert page.evaluate(f"{api}.server().matched") == len(hard) and set(rows) <= set(hard)
    # a gold-label box: the server filters it too
    before = page.evaluate(f"{api}.serverAnswers()")
    page.evaluate(f"{api}.setLabelFilter([0])")
    answered(page, before)
    both = m.index[(m.region == "hard-to-learn") & (m.gold == 0)]
    assert page.evaluate(f"{api}.server().matched") == len(both)
    assert set(page.evaluate(f"{api}.tableRows()")) <= set(both)

    # hover still shows the record of a held point
    i = page.evaluate(f"{api}.tableIndices()[0]")
    page.evaluate(f"Promise.resolve({api}.showTooltip({i}))")
    assert f"row {page.evaluate(f'{api}.rowIdAt({i})')}" in page.text_content("#dc-tooltip")


plain = shared.plain


def test_a_run_without_text_or_points_reads_the_same_served_and_written(open_page, plain, tmp_path):
    """No text: a search is ignored on both pages; rows without a point stay in the served table after a zoom."""
    from datacarto.cli import main

    api, every = "window.datacarto", list(range(shared.PLAIN_N))
    assert main(["map", str(plain["run"]), "--html", str(tmp_path / "map.html")]) == 0
    pages = {"written": open_page(tmp_path / "map.html"), "served": open_page(plain["server"].url)}
    for name, pg in pages.items():
        assert pg.evaluate(f"{api}.search('dog')") == shared.PLAIN_N, name
        assert sorted(pg.evaluate(f"{api}.tableRows()")) == every, name
        pg.evaluate(f"{api}.search('')")
    served = pages["served"]
    before = served.evaluate(f"{api}.serverAnswers()")
    served.evaluate(f"{api}.zoom(0.0, 0.05, 0.0, 0.4)")  # a corner of the map
    answered(served, before)
    rows = served.evaluate(f"{api}.tableRows()")
    assert set(range(shared.PLAIN_NAN)) <= set(rows) and len(rows) < shared.PLAIN_N
    assert f"{shared.PLAIN_NAN} of them without a point" in served.text_content("#dc-status")
