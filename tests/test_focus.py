"""train_focused, eval regions, evaluate_by_region and `datacarto focus` on tiny offline models."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from conftest import cli_fails, training_args, write_jsonl
from datacarto import load_dynamics, load_examples
from datacarto.cli import main
from datacarto.dynamics.cache import eval_regions
from datacarto.errors import DatacartoError
from datacarto.evaluation import evaluate_by_region
from datacarto.testing import toy_nli
from datacarto.train.focused import start_model, train_focused
from datacarto.train.losses import weighted_loss

FAST = ["--num_train_epochs", "1", "--per_device_train_batch_size", "16", "--use_cpu", "--disable_tqdm", "true",
        "--save_strategy", "no", "--logging_strategy", "no", "--report_to", "none"]






def _params(model_dir):
    from transformers import AutoModelForSequenceClassification

    net = AutoModelForSequenceClassification.from_pretrained(str(model_dir))
    return {k: v.detach().clone() for k, v in net.state_dict().items()}


@pytest.fixture(scope="module")
def run(tmp_path_factory, tiny_model_no_dropout, toy_jsonl):
    """A recorded baseline: 3 epochs with validation dynamics, final model saved."""
    from datacarto.train.baseline import train_baseline

    base = tmp_path_factory.mktemp("focus")
    val = write_jsonl(base / "val.jsonl", toy_nli(30, seed=7, noise=0.2))
    out = base / "baseline"
    train_baseline(model=tiny_model_no_dropout, train=str(toy_jsonl), validation=val, output_dir=out,
                   text_columns=["premise", "hypothesis"], label_names=["entailment", "neutral", "contradiction"],
                   training_args=training_args(out, num_train_epochs=3, eval_strategy="epoch"))
    return out, val


def test_init_baseline_and_pretrained_start_from_different_weights(run, tmp_path, tiny_model_no_dropout):
    out, _ = run
    ids = np.arange(0, 60, 6)
    baseline_params = _params(out / "model")
    pretrained_params = _params(tiny_model_no_dropout)
    key = "bert.encoder.layer.0.attention.self.query.weight"
    assert not np.allclose(baseline_params[key], pretrained_params[key])
    # learning rate 0: the trained model is exactly the model training started from
    for init, expected in (("baseline", baseline_params), ("pretrained", pretrained_params)):
        res = train_focused(out, ids, init=init, output_dir=tmp_path / init,
                            training_args=training_args(tmp_path / init, num_train_epochs=1, learning_rate=0.0))
        got = _params(res.model_dir)
        for name in (key, "classifier.weight"):
            np.testing.assert_array_equal(got[name].numpy(), expected[name].numpy(), err_msg=f"{init}: {name}")
        info = json.loads((tmp_path / init / "focus.json").read_text())
        assert info["init"] == init and info["n_examples"] == len(ids)
    assert start_model(out, "pretrained") == tiny_model_no_dropout
    assert start_model(out, "baseline") == str(out / "model")


def test_focused_run_records_its_subset_and_keeps_baseline_row_ids(run, tmp_path):
    out, val = run
    ids = np.array([5, 1, 40, 33, 12, 59, 20, 8])
    res = train_focused(out, ids, init="baseline", output_dir=tmp_path / "f", validation=val,
                        training_args=training_args(tmp_path / "f", num_train_epochs=2, eval_strategy="epoch"))
    dyn = load_dynamics(res.output_dir)
    assert dyn.logits.shape == (len(ids), 2, 3)
    assert dyn.label_names == ["entailment", "neutral", "contradiction"]
    ex = load_examples(res.output_dir)
    np.testing.assert_array_equal(ex["baseline_row_id"].to_numpy(), ids)
    base_ex = load_examples(out)
    assert ex["premise"].tolist() == base_ex.loc[ids, "premise"].tolist()
    np.testing.assert_array_equal(dyn.gold, base_ex.loc[ids, "label"].to_numpy())
    assert load_dynamics(res.output_dir, "validation").n_epochs == 2
    # the trained model moved away from the baseline
    assert not np.allclose(_params(res.model_dir)["classifier.weight"], _params(out / "model")["classifier.weight"])


def test_subset_file_from_select_and_weighted_loss_is_reindexed(run, tmp_path):
    from datacarto.dynamics.subsets import export_subset, focused_dataset

    out, _ = run
    ids = np.arange(30, 60)  # none of positions 0..29
    path = export_subset(focused_dataset(out, ids), tmp_path / "subset.jsonl")
    weights = np.zeros(60)
    weights[ids] = 1.0  # by baseline row id: if applied by subset position (0..29) every weight would be 0
    res = train_focused(out, str(path), init="baseline", output_dir=tmp_path / "w", loss=weighted_loss(weights),
                        training_args=training_args(tmp_path / "w", num_train_epochs=1))
    before, after = _params(out / "model"), _params(res.model_dir)
    assert not np.allclose(before["classifier.weight"], after["classifier.weight"])
    assert json.loads((tmp_path / "w" / "focus.json").read_text())["subset"] == str(path)


@pytest.mark.parametrize("kwargs, message", [
    ({"init": "scratch"}, "init must be one of"),
    ({"subset": "missing.jsonl"}, "not found"),
    ({"subset": []}, "empty"),
    ({"output_dir": "RUN"}, "baseline run itself"),
])
def test_train_focused_bad_input(run, tmp_path, kwargs, message):
    out, _ = run
    kwargs = dict(kwargs)
    subset = kwargs.pop("subset", [0, 1, 2])
    if isinstance(subset, str):
        subset = str(tmp_path / subset)
    output_dir = out if kwargs.pop("output_dir", None) == "RUN" else tmp_path / "x"
    with pytest.raises(DatacartoError, match=message):
        train_focused(out, subset, output_dir=output_dir, training_args=training_args(tmp_path / "x"), **kwargs)


def test_train_focused_refuses_a_folder_that_is_not_a_run(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatacartoError, match="not a datacarto run"):
        train_focused(tmp_path / "empty", [0], output_dir=tmp_path / "o")


def test_a_subset_with_duplicated_row_ids_is_refused(run, tmp_path):
    """An example listed twice would be trained on twice: refused in one line, whatever form the subset takes."""
    out, _ = run
    examples = load_examples(out)
    rows = [{"premise": examples.loc[i, "premise"], "hypothesis": examples.loc[i, "hypothesis"],
             "label": int(examples.loc[i, "label"]), "row_id": int(i)} for i in (4, 1, 4, 2, 1, 4)]
    data = write_jsonl(tmp_path / "s.jsonl", rows)
    for subset, where in ((data, "s.jsonl"), ([4, 1, 4, 2, 1, 4], "the subset")):
        with pytest.raises(DatacartoError, match=r"3 rows repeat a row_id \(first: 4\)") as info:
            train_focused(out, subset, output_dir=tmp_path / "o", training_args=training_args(tmp_path / "o"))
        assert where in str(info.value) and "\n" not in str(info.value)
    assert not (tmp_path / "o").exists()


def test_subset_without_the_text_columns(run, tmp_path):
    out, _ = run
    data = write_jsonl(tmp_path / "s.jsonl", [{"sentence": "a man", "label": 0}])
    with pytest.raises(DatacartoError, match="text column"):
        train_focused(out, data, output_dir=tmp_path / "o", training_args=training_args(tmp_path / "o"))


# ----------------------------------------------------------------------------------------------
# evaluation by region


def test_evaluate_by_region_hand_made_case():
    gold = np.array([0, 1, 2, 0, 1, 2, 0, 1])
    regions = np.array(["easy-to-learn", "easy-to-learn", "ambiguous", "ambiguous", "ambiguous",
                        "hard-to-learn", None, "hard-to-learn"], dtype=object)
    labels_a = np.array([0, 1, 2, 1, 1, 0, 0, 0])  # easy 2/2, ambiguous 2/3, hard 0/2; 5/8 overall
    logits_b = np.eye(3)[[0, 0, 2, 0, 1, 2, 1, 1]] * 2.0  # easy 1/2, ambiguous 3/3, hard 2/2; 6/8
    table = evaluate_by_region({"a": labels_a, "b": logits_b}, gold, regions)
    assert list(table.index) == ["a", "b"]
    assert table.loc["a", "overall_accuracy"] == pytest.approx(5 / 8)
    assert table.loc["b", "overall_accuracy"] == pytest.approx(6 / 8)
    assert table.loc["a", "easy-to-learn_accuracy"] == 1.0
    assert table.loc["a", "ambiguous_accuracy"] == pytest.approx(2 / 3)
    assert table.loc["a", "hard-to-learn_accuracy"] == 0.0
    assert table.loc["b", "easy-to-learn_accuracy"] == 0.5
    assert table.loc["b", "ambiguous_accuracy"] == 1.0 and table.loc["b", "hard-to-learn_accuracy"] == 1.0
    assert table.loc["a", "easy-to-learn_n"] == 2 and table.loc["a", "ambiguous_n"] == 3
    assert table.loc["a", "hard-to-learn_n"] == 2 and table.loc["a", "n"] == 8
    # macro-F1 by hand for model a overall: class 0 P=2/4 R=2/3, class 1 P=2/3 R=2/3, class 2 P=1 R=1/2
    f1 = [2 * p * r / (p + r) for p, r in ((2 / 4, 2 / 3), (2 / 3, 2 / 3), (1.0, 0.5))]
    assert table.loc["a", "overall_macro_f1"] == pytest.approx(np.mean(f1))
    # hard-to-learn for a: gold [2, 1], predicted [0, 0]: every class F1 is 0
    assert table.loc["a", "hard-to-learn_macro_f1"] == 0.0
    overall_only = evaluate_by_region({"a": labels_a}, gold)
    assert list(overall_only.columns) == ["n", "overall_accuracy", "overall_macro_f1"]


def test_evaluate_by_region_empty_region_and_bad_shapes():
    gold = np.array([0, 1])
    table = evaluate_by_region({"m": np.array([0, 0])}, gold, pd.Series(["ambiguous", "ambiguous"]))
    assert table.loc["m", "easy-to-learn_n"] == 0 and np.isnan(table.loc["m", "easy-to-learn_accuracy"])
    with pytest.raises(DatacartoError, match="rows"):
        evaluate_by_region({"m": np.zeros((3, 3))}, gold)
    with pytest.raises(DatacartoError, match="regions"):
        evaluate_by_region({"m": np.array([0, 1])}, gold, ["ambiguous"])
    with pytest.raises(DatacartoError, match="non-empty"):
        evaluate_by_region({}, gold)


def test_eval_regions_come_from_the_validation_dynamics(run):
    from datacarto.metrics import assign_regions, compute_metrics

    out, _ = run
    regions = eval_regions(out, "validation")
    assert len(regions) == 30
    expected = assign_regions(compute_metrics(load_dynamics(out, "validation")))
    pd.testing.assert_series_equal(regions, expected)
    assert regions.notna().all()


# ----------------------------------------------------------------------------------------------
# CLI




def test_cli_focus_end_to_end(run, tmp_path, capsys):
    out, val = run
    assert main(["select", str(out), "--out", str(tmp_path / "amb.jsonl"), "--region", "ambiguous",
                 "--fraction", "0.33"]) == 0
    n = sum(1 for _ in open(tmp_path / "amb.jsonl"))
    capsys.readouterr()
    code = main(["focus", str(out), "--subset", str(tmp_path / "amb.jsonl"), "--init", "pretrained",
                 "--output-dir", str(tmp_path / "f"), "--validation", val, "--loss", "focal", "--focal-gamma", "1",
                 "--region-weight", "ambiguous=3", "--learning-rate", "1e-3", *FAST])
    captured = capsys.readouterr()
    printed = captured.out
    assert code == 0, captured.err
    assert "model:" in printed
    assert load_dynamics(tmp_path / "f").n_examples == n
    assert load_dynamics(tmp_path / "f", "validation").n_epochs == 1  # --validation turns evaluation on
    info = json.loads((tmp_path / "f" / "focus.json").read_text())
    assert info["init"] == "pretrained" and info["loss"].startswith("weighted_loss(") and "gamma=1.0" in info["loss"]


def test_cli_focus_bad_input(run, tmp_path, capsys):
    out, _ = run
    cli_fails(capsys, ["focus", str(out), "--subset", str(tmp_path / "nope.jsonl"), "--output-dir",
                    str(tmp_path / "f"), *FAST], "data file not found")
    cli_fails(capsys, ["focus", str(out), "--subset", str(tmp_path / "nope.jsonl"), "--init", "random",
                    "--output-dir", str(tmp_path / "f"), *FAST], "--init must be one of")
    cli_fails(capsys, ["focus", str(tmp_path), "--subset", str(tmp_path / "nope.jsonl"),
                    "--output-dir", str(tmp_path / "f"), *FAST], "not a datacarto run")
    cli_fails(capsys, ["focus", str(out), "--subset", "x.jsonl", "--loss", "hinge", "--output-dir",
                    str(tmp_path / "f"), *FAST], "--loss must be ce or focal")


def test_cli_ensemble_regions_from_the_baseline_run(run, tmp_path, capsys):
    from datacarto.metrics import REGIONS

    out, val = run
    res_file = tmp_path / "r.json"
    models = ["--models", str(out / "model"), str(out / "model")]
    assert main(["ensemble", *models, "--weights", "1", "0", "--dataset", val, "--split", "validation",
                 "--regions-from", str(out), "--out", str(res_file)]) == 0
    assert "ambiguous_accuracy" in capsys.readouterr().out
    rows = {r["model"]: r for r in json.loads(res_file.read_text())["by_region"]}
    assert set(rows) == {"baseline", "baseline#2", "ensemble"}
    # the final model's validation predictions are the last validation logits recorded in training
    dyn = load_dynamics(out, "validation")
    assert rows["ensemble"]["overall_accuracy"] == pytest.approx((dyn.logits[:, -1].argmax(1) == dyn.gold).mean())
    regions = eval_regions(out, "validation")
    for name in REGIONS:
        assert rows["ensemble"][f"{name}_n"] == int((regions == name).sum())
    cli_fails(capsys, ["ensemble", *models, "--dataset", val, "--split", "test", "--regions-from", str(out)],
           "no training dynamics found")
