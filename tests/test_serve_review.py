"""``datacarto serve`` with the label-error review (issue 23): the same flags as ``datacarto map``'s page.

A store with known flipped labels and out-of-sample dynamics (test_label_errors.write_noisy_store) is
served with a cap below its size; every answer's ``suspect`` and suggested-label columns must be those
the written page holds for the same rows, and the "suspects only" filter runs over all rows. The page
in Chromium (decisions kept across views, exported, applied) is in test_review_browser.py.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from test_label_errors import write_noisy_store, write_noisy_unit_store
from test_serve import ask

CAP = 60


@pytest.fixture(scope="module")
def served_noisy(tmp_path_factory):
    from datacarto.maps.serve import serve

    run = tmp_path_factory.mktemp("served-review") / "run"
    write_noisy_store(run / "training_dynamics", dynamics="out-of-sample")
    server = serve(run, port=0, cap=CAP).start()
    yield run, server
    server.stop()


def written_page(run, html):
    from datacarto.cli import main
    from datacarto.maps.interactive import decode_payload

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        assert main(["map", str(run), "--html", str(html)]) == 0
    return decode_payload(html.read_text(encoding="utf-8"))


REVIEW = ("suspect", "suggested", "suggested_p")


def test_served_review_columns_are_the_written_pages_for_the_same_rows(served_noisy, tmp_path):
    from datacarto.dynamics.label_errors import run_label_errors

    run, server = served_noisy
    wmeta, warrays, _ = written_page(run, tmp_path / "map.html")
    assert wmeta["review"] is not None and wmeta["review"]["flagged"] >= 5
    written = {name: dict(zip(warrays["row_id"].tolist(), warrays[name].tolist())) for name in REVIEW}
    flagged = run_label_errors(run).flagged
    m = server.run.metrics
    box = [*m.variability.quantile([0.2, 0.9]), *m.confidence.quantile([0.0, 0.6])]
    for spec in ({}, {"box": box}, {"search": "the"}, {"suspects": True}, {"suspects": True, "box": box}):
        meta, arrays, _ = ask(server, spec)
        assert meta["n"] > 0, spec
        assert {k: v for k, v in meta["review"].items() if k != "shown"} == \
            {k: v for k, v in wmeta["review"].items() if k != "shown"}, spec
        assert meta["review"]["shown"] == int((arrays["suspect"] > 0).sum()), spec
        for name in REVIEW:
            assert arrays[name].tolist() == [written[name][r] for r in arrays["row_id"].tolist()], (spec, name)
    meta, arrays, _ = ask(server, {"suspects": True})  # "show the suspects only" runs over every row
    assert meta["server"]["matched"] == len(flagged) <= CAP
    assert sorted(arrays["row_id"].tolist()) == sorted(flagged["row_id"].tolist())


def test_a_run_without_an_estimate_is_served_without_a_review_as_map_writes_it(tmp_path):
    from datacarto.maps.encoding import decode_response
    from datacarto.maps.serve import ServedRun
    from test_maps import write_run

    write_run(tmp_path / "run", epochs=1)  # one epoch of in-sample dynamics: no estimate
    write_noisy_unit_store(tmp_path / "units", "token-classification")  # flags of units: not the examples'
    for run in (tmp_path / "run", tmp_path / "units"):
        wmeta, warrays, _ = written_page(run, tmp_path / "map.html")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            served = ServedRun(run)
        meta, arrays, _ = decode_response(served.answer({"suspects": True}))
        assert wmeta["review"] is None and meta["review"] is None and not set(REVIEW) & set(arrays)
        assert meta["server"]["matched"] == served.n  # the filter is ignored, as the page ignores it
        np.testing.assert_array_equal(np.sort(arrays["row_id"]), np.sort(warrays["row_id"]))


def test_an_empty_answer_holds_no_suspect(served_noisy):
    """The empty payload is built from one placeholder row (the run's first): not counted as shown."""
    import dataclasses

    import pandas as pd

    run, server = served_noisy
    review = server.run.review
    first = pd.DataFrame({"row_id": [int(server.run.metrics.index[0])], "suggested_label": [server.run.names[0]],
                          "suggested_probability": [0.9]})
    flagged = pd.concat([first, review.flagged[review.flagged["row_id"] != first["row_id"][0]]], ignore_index=True)
    server.run.review = dataclasses.replace(review, flagged=flagged)  # the placeholder row is a suspect
    try:
        meta, _, _ = ask(server, {"search": "no row holds this zqxj"})
    finally:
        server.run.review = review
    assert meta["n"] == 0 and meta["server"]["matched"] == 0
    assert meta["review"]["shown"] == 0
