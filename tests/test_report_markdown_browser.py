"""report.md rendered by a CommonMark renderer (markdown-it-py) and opened in Chromium: hostile text stays text."""

from __future__ import annotations

import pytest

from _browser import needs_browser

pytestmark = needs_browser
markdown_it = pytest.importorskip("markdown_it")

HOSTILE = ['<script>window.__xss=1</script>', '<img src=x onerror="window.__xss=2">',
           '[click](javascript:window.__xss=3)', '<a href="javascript:window.__xss=4">x</a>', '**bold** & `code`']


def test_hostile_title_records_and_class_names_render_as_text(open_page, tmp_path):
    from datacarto.pipeline.document import Document

    doc = Document()
    doc.h(1, HOSTILE[0] + " report")
    doc.p("Labels: " + ", ".join(HOSTILE))
    doc.table(["region", HOSTILE[1]], [[h, HOSTILE[-1]] for h in HOSTILE])
    html = markdown_it.MarkdownIt("commonmark").render(doc.markdown())
    page_file = tmp_path / "report.html"
    page_file.write_text(f"<!doctype html><html><body>{html}</body></html>", encoding="utf-8")
    page = open_page(page_file, ready=False)
    for link in page.query_selector_all("a"):
        link.click()
    text = page.inner_text("body")
    xss = page.evaluate("window.__xss || null")
    counts = page.evaluate("[document.scripts.length, document.images.length, document.links.length]")
    assert xss is None and counts == [0, 0, 0]
    for hostile in HOSTILE[:4]:
        assert hostile in text  # shown literally, not interpreted


# ----------------------------------------------------------------------------------------------
# a real run's report: the raw configuration folded (issue 26)

from test_pipeline import data_files, make_config  # noqa: E402,F401  (the module's fixture and config)

HEIGHT = "document.documentElement.scrollHeight"


@pytest.fixture(scope="module")
def report(data_files, tmp_path_factory):  # noqa: F811
    from datacarto.pipeline import run_pipeline

    out = tmp_path_factory.mktemp("report") / "run"
    run_pipeline(make_config(data_files, out, recipes=[{"name": "hard", "region": "hard-to-learn", "fraction": 0.2}],
                             control=False), quiet=True)
    return out


def test_the_report_folds_its_configuration(open_page, report):
    import json

    config = json.loads((report / "config.json").read_text())
    md = (report / "report.md").read_text()
    assert "<details>" in md and "</details>" in md and '"output_dir"' in md  # folded there too, still whole
    page = open_page(report / "report.html", viewport=(1280, 900), ready=False)
    folded = page.evaluate(HEIGHT)
    names = page.evaluate("Array.from(document.querySelectorAll('details > summary')).map(s => s.textContent)")
    shown = page.inner_text("body")
    page.evaluate("document.querySelectorAll('details').forEach(d => { d.open = true; })")
    unfolded = page.evaluate(HEIGHT)
    config_px = page.evaluate("document.querySelector('details pre').getBoundingClientRect().height")
    opened = page.inner_text("body")
    assert any("configuration" in n.lower() for n in names), names
    assert json.dumps(config["output_dir"]) not in shown and json.dumps(config["output_dir"]) in opened
    # folded, the page is shorter by the whole configuration (over a thousand pixels of JSON), results kept
    assert config_px > 1000 and unfolded - folded >= config_px, (folded, unfolded, config_px)
    assert "Accuracy" in shown and "Regions" in shown
