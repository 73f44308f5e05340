"""Reviewing suspected labels in the explorer (issue 23), in headless Chromium with the network cut.

A store with known flipped labels (synthetic logits) is mapped by ``datacarto map``; the page's table
lists the label-error finder's flags (``suspect``, ``suggested_label``); decisions made with the
per-row menus are exported and fed to ``apply_corrections``, whose result must be what was decided.
Skipped only when /usr/bin/chromium or the playwright package is missing.
"""

from __future__ import annotations

import json

import pandas as pd
import pytest

from _browser import needs_browser
from test_label_errors import NAMES, write_noisy_store, write_noisy_unit_store

pytestmark = needs_browser


def _map(run):
    from datacarto.cli import main

    assert main(["map", str(run), "--html", str(run / "map.html")]) == 0
    return run / "map.html"


@pytest.fixture(scope="module")
def noisy_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("review") / "run"
    write_noisy_store(run / "training_dynamics", dynamics="out-of-sample")
    return run


def choose(pg, row_id, value):
    """Pick ``value`` in the decision menu of the table row of ``row_id`` (scrolled into view first)."""
    pg.evaluate(f"window.datacarto.focusRow({row_id})")
    pg.evaluate("new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")
    pg.locator(f"#dc-table .dc-tr[data-row-id='{row_id}'] select").select_option(value)


def test_decisions_made_on_the_page_are_what_apply_corrections_applies(open_page, noisy_run, tmp_path):
    from datacarto.dynamics.corrections import apply_corrections, read_corrections
    from datacarto.dynamics.label_errors import run_label_errors
    from datacarto.dynamics.store import load_examples

    flagged = run_label_errors(noisy_run).flagged.reset_index(drop=True)
    assert len(flagged) >= 5
    pg = open_page(_map(noisy_run))
    pg.set_default_timeout(10_000)
    api = "window.datacarto"
    cols = pg.evaluate(f"{api}.tableColumns()")
    assert {"suspect", "suggested_label", "decision"} <= set(cols)
    pg.evaluate(f"{api}.sort('suspect', false)")  # the most suspect first
    assert pg.evaluate(f"{api}.tableRows()")[:len(flagged)] == flagged["row_id"].tolist()
    first = dict(zip(cols, pg.evaluate(f"{api}.renderedRows()")[0]))
    assert first["suspect"] == "1"
    assert first["suggested_label"] == f"{flagged.loc[0, 'suggested_label']} ({flagged.loc[0, 'suggested_probability']:.2f})"
    assert str(len(flagged)) in pg.text_content("#dc-review-note")
    pg.check("#dc-suspects-only")
    pg.wait_for_function(f"{api}.tableRows().length === {len(flagged)}")
    pg.uncheck("#dc-suspects-only")
    pg.wait_for_function(f"{api}.tableRows().length === {pg.evaluate(f'{api}.n')}")

    examples = load_examples(noisy_run)
    ids = flagged["row_id"].tolist()
    calm = int(next(r for r in examples.index if r not in set(ids)))  # a row nobody flagged
    given = {r: int(examples.loc[r, "label"]) for r in [*ids[:5], calm]}
    suggested = flagged.set_index("row_id")["suggested_label"]
    other = {r: next(k for k in range(3) if k != given[r] and NAMES[k] != suggested.get(r)) for r in given}
    choose(pg, ids[0], "accept")
    choose(pg, ids[1], f"relabel:{other[ids[1]]}")
    choose(pg, ids[2], "drop")
    choose(pg, ids[3], "keep")
    choose(pg, ids[4], "accept")
    choose(pg, ids[4], "")  # changed their mind: no decision
    choose(pg, calm, f"relabel:{other[calm]}")
    assert pg.text_content("#dc-decided") == "5 decisions"
    with pg.expect_download() as info:
        pg.click("#dc-export-decisions")
    csv_path = tmp_path / "decided.csv"
    info.value.save_as(csv_path)
    with pg.expect_download() as info:
        pg.click("#dc-export-decisions-jsonl")
    jsonl_path = tmp_path / "decided.jsonl"
    info.value.save_as(jsonl_path)

    decided = {ids[0]: ("relabel", NAMES.index(suggested[ids[0]])), ids[1]: ("relabel", other[ids[1]]),
               ids[2]: ("drop", None), ids[3]: ("keep", given[ids[3]]), calm: ("relabel", other[calm])}
    for path in (csv_path, jsonl_path):
        assert sorted(map(int, read_corrections(path)["row_id"])) == sorted(decided)
        fixed, counts = apply_corrections(noisy_run, path)
        fixed = fixed.set_index("row_id")
        assert counts["relabel"] == 3 and counts["drop"] == 1 and counts["keep"] == 1
        assert ids[2] not in fixed.index and len(fixed) == len(examples) - 1
        for row, (decision, label) in decided.items():
            if decision == "drop":
                continue
            assert fixed.loc[row, "decision"] == decision and int(fixed.loc[row, "label"]) == label, row
            assert int(fixed.loc[row, "given_label"]) == given[row]
        untouched = fixed.drop(index=list(decided), errors="ignore")
        assert untouched["decision"].isna().all()
        pd.testing.assert_series_equal(untouched["label"], examples["label"].reindex(untouched.index), check_names=False)


def test_unit_decisions_name_their_unit_and_round_trip(open_page, tmp_path):
    from datacarto.dynamics.corrections import apply_corrections
    from datacarto.dynamics.label_errors import run_label_errors
    from datacarto.dynamics.store import load_examples
    from datacarto.testing import TOY_TAGS

    run = tmp_path / "run"
    write_noisy_unit_store(run, "token-classification")
    flagged = run_label_errors(run).flagged
    pg = open_page(_map(run))
    api = "window.datacarto"
    assert pg.evaluate(f"{api}.level()") == "example" and "suspect" not in pg.evaluate(f"{api}.tableColumns()")
    assert pg.is_hidden("#dc-review")
    pg.evaluate(f"{api}.setLevel('unit')")
    assert "suspect" in pg.evaluate(f"{api}.tableColumns()") and pg.is_visible("#dc-review")
    row, sub, new = int(flagged["row_id"].iloc[0]), int(flagged["sub_id"].iloc[0]), flagged["suggested_label"].iloc[0]
    unit = pg.evaluate(f"""(() => {{ const d = {api}; for (let i = 0; i < d.n; i++) {{
        const r = d.record(i); if (r.row_id === {row} && r.sub_id === {sub}) return i; }} return -1; }})()""")
    assert unit >= 0
    pg.evaluate(f"{api}.decide({unit}, 'accept')")
    body = pg.evaluate(f"{api}.decisionsJSONL()")
    lines = [json.loads(line) for line in body.splitlines()]
    assert [(r["row_id"], r["sub_id"], r["decision"], r["new_label"]) for r in lines] == [(row, sub, "relabel", new)]
    (tmp_path / "c.jsonl").write_text(body, encoding="utf-8")
    fixed, _ = apply_corrections(run, tmp_path / "c.jsonl")
    before = list(load_examples(run).loc[row, "label"])
    after = before.copy()
    after[sub] = TOY_TAGS.index(new)
    assert list(fixed.set_index("row_id").loc[row, "label"]) == after


def test_a_run_without_an_estimate_has_no_review(open_page, tmp_path):
    from test_maps import write_run

    write_run(tmp_path / "run", epochs=1)  # one epoch of in-sample dynamics: no estimate
    pg = open_page(_map(tmp_path / "run"))
    assert not {"suspect", "suggested_label", "decision"} & set(pg.evaluate("window.datacarto.tableColumns()"))
    assert pg.is_hidden("#dc-review") and "suspect" not in pg.evaluate("window.datacarto.record(0)")


# ---------------------------------------------------------------------------------------------- served
# `datacarto serve` gives the same review (the flags of the same estimate, maps.run_maps.page_review); its
# page holds only the rows of the view, so decisions are kept by row: a decided row that leaves the view
# keeps its decision, shows it again when it comes back, and is exported with every other decided row.


@pytest.fixture
def served_noisy(noisy_run):
    from datacarto.maps.serve import serve

    server = serve(noisy_run, port=0, cap=60).start()  # 150 rows: the page holds at most 60 at once
    yield server
    server.stop()


def answer(pg, action: str):
    """Run ``action`` on the page and wait for the server's answer it asks for."""
    before = pg.evaluate("window.datacarto.serverAnswers()")
    pg.evaluate(action)
    pg.wait_for_function(f"window.datacarto.serverAnswers() > {before}", timeout=30_000)


def test_served_decisions_outlive_the_view_and_all_are_exported(open_page, noisy_run, served_noisy, tmp_path):
    from datacarto.dynamics.cache import get_metrics
    from datacarto.dynamics.corrections import apply_corrections
    from datacarto.dynamics.label_errors import run_label_errors
    from datacarto.dynamics.store import load_examples

    flagged = run_label_errors(noisy_run).flagged.reset_index(drop=True)
    m, examples, api = get_metrics(noisy_run), load_examples(noisy_run), "window.datacarto"
    ids = [int(r) for r in flagged["row_id"][:4]]
    pg = open_page(served_noisy.url)
    pg.set_default_timeout(10_000)
    assert {"suspect", "suggested_label", "decision"} <= set(pg.evaluate(f"{api}.tableColumns()"))
    answer(pg, "document.getElementById('dc-suspects-only').click()")  # the server lists every suspect
    assert sorted(pg.evaluate(f"{api}.tableRows()")) == sorted(flagged["row_id"].tolist())
    given = {r: int(examples.loc[r, "label"]) for r in m.index}
    suggested = flagged.set_index("row_id")["suggested_label"]
    other = {r: next(k for k in range(3) if k != given[r] and NAMES[k] != suggested.get(r)) for r in m.index}
    for row, value in zip(ids, ["accept", f"relabel:{other[ids[1]]}", "drop", "keep"]):
        choose(pg, row, value)
    assert pg.text_content("#dc-decided") == "4 decisions"

    # zoom onto a row nobody flagged, away from the decided ones: they leave the page; decide it there
    answer(pg, "document.getElementById('dc-suspects-only').click()")
    far = m.drop(index=flagged["row_id"])
    calm = int((far.variability - m.loc[ids, "variability"].mean()).abs().idxmax())
    x, y, eps = m.loc[calm, "variability"], m.loc[calm, "confidence"], 1e-4
    answer(pg, f"{api}.zoom({x - eps}, {x + eps}, {y - eps}, {y + eps})")
    held = pg.evaluate(f"{api}.tableRows()")
    assert calm in held and not set(ids) & set(held)
    choose(pg, calm, f"relabel:{other[calm]}")
    answer(pg, f"{api}.search('no such words')")  # nothing matches: the page holds no row at all
    assert pg.evaluate(f"{api}.n") == 0 and pg.text_content("#dc-decided") == "5 decisions"
    assert len(pg.evaluate(f"{api}.decisions()")) == 5

    # back to every suspect: each decided row shows its decision again
    answer(pg, f"{api}.filter({{search: '', suspects: true}})")
    answer(pg, f"{api}.zoom(-0.05, 1, -0.05, 1.05)")
    for row, value in zip(ids, ["accept", f"relabel:{other[ids[1]]}", "drop", "keep"]):
        pg.evaluate(f"{api}.focusRow({row})")
        pg.evaluate("new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")
        assert pg.locator(f"#dc-table .dc-tr[data-row-id='{row}'] select").input_value() == value, row

    paths = {}
    for button, name in (("#dc-export-decisions", "decided.csv"), ("#dc-export-decisions-jsonl", "decided.jsonl")):
        with pg.expect_download() as info:
            pg.click(button)
        paths[name] = tmp_path / name
        info.value.save_as(paths[name])
    decided = {ids[0]: ("relabel", NAMES.index(suggested[ids[0]])), ids[1]: ("relabel", other[ids[1]]),
               ids[2]: ("drop", None), ids[3]: ("keep", given[ids[3]]), calm: ("relabel", other[calm])}
    for path in paths.values():
        fixed, counts = apply_corrections(noisy_run, path)
        fixed = fixed.set_index("row_id")
        assert (counts["relabel"], counts["drop"], counts["keep"]) == (3, 1, 1) and ids[2] not in fixed.index
        for row, (decision, label) in decided.items():
            if decision != "drop":
                assert fixed.loc[row, "decision"] == decision and int(fixed.loc[row, "label"]) == label, row
                assert int(fixed.loc[row, "given_label"]) == given[row]
        assert fixed.drop(index=list(decided), errors="ignore")["decision"].isna().all()
