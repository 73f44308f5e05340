"""The shared rules of datacarto._validation, and that every call site follows the same one."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from datacarto._validation import (
    check_choice,
    check_fraction,
    check_int_labels,
    fmt_seconds,
    round_half_up,
)
from datacarto.errors import DatacartoError


def test_round_half_up_rounds_halves_up_despite_float_error():
    assert round_half_up(0.15, 30) == 5
    assert round(0.15 * 30) == 4  # Python's round (the old demo rule) rounds halves to even
    assert 0.58 * 25 < 14.5  # here the float product falls just short of the half ...
    assert round_half_up(0.58, 25) == 15  # ... and the slack still rounds it up
    assert round_half_up(2.5) == 3 and round(2.5) == 2
    assert round_half_up(0.33, 200) == 66 and round_half_up(0.1, 0) == 0


def test_every_share_of_n_rounds_the_same_way():
    """select, the audit's flip count and the demo data's row counts: 0.15 x 30 gives 5 in all three."""
    from datacarto.demo_data import _exact
    from datacarto.noise import n_flips
    from datacarto.selection import select

    metrics = pd.DataFrame({"confidence": np.linspace(0, 1, 30), "gold": np.arange(30) % 2},
                           index=pd.Index(np.arange(30), name="row_id"))
    assert select(metrics, metric="confidence", fraction=0.15).size == 5
    assert n_flips(0.15, 30) == 5
    assert _exact(30, 0.15, "flip") == 5
    # a half the float product misses (14.499999999999998): the audit used to give 14 here
    assert select(metrics.iloc[:25], metric="confidence", fraction=0.58).size == 15
    assert n_flips(0.58, 25) == 15
    assert _exact(25, 0.58, "flip") == 15


def test_demo_data_flips_the_rounded_share(tmp_path):
    from datacarto.demo_data import make_demo_dataset

    splits = make_demo_dataset(n_train=30, n_validation=0, n_test=0, flip=0.15, ambiguous=0.0, seed=0)
    assert sum(splits["train"]["is_flipped"]) == 5


def test_check_fraction_intervals_and_messages():
    assert check_fraction(1, "fraction", low_open=True) == 1.0
    with pytest.raises(DatacartoError, match=r"fraction must be in \(0, 1\], got 0"):
        check_fraction(0, "fraction", low_open=True)
    with pytest.raises(DatacartoError, match=r"noise must be in \[0, 1\), got 1.0"):
        check_fraction(1.0, "noise", high_open=True)
    for bad in ("0.5", True, float("nan"), None):
        with pytest.raises(DatacartoError, match=r"share must be a number in \[0, 1\]"):
            check_fraction(bad, "share")


def test_check_choice_names_the_options():
    assert check_choice("b", ("a", "b"), "mode") == "b"
    with pytest.raises(DatacartoError, match="mode must be one of a, b, got 'c'"):
        check_choice("c", ("a", "b"), "mode")


def test_check_int_labels_accepts_whole_floats_only():
    np.testing.assert_array_equal(check_int_labels(np.array([0.0, 2.0])), [0, 2])
    assert check_int_labels(np.array([True, False])).dtype == np.int64
    assert check_int_labels([]).shape == (0,)
    with pytest.raises(DatacartoError, match="gold labels must be whole numbers"):
        check_int_labels(np.array([0.5, 1.0]))
    with pytest.raises(DatacartoError, match="gold labels must be whole numbers"):
        check_int_labels(np.array([np.nan, 1.0]))
    with pytest.raises(DatacartoError, match="labels must be integers, got dtype <U1"):
        check_int_labels(np.array(["a"]), "labels")


@pytest.mark.parametrize("call", [
    lambda: __import__("datacarto.metrics", fromlist=["compute_metrics"]).compute_metrics(
        (np.arange(2), np.array([0.5, 1.0]), np.zeros((2, 1, 2)))),
    lambda: __import__("datacarto.evaluation", fromlist=["x"]).evaluate_by_region(
        {"m": np.zeros((2, 2))}, np.array([0.5, 1.0])),
    lambda: __import__("datacarto.noise", fromlist=["x"]).inject_label_noise(np.array([0.5, 1.0]), 0.1),
])
def test_the_label_check_is_the_same_everywhere(call):
    with pytest.raises(DatacartoError, match="must be whole numbers"):
        call()


def test_fmt_seconds():
    assert fmt_seconds(12.34) == "12.3 s"
    assert fmt_seconds(150) == "2.5 min"


# ----------------------------------------------------------------------------------------------
# the whole request is checked before any model loads: seeds, folds, recipes, task options, chat template

LABELS = ["entailment", "neutral", "contradiction"]
RAISES = "{{ raise_exception('no user turns here') }}"
UNSAFE = "{{ messages.__class__.__mro__ }}"  # jinja's sandbox stops it


def test_check_seeds_range_and_repeats():
    from datacarto._validation import check_seed, check_seeds

    assert check_seeds([3, 0, 2**32 - 1], "seeds") == [3, 0, 2**32 - 1]
    for bad, needle in (([-1, 1], "seeds must be integers between 0 and 2**32 - 1, got -1"),
                        ([0, 2**32], "got 4294967296"), ([0, 0, 1], "seed 0 is given twice"),
                        ([5], "at least 2 different seeds"), ([0, True], "got True"), ([0, 1.5], "got 1.5"),
                        ("0,1", "a list")):
        with pytest.raises(DatacartoError) as info:
            check_seeds(bad, "seeds")
        assert needle in str(info.value), (bad, str(info.value))
    assert check_seed(np.int64(7), "seed") == 7
    with pytest.raises(DatacartoError, match=r"seed must be an integer between 0 and 2\*\*32 - 1, got -1"):
        check_seed(-1, "seed")


def test_check_folds_names_the_class_and_its_count():
    from datacarto._validation import check_folds

    assert check_folds(3) == 3
    assert check_folds(3, np.array([0] * 3 + [1] * 4)) == 3
    with pytest.raises(DatacartoError, match="class 'neutral' has 1 example"):
        check_folds(3, np.array([0, 0, 0, 1, 2, 2, 2]), label_names=LABELS)
    with pytest.raises(DatacartoError, match="class 1 has 2 examples"):
        check_folds(3, np.array([0, 0, 0, 1, 1]))
    for bad in (1, 0, 2.0, True, None):
        with pytest.raises(DatacartoError, match="folds must be >= 2"):
            check_folds(bad)


@pytest.mark.parametrize("change, needle", [
    ({"seeds": [-1, 1]}, "config key 'seeds' must be integers between 0 and 2**32 - 1, got -1"),
    ({"seeds": [0, 2**32]}, "got 4294967296"),
    ({"seeds": [0, 0, 1]}, "seed 0 is given twice"),
    ({"seed": -3}, "config key 'seed' must be an integer between 0 and 2**32 - 1, got -3"),
    ({"training_args": {"seed": 2**32}}, "training_args.seed must be an integer between 0 and 2**32 - 1"),
    ({"folds": 1}, "config key 'folds' must be >= 2"),
    ({"recipes": [{"name": "s2l", "method": "trajectory-clusters", "fraction": 0}]},
     "recipe 's2l': fraction must be in (0, 1], got 0"),
    ({"recipes": [{"name": "s2l", "method": "trajectory-clusters", "fraction": 0.2, "clusters": 0}]},
     "recipe 's2l': clusters must be a positive integer, got 0"),
    ({"recipes": [{"name": "amb", "region": "sideways"}]}, "recipe 'amb': unknown region 'sideways'"),
    ({"recipes": [{"name": "top", "metric": "shininess", "fraction": 0.1}]}, "recipe 'top': unknown metric 'shininess'"),
    ({"recipes": [{"name": "top", "metric": "aum", "fraction": 1.5}]}, "recipe 'top': fraction must be in (0, 1]"),
    ({"recipes": [{"name": "lo", "min_confidence": 0.9, "max_confidence": 0.1}]}, "recipe 'lo': min_confidence=0.9"),
    ({"task": "token-classification", "choice_columns": ["a", "b"]},
     "choice_columns is an option of multiple-choice, not of token-classification"),
    ({"task": "multiple-choice", "choice_columns": ["a", "b"], "tags_column": "tags"},
     "tags_column is an option of token-classification, not of multiple-choice"),
    ({"task": "sequence-classification", "chat_template": True}, "chat_template is an option of causal-lm"),
    ({"task": "causal-lm", "tokens_column": "words"}, "tokens_column is an option of token-classification"),
])
def test_pipeline_config_checks_every_key_before_anything_runs(change, needle):
    from datacarto.pipeline import PipelineConfig

    values = {"model": "m", "dataset": "train.jsonl", "validation": "val.jsonl", "output_dir": "out", **change}
    with pytest.raises(DatacartoError) as info:
        PipelineConfig.from_dict(values)
    assert needle in str(info.value) and "\n" not in str(info.value), str(info.value)


@pytest.fixture
def no_model(monkeypatch):
    """Loading a model fails the test: every check must come before it."""
    import datacarto.models
    import datacarto.train.baseline

    def refuse(*args, **kwargs):
        raise AssertionError("a model was loaded before the request was checked")

    for module, name in ((datacarto.train.baseline, "load_model"), (datacarto.models, "load_model"),
                         (datacarto.models, "load_causal_lm")):
        monkeypatch.setattr(module, name, refuse)


def _rare_class(path):
    """4 + 4 examples of two classes and one of the third (contradiction)."""
    from conftest import write_jsonl
    from datacarto.testing import toy_nli

    rows = toy_nli(12, seed=4)
    return write_jsonl(path, [r for r in rows if r["label"] != 2] + [next(r for r in rows if r["label"] == 2)])


def _chat_tokenizer(folder, template):
    from datacarto.testing import make_causal_tokenizer, toy_instruction_words

    tokenizer = make_causal_tokenizer(toy_instruction_words())
    tokenizer.chat_template = template
    tokenizer.save_pretrained(folder)
    return str(folder)


def _sft_rows(path):
    from conftest import write_jsonl
    from datacarto.testing import toy_instructions

    return write_jsonl(path, toy_instructions(6, seed=1))


def test_run_pipeline_checks_folds_against_the_classes_before_any_model_loads(tmp_path, tiny_model, no_model):
    from datacarto.pipeline import PipelineConfig, run_pipeline

    data = _rare_class(tmp_path / "rare.jsonl")
    config = PipelineConfig(model=tiny_model, dataset=data, validation=data, class_names=LABELS,
                            output_dir=str(tmp_path / "run"), folds=3)
    with pytest.raises(DatacartoError, match="class 'contradiction' has 1 example"):
        run_pipeline(config, quiet=True)
    assert not (tmp_path / "run").exists()


def test_train_crossfit_names_the_rare_class_and_checks_its_seed(tmp_path, tiny_model, no_model, toy_jsonl):
    from datacarto.train.crossfit import train_crossfit

    data = _rare_class(tmp_path / "rare.jsonl")
    with pytest.raises(DatacartoError, match="class 'contradiction' has 1 example"):
        train_crossfit(model=tiny_model, train=data, folds=3, label_names=LABELS, output_dir=tmp_path / "cf")
    with pytest.raises(DatacartoError, match="seed must be an integer between 0 and"):
        train_crossfit(model=tiny_model, train=str(toy_jsonl), folds=2, seed=-1, output_dir=tmp_path / "cf")
    assert not (tmp_path / "cf").exists()


@pytest.mark.parametrize("template, needle", [
    (RAISES, "TemplateError: no user turns here"),
    (UNSAFE, "SecurityError: access to attribute '__class__'"),
    ("{% for m in messages %}", "TemplateSyntaxError"),
])
def test_train_baseline_renders_the_chat_template_on_the_first_row_before_the_model_loads(
        tmp_path, no_model, template, needle):
    from datacarto.train.baseline import train_baseline

    model = _chat_tokenizer(tmp_path / "lm", template)
    with pytest.raises(DatacartoError) as info:
        train_baseline(model=model, train=_sft_rows(tmp_path / "sft.jsonl"), output_dir=tmp_path / "out",
                       task="causal-lm", prompt_column="prompt", response_column="response", chat_template=True)
    message = str(info.value)
    assert "the chat template fails on the first row of the training set" in message and needle in message, message
    assert "\n" not in message
    assert not (tmp_path / "out").exists()


def test_run_pipeline_renders_the_chat_template_before_anything_is_written(tmp_path, no_model):
    from datacarto.pipeline import PipelineConfig, run_pipeline

    data = _sft_rows(tmp_path / "sft.jsonl")
    config = PipelineConfig(model=_chat_tokenizer(tmp_path / "lm", RAISES), dataset=data, validation=data,
                            output_dir=str(tmp_path / "run"), task="causal-lm", prompt_column="prompt",
                            response_column="response", chat_template=True)
    with pytest.raises(DatacartoError, match="the chat template fails on the first row of the training set"):
        run_pipeline(config, quiet=True)
    assert not (tmp_path / "run").exists()


def test_train_baseline_refuses_options_of_another_task_and_a_bad_seed(tmp_path, tiny_model, no_model, toy_jsonl):
    from datacarto.train.baseline import train_baseline

    with pytest.raises(DatacartoError, match="choice_columns is an option of multiple-choice, not of "
                                             "token-classification"):
        train_baseline(model=tiny_model, train=str(toy_jsonl), output_dir=tmp_path / "out", task="token-classification",
                       choice_columns=["premise", "hypothesis"])
    with pytest.raises(DatacartoError, match="training_args.seed must be an integer between 0 and"):
        train_baseline(model=tiny_model, train=str(toy_jsonl), output_dir=tmp_path / "out", training_args={"seed": -1})
    assert not (tmp_path / "out").exists()
