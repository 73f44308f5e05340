"""Data maps: the static figure, the interactive HTML page (payload, escaping, errors) and ``datacarto map``."""

from __future__ import annotations

import base64
import gzip
import html
import json
import re

import numpy as np
import pandas as pd
import pytest

from datacarto.errors import DatacartoError
from datacarto.maps import REGIONS, correctness_levels, region_guides
from datacarto.maps.interactive import (
    decode_payload,
    decode_text,
    encode_text,
    gold_probabilities,
    interactive_map,
)
from datacarto.maps.static import plot_data_map, save_figure
from datacarto.metrics import assign_regions, compute_metrics

LABELS = ["entailment", "neutral", "contradiction"]


def make_dynamics(n=200, epochs=5, classes=3, seed=0):
    rng = np.random.default_rng(seed)
    ids = np.arange(n, dtype=np.int64) * 3 + 5
    gold = rng.integers(0, classes, n)
    logits = rng.normal(0, 1, (n, epochs, classes)).astype(np.float32)
    logits[np.arange(n), :, gold] += (rng.normal(1, 2, n)[:, None] + np.linspace(0, 2, epochs)).astype(np.float32)
    return ids, gold, logits


def make_metrics(n=200, epochs=5, seed=0, regions=True):
    ids, gold, logits = make_dynamics(n, epochs, seed=seed)
    metrics = compute_metrics((ids, gold, logits))
    if regions:
        metrics["region"] = assign_regions(metrics)
    return metrics, gold_probabilities(logits, gold)


def make_records(metrics):
    n = len(metrics)
    return pd.DataFrame({
        "premise": [f"a man number {i} is playing in the park" for i in range(n)],
        "hypothesis": [f"someone plays {i}" for i in range(n)],
        "label": metrics["gold"].to_numpy(),
        "fingerprint": np.arange(n, dtype=np.uint64),
    }, index=metrics.index)


@pytest.fixture(scope="module")
def data():
    metrics, probs = make_metrics()
    return metrics, probs, make_records(metrics)


# ----------------------------------------------------------------------------------------------
# static figure


def scatter_of(fig):
    ax = fig.axes[0]
    (points,) = [c for c in ax.collections if c.get_offsets().shape[0] > 0 and c.get_array() is not None]
    return ax, points


def test_static_axes_points_and_histograms(data):
    metrics, _, _ = data
    fig = plot_data_map(metrics, label_names=LABELS)
    ax, points = scatter_of(fig)
    assert ax.get_xlabel() == "variability" and ax.get_ylabel() == "confidence"
    xy = points.get_offsets()
    assert xy.shape == (len(metrics), 2)
    expected = np.column_stack([metrics["variability"], metrics["confidence"]])
    np.testing.assert_allclose(np.sort(xy, axis=0), np.sort(expected, axis=0))
    assert points.get_rasterized()  # keeps PDF/SVG small at 550k points
    texts = {t.get_text() for t in ax.texts}
    assert set(REGIONS) <= texts
    side = fig.axes[1:4]
    assert [a.get_xlabel() for a in side] == ["confidence", "variability", "correctness"]
    bars = side[2].patches
    assert len(bars) == 6 and sum(b.get_height() for b in bars) == len(metrics)


@pytest.mark.parametrize("color_by", ["correctness", "label", "region"])
def test_static_hue_modes(data, color_by):
    metrics, _, _ = data
    fig = plot_data_map(metrics, color_by=color_by, label_names=LABELS)
    ax, points = scatter_of(fig)
    if color_by == "correctness":
        codes, _ = correctness_levels(metrics)
        names = [f"{k}/5" for k in range(6)]
    elif color_by == "label":
        codes, names = metrics["gold"].to_numpy(), LABELS
    else:
        codes = pd.Categorical(metrics["region"], categories=REGIONS).codes
        names = list(REGIONS)
    # each drawn point carries the code of its row: compare (x, y, code) triples as sets
    drawn = {(round(float(x), 6), round(float(y), 6), int(c)) for (x, y), c in zip(points.get_offsets(), points.get_array())}
    want = {(round(float(v), 6), round(float(c), 6), int(k))
            for v, c, k in zip(metrics["variability"], metrics["confidence"], codes)}
    assert drawn == want
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend == [names[k] for k in sorted(set(codes.tolist()))]


def test_static_max_points_is_seeded(data):
    metrics, _, _ = data
    a = scatter_of(plot_data_map(metrics, max_points=50, seed=1))[1].get_offsets()
    b = scatter_of(plot_data_map(metrics, max_points=50, seed=1))[1].get_offsets()
    c = scatter_of(plot_data_map(metrics, max_points=50, seed=2))[1].get_offsets()
    assert a.shape == (50, 2)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(np.sort(a, axis=0), np.sort(c, axis=0))


@pytest.mark.parametrize("suffix,magic", [(".png", b"\x89PNG"), (".pdf", b"%PDF"), (".svg", b"<?xml")])
def test_save_figure_formats(data, tmp_path, suffix, magic):
    metrics, _, _ = data
    fig = plot_data_map(metrics)
    path = save_figure(fig, tmp_path / f"map{suffix}")
    assert path.read_bytes()[:len(magic)] == magic
    assert [p.name for p in tmp_path.iterdir()] == [f"map{suffix}"]  # no temporary file left
    if suffix == ".svg":
        assert b"<image" in path.read_bytes()  # the points are one raster image, not 200 paths


def test_save_figure_rejects_other_formats(data, tmp_path):
    fig = plot_data_map(data[0])
    with pytest.raises(DatacartoError, match="unsupported figure format"):
        save_figure(fig, tmp_path / "map.jpg")


def test_static_errors(data):
    metrics, _, _ = data
    with pytest.raises(DatacartoError, match=r"\['variability'\]"):
        plot_data_map(metrics.drop(columns=["variability"]))
    with pytest.raises(DatacartoError, match="region"):
        plot_data_map(metrics.drop(columns=["region"]), color_by="region")
    with pytest.raises(DatacartoError, match="empty"):
        plot_data_map(metrics.iloc[:0])
    with pytest.raises(DatacartoError, match="color_by"):
        plot_data_map(metrics, color_by="loss")
    with pytest.raises(DatacartoError, match="label names"):
        plot_data_map(metrics, color_by="label", label_names=["only one"])


# ----------------------------------------------------------------------------------------------
# interactive page: self-contained, data round trip, escaping


def test_page_is_self_contained(data):
    metrics, probs, records = data
    page = interactive_map(metrics, records, gold_probs=probs, label_names=LABELS)
    from plotly.offline import get_plotlyjs

    assert get_plotlyjs() in page  # plotly.js itself is embedded, whole
    ours = page.replace(get_plotlyjs(), "")  # (its own strings hold links, e.g. to plotly.com)
    tags = re.findall(r"<(?:script|link|img|iframe|object|embed)\b[^>]*>", ours, flags=re.I)
    assert tags and all("src=" not in t and "href=" not in t for t in tags)
    assert not re.search(r"https?://", ours.replace("http://www.w3.org/2000/svg", ""))
    assert "@import" not in ours
    # the one fetch: a page from `datacarto serve` (meta.server) asks its own server, by a relative address
    assert re.findall(r"fetch\(([^,)]*)", ours) == ["'api/rows'"]
    assert "scattergl" in ours and "DecompressionStream('gzip')" in ours


def test_payload_round_trip(data, tmp_path):
    metrics, probs, records = data
    path = tmp_path / "map.html"
    page = interactive_map(metrics, records, gold_probs=probs, label_names=LABELS, path=path, title="t")
    assert path.read_text(encoding="utf-8") == page
    meta, arrays, text = decode_payload(page)
    assert meta["n"] == meta["n_total"] == len(metrics)
    assert meta["label_names"] == LABELS and meta["n_epochs"] == 5 and meta["prob_epochs"] == 5
    np.testing.assert_array_equal(arrays["row_id"], metrics.index.to_numpy())
    for col in ("confidence", "variability", "correctness"):
        np.testing.assert_array_equal(arrays[col], metrics[col].to_numpy(dtype=np.float32))
    np.testing.assert_array_equal(arrays["gold"], metrics["gold"])
    np.testing.assert_array_equal(arrays["last_pred"], metrics["last_pred"])
    np.testing.assert_array_equal(arrays["level"], correctness_levels(metrics)[0])
    np.testing.assert_array_equal(arrays["region"], pd.Categorical(metrics["region"], categories=REGIONS).codes)
    np.testing.assert_array_equal(arrays["gold_probs"], np.round(probs * 100).astype(np.uint8))
    assert text == {"premise": records["premise"].tolist(), "hypothesis": records["hypothesis"].tolist()}


def test_records_are_aligned_by_row_id(data):
    metrics, _, records = data
    shuffled = records.sample(frac=1.0, random_state=0).drop(index=metrics.index[:3])
    shuffled.loc[10**9] = ["extra row", "not in the metrics", 0, 0]
    _, arrays, text = decode_payload(interactive_map(metrics, shuffled))
    assert text["premise"][:3] == [None, None, None]
    assert text["premise"][3:] == records["premise"].tolist()[3:]
    assert "gold_probs" not in arrays


def test_without_records_the_map_still_works(data):
    metrics, probs, _ = data
    page = interactive_map(metrics, None, gold_probs=probs)
    meta, arrays, text = decode_payload(page)
    assert text is None and meta["text_columns"] == []
    assert meta["label_names"] == ["0", "1", "2"]
    assert len(arrays["row_id"]) == len(metrics)


def test_record_markup_cannot_end_the_script_element(data):
    metrics, _, records = data
    records = records.copy()
    evil = ['</script><script>window.__xss=2</script>', '<!-- <script>', '<img src=x onerror="window.__xss=1">',
            "</SCRIPT >&amp;\u2028"]
    records.iloc[:4, 0] = evil
    title = "</title><script>alert(1)</script>"
    names = ["</script>", "<b>neutral</b>", "con&tra"]
    page = interactive_map(metrics, records, label_names=names, title=title)
    # the only script elements are the page's own nine (meta, numbers, text of each of two levels, plotly.js, two scripts)
    assert len(re.findall(r"<script\b", page, flags=re.I)) == 9
    assert len(re.findall(r"</script", page, flags=re.I)) == 9
    assert "window.__xss" not in page  # record text travels compressed, never as markup
    assert page.split("<title>")[1].split("</title>")[0] == html.escape(title)
    meta, _, text = decode_payload(page)
    assert text["premise"][:4] == evil
    assert meta["label_names"] == names and meta["title"] == title


def test_max_points_keeps_a_consistent_subset(data):
    metrics, probs, records = data
    meta, arrays, text = decode_payload(interactive_map(metrics, records, gold_probs=probs, max_points=40, seed=3))
    assert meta["n"] == 40 and meta["n_total"] == len(metrics)
    pos = metrics.index.get_indexer(arrays["row_id"])
    assert (pos >= 0).all() and (np.diff(pos) > 0).all()
    np.testing.assert_array_equal(arrays["gold_probs"], np.round(probs[pos] * 100).astype(np.uint8))
    assert text["premise"] == records["premise"].iloc[pos].tolist()


def test_interactive_errors(data):
    metrics, probs, records = data
    with pytest.raises(DatacartoError, match=r"\['confidence', 'gold'\]"):
        interactive_map(metrics.drop(columns=["confidence", "gold"]))
    with pytest.raises(DatacartoError, match="empty"):
        interactive_map(metrics.iloc[:0])
    with pytest.raises(DatacartoError, match="gold_probs"):
        interactive_map(metrics, gold_probs=probs[:-1])
    with pytest.raises(DatacartoError, match="region"):
        interactive_map(metrics.drop(columns=["region"]), color_by="region")
    with pytest.raises(DatacartoError, match="color_by"):
        interactive_map(metrics, color_by="forgetfulness")
    with pytest.raises(DatacartoError, match="DataFrame"):
        interactive_map(metrics, records=["not", "a", "frame"])
    with pytest.raises(DatacartoError, match="share no row id"):
        interactive_map(metrics, records=records.reset_index(drop=True).set_axis([f"r{i}" for i in range(len(records))]))
    with pytest.raises(DatacartoError, match="DataFrame"):
        interactive_map(metrics.to_dict())


@pytest.mark.parametrize("values", [
    ["a b", "", None, "  two  spaces ", "tab\there\nnewline", "ünïcödé 漢字 😀", "a b"],
    ["nul\0inside", "sep\x1einside", None, ""],  # the slow path
    [None, None],
])
def test_text_coding_round_trip(values):
    columns = {"x": values, "y": list(reversed(values))}
    assert decode_text(encode_text(columns)) == columns


def test_frequent_words_take_one_byte():
    words = ["the"] * 1000 + [f"w{i}" for i in range(300)]
    data = encode_text({"t": [" ".join(words)]})
    header = json.loads(data[4:4 + int.from_bytes(data[:4], "little")])
    assert header["vocab"][0] == "the"
    assert header["n_first"] == len(words) + 1  # one first byte per word and the end mark
    assert header["n_rest"] < 300  # only words past the 126 most frequent need a second byte


def test_gold_probabilities_is_softmax_at_gold():
    ids, gold, logits = make_dynamics(30, 4)
    p = np.exp(logits.astype(np.float64))
    p /= p.sum(axis=2, keepdims=True)
    expected = p[np.arange(30), :, gold]
    np.testing.assert_allclose(gold_probabilities(logits, gold, chunk=7), expected, rtol=1e-5)


def test_region_guides_follow_the_region_rule(data):
    metrics, _, _ = data
    guides, kind = region_guides(metrics)
    assert kind.startswith("region boundaries")
    (v,), (c,) = [g.value for g in guides if g.axis == "x"], [g.value for g in guides if g.axis == "y"]
    var, conf, region = metrics["variability"], metrics["confidence"], metrics["region"].astype(object)
    assert (var[region == "ambiguous"] > v).all() and (var[region != "ambiguous"] <= v).all()
    assert (conf[region == "hard-to-learn"] <= c).all() and (conf[region == "easy-to-learn"] > c).all()
    stored = metrics.copy()
    stored.attrs.update(variability_threshold=0.2, confidence_threshold=0.5)
    guides, kind = region_guides(stored)
    assert kind == "region thresholds" and sorted(g.value for g in guides) == [0.2, 0.5]
    assert region_guides(metrics.drop(columns=["region"]))[1] == "quantile guides"


# ----------------------------------------------------------------------------------------------
# CLI


def write_run(folder, n=120, epochs=4, examples=True):
    from datacarto.dynamics.store import DynamicsWriter, dynamics_dir, example_fingerprints

    ids, gold, logits = make_dynamics(n, epochs, seed=4)
    writer = DynamicsWriter(dynamics_dir(folder))
    writer.update_manifest(label_names=LABELS)
    if examples:
        texts = pd.DataFrame({"sentence": [f"sentence {i} <b>x</b>" for i in range(n)]})
        writer.write_examples(ids, example_fingerprints(texts), gold, texts)
    for t in range(epochs):
        writer.write_epoch(t, ids, gold, logits[:, t])
    return ids, gold, logits


def test_cli_default_outputs(tmp_path, capsys):
    from datacarto.cli import main

    ids, gold, logits = write_run(tmp_path)
    assert main(["map", str(tmp_path)]) == 0
    assert (tmp_path / "data_map.png").read_bytes()[:4] == b"\x89PNG"
    meta, arrays, text = decode_payload((tmp_path / "data_map.html").read_text(encoding="utf-8"))
    np.testing.assert_array_equal(arrays["row_id"], ids)
    assert meta["label_names"] == LABELS and meta["guide_kind"] == "region thresholds"
    np.testing.assert_array_equal(arrays["gold_probs"], np.round(gold_probabilities(logits, gold) * 100))
    assert text == {"sentence": [f"sentence {i} <b>x</b>" for i in range(len(ids))]}
    assert "wrote" in capsys.readouterr().out


def test_cli_explicit_outputs_sample_and_color(tmp_path):
    from datacarto.cli import main

    ids, _, _ = write_run(tmp_path / "run")
    html, svg = tmp_path / "out" / "m.html", tmp_path / "out" / "m.svg"
    args = ["map", str(tmp_path / "run"), "--html", str(html), "--png", str(svg), "--sample", "30",
            "--color-by", "region"]
    assert main(args) == 0
    assert svg.read_bytes().startswith(b"<?xml") and not (tmp_path / "run" / "data_map.png").exists()
    meta, arrays, text = decode_payload(html.read_text(encoding="utf-8"))
    assert meta["n"] == 30 and meta["color_by"] == "region" and "random sample of 30 of 120" in meta["title"]
    assert set(arrays["row_id"]) <= set(ids)
    assert main(args) == 0
    assert decode_payload(html.read_text(encoding="utf-8"))[1]["row_id"].tolist() == arrays["row_id"].tolist()


def test_cli_without_examples_warns_and_maps(tmp_path, capsys):
    from datacarto.cli import main

    write_run(tmp_path, examples=False)
    assert main(["map", str(tmp_path), "--html", str(tmp_path / "m.html")]) == 0
    assert "tooltips show row ids" in capsys.readouterr().err
    assert decode_payload((tmp_path / "m.html").read_text(encoding="utf-8"))[2] is None


@pytest.mark.parametrize("args,message", [
    (["--png", "map.jpg"], "unsupported figure format"),
    (["--html", "map.txt"], ".html"),
    (["--sample", "0"], "--sample"),
])
def test_cli_bad_arguments(tmp_path, capsys, args, message):
    from datacarto.cli import main

    write_run(tmp_path)
    assert main(["map", str(tmp_path), *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("datacarto: error:") and message in err and err.count("\n") == 1


def test_cli_missing_run(tmp_path, capsys):
    from datacarto.cli import main

    assert main(["map", str(tmp_path / "nope")]) == 2
    assert "not found" in capsys.readouterr().err
    assert main(["map", str(tmp_path)]) == 2  # a folder without dynamics
    assert "no training dynamics" in capsys.readouterr().err


def test_numeric_blob_is_gzip_base64(data):
    page = interactive_map(data[0])
    blob = re.search(r'id="dc-numeric">(.*?)</script>', page, flags=re.S).group(1)
    assert gzip.decompress(base64.b64decode(blob))  # plain gzip, as DecompressionStream('gzip') expects


def test_table_scores_travel_to_a_fraction_of_their_range(data):
    """Table scores are uint16 codes: integers exactly, others to 1/65534 of their range; NaN kept."""
    metrics = data[0].copy()
    metrics.loc[metrics.index[3], "aum"] = np.nan
    meta, arrays, _ = decode_payload(interactive_map(metrics))
    assert [s["name"] for s in meta["scores"]] == ["forgetfulness", "aum", "el2n"]
    np.testing.assert_array_equal(arrays["forgetfulness"], metrics["forgetfulness"])
    for name in ("aum", "el2n"):
        span = np.nanmax(metrics[name]) - np.nanmin(metrics[name])
        np.testing.assert_allclose(arrays[name], metrics[name], atol=span / 65534 / 2 + 1e-12)
    assert np.isnan(arrays["aum"][3])
    # correctness is k/E here: the levels carry it, and it comes back exactly
    assert meta["correctness_from_level"] and "correctness" not in [a["name"] for a in meta["arrays"]]
    np.testing.assert_array_equal(arrays["correctness"], metrics["correctness"].to_numpy(np.float32))
    meta, arrays, _ = decode_payload(interactive_map(metrics, scores=["entropy"]))
    assert [s["name"] for s in meta["scores"]] == ["entropy"] and "aum" not in arrays
    with pytest.raises(DatacartoError, match=r"scores \['nope'\] are not columns"):
        interactive_map(metrics, scores=["nope"])
