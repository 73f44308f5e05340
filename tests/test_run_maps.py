"""write_run_maps: the one code path of ``datacarto map`` and the pipeline's maps stage.

Synthetic runs (datacarto.testing.write_toy_unit_run, and a sequence-classification store), no model.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from datacarto.errors import DatacartoError
from datacarto.maps.interactive import decode_payload
from datacarto.testing import write_toy_unit_run
from test_maps import LABELS, write_run


@pytest.fixture(scope="module")
def token_run(tmp_path_factory):
    return write_toy_unit_run(tmp_path_factory.mktemp("tok") / "run", 50, seed=1)


def test_a_unit_level_run_gets_one_page_with_both_levels(token_run, tmp_path):
    from datacarto.dynamics.cache import get_metrics
    from datacarto.maps.run_maps import write_run_maps

    units = get_metrics(token_run, level="unit")
    out = write_run_maps(token_run, html=tmp_path / "m.html", png=tmp_path / "m.png")
    assert out.points == {"example": 50, "unit": len(units)} and out.level == "example"
    page = (tmp_path / "m.html").read_text(encoding="utf-8")
    meta, arrays, text = decode_payload(page)
    assert (meta["level"], meta["alt_level"], meta["n"]) == ("example", "unit", 50)
    assert meta["label_names"] == ["O", "B-LOC", "B-PER"] and set(text) == {"tokens"}
    umeta, uarrays, utext = decode_payload(page, level="unit")
    assert (umeta["level"], umeta["unit_kind"], umeta["n"], umeta["id_name"]) == ("unit", "word", len(units), "unit_id")
    np.testing.assert_array_equal(uarrays["unit_row"], units["row_id"])
    np.testing.assert_array_equal(uarrays["unit_sub"], units["sub_id"])
    np.testing.assert_allclose(uarrays["confidence"], units["confidence"], rtol=1e-6)
    k = 3
    words = text["tokens"][int(units["row_id"].iloc[k])].split(" ")
    assert utext["word"][k] == words[int(units["sub_id"].iloc[k])]
    assert f"[{utext['word'][k]}]" in utext["sentence"][k]
    # --level unit: the same two levels, the page opens at the units
    write_run_maps(token_run, html=tmp_path / "u.html", level="unit")
    assert decode_payload((tmp_path / "u.html").read_text(encoding="utf-8"))[0]["level"] == "unit"


def test_a_sample_keeps_the_units_of_the_sampled_examples(token_run, tmp_path):
    from datacarto.dynamics.cache import get_metrics
    from datacarto.maps.run_maps import write_run_maps

    out = write_run_maps(token_run, html=tmp_path / "s.html", sample=10, seed=3)
    page = (tmp_path / "s.html").read_text(encoding="utf-8")
    _, arrays, _ = decode_payload(page)
    umeta, uarrays, _ = decode_payload(page, level="unit")
    assert arrays["row_id"].size == 10 and set(uarrays["unit_row"]) == set(arrays["row_id"])
    assert out.points["unit"] == umeta["n"] < len(get_metrics(token_run, level="unit"))
    assert "random sample of 10 of 50" in out.title


def test_a_sequence_classification_run_has_one_level(tmp_path, capsys):
    from datacarto.cli import main
    from datacarto.maps.run_maps import write_run_maps

    write_run(tmp_path / "run")
    out = write_run_maps(tmp_path / "run", html=tmp_path / "m.html")
    meta, _, _ = decode_payload((tmp_path / "m.html").read_text(encoding="utf-8"))
    assert meta["alt_level"] is None and meta["label_names"] == LABELS and out.points == {"example": 120}
    with pytest.raises(DatacartoError, match="no unit level"):
        write_run_maps(tmp_path / "run", html=tmp_path / "u.html", level="unit")
    capsys.readouterr()
    assert main(["map", str(tmp_path / "run"), "--level", "unit"]) != 0
    assert "there is no unit level to map" in capsys.readouterr().err


def test_the_cli_and_the_pipeline_stage_call_write_run_maps(token_run, tmp_path, monkeypatch):
    """Both go through datacarto.maps.run_maps.write_run_maps; the stage's page of a unit run has the switch."""
    import datacarto.maps.run_maps as run_maps
    from datacarto.cli import main
    from datacarto.pipeline.layout import RunLayout
    from datacarto.pipeline.stages import maps_stage
    from datacarto.pipeline.summaries import CleanSummary

    calls, real = [], run_maps.write_run_maps

    def spy(run_dir, **kwargs):
        calls.append((str(run_dir), kwargs))
        return real(run_dir, **kwargs)

    monkeypatch.setattr(run_maps, "write_run_maps", spy)
    assert main(["map", str(token_run), "--html", str(tmp_path / "cli.html")]) == 0
    layout = RunLayout(tmp_path / "pipeline")
    ctx = SimpleNamespace(config=SimpleNamespace(map_color_by="region", title="toy report", folds=0), layout=layout,
                          rec=lambda stage: SimpleNamespace(digest="d", summary=CleanSummary()),  # no cleaning
                          map_dir=lambda: token_run,
                          runner=SimpleNamespace(run=lambda name, inputs, body: body()))
    outputs, _, _ = maps_stage(ctx)
    assert [c[0] for c in calls] == [str(token_run)] * 2
    assert outputs == ["maps/data_map.png", "maps/data_map_regions.png", "maps/data_map.html"]
    for name in ("data_map.png", "data_map_regions.png"):
        assert (layout.root / "maps" / name).read_bytes()[:4] == b"\x89PNG"
    stage_page = layout.data_map_html.read_text(encoding="utf-8")
    meta, _, _ = decode_payload(stage_page)
    assert (meta["alt_level"], meta["color_by"], meta["title"]) == ("unit", "region", "toy report")
    cli_meta = decode_payload((tmp_path / "cli.html").read_text(encoding="utf-8"), level="unit")[0]
    assert decode_payload(stage_page, level="unit")[0]["n"] == cli_meta["n"]


# ----------------------------------------------------------------------------------------------
# the label-error finder's flags on the page (issue 23)


def flagged_in_rank_order(arrays) -> np.ndarray:
    """Positions of the page's flagged rows, most suspect first."""
    at = np.flatnonzero(arrays["suspect"] > 0)
    return at[np.argsort(arrays["suspect"][at])]


def test_the_page_carries_the_flagged_rows_when_the_run_supports_an_estimate(tmp_path):
    from datacarto.dynamics.label_errors import run_fingerprint, run_label_errors
    from datacarto.maps.run_maps import write_run_maps
    from test_label_errors import write_noisy_store

    run = tmp_path / "run"
    flipped = write_noisy_store(run / "training_dynamics", dynamics="out-of-sample")
    out = write_run_maps(run, html=tmp_path / "m.html")
    meta, arrays, _ = decode_payload((tmp_path / "m.html").read_text(encoding="utf-8"))
    found = run_label_errors(run)
    assert 0 < len(found.flagged) == out.suspects and flipped[found.flagged["row_id"]].mean() > 0.5
    review = meta["review"]
    assert review["estimate"] == found.total and review["fingerprint"] == run_fingerprint(run)
    assert review["flagged"] == len(found.flagged) and "out-of-sample" in review["note"]
    at = flagged_in_rank_order(arrays)
    assert arrays["row_id"][at].tolist() == found.flagged["row_id"].tolist()
    assert arrays["suspect"][at].tolist() == list(range(1, len(at) + 1))
    names = meta["label_names"]
    assert [names[k] for k in arrays["suggested"][at]] == found.flagged["suggested_label"].tolist()
    np.testing.assert_array_equal(arrays["suggested_p"][at], np.round(found.flagged["suggested_probability"] * 100))
    others = np.setdiff1d(np.arange(meta["n"]), at)
    assert (arrays["suggested"][others] == meta["missing_label"]).all() and (arrays["suggested_p"][others] == 255).all()


def test_a_run_that_cannot_support_an_estimate_gets_no_suspect_column_and_no_error(tmp_path):
    from datacarto.maps.run_maps import write_run_maps

    write_run(tmp_path / "run", epochs=1)  # one epoch of in-sample dynamics: label-errors refuses it
    out = write_run_maps(tmp_path / "run", html=tmp_path / "m.html")
    meta, arrays, _ = decode_payload((tmp_path / "m.html").read_text(encoding="utf-8"))
    assert meta["review"] is None and "suspect" not in arrays and out.suspects is None and out.warnings == []


def test_a_unit_runs_flags_are_on_its_unit_level(tmp_path):
    from datacarto.dynamics.label_errors import run_label_errors
    from datacarto.maps.run_maps import write_run_maps
    from test_label_errors import write_noisy_unit_store

    run = tmp_path / "run"
    write_noisy_unit_store(run, "multi-label")
    write_run_maps(run, html=tmp_path / "m.html")
    page = (tmp_path / "m.html").read_text(encoding="utf-8")
    meta, arrays, _ = decode_payload(page)
    assert meta["review"] is None and "suspect" not in arrays
    umeta, uarrays, _ = decode_payload(page, level="unit")
    flagged = run_label_errors(run).flagged
    at = flagged_in_rank_order(uarrays)
    assert umeta["review"]["flagged"] == len(flagged) > 0 and umeta["review"]["level"] == "unit"
    assert list(zip(uarrays["unit_row"][at], uarrays["unit_sub"][at])) == list(zip(flagged["row_id"], flagged["sub_id"]))
    assert [umeta["label_names"][k] for k in uarrays["suggested"][at]] == flagged["suggested_label"].tolist()


def test_a_run_above_the_page_threshold_gets_a_sample_and_a_pointer_to_serve(tmp_path, monkeypatch, capsys):
    """Above PAGE_MAX_POINTS the one-file page holds a random sample, and the command says that
    ``datacarto serve RUN`` shows every point; below it nothing is said and every point is mapped."""
    import datacarto.maps.run_maps as run_maps
    from datacarto.cli import main

    write_run(tmp_path / "run")
    assert main(["map", str(tmp_path / "run"), "--html", str(tmp_path / "all.html")]) == 0
    assert "datacarto serve" not in "".join(capsys.readouterr())
    monkeypatch.setattr(run_maps, "PAGE_MAX_POINTS", 50)
    assert main(["map", str(tmp_path / "run"), "--html", str(tmp_path / "m.html")]) == 0
    out, err = capsys.readouterr()
    said = [line for line in (out + err).splitlines() if "datacarto serve" in line]
    assert len(said) == 1 and f"datacarto serve {tmp_path / 'run'}" in said[0] and "120" in said[0], out + err
    meta, arrays, _ = decode_payload((tmp_path / "m.html").read_text(encoding="utf-8"))
    assert meta["n"] == 50 and "random sample of 50 of 120" in meta["title"]
    # an explicit --sample is the user's choice: nothing more is said
    assert main(["map", str(tmp_path / "run"), "--html", str(tmp_path / "s.html"), "--sample", "60"]) == 0
    assert "datacarto serve" not in "".join(capsys.readouterr())
