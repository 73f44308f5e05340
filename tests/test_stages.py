"""Declared stages: what each stage reads is declared once, and its resume key is derived from that.

(a) a stage that reads a config key or an upstream stage it does not declare fails, and the real
stages read exactly what they declare; (b) changing any declared key redoes the stages that declare
it and everything downstream of them, and nothing else.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from types import SimpleNamespace

import pytest

from conftest import write_jsonl
from datacarto.errors import DatacartoError
from datacarto.pipeline import STAGES, PipelineConfig, RunLayout
from datacarto.pipeline.declare import ConfigView, Stage, UndeclaredRead
from datacarto.pipeline.runner import Runner
from datacarto.pipeline.stages import PIPELINE, REPORTED
from datacarto.pipeline.summaries import NoSummary

BY_NAME = {s.name: s for s in PIPELINE}


def base_config(root, **changes) -> PipelineConfig:
    """A config as the stages' keys see it (not validated: the stubs below read nothing)."""
    values = dict(model="m", dataset="d.jsonl", validation="v.jsonl", test="t.jsonl", output_dir=str(root),
                  training_args={"num_train_epochs": 2})
    return PipelineConfig(**{**values, **changes})


def run_declared(config, root) -> list[str]:
    """Every declared stage in order with a body that does nothing: the stages that ran."""
    runner = Runner(RunLayout(root), force=set(), log=lambda msg: None)
    for stage in PIPELINE:
        runner.run(dataclasses.replace(stage, body=lambda view: ([], NoSummary(), None), summary=NoSummary), config)
    return [n for n, record in runner.records.items() if record.ran]


def downstream(names: set[str]) -> list[str]:
    """``names`` and every stage that reads one of them, directly or not, in stage order."""
    out = set(names)
    for stage in PIPELINE:
        if out & set(stage.reads):
            out.add(stage.name)
    return [n for n in STAGES if n in out]


def other_value(value):
    if isinstance(value, bool):
        return not value
    if isinstance(value, (int, float)):
        return value + 1
    if isinstance(value, str):
        return value + "x"
    if isinstance(value, list):
        return [*value, "x"]
    if isinstance(value, dict):
        return {**value, "x": 1}
    return 2  # None


def changes() -> list[tuple[str, dict]]:
    """(what changed, config changes): every declared key, a dotted key's own entry, and another entry of it."""
    tops = sorted({k.partition(".")[0] for s in PIPELINE for k in s.config})
    default = base_config("x")
    out = [(key, {key: other_value(getattr(default, key))}) for key in tops]
    for key in sorted({k for s in PIPELINE for k in s.config if "." in k}):
        top, _, sub = key.partition(".")
        out.append((key, {top: {**getattr(default, top), sub: 7}}))
    return out


@pytest.mark.parametrize("changed, values", changes(), ids=[c for c, _ in changes()])
def test_changing_a_declared_key_redoes_its_stages_and_what_follows_them_only(tmp_path, changed, values):
    assert run_declared(base_config(tmp_path), tmp_path) == list(STAGES)
    assert run_declared(base_config(tmp_path), tmp_path) == []
    top = changed.partition(".")[0]
    sub = set(values[top]) if isinstance(values[top], dict) else set()
    declaring = {s.name for s in PIPELINE for k in s.config
                 if k == top or (k.startswith(top + ".") and k.partition(".")[2] in sub)}
    assert declaring, changed
    assert run_declared(base_config(tmp_path, **values), tmp_path) == downstream(declaring)


def test_an_entry_of_a_mapping_redoes_only_the_stages_that_read_the_mapping(tmp_path):
    """``training_args.learning_rate``: the baseline and focus declare all of training_args, metrics only its seed."""
    run_declared(base_config(tmp_path), tmp_path)
    ran = run_declared(base_config(tmp_path, training_args={"num_train_epochs": 2, "learning_rate": 0.1}), tmp_path)
    assert ran == downstream({"baseline", "focus"}) and "metrics" in ran  # metrics: through the baseline
    metrics_only = {s.name for s in PIPELINE if "training_args.seed" in s.config}
    assert metrics_only == {"metrics"}


def test_undeclared_keys_change_nothing_and_a_moved_folder_is_up_to_date(tmp_path):
    run_declared(base_config(tmp_path / "a"), tmp_path / "a")
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    assert run_declared(base_config(tmp_path / "b"), tmp_path / "b") == []


def test_a_changed_input_file_redoes_the_data_stage_and_what_follows(tmp_path):
    data = tmp_path / "train.jsonl"
    data.write_text('{"premise": "a", "label": 0}\n')
    root = tmp_path / "run"
    run_declared(base_config(root, dataset=str(data)), root)
    assert run_declared(base_config(root, dataset=str(data)), root) == []
    data.write_text('{"premise": "a", "label": 1}\n{"premise": "b", "label": 0}\n')
    assert run_declared(base_config(root, dataset=str(data)), root) == list(STAGES)


def test_the_declarations_are_a_pipeline():
    """Stages read only earlier stages; the report reads every one and declares every key it shows."""
    for i, stage in enumerate(PIPELINE):
        assert set(stage.reads) <= set(STAGES[:i]), stage.name
        fields = {f.name for f in dataclasses.fields(PipelineConfig)}
        assert {k.partition(".")[0] for k in stage.config} <= fields, stage.name
    assert BY_NAME["report"].reads == STAGES[:-1] and set(REPORTED) == fields - {"output_dir"}


# ----------------------------------------------------------------------------------------------
# (a) what a stage reads


def test_a_stage_reading_an_undeclared_key_fails_and_leaves_no_record(tmp_path):
    config = base_config(tmp_path, training_args={"seed": 3, "learning_rate": 0.1})
    reads_title = Stage("maps", lambda view: ([], NoSummary(), view.title), NoSummary, config=("map_color_by",))
    runner = Runner(RunLayout(tmp_path), force=set(), log=lambda msg: None)
    with pytest.raises(UndeclaredRead, match="stage 'maps' reads config key 'title' but does not declare it"):
        runner.run(reads_title, config)
    assert not RunLayout(tmp_path).stage_record("maps").exists()

    view = ConfigView(config, "metrics", ("training_args.seed", "seed"))
    assert view.training_args.get("seed", view.seed) == 3 and "seed" in view.training_args
    for read_more in (lambda: view.training_args["learning_rate"], lambda: dict(view.training_args),
                      lambda: view.training_args.items(), lambda: view.model):
        with pytest.raises(UndeclaredRead, match="stage 'metrics' reads"):
            read_more()
    assert view.read == {"training_args.seed", "seed"}
    with pytest.raises(UndeclaredRead, match="only reads"):
        view.seed = 4
    whole = ConfigView(config, "data", ("task", *PIPELINE[0].config))
    assert whole.task_options() == config.task_options()  # methods read through the view, checked


def test_a_stage_reading_an_undeclared_stage_fails(tmp_path):
    from datacarto.pipeline.context import Context

    ctx = Context(base_config(tmp_path), force=set(), log=lambda msg: None, progress=False)
    ctx.runner.records.update({n: SimpleNamespace(digest=n, ran=True) for n in ("data", "metrics")})
    peek = Stage("maps", lambda c: ([], NoSummary(), c.rec("data").digest), NoSummary, reads=("metrics",))
    with pytest.raises(UndeclaredRead, match="stage 'maps' reads stage 'data' but does not declare it"):
        ctx.run(peek)
    assert ctx.rec("data").digest == "data"  # outside a stage, every record is there


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """The real stages once, on a config that takes every branch that reads the config (folds, seeds,
    a pretrained focus start, a test set); returns what each stage read from the config."""
    from datacarto.pipeline.context import Context
    from datacarto.testing import make_tiny_model_dir, toy_nli

    root = tmp_path_factory.mktemp("declared")
    splits = {"train": toy_nli(36, seed=1), "validation": toy_nli(15, seed=2), "test": toy_nli(15, seed=3)}
    for name, rows in splits.items():
        write_jsonl(root / f"{name}.jsonl", rows)
    model = make_tiny_model_dir(root / "tiny", [r["premise"] + " " + r["hypothesis"] for r in splits["train"]])
    config = PipelineConfig(
        model=model, dataset=str(root / "train.jsonl"), validation=str(root / "validation.jsonl"),
        test=str(root / "test.jsonl"), output_dir=str(root / "run"), max_length=32,
        training_args={"num_train_epochs": 2, "per_device_train_batch_size": 12, "learning_rate": 5e-3,
                       "use_cpu": True, "disable_tqdm": True, "save_strategy": "no", "logging_strategy": "no",
                       "report_to": "none"},
        focus_training_args={"num_train_epochs": 1}, focus_init="pretrained", folds=2, seeds=[0, 1],
        recipes=[{"name": "hard", "region": "hard-to-learn", "fraction": 0.3}]).validate()
    ctx = Context(config, force=set(), log=lambda msg: None, progress=False)  # the data stage reads the request too
    for stage in PIPELINE:
        ctx.run(stage)
    return ctx.runner.config_read


def test_every_stage_reads_exactly_the_config_keys_it_declares(tiny_run):
    """What a stage's body read (through the view, which refuses the rest) against its declaration.

    The report declares every key it shows (its Configuration section, from config.json); its body
    reads the title and the noise column itself.
    """
    assert list(tiny_run) == list(STAGES)
    for stage in PIPELINE:
        declared = set(stage.config)
        if stage.name == "report":
            assert {"title", "noise_column"} == tiny_run["report"] and declared == set(REPORTED)
        elif stage.name == "clean":  # no cleaning recipe: nothing else to read (tests/test_cleaning.py: with one)
            assert tiny_run["clean"] == {"recipes"} and "recipes" in declared
        else:
            assert tiny_run[stage.name] == declared, stage.name


# ----------------------------------------------------------------------------------------------
# run folders of an earlier version


def old_record(layout: RunLayout, name: str) -> None:
    """A stage record as datacarto wrote it before declared stages (no ``format``)."""
    layout.stage_record(name).parent.mkdir(parents=True, exist_ok=True)
    layout.stage_record(name).write_text(json.dumps(
        {"name": name, "key": "k", "digest": "d", "seconds": 1.0, "finished_at": 0.0, "outputs": [],
         "summary": {}, "inputs": {}}))


def test_records_of_an_earlier_version_are_refused_unless_forced(tmp_path):
    from datacarto.pipeline.run import _check_record_format

    layout = RunLayout(tmp_path)
    for name in ("maps", "report"):
        old_record(layout, name)
    with pytest.raises(DatacartoError) as info:
        _check_record_format(layout, set())
    assert str(info.value).count("\n") == 0 and "rerun with --force maps,report" in str(info.value)
    _check_record_format(layout, {"maps", "report"})
    for name in STAGES:
        old_record(layout, name)
    with pytest.raises(DatacartoError, match="rerun with --force all$"):
        _check_record_format(layout, {"maps"})
    _check_record_format(layout, set(STAGES))


def test_summaries_of_an_earlier_version_read_as_typed_summaries():
    """The report of an old run folder: its JSON summaries (as format 1 wrote them) read through read_summary."""
    from datacarto.pipeline.summaries import read_summary, summary_json

    select = read_summary("select", {"subsets": {"hard": {
        "recipe": {"name": "hard", "region": "hard-to-learn", "fraction": 0.2}, "n": 12, "digest": "ab", "path":
        "subsets/hard.jsonl", "regions": {"hard-to-learn": 12}, "labels": {"a": 12},
        "control": {"n": 12, "digest": "cd", "path": "subsets/hard.control.jsonl", "regions": {}, "labels": {}}}}})
    hard = select.in_order(["hard"])["hard"]
    assert (hard.n, hard.recipe["region"], hard.control.path) == (12, "hard-to-learn", "subsets/hard.control.jsonl")
    metrics = read_summary("metrics", {"regions": {"ambiguous": 3}, "attrs": {"method": "quantile"}, "n": 3,
                                       "crossfit": {"folds": 3, "map": "in-sample", "other_regions": {},
                                                    "same_region_share": 0.5}})
    assert metrics.crossfit.folds == 3 and metrics.attrs["method"] == "quantile" and metrics.test_regions is None
    data = read_summary("data", {"rows": {"train": 3}, "text_columns": ["t"], "label_names": ["a"]})
    assert data.task == "sequence-classification" and data.task_columns == {}  # from before tasks
    focus = read_summary("focus", {"models": {"focused/hard": {"token": "t", "seconds": 1.5, "n": 12, "ran": True}}})
    assert focus.models["focused/hard"].seconds == 1.5
    for summary in (select, metrics, data, focus):
        assert read_summary({"SelectSummary": "select", "MetricsSummary": "metrics", "DataSummary": "data",
                             "FocusSummary": "focus"}[type(summary).__name__], summary_json(summary)) == summary
