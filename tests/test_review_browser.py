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
