"""The pipeline's one resume mechanism (stage records and unit records), without training anything."""

from __future__ import annotations

import pytest

from datacarto.pipeline import STAGES, RunLayout, StageRecord
from datacarto.pipeline.runner import Runner


class Body:
    """A stage body that writes one output file and counts its calls."""

    def __init__(self, layout: RunLayout, name: str = "out.txt", fail: bool = False):
        self.path, self.calls, self.fail = layout.root / name, 0, fail

    def __call__(self):
        self.calls += 1
        if self.fail:
            raise RuntimeError("half-way")
        self.path.write_text("x")
        return [self.path.name], {"n": self.calls}, None


def runner(tmp_path, force=(), log=None):
    return Runner(RunLayout(tmp_path), force=set(force), log=log if log is not None else (lambda msg: None))


def test_a_stage_is_skipped_while_its_inputs_and_outputs_are_unchanged(tmp_path):
    body, lines = Body(RunLayout(tmp_path)), []
    first = runner(tmp_path, log=lines.append).run("data", {"a": 1}, body)
    assert first.ran and body.calls == 1 and lines[0] == "[1/10] data ... (first run)"
    assert StageRecord.read(RunLayout(tmp_path).stage_record("data")).digest == first.digest
    again = runner(tmp_path, log=lines.append).run("data", {"a": 1}, body)
    assert not again.ran and body.calls == 1 and again.digest == first.digest
    assert lines[-1].startswith("[1/10] data: up to date")
    changed = runner(tmp_path, log=lines.append).run("data", {"a": 2}, body)
    assert changed.ran and body.calls == 2 and changed.digest != first.digest
    assert "(inputs changed)" in lines[-2]


def test_missing_outputs_and_force_rerun_a_stage(tmp_path):
    body = Body(RunLayout(tmp_path))
    runner(tmp_path).run("maps", {}, body)
    body.path.unlink()
    lines = []
    assert runner(tmp_path, log=lines.append).run("maps", {}, body).ran and "(outputs missing)" in lines[0]
    assert runner(tmp_path, force={"maps"}).run("maps", {}, body).ran and body.calls == 3


def test_a_failed_stage_leaves_no_record(tmp_path):
    layout = RunLayout(tmp_path)
    runner(tmp_path).run("select", {}, Body(layout))
    with pytest.raises(RuntimeError):
        runner(tmp_path).run("select", {"new": True}, Body(layout, fail=True))
    assert not layout.stage_record("select").exists()


def test_a_content_digest_keeps_downstream_keys_stable(tmp_path):
    r = runner(tmp_path)
    first = r.run("metrics", {"x": 1}, lambda: ([], {}, "same-content"))
    forced = runner(tmp_path, force={"metrics"}).run("metrics", {"x": 1}, lambda: ([], {}, "same-content"))
    assert forced.ran and forced.digest == first.digest == "same-content"


def test_units_are_reused_one_by_one(tmp_path):
    layout = RunLayout(tmp_path)
    calls = []

    def unit(name):
        def body():
            calls.append(name)
            (tmp_path / f"{name}.bin").write_text(name)
            return {"n": len(calls)}
        return body

    r = runner(tmp_path)
    a = r.run_unit("focus", "focused/a", {"subset": 1}, ["focused_a.bin"], unit("focused_a"))
    b = r.run_unit("focus", "control/b", {"subset": 2}, ["control_b.bin"], unit("control_b"))
    assert a.ran and b.ran and layout.unit_record("focus", "focused/a").name == "focused__a.json"
    r = runner(tmp_path)
    a2 = r.run_unit("focus", "focused/a", {"subset": 1}, ["focused_a.bin"], unit("focused_a"))
    b2 = r.run_unit("focus", "control/b", {"subset": 3}, ["control_b.bin"], unit("control_b"))
    assert not a2.ran and a2.token == a.token and a2.summary == {"n": 1}
    assert b2.ran and b2.token != b.token and calls == ["focused_a", "control_b", "control_b"]
    (tmp_path / "focused_a.bin").unlink()
    assert runner(tmp_path).run_unit("focus", "focused/a", {"subset": 1}, ["focused_a.bin"], unit("focused_a")).ran
    forced = runner(tmp_path, force={"focus"})
    assert forced.run_unit("focus", "control/b", {"subset": 3}, ["control_b.bin"], unit("control_b")).ran


def test_the_layout_names_every_stage_record(tmp_path):
    layout = RunLayout(tmp_path)
    for name in STAGES:
        runner(tmp_path).run(name, {}, lambda: ([], {}, None))
    assert list(layout.stage_records()) == list(STAGES)
    assert layout.rel(layout.predictions("ensemble/all")) == "predictions/ensemble/all.npz"
    assert layout.model_dir("baseline") == layout.baseline_dir
