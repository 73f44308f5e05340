"""One task registry (``datacarto.tasks``) and one TaskSpec carried whole.

A toy task type is registered here and nowhere else (a variant of sequence classification with its
own name and unit wording): recording, the metrics, the map, selection, focused training and the
report's wording all pick it up. The TaskSpec is written whole into the manifest when recording
starts and read back by focused training; a run recorded before it (``task`` + ``task_columns``)
still focuses.
"""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pandas as pd
import pytest

from conftest import write_jsonl
from datacarto.dynamics.cache import get_metrics
from datacarto.dynamics.store import dynamics_dir, read_manifest
from datacarto.errors import DatacartoError
from datacarto.metrics import REGIONS
from datacarto.tasks import (
    DEFAULT_TASK,
    TASK_TYPES,
    TaskSpec,
    check_task_options,
    register_task,
    task_names,
    task_type,
)

TOY = "toy-sentence-pairs"
FAST = {"num_train_epochs": 2, "per_device_train_batch_size": 8, "per_device_eval_batch_size": 32,
        "learning_rate": 5e-3, "use_cpu": True, "disable_tqdm": True, "save_strategy": "no",
        "logging_strategy": "no", "report_to": "none", "seed": 0}


@pytest.fixture
def toy_task():
    """The toy task: sequence classification's functions and head, its own name, unit and wording."""
    entry = register_task(dataclasses.replace(
        task_type(DEFAULT_TASK), name=TOY, unit="sentence pair", repeats=False, label_word="Verdicts",
        gold_header="verdict", about="Each sentence pair is one unit: its verdict is its gold label."))
    yield entry
    TASK_TYPES.pop(TOY, None)


def test_a_registered_task_records_maps_selects_and_focuses(toy_task, tiny_model, toy_jsonl, tmp_path):
    from datacarto.dynamics.subsets import select_from_run
    from datacarto.maps.run_maps import write_run_maps
    from datacarto.selection import random_control
    from datacarto.train.baseline import train_baseline
    from datacarto.train.focused import train_focused

    run = tmp_path / "run"
    spec = TaskSpec(task=TOY, text_columns=["premise", "hypothesis"])
    result = train_baseline(model=tiny_model, train=str(toy_jsonl), task_spec=spec, output_dir=run, training_args=FAST)
    manifest = read_manifest(dynamics_dir(run))
    assert manifest["task"] == TOY and manifest["unit"] == "sentence pair"
    assert manifest["task_spec"] == result.label_spec.to_dict() and TaskSpec.from_manifest(manifest) == result.label_spec
    assert result.label_spec.label_names == ["0", "1", "2"] and result.label_spec.task == TOY

    metrics = get_metrics(run)
    assert len(metrics) == 60 and set(metrics["region"].astype(object)) <= set(REGIONS)
    maps = write_run_maps(run, html=tmp_path / "map.html", png=tmp_path / "map.png")
    assert (tmp_path / "map.html").is_file() and maps.points["example"] == 60

    ids = select_from_run(run, metrics, metric="confidence", fraction=0.25, order="hardest")
    control = random_control(ids, metrics, match_labels=toy_task.single_label, seed=0)
    assert len(ids) == len(control) == 15
    assert np.array_equal(np.bincount(metrics.loc[ids, "gold"], minlength=3),
                          np.bincount(metrics.loc[control, "gold"], minlength=3))  # one gold label: a label mix

    focused = train_focused(run, ids, init="pretrained", model=tiny_model, output_dir=tmp_path / "focused",
                            training_args=FAST)
    again = read_manifest(dynamics_dir(tmp_path / "focused"))
    assert again["task"] == TOY and again["n_examples"] == 15
    assert focused.label_spec == result.label_spec  # the manifest's spec, read back whole


def test_the_cli_takes_a_registered_task(toy_task, tiny_model, toy_jsonl, tmp_path, capsys):
    from datacarto.cli import main

    out = tmp_path / "run"
    assert main(["train", "--model", tiny_model, "--dataset", str(toy_jsonl), "--task", TOY, "--text-columns",
                 "premise,hypothesis", "--output-dir", str(out), "--num_train_epochs", "1", "--use_cpu",
                 "--report_to", "none", "--save_strategy", "no", "--disable_tqdm", "true"]) == 0
    assert f"task: {TOY} (given)" in capsys.readouterr().err
    assert read_manifest(dynamics_dir(out))["task_spec"]["task"] == TOY
    sub = tmp_path / "hard.jsonl"
    assert main(["select", str(out), "--metric", "confidence", "--fraction", "0.2", "--random-control",
                 "--out", str(sub)]) == 0
    assert len(sub.read_text().splitlines()) == 12


def test_the_report_words_a_task_from_its_entry(toy_task, tmp_path):
    from datacarto.pipeline.document import Document
    from datacarto.pipeline.layout import RunLayout
    from datacarto.pipeline.report import _intro
    from datacarto.pipeline.report_state import RunState

    spec = TaskSpec(task=TOY, text_columns=["premise"], label_names=["no", "yes"])
    run = RunState(layout=RunLayout(tmp_path), config={"model": "m"}, examples=None, metrics=pd.DataFrame(),
                   stages={"data": {"summary": {"rows": {"train": 3}, "label_names": spec.label_names,
                                                "task_spec": spec.to_dict()}}})
    doc = Document()
    _intro(doc, run, "title")
    text = doc.markdown()
    assert f"Task: {TOY}." in text and "Verdicts: no, yes." in text and toy_task.about in text
    assert run.task_type is toy_task


def test_task_of_looks_a_task_up_by_name_and_checks_the_head(toy_task, tiny_model):
    from transformers import AutoModelForSequenceClassification

    from datacarto.record.tasks import MultiLabel, Task, task_of

    model = AutoModelForSequenceClassification.from_pretrained(tiny_model, num_labels=3)
    assert task_of(model).name == DEFAULT_TASK  # the head says the task: the first entry of its head
    toy = task_of(model, TOY)
    assert type(toy) is Task and toy.name == TOY and toy.unit == "sentence pair" and not toy.per_row
    with pytest.raises(DatacartoError, match="the task is token-classification, but the model"):
        task_of(model, "token-classification")
    with pytest.raises(DatacartoError, match="problem_type multi_label_classification"):
        model.config.problem_type = "multi_label_classification"
        assert isinstance(task_of(model), MultiLabel)
        task_of(model, TOY)


def test_the_spec_is_one_request_checked_once():
    assert TaskSpec(task="token-classification").label_column == "ner_tags"  # the task's own default
    spec = TaskSpec.from_options("token-classification", tags_column="tags", tokens_column="words")
    assert (spec.label_column, spec.tokens_column, spec.choice_columns) == ("tags", "words", [])
    assert TaskSpec.from_dict(json.loads(json.dumps(spec.to_dict()))) == spec
    with pytest.raises(DatacartoError, match="choice_columns is an option of multiple-choice, not of multi-label"):
        TaskSpec.from_options("multi-label", choice_columns=["a", "b"])
    with pytest.raises(DatacartoError, match="unknown task 'no-such-task'; tasks: sequence-classification"):
        TaskSpec(task="no-such-task")
    check_task_options("token-classification", tokens_column="words", tags_column="tags")


def test_a_run_recorded_before_the_spec_keeps_its_options():
    """Old manifests: ``task`` and ``task_columns`` (token classification: the tag column) and the text columns."""
    old = {"task": "token-classification", "label_names": ["O", "B"], "text_columns": [],
           "task_columns": {"choice_columns": None, "tokens_column": "words", "tags_column": "tags",
                            "prompt_column": None, "response_column": None, "chat_template": False}}
    spec = TaskSpec.from_manifest(old)
    assert (spec.task, spec.label_column, spec.tokens_column, spec.label_names) == (
        "token-classification", "tags", "words", ["O", "B"])
    causal = TaskSpec.from_manifest({"task": "causal-lm", "text_columns": ["p", "r"]})  # before task_columns
    assert (causal.prompt_column, causal.response_column) == ("p", "r")
    assert TaskSpec.from_manifest({}).task == DEFAULT_TASK


def test_focus_on_a_run_recorded_before_the_spec(tmp_path):
    """A token-classification run whose manifest has only ``task`` + ``task_columns``: focus still finds the tags."""
    from datacarto.dynamics.store import DynamicsWriter
    from datacarto.testing import TOY_TAGS, make_tiny_model_dir, toy_task_words, toy_tokens
    from datacarto.train.baseline import train_baseline
    from datacarto.train.focused import train_focused

    model = make_tiny_model_dir(tmp_path / "tiny", toy_task_words(), dropout=0.0)
    rows = [{"words": r["tokens"], "tags": r["ner_tags"]} for r in toy_tokens(24)]
    run = tmp_path / "run"
    train_baseline(model=model, train=write_jsonl(tmp_path / "train.jsonl", rows), task="token-classification",
                   tokens_column="words", tags_column="tags", label_names=TOY_TAGS, output_dir=run, training_args=FAST)
    writer = DynamicsWriter(dynamics_dir(run))
    manifest = dict(writer.manifest)
    manifest.pop("task_spec")
    manifest["task_columns"] = {"choice_columns": None, "tokens_column": "words", "tags_column": "tags",
                                "prompt_column": None, "response_column": None, "chat_template": False}
    (dynamics_dir(run) / "manifest.json").write_text(json.dumps(manifest))
    result = train_focused(run, np.arange(8), init="pretrained", model=model, output_dir=tmp_path / "focused",
                           training_args=FAST)
    assert (result.label_spec.label_column, result.label_spec.tokens_column) == ("tags", "words")
    focused = read_manifest(dynamics_dir(tmp_path / "focused"))
    assert focused["n_units"] == sum(len(r["words"]) for r in rows[:8])


@pytest.mark.parametrize("change,message", [
    (dict(name=DEFAULT_TASK), "exists already"),
    (dict(scores=("accuracy", "bleu")), r"unknown score\(s\) \['bleu'\]"),
    (dict(options={"colour_column": None}), r"option\(s\) \['colour_column'\] are not fields of TaskSpec"),
    (dict(label_option="tags_column"), "label option 'tags_column' is not one of its options"),
])
def test_register_task_refuses_a_bad_entry(change, message):
    entry = dataclasses.replace(task_type(DEFAULT_TASK), **{"name": TOY, **change})
    with pytest.raises(DatacartoError, match=message):
        register_task(entry)
    assert TOY not in task_names()
