"""One subset format everywhere: rows exported from the explorer page go straight back into
``datacarto focus``, with the columns ``datacarto select`` writes; a causal-LM page (no classes)
shows no label columns. Real runs, real pages in headless Chromium, network cut.

Skipped only when /usr/bin/chromium or the playwright package is missing.
"""

from __future__ import annotations

import json

import pytest

from _browser import needs_browser
from conftest import write_jsonl

pytestmark = needs_browser

FAST = ["--per_device_train_batch_size", "8", "--learning_rate", "5e-3", "--use_cpu", "--report_to", "none",
        "--save_strategy", "no", "--logging_strategy", "no", "--disable_tqdm", "true"]


def _lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


@pytest.fixture(scope="module")
def nli_run(tmp_path_factory, tiny_model, toy_jsonl):
    from datacarto.cli import main

    root = tmp_path_factory.mktemp("roundtrip")
    run = root / "run"
    assert main(["train", "--model", tiny_model, "--dataset", str(toy_jsonl), "--text-columns", "premise,hypothesis",
                 "--output-dir", str(run), "--num_train_epochs", "3", *FAST]) == 0
    assert main(["map", str(run), "--html", str(root / "map.html")]) == 0
    return root


def test_rows_exported_from_the_page_train_a_focused_model(open_page, nli_run, capsys):
    from datacarto.cli import main
    from datacarto.dynamics.store import load_examples

    pg = open_page(nli_run / "map.html")
    pg.evaluate("window.datacarto.filter({region: ['ambiguous']})")
    exported = _lines(pg.evaluate("window.datacarto.tableJSONL()"))
    pg.evaluate("window.datacarto.select([0, 1, 2, 3, 4])")
    selection = _lines(pg.evaluate("window.datacarto.selectionJSONL()"))
    assert exported and len(selection) == 5
    # the columns `datacarto select` writes, with the same values, are in every export of the page
    assert main(["select", str(nli_run / "run"), "--region", "ambiguous", "--out", str(nli_run / "sel.jsonl")]) == 0
    selected = {r["row_id"]: r for r in map(json.loads, open(nli_run / "sel.jsonl"))}
    assert sorted(selected) == sorted(r["row_id"] for r in exported)
    for row in exported:
        assert {k: row[k] for k in selected[row["row_id"]]} == selected[row["row_id"]]
    for row in selection:
        assert set(next(iter(selected.values()))) <= set(row)
    # ... so the page's export is a subset `focus` takes as it is
    write_jsonl(nli_run / "export.jsonl", exported)
    capsys.readouterr()
    assert main(["focus", str(nli_run / "run"), "--subset", str(nli_run / "export.jsonl"),
                 "--output-dir", str(nli_run / "focused"), "--num_train_epochs", "1", *FAST]) == 0, \
        capsys.readouterr().err
    examples = load_examples(nli_run / "focused")
    assert examples["baseline_row_id"].tolist() == [r["row_id"] for r in exported]
    assert examples["label"].tolist() == [r["label"] for r in exported]


@pytest.fixture(scope="module")
def sft_run(tmp_path_factory):
    from datacarto.cli import main
    from datacarto.testing import make_tiny_causal_lm_dir, toy_instruction_words, toy_instructions

    root = tmp_path_factory.mktemp("sft")
    rows = [{"prompt": r["prompt"], "response": r["response"]} for r in toy_instructions(40, corrupt=0.15)]
    write_jsonl(root / "sft.jsonl", rows)
    model = make_tiny_causal_lm_dir(root / "model", toy_instruction_words())
    assert main(["train", "--model", model, "--dataset", str(root / "sft.jsonl"), "--task", "causal-lm",
                 "--prompt-column", "prompt", "--response-column", "response", "--max-length", "64",
                 "--output-dir", str(root / "run"), "--num_train_epochs", "3", *FAST]) == 0
    assert main(["map", str(root / "run"), "--html", str(root / "map.html")]) == 0
    return root


def test_a_causal_lm_page_has_no_label_columns(open_page, sft_run):
    pg = open_page(sft_run / "map.html")
    columns = pg.evaluate("window.datacarto.tableColumns()")
    record = pg.evaluate("window.datacarto.record(0)")
    exported = _lines(pg.evaluate("window.datacarto.tableJSONL()"))
    tip = pg.evaluate("window.datacarto.focusRow(0)")
    label_mode_off = pg.evaluate("document.querySelector('#dc-color-by [data-mode=label]').disabled")
    assert columns[:3] == ["row_id", "prompt", "response"]
    for name in ("gold_label", "last_pred_label", "label"):
        assert name not in columns and name not in record and name not in exported[0]
    assert "response" in tip and "other" not in tip.split("response", 1)[1].split()
    assert label_mode_off
