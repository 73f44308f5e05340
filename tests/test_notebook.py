"""datacarto in Jupyter: examples/notebook.ipynb executed with nbclient, ``show`` and the figures inline.

Skipped only when nbclient, nbformat or ipykernel is missing (the test extra installs them).
"""

from __future__ import annotations

import base64
import html
import os
import re
from pathlib import Path

import pytest

from datacarto.errors import DatacartoError

REPO = Path(__file__).resolve().parents[1]
NOTEBOOK = REPO / "examples" / "notebook.ipynb"
SRC = REPO / "src"


def _srcdoc(fragment: str) -> str:
    found = re.search(r'<iframe [^>]*srcdoc="([^"]*)"', fragment)
    assert found, fragment[:300]
    return html.unescape(found.group(1))


@pytest.fixture(scope="module")
def executed(tmp_path_factory):
    """The example notebook run top to bottom in a fresh kernel, plus one cell that lists heavy imports."""
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell(
        "import sys\nprint('heavy:', sorted(m for m in ('torch', 'transformers') if m in sys.modules))"))
    folder = tmp_path_factory.mktemp("notebook")
    with pytest.MonkeyPatch.context() as patch:  # the kernel imports this checkout's datacarto
        patch.setenv("PYTHONPATH", os.pathsep.join(p for p in (str(SRC), os.environ.get("PYTHONPATH")) if p))
        nbclient.NotebookClient(nb, timeout=300, kernel_name="python3", allow_errors=True,
                                resources={"metadata": {"path": str(folder)}}).execute()
    return nb, folder


def _outputs(nb, kind: str) -> list[dict]:
    return [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if kind in o.get("data", {})]


def test_no_cell_errors(executed):
    nb, _ = executed
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert errors == [], "\n".join(f"{e['ename']}: {e['evalue']}" for e in errors)
    assert all(c.execution_count for c in nb.cells if c.cell_type == "code")


def test_show_renders_the_explorer_page_sampled_and_said_so(executed):
    from datacarto.maps.encoding import decode_payload

    nb, folder = executed
    pages = _outputs(nb, "text/html")
    assert len(pages) == 1
    page = _srcdoc(pages[0]["data"]["text/html"])
    meta, arrays, texts = decode_payload(page)  # the page's own payload, as `datacarto map` writes it
    assert meta["n"] == 200 and len(arrays["row_id"]) == 200
    assert "random sample of 200 of 300" in meta["title"]
    assert texts is not None and {"premise", "hypothesis"} <= set(texts)
    assert "<script" in page and "dc-plotlyjs" in page  # offline: plotly.js travels inside
    assert (folder / "toy-run" / "training_dynamics").is_dir()


def test_plot_data_map_shows_as_a_figure(executed):
    nb, _ = executed
    images = _outputs(nb, "image/png")
    assert len(images) == 1
    png = base64.b64decode(images[0]["data"]["image/png"])
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")
    assert width >= 600 and height >= 400


def test_show_and_plot_import_no_torch_in_the_kernel(executed):
    nb, _ = executed
    said = "".join(o.get("text", "") for o in nb.cells[-1].outputs if o.output_type == "stream")
    assert "heavy: []" in said


def test_show_of_a_metrics_table(tmp_path):
    import datacarto
    from datacarto.maps.encoding import decode_payload
    from datacarto.testing import write_toy_run

    run = write_toy_run(tmp_path / "run", n=90)
    metrics = datacarto.get_metrics(run)
    shown = datacarto.show(metrics, max_points=40, title="mine", height=500)
    meta, _, texts = decode_payload(_srcdoc(shown._repr_html_()))
    assert (meta["n"], meta["n_total"], meta["title"]) == (40, 90, "mine, random sample of 40 of 90")
    assert texts is None and "height: 500px" in shown._repr_html_()
    whole = datacarto.show(metrics, max_points=None)
    assert (whole.points, whole.total, whole.title) == (90, 90, "Data map")
    assert decode_payload(whole.save(tmp_path / "page.html").read_text(encoding="utf-8"))[0]["n"] == 90


@pytest.mark.parametrize("call, message", [
    (lambda d, m: d.show(m, height=50), "height must be"),
    (lambda d, m: d.show(m, max_points=0), "max_points must be"),
    (lambda d, m: d.show(m, level="unit"), "level is for a run folder"),
    (lambda d, m: d.show([1, 2]), "run folder or a metrics DataFrame"),
    (lambda d, m: d.show("no/such/run"), "run directory no/such/run not found"),
])
def test_show_refuses_bad_input_in_one_line(call, message, tmp_path):
    import datacarto
    from datacarto.testing import write_toy_run

    metrics = datacarto.get_metrics(write_toy_run(tmp_path / "run", n=30))
    with pytest.raises(DatacartoError) as caught:
        call(datacarto, metrics)
    assert message in str(caught.value) and "\n" not in str(caught.value)


@pytest.mark.browser
def test_the_inline_explorer_works_inside_its_frame(open_page, tmp_path):
    """The iframe of ``show`` in a notebook-like page: the explorer loads, draws and fills its table."""
    import datacarto
    from datacarto.testing import write_toy_run

    shown = datacarto.show(write_toy_run(tmp_path / "run", n=150), max_points=100)
    outer = tmp_path / "notebook.html"
    outer.write_text(f"<!doctype html><html><body><div style='width: 900px'>{shown._repr_html_()}</div></body></html>",
                     encoding="utf-8")
    page = open_page(outer, viewport=(1000, 900), ready=False)  # the explorer is in the frame: waited for below
    frame = page.frame_locator("iframe.datacarto-map")
    inner = page.frames[1]
    inner.wait_for_function("window.datacartoReady === true || !!window.datacartoError", timeout=30_000)
    assert inner.evaluate("window.datacartoError || null") is None
    assert frame.locator(".dc-tr").count() > 0  # the table's rows
    box = page.locator("iframe.datacarto-map").bounding_box()
    assert box["height"] == pytest.approx(760, abs=4) and box["width"] <= 900
