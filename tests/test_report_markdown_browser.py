"""report.md rendered by a CommonMark renderer (markdown-it-py) and opened in Chromium: hostile text stays text."""

from __future__ import annotations

import os

import pytest

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu"]
pytestmark = pytest.mark.browser
sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")
markdown_it = pytest.importorskip("markdown_it")
if not os.path.exists(CHROMIUM):
    pytest.skip(f"no Chromium at {CHROMIUM}", allow_module_level=True)

HOSTILE = ['<script>window.__xss=1</script>', '<img src=x onerror="window.__xss=2">',
           '[click](javascript:window.__xss=3)', '<a href="javascript:window.__xss=4">x</a>', '**bold** & `code`']


def test_hostile_title_records_and_class_names_render_as_text(tmp_path):
    from datacarto.pipeline.document import Document

    doc = Document()
    doc.h(1, HOSTILE[0] + " report")
    doc.p("Labels: " + ", ".join(HOSTILE))
    doc.table(["region", HOSTILE[1]], [[h, HOSTILE[-1]] for h in HOSTILE])
    html = markdown_it.MarkdownIt("commonmark").render(doc.markdown())
    page_file = tmp_path / "report.html"
    page_file.write_text(f"<!doctype html><html><body>{html}</body></html>", encoding="utf-8")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page()
        outside = []
        page.on("request", lambda r: None if r.url.startswith("file:") else outside.append(r.url))
        page.goto(page_file.as_uri())
        for link in page.query_selector_all("a"):
            link.click()
        text = page.inner_text("body")
        xss = page.evaluate("window.__xss || null")
        counts = page.evaluate("[document.scripts.length, document.images.length, document.links.length]")
        browser.close()
    assert xss is None and counts == [0, 0, 0] and outside == []
    for hostile in HOSTILE[:4]:
        assert hostile in text  # shown literally, not interpreted
