"""``datacarto serve``: the server's answers over all rows, checked against pandas, and its errors.

A tiny synthetic run (``datacarto.testing.write_toy_run``) is served on port 0 in a thread with a
small cap, so the page holds a sample and the answers must come from every row. The page itself in
Chromium is in test_serve_browser.py.
"""

from __future__ import annotations

import json
import socket
import urllib.error
import urllib.request
import warnings

import numpy as np
import pytest

from datacarto.errors import DatacartoError
from datacarto.maps.encoding import decode_response
from datacarto.testing import write_toy_run

N, CAP = 300, 40


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    from datacarto.dynamics.cache import get_metrics
    from datacarto.dynamics.store import load_examples
    from datacarto.maps.serve import serve

    run = write_toy_run(tmp_path_factory.mktemp("serve") / "run", N, epochs=4, seed=3)
    server = serve(run, port=0, cap=CAP).start()
    yield {"server": server, "run": run, "metrics": get_metrics(run), "records": load_examples(run)}
    server.stop()


def ask(server, spec) -> tuple[dict, dict, dict | None]:
    request = urllib.request.Request(server.url + "api/rows", data=json.dumps(spec).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as r:
        return decode_response(r.read())


def test_the_page_is_the_explorer_with_plotly_inside_and_the_server_flag(served):
    from datacarto.maps.interactive import decode_payload

    with urllib.request.urlopen(served["server"].url, timeout=30) as r:
        page = r.read().decode("utf-8")
    plotlyjs = page.split('id="dc-plotlyjs">', 1)[1].split("</script>", 1)[0]
    assert len(plotlyjs) > 1_000_000 and "plotly" in plotlyjs.lower()  # plotly.js travels inside the page
    meta, arrays, text = decode_payload(page)
    assert meta["server"]["n_total"] == N and meta["n"] == CAP == meta["server"]["shown"]
    assert set(arrays["row_id"]) <= set(served["metrics"].index) and len(set(arrays["row_id"])) == CAP
    assert sum(meta["server"]["density"]["counts"]) == N  # the density layer counts every row
    assert list(text) == ["premise", "hypothesis"]


def test_a_view_gets_exactly_the_points_inside_its_box(served):
    m = served["metrics"]
    box = [*m.variability.quantile([0.45, 0.6]), *m.confidence.quantile([0.2, 0.8])]  # a zoomed-in view
    inside = m[m.variability.between(*box[:2]) & m.confidence.between(*box[2:])]
    assert 0 < len(inside) <= CAP
    meta, arrays, text = ask(served["server"], {"box": box})
    assert arrays["row_id"].tolist() == inside.index.tolist()
    np.testing.assert_allclose(arrays["confidence"], inside.confidence, rtol=1e-6)
    assert text["premise"] == served["records"].loc[inside.index, "premise"].tolist()
    assert meta["server"]["in_view"] == meta["server"]["shown"] == len(inside) and meta["server"]["matched"] == N
    # a view holding more than the cap gets a sample of it, and zooming in keeps the points shown
    big_meta, big, _ = ask(served["server"], {"box": [0, 1, 0, 1]})
    assert big_meta["server"]["in_view"] == N and big_meta["n"] == CAP
    small_meta, small, _ = ask(served["server"], {"box": [0, 1, 0.5, 1]})
    shown_inside = [i for i in big["row_id"].tolist() if m.loc[i, "confidence"] >= 0.5]
    assert set(shown_inside) <= set(small["row_id"].tolist())


def test_search_runs_over_all_rows_as_pandas_does(served):
    records = served["records"]
    for query in ("dog", "The Cat", "park", "no such words"):
        q = query.lower()
        expected = records.index[records["premise"].str.lower().str.contains(q, regex=False)
                                 | records["hypothesis"].str.lower().str.contains(q, regex=False)]
        meta, arrays, _ = ask(served["server"], {"search": query})
        assert meta["server"]["matched"] == len(expected)
        if len(expected) <= CAP:
            assert arrays["row_id"].tolist() == sorted(expected.tolist())
        else:
            assert set(arrays["row_id"].tolist()) <= set(expected.tolist()) and meta["n"] == CAP


def test_filters_by_region_label_and_range_run_over_all_rows(served):
    m = served["metrics"]
    meta, arrays, _ = ask(served["server"], {"region": ["hard-to-learn"]})
    hard = m.index[m.region == "hard-to-learn"]
    assert meta["server"]["matched"] == len(hard) and set(arrays["row_id"].tolist()) <= set(hard)
    assert (arrays["region"] == 2).all()
    meta, arrays, _ = ask(served["server"], {"region": ["ambiguous"], "gold": [1], "ranges": {"confidence": [0.4, None]}})
    want = m.index[(m.region == "ambiguous") & (m.gold == 1) & (m.confidence >= 0.4)]
    assert meta["server"]["matched"] == len(want) <= CAP and arrays["row_id"].tolist() == want.tolist()


def test_a_bad_query_is_answered_with_one_line_and_the_server_goes_on(served):
    for spec, said in (({"region": ["sideways"]}, "unknown region 'sideways'"),
                       ({"ranges": {"shininess": [0, 1]}}, "no score 'shininess'"),
                       ({"box": [0, "a", 0, 1]}, "box must be"),
                       ({"ranges": [1]}, "ranges must map"), ({"ranges": {"confidence": 5}}, "ranges must map"),
                       ({"ranges": {"confidence": [{}, None]}}, "TypeError"),
                       ({"search": [[[["deep"]]]] * 3, "region": {"a": 1}}, "region")):
        with pytest.raises(urllib.error.HTTPError) as caught:
            ask(served["server"], spec)
        assert caught.value.code == 400 and said in json.loads(caught.value.read())["error"]
    assert ask(served["server"], {})[0]["n"] == CAP


def test_a_query_body_out_of_bounds_is_refused_unread_and_the_server_goes_on(served):
    import http.client
    from urllib.parse import urlsplit

    from datacarto.maps.serve import MAX_QUERY_BYTES

    where = urlsplit(served["server"].url)
    for length in ("-1", str(MAX_QUERY_BYTES + 1), "10000000000000", "many"):
        conn = http.client.HTTPConnection(where.hostname, where.port, timeout=10)
        conn.putrequest("POST", "/api/rows")
        conn.putheader("Content-Length", length)
        conn.endheaders()  # no body: a server that read it would wait, or try to hold 10 TB
        answer = conn.getresponse()
        assert answer.status == 400 and "bytes" in json.loads(answer.read())["error"], length
        conn.close()
    nested = "[" * 100_000 + "]" * 100_000  # parsing it overflows the stack: still one answer
    request = urllib.request.Request(served["server"].url + "api/rows", data=nested.encode())
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(request, timeout=30)
    assert caught.value.code == 400
    assert ask(served["server"], {})[0]["n"] == CAP


def test_the_density_counts_every_row_in_view_the_far_edges_included(served):
    run = served["server"].run
    m = served["metrics"]
    box = [float(m.variability.min()), float(m.variability.max()), float(m.confidence.min()),
           float(m.confidence.max())]  # the extreme rows lie on the box's far edges
    meta, _, _ = ask(served["server"], {"box": box})
    assert meta["server"]["in_view"] == N and sum(meta["server"]["density"]["counts"]) == N
    assert int(run.in_box(box).sum()) == N


def test_a_port_in_use_and_a_missing_run_fail_in_one_line(served, tmp_path, capsys):
    from datacarto.cli import main
    from datacarto.maps.serve import serve

    port = served["server"].httpd.server_address[1]
    with pytest.raises(DatacartoError, match=f"cannot listen on 127.0.0.1:{port}"):
        serve(served["run"], port=port)
    assert main(["serve", str(served["run"]), "--port", str(port), "--no-open"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"datacarto: error: cannot listen on 127.0.0.1:{port}")
    with pytest.raises(DatacartoError, match="not found"):
        serve(tmp_path / "nope")
    with socket.socket() as s:  # nothing was left listening by the failed starts
        s.bind(("127.0.0.1", 0))


def test_the_command_says_where_it_serves_and_stops_on_ctrl_c(served):
    import os
    import signal
    import subprocess
    import sys
    from pathlib import Path

    src = Path(__file__).resolve().parents[1] / "src"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(src), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen([sys.executable, "-m", "datacarto.cli", "serve", str(served["run"]), "--port", "0",
                             "--no-open", "--max-points", "25"], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        assert line.startswith(f"serving {served['run']} ({N} examples) at http://127.0.0.1:"), line
        url = line.split(" at ", 1)[1].split()[0]
        with urllib.request.urlopen(url + "api/info", timeout=30) as r:
            info = json.loads(r.read())
        assert info["n_total"] == N and info["cap"] == 25 and info["text_columns"] == ["premise", "hypothesis"]
    finally:
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0 and "Traceback" not in err, err


# ---------------------------------------------------------------------------------------------- fast answers
# The server codes the text once at start-up (maps/textcodes.py) and gathers each answer's rows; the page
# must receive what build_payload codes from the rows' strings, as the server did per answer before.

ODD = ["a  b", "", None, " lead", "trail ", "nul\0in", "é ü 日本", "\x1e sep", "</script>", "a b a b"]


def reference_answer(run, spec) -> tuple[dict, dict, dict | None]:
    """What the server answered before the start-up coding: build_payload of the rows' strings."""
    import pandas as pd

    from datacarto.maps.encoding import frame_payload
    from datacarto.maps.interactive import build_payload
    from datacarto.maps.serve import _emptied
    from datacarto.metrics import row_ids

    positions, info = run.rows(spec)
    take = positions if positions.size else np.arange(1)
    table = run.metrics.iloc[take]
    records = run.text.take(take).to_pandas()
    records.index = pd.Index(row_ids(table))
    meta, blob, text = build_payload(table, records, gold_probs=run.probs[take], label_names=run.names, title=run.title,
                                     review=run.review)
    meta.update(guides=run.guides, guide_kind=run.guide_kind, n_total=run.n, server=info)
    if not positions.size:
        meta, blob, text = _emptied(meta, text)
    return decode_response(frame_payload(meta, blob, text))


@pytest.fixture(scope="module")
def odd_run(tmp_path_factory):
    """A served run whose text holds missing values, empty ones, double spaces, NUL and non-ASCII words."""
    import pandas as pd

    from datacarto.dynamics.store import DynamicsWriter, dynamics_dir
    from datacarto.maps.serve import ServedRun

    n, rng = 90, np.random.default_rng(5)
    run = tmp_path_factory.mktemp("odd") / "run"
    premise = [ODD[i % len(ODD)] if i % 4 == 0 else f"w{rng.integers(0, 30)} w{rng.integers(0, 9)} {ODD[i % 3]}"
               for i in range(n)]
    hypothesis = [None if i % 7 == 0 else ODD[(i * 3) % len(ODD)] or f"h{i % 5}" for i in range(n)]
    gold, ids = rng.integers(0, 3, n), np.arange(n)
    writer = DynamicsWriter(dynamics_dir(run))
    writer.write_examples(ids, ids.astype(np.uint64), gold,
                          pd.DataFrame({"premise": premise, "hypothesis": hypothesis}, dtype=object))
    writer.update_manifest(label_names=["e", "n", "c"], num_labels=3, n_examples=n, mode="training_pass",
                           text_columns=["premise", "hypothesis"])
    for e in range(3):
        writer.write_epoch(e, ids, gold, rng.normal(0, 1, (n, 3)).astype(np.float32), epoch=float(e + 1))
    with warnings.catch_warnings():  # random logits: "the model barely learned" is expected
        warnings.simplefilter("ignore", UserWarning)
        return ServedRun(run, cap=25), premise, hypothesis


def assert_same_answer(got, want) -> None:
    assert got[0] == want[0]  # meta, the server's counts and density included
    assert list(got[1]) == list(want[1])
    for name in want[1]:
        np.testing.assert_array_equal(got[1][name], want[1][name], err_msg=name)
    assert got[2] == want[2]


@pytest.mark.parametrize("spec", [{}, {"box": [0, 1, 0.5, 1]}, {"search": "w1"}, {"search": "日本"},
                                  {"region": ["ambiguous"], "gold": [0, 2]}, {"search": "no such words"}])
def test_answers_decode_to_what_build_payload_codes_from_the_strings(odd_run, served, spec):
    run = odd_run[0]
    assert_same_answer(decode_response(run.answer(spec)), reference_answer(run, spec))
    assert_same_answer(decode_response(served["server"].run.answer(spec)), reference_answer(served["server"].run, spec))


def test_the_text_coded_once_gives_every_subset_its_own_strings(odd_run):
    from datacarto.maps.encoding import decode_text, encode_text

    run, premise, hypothesis = odd_run
    everything = np.arange(run.n)
    assert run.codes.encode(everything) == encode_text({"premise": premise, "hypothesis": hypothesis})
    rng = np.random.default_rng(1)
    for k in (0, 1, 7, 40):
        rows = np.sort(rng.choice(run.n, k, replace=False))
        assert decode_text(run.codes.encode(rows)) == {"premise": [premise[i] for i in rows],
                                                        "hypothesis": [hypothesis[i] for i in rows]}


def test_word_ids_of_every_width_round_trip():
    """The varints' fast path (every id below 2**14) and the general one decode the same ids."""
    from datacarto.maps.encoding import decode_text, text_stream

    for top in (100, 16_000, 3_000_000):
        ids = np.random.default_rng(top).integers(2, top + 2, 500).astype(np.uint32)
        ids[4::5] = 0  # every value: four words, then its end
        vocab = [f"w{k}" for k in range(top)]
        got = decode_text(text_stream(["t"], 100, ids, vocab))["t"]
        assert got == [" ".join(vocab[i - 2] for i in ids[k * 5:k * 5 + 4]) for k in range(100)]


def test_search_by_the_vocabulary_finds_what_the_values_hold(odd_run, served):
    for run, queries in ((odd_run[0], ["A", "b", "É", "日", "/scr", "<", "w1", "lead", "ab", "\x1e", "a  b"]),
                         (served["server"].run, ["dog", "DOG", "ar", "e", "zzz"])):
        for query in queries:
            expected = run.search_values(query)
            assert (run.search(query) == expected).all(), query
            if " " not in query:
                assert run.codes.search(query) is not None


# ---------------------------------------------------------------------------------------------- no text, no point
# A run recorded without text columns, where a few rows never had finite logits (their confidence and
# variability are NaN: no point on the map). The written page ignores a search when there is no text
# (page.js's searchRows) and lists the rows without a point in its table whatever the zoom; the server too.

PLAIN_N, PLAIN_NAN = 60, 3


def write_plain_run(run, n: int = PLAIN_N, nan_rows: int = PLAIN_NAN):
    """A run without text columns whose first ``nan_rows`` rows have NaN logits in every epoch."""
    from datacarto.dynamics.store import DynamicsWriter, dynamics_dir

    rng, ids = np.random.default_rng(7), np.arange(n)
    gold = rng.integers(0, 3, n)
    writer = DynamicsWriter(dynamics_dir(run))
    writer.write_examples(ids, ids.astype(np.uint64), gold)
    writer.update_manifest(label_names=["e", "n", "c"], num_labels=3, n_examples=n, mode="training_pass")
    with warnings.catch_warnings():  # "examples have NaN logits": what this run is for
        warnings.simplefilter("ignore", UserWarning)
        for e in range(4):
            logits = rng.normal(0, 1, (n, 3)).astype(np.float32)
            logits[ids, gold] += rng.uniform(0, 1.5, n).astype(np.float32) * (e + 1)
            logits[:nan_rows] = np.nan
            writer.write_epoch(e, ids, gold, logits, epoch=float(e + 1))
    return run


@pytest.fixture(scope="module")
def plain(tmp_path_factory):
    from datacarto.maps.serve import serve

    run = write_plain_run(tmp_path_factory.mktemp("plain") / "run")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        server = serve(run, port=0, cap=1000).start()
    yield {"server": server, "run": run}
    server.stop()


def test_a_run_without_text_ignores_the_search_as_the_written_page_does(plain):
    everything = ask(plain["server"], {})
    assert everything[0]["text_columns"] == [] and everything[0]["server"]["matched"] == PLAIN_N
    for query in ("dog", "no such words", "0"):
        meta, arrays, _ = ask(plain["server"], {"search": query})
        assert meta["server"]["matched"] == meta["server"]["in_view"] == PLAIN_N, query
        assert arrays["row_id"].tolist() == everything[1]["row_id"].tolist()
    meta, _, _ = ask(plain["server"], {"search": "dog", "gold": [1]})  # the filters still apply
    assert meta["server"]["matched"] == int((everything[1]["gold"] == 1).sum())


def test_rows_without_a_point_stay_in_every_view_as_in_the_written_table(plain):
    run = plain["server"].run
    assert np.isnan(run.x[:PLAIN_NAN]).all() and np.isfinite(run.x[PLAIN_NAN:]).all()
    placed = np.flatnonzero(np.isfinite(run.x))
    box = [float(np.quantile(run.x[placed], 0.3)), float(np.quantile(run.x[placed], 0.7)), 0.0, 1.0]
    inside = placed[(run.x[placed] >= box[0]) & (run.x[placed] <= box[1])]
    meta, arrays, _ = ask(plain["server"], {"box": box})
    want = sorted([*range(PLAIN_NAN), *run.metrics.index[inside].tolist()])
    assert arrays["row_id"].tolist() == want  # the zoomed view's points and the rows without one
    info = meta["server"]
    assert info["matched"] == PLAIN_N and info["in_view"] == len(want) and info["unplaced"] == PLAIN_NAN
    assert sum(info["density"]["counts"]) == len(inside)  # the density layer counts points only
    meta, arrays, _ = ask(plain["server"], {"box": box, "gold": [int(arrays["gold"][0])]})
    assert arrays["row_id"][0] == 0 and meta["server"]["unplaced"] == sum(
        int(run.gold[i] == run.gold[0]) for i in range(PLAIN_NAN))
