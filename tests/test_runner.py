"""The pipeline's one resume mechanism (stage records and unit records), without training anything."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from datacarto.pipeline import STAGES, RunLayout, StageRecord
from datacarto.pipeline.declare import Stage
from datacarto.pipeline.runner import Runner
from datacarto.pipeline.summaries import FocusSummary, NoSummary


class Body:
    """A stage body that writes one output file and counts its calls."""

    def __init__(self, layout: RunLayout, name: str = "out.txt", fail: bool = False):
        self.path, self.calls, self.fail = layout.root / name, 0, fail

    def __call__(self, config):
        self.calls += 1
        if self.fail:
            raise RuntimeError("half-way")
        self.path.write_text("x")
        return [self.path.name], NoSummary(), None


def runner(tmp_path, force=(), log=None):
    return Runner(RunLayout(tmp_path), force=set(force), log=log if log is not None else (lambda msg: None))


def stage(name, body, **declared):
    return Stage(name, body, NoSummary, config=tuple(declared.pop("config", ("a",))), **declared)


def test_a_stage_is_skipped_while_its_inputs_and_outputs_are_unchanged(tmp_path):
    body, lines = Body(RunLayout(tmp_path)), []
    first = runner(tmp_path, log=lines.append).run(stage("data", body), SimpleNamespace(a=1))
    assert first.ran and body.calls == 1 and lines[0] == "[1/10] data ... (first run)"
    assert StageRecord.read(RunLayout(tmp_path).stage_record("data")).digest == first.digest
    again = runner(tmp_path, log=lines.append).run(stage("data", body), SimpleNamespace(a=1))
    assert not again.ran and body.calls == 1 and again.digest == first.digest
    assert lines[-1].startswith("[1/10] data: up to date")
    changed = runner(tmp_path, log=lines.append).run(stage("data", body), SimpleNamespace(a=2))
    assert changed.ran and body.calls == 2 and changed.digest != first.digest
    assert "(inputs changed)" in lines[-2]


def test_missing_outputs_and_force_rerun_a_stage(tmp_path):
    body = Body(RunLayout(tmp_path))
    config = SimpleNamespace(a=1)
    runner(tmp_path).run(stage("maps", body), config)
    body.path.unlink()
    lines = []
    assert runner(tmp_path, log=lines.append).run(stage("maps", body), config).ran and "(outputs missing)" in lines[0]
    assert runner(tmp_path, force={"maps"}).run(stage("maps", body), config).ran and body.calls == 3


def test_a_failed_stage_leaves_no_record(tmp_path):
    layout = RunLayout(tmp_path)
    runner(tmp_path).run(stage("select", Body(layout)), SimpleNamespace(a=1))
    with pytest.raises(RuntimeError):
        runner(tmp_path).run(stage("select", Body(layout, fail=True)), SimpleNamespace(a=2))
    assert not layout.stage_record("select").exists()


def test_a_content_digest_keeps_downstream_keys_stable_and_covers_the_summary(tmp_path):
    """Same content and summary: the same digest; same content, another summary: a new one.

    Later stages read a stage's summary as well as its files (the data stage's task and task columns
    are in its summary only), so an identical content hash must not hide a changed summary.
    """
    def body(models):
        return lambda config: ([], FocusSummary(models=models), "same-content")

    metrics = Stage("metrics", body({}), FocusSummary)
    first = runner(tmp_path).run(metrics, SimpleNamespace())
    forced = runner(tmp_path, force={"metrics"}).run(metrics, SimpleNamespace())
    assert forced.ran and forced.digest == first.digest
    other = Stage("metrics", body({"focused/a": {}}), FocusSummary)
    assert runner(tmp_path, force={"metrics"}).run(other, SimpleNamespace()).digest != first.digest


def test_a_stage_must_return_its_declared_summary_type(tmp_path):
    wrong = Stage("maps", lambda config: ([], {"n": 1}, None), NoSummary)
    with pytest.raises(TypeError, match="not its NoSummary"):
        runner(tmp_path).run(wrong, SimpleNamespace())
    assert not RunLayout(tmp_path).stage_record("maps").exists()


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


def test_a_units_key_is_its_stages_without_the_stage_it_stands_in_for(tmp_path):
    """A unit keeps its key when only its per_unit upstream changes, and loses it with any other input."""
    def focus(config):
        r.run_unit("focus", "focused/a", {"subset": 1}, [], lambda: trained.append(1) or {})
        return [], NoSummary(), None

    trained = []
    for upstream, seed, runs in (("s1", 0, 1), ("s2", 0, 1), ("s2", 1, 2)):
        r = runner(tmp_path)
        r.records["select"] = SimpleNamespace(digest=upstream)
        r.run(Stage("focus", focus, NoSummary, reads=("select",), config=("seed",), per_unit=("select",)),
              SimpleNamespace(seed=seed))
        assert len(trained) == runs, (upstream, seed)


def test_the_layout_names_every_stage_record(tmp_path):
    layout = RunLayout(tmp_path)
    for name in STAGES:
        runner(tmp_path).run(Stage(name, lambda config: ([], NoSummary(), None), NoSummary), SimpleNamespace())
    assert list(layout.stage_records()) == list(STAGES)
    assert layout.rel(layout.predictions("ensemble/all")) == "predictions/ensemble/all.npz"
    assert layout.model_dir("baseline") == layout.baseline_dir
