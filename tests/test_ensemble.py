"""Ensemble and `datacarto ensemble`: exact weights, tuning on validation only, caching, probs mode."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import torch

from conftest import cli_fails, training_args, write_jsonl
from datacarto.cli import main
from datacarto.ensemble_weights import combine_logits, simplex_grid, tune_weights
from datacarto.errors import DatacartoError
from datacarto.testing import make_tiny_model_dir, toy_nli
from datacarto.train.ensemble import Ensemble


def _own_predictions(model_dir, data_file, batch_size=64):
    """A model's logits through the standard Trainer.predict path, independent of Ensemble."""
    from transformers import (
        AutoModelForSequenceClassification,
        AutoTokenizer,
        DataCollatorWithPadding,
        Trainer,
    )

    from datacarto.data import load_table, prepare_labels, tokenize

    tok = AutoTokenizer.from_pretrained(model_dir)
    net = AutoModelForSequenceClassification.from_pretrained(model_dir)
    ds, spec = prepare_labels(load_table(data_file), text_columns=["premise", "hypothesis"])
    enc = tokenize(ds, tok, spec).select_columns(["input_ids", "token_type_ids", "attention_mask", "labels"])
    args = training_args("/tmp/datacarto-test-own", per_device_eval_batch_size=batch_size)
    return Trainer(model=net, args=args, data_collator=DataCollatorWithPadding(tok)).predict(enc).predictions


@pytest.fixture(scope="module")
def setup(tmp_path_factory, toy_rows):
    """Model A and B = A with its classes rotated and logits x100 (B predicts A's label + 1, confidently).

    A is the tiny BERT with its classifier re-centred on the data's pooled features (no training:
    a tiny model needs many epochs to learn the toy task), so its predictions vary across examples.
    ``val_a`` is labelled with A's own predictions (A perfect, B always wrong); ``test_b`` with A's
    predictions + 1 (B perfect, A always wrong).
    """
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    base = tmp_path_factory.mktemp("ens")
    texts = [r["premise"] + " " + r["hypothesis"] for r in toy_rows]
    start = make_tiny_model_dir(base / "start", texts, dropout=0.0)
    tok = AutoTokenizer.from_pretrained(start)
    net = AutoModelForSequenceClassification.from_pretrained(start)
    enc = tok([r["premise"] for r in toy_rows], [r["hypothesis"] for r in toy_rows], padding=True,
              return_tensors="pt")
    with torch.no_grad():
        pooled = net.bert(**enc).pooler_output.double()
        w = torch.randn(3, pooled.shape[1], generator=torch.Generator().manual_seed(0), dtype=torch.float64)
        w = w / pooled.std(0).clamp(min=1e-6)
        net.classifier.weight.copy_(w.float())
        net.classifier.bias.copy_((-(w @ pooled.mean(0))).float())
    a = str(base / "a")
    net.save_pretrained(a)
    tok.save_pretrained(a)
    with torch.no_grad():  # logits_B[c] = 100 logits_A[c - 1]
        net.classifier.weight.copy_(net.classifier.weight.roll(1, dims=0) * 100)
        net.classifier.bias.copy_(net.classifier.bias.roll(1, dims=0) * 100)
    b = str(base / "b")
    net.save_pretrained(b)
    tok.save_pretrained(b)
    val_rows, test_rows = toy_nli(45, seed=11), toy_nli(36, seed=12)
    files = {"val": write_jsonl(base / "val.jsonl", val_rows), "test": write_jsonl(base / "test.jsonl", test_rows)}
    pred_val = _own_predictions(a, files["val"]).argmax(1)
    pred_test = _own_predictions(a, files["test"]).argmax(1)
    assert min(np.bincount(pred_val, minlength=3)) >= 5  # A's predictions vary: a real test of alignment
    return {
        "a": a, "b": b, "start": start, **files, "test_rows": test_rows,
        "val_a": write_jsonl(base / "val_a.jsonl", [{**r, "label": int(p)} for r, p in zip(val_rows, pred_val)]),
        "test_b": write_jsonl(base / "test_b.jsonl", [{**r, "label": int(p + 1) % 3} for r, p in zip(test_rows, pred_test)]),
    }


def test_weights_one_zero_reproduce_model_a_exactly(setup):
    ens = Ensemble([setup["a"], setup["b"]], weights=[1, 0])
    out = ens.predict(setup["test"])
    own = _own_predictions(setup["a"], setup["test"])
    assert out.predictions.dtype == own.dtype
    np.testing.assert_array_equal(out.predictions, own)
    np.testing.assert_array_equal(out.label_ids, [r["label"] for r in setup["test_rows"]])
    assert ens.forward_passes == [1, 0]  # a member with weight 0 never runs
    np.testing.assert_array_equal(ens.labels(setup["test"]), out.label_ids)
    assert ens.forward_passes == [1, 0]
    assert out.metrics["test_accuracy"] == pytest.approx(float((own.argmax(1) == out.label_ids).mean()))
    # B really is A with rotated classes
    b_logits = ens.member_logits(setup["test"])[1]
    np.testing.assert_array_equal(b_logits.argmax(1), (own.argmax(1) + 1) % 3)
    scale = np.abs(b_logits).max()  # A's re-centred bias cancels large terms: float32 error grows with scale
    np.testing.assert_allclose(b_logits, 100 * np.roll(own, 1, axis=1), rtol=0, atol=1e-3 * scale)


def test_tuning_never_reads_the_test_split(setup):
    ens = Ensemble([setup["a"], setup["b"]])
    val_fp, test_fp = ens.fingerprint(setup["val_a"]), ens.fingerprint(setup["test_b"])
    weights = ens.tune(setup["val_a"], step=0.1)
    np.testing.assert_array_equal(weights, [1.0, 0.0])
    assert ens.tuning["accuracy"] == 1.0
    # the test set would have chosen the other model: tuning never saw it
    test_logits = ens.member_logits(setup["test_b"])
    gold = ens.predict(setup["test_b"]).label_ids
    would_be, info = tune_weights(test_logits, gold, step=0.1)
    assert would_be[1] >= 0.9 and info["accuracy"] == 1.0
    metrics = ens.evaluate(setup["test_b"], metric_key_prefix="test")
    np.testing.assert_array_equal(ens.current_weights, [1.0, 0.0])
    assert ens.tuned_on == [val_fp] and test_fp not in ens.tuned_on
    assert ens.tuning["fingerprint"] == val_fp and ens.tuning["n_examples"] == 45
    assert metrics["test_accuracy"] == 0.0  # A is wrong on every test label
    assert ens.weights_source == "tuned"


def test_tuning_then_evaluating_costs_no_extra_forward_pass(setup):
    from datacarto.data import load_table

    ens = Ensemble([setup["a"], setup["b"]])
    ens.tune(setup["val"])
    assert ens.forward_passes == [1, 1]
    with pytest.warns(UserWarning, match="optimistic"):
        val_metrics = ens.evaluate(load_table(setup["val"]))  # same content, another Dataset object
    assert ens.forward_passes == [1, 1]
    assert val_metrics["eval_accuracy"] == pytest.approx(ens.tuning["accuracy"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ens.predict(setup["test"])
    assert ens.forward_passes[0] == 2


def test_members_with_their_own_tokenizers(setup, toy_rows):
    # C: a different vocabulary (extra words first), so token ids differ from A's tokenizer
    texts = ["zebra quartz " * 3] + [r["premise"] + " " + r["hypothesis"] for r in toy_rows]
    c = make_tiny_model_dir(setup["start"] + "-other-vocab", texts, dropout=0.0, seed=3)
    ens = Ensemble([setup["a"], c], weights=[0.5, 0.5])
    members = ens.member_logits(setup["test"])
    np.testing.assert_array_equal(members[1], _own_predictions(c, setup["test"]))
    np.testing.assert_array_equal(members[0], _own_predictions(setup["a"], setup["test"]))
    out = ens.predict(setup["test"])
    np.testing.assert_allclose(out.predictions, 0.5 * members[0] + 0.5 * members[1], rtol=1e-6, atol=1e-6)


def test_probs_mode(setup):
    ens = Ensemble([setup["a"], setup["b"]], weights=[3, 1], combine="probs")
    out = ens.predict(setup["test"])
    la, lb = ens.member_logits(setup["test"])
    mixed = 0.75 * torch.softmax(torch.tensor(la, dtype=torch.float64), -1) + \
        0.25 * torch.softmax(torch.tensor(lb, dtype=torch.float64), -1)
    np.testing.assert_allclose(np.exp(out.predictions), mixed.numpy(), rtol=1e-5)
    np.testing.assert_allclose(torch.softmax(torch.tensor(out.predictions), -1).numpy(), mixed.numpy(), rtol=1e-5)
    # with probabilities the ensemble differs from the mean of logits on some example
    logit_mean = combine_logits(np.stack([la, lb]), [3, 1])
    assert not np.allclose(np.exp(out.predictions), torch.softmax(torch.tensor(logit_mean, dtype=torch.float64),
                                                                   -1).numpy(), atol=1e-3)


def test_three_real_members_tuned_never_worse_than_the_best_member_on_validation(setup):
    ens = Ensemble([setup["b"], setup["start"], setup["a"]])
    ens.tune(setup["val"], step=0.1)
    members = ens.member_logits(setup["val"])
    with pytest.warns(UserWarning, match="optimistic"):
        gold = ens.predict(setup["val"]).label_ids
    best_member = max(float((m.argmax(1) == gold).mean()) for m in members)
    assert ens.tuning["accuracy"] >= best_member
    assert ens.current_weights.sum() == pytest.approx(1.0)


# ----------------------------------------------------------------------------------------------
# numeric core


def test_grid_tuning_finds_the_perfect_member_among_three():
    rng = np.random.default_rng(0)
    n = 200
    gold = rng.integers(0, 3, n)
    noise = rng.normal(size=(2, n, 3)) * 3
    perfect = np.eye(3)[gold] * 2.0
    L = np.stack([noise[0], perfect, noise[1]])
    w, info = tune_weights(L, gold, step=0.05)
    np.testing.assert_array_equal(w, [0.0, 1.0, 0.0])
    assert info["method"] == "grid" and info["accuracy"] == 1.0
    # probabilities too; and above 4 members the log-loss optimiser puts the weight on it
    w, info = tune_weights(L, gold, combine="probs", step=0.1)
    assert w[1] == pytest.approx(1.0) and info["accuracy"] == 1.0
    L5 = np.stack([noise[0], noise[1], rng.normal(size=(n, 3)), perfect, rng.normal(size=(n, 3))])
    for combine in ("logits", "probs"):
        w, info = tune_weights(L5, gold, combine=combine)
        assert info["method"] == "optimize" and w[3] > 0.9 and w.sum() == pytest.approx(1.0)


def test_grid_tuning_prefers_a_mixture_when_it_is_better():
    # each member is right on a different half, and only a mixture is right on both
    gold = np.array([0, 0, 1, 1])
    a = np.array([[2.0, 0.0], [2.0, 0.0], [0.5, 0.0], [0.5, 0.0]])  # right on 0, 1 (big margin), wrong on 2, 3
    b = np.array([[0.0, 0.5], [0.0, 0.5], [0.0, 2.0], [0.0, 2.0]])  # right on 2, 3, wrong on 0, 1
    L = np.stack([a, b])
    for single in ([1, 0], [0, 1]):
        assert (combine_logits(L, single).argmax(1) == gold).mean() == 0.5
    w, info = tune_weights(L, gold, step=0.05)
    assert info["accuracy"] == 1.0 and 0 < w[0] < 1
    assert w[0] == pytest.approx(0.5)  # symmetric case: log-loss breaks the accuracy tie at the middle


def test_simplex_grid():
    g = simplex_grid(3, 0.05)
    assert g.shape == (231, 3) and np.allclose(g.sum(1), 1.0)
    assert g[0].tolist() == [1.0, 0.0, 0.0] and len({tuple(r) for r in g.round(6)}) == 231
    assert simplex_grid(4, 0.1).shape == (286, 4)
    with pytest.raises(DatacartoError, match="divide 1"):
        simplex_grid(2, 0.3)


@pytest.mark.parametrize("weights, message", [([1.0], "1 weights given for 2"), ([-1, 2], ">= 0"),
                                              ([0, 0], "positive sum"), ([np.nan, 1], ">= 0")])
def test_bad_weights(weights, message):
    with pytest.raises(DatacartoError, match=message):
        combine_logits(np.zeros((2, 3, 3)), weights)


# ----------------------------------------------------------------------------------------------
# CLI




def test_cli_ensemble_end_to_end(setup, tmp_path, capsys):
    out = tmp_path / "r.json"
    assert main(["ensemble", "--models", setup["a"], setup["b"], "--weights", "1", "0", "--dataset", setup["test"],
                 "--out", str(out), "--batch-size", "16"]) == 0
    printed = capsys.readouterr().out
    res = json.loads(out.read_text())
    assert res["weights"] == [1.0, 0.0] and res["weights_source"] == "given"
    assert res["accuracy"] == pytest.approx(res["models"][0]["accuracy"])
    assert res["n_examples"] == len(setup["test_rows"])
    assert "weights (given): 1.000 0.000" in printed

    assert main(["ensemble", "--models", setup["a"], setup["b"], "--tune-on", "validation", "--validation",
                 setup["val_a"], "--dataset", setup["test_b"], "--out", str(out), "--step", "0.1"]) == 0
    res = json.loads(out.read_text())
    assert res["weights"] == [1.0, 0.0]  # from validation, although the test set favours B
    assert res["models"][1]["accuracy"] == 1.0 and res["models"][0]["accuracy"] == 0.0 == res["accuracy"]
    assert res["tuning"]["n_examples"] == 45 and res["tuning"]["accuracy"] == 1.0
    assert f"tuned on {setup['val_a']}" in capsys.readouterr().out


def test_cli_ensemble_bad_input(setup, tmp_path, capsys):
    models = ["--models", setup["a"], setup["b"]]
    cli_fails(capsys, ["ensemble", *models, "--tune-on", "validation", "--dataset", setup["test"]],
           "--tune-on validation needs the validation data")
    cli_fails(capsys, ["ensemble", *models, "--tune-on", "validation", "--validation", setup["test"],
                    "--dataset", setup["test"]], "same data")
    copy = write_jsonl(tmp_path / "copy.jsonl", setup["test_rows"])
    cli_fails(capsys, ["ensemble", *models, "--tune-on", "validation", "--validation", copy,
                    "--dataset", setup["test"]], "same examples")
    cli_fails(capsys, ["ensemble", *models, "--weights", "1", "--dataset", setup["test"]], "1 --weights given for 2")
    cli_fails(capsys, ["ensemble", "--models", setup["a"], str(tmp_path / "nope"), "--dataset", setup["test"]],
           "model folder not found")
    cli_fails(capsys, ["ensemble", *models, "--dataset", str(tmp_path / "nope.jsonl")], "data file not found")


# ----------------------------------------------------------------------------------------------
# --regions-from: the data must be the recorded split's; checks before any model loads


@pytest.fixture(scope="module")
def recorded(tmp_path_factory, tiny_model_no_dropout, toy_jsonl):
    """A baseline that recorded 2 evaluations of a validation set (its regions), final model saved."""
    from datacarto.train.baseline import train_baseline

    base = tmp_path_factory.mktemp("regions")
    rows = toy_nli(30, seed=7, noise=0.2)
    val = write_jsonl(base / "val.jsonl", rows)
    out = base / "baseline"
    train_baseline(model=tiny_model_no_dropout, train=str(toy_jsonl), validation=val, output_dir=out,
                   text_columns=["premise", "hypothesis"],
                   training_args=training_args(out, num_train_epochs=2, eval_strategy="epoch"))
    return out, val, rows


def _regions_argv(out, data):
    return ["ensemble", "--models", str(out / "model"), "--weights", "1", "--dataset", data, "--split",
            "validation", "--regions-from", str(out)]


def test_regions_from_accepts_the_recorded_data(recorded, capsys):
    out, val, _ = recorded
    assert main(_regions_argv(out, val)) == 0
    assert "ambiguous_accuracy" in capsys.readouterr().out


@pytest.mark.parametrize("change, message", [
    (lambda rows: rows[:3] + [{**rows[3], "label": (rows[3]["label"] + 1) % 3}] + rows[4:],
     "1 of 30 examples differ in text or label (first at row 3)"),
    (lambda rows: rows[:5] + [{**rows[5], "hypothesis": rows[5]["hypothesis"] + " again"}] + rows[6:],
     "1 of 30 examples differ in text or label (first at row 5)"),
    (lambda rows: rows[1:] + rows[:1], "examples differ in text or label"),  # the same rows, another order
    (lambda rows: toy_nli(30, seed=8), "examples differ in text or label"),  # a test set of the same size
    (lambda rows: rows[:29], "recorded 30 examples of split 'validation'"),
    (lambda rows: [{"premise": r["premise"], "label": r["label"]} for r in rows], "lacks the column(s) ['hypothesis']"),
])
def test_regions_from_refuses_other_data_of_the_same_size(recorded, tmp_path, capsys, change, message):
    out, _, rows = recorded
    other = write_jsonl(tmp_path / "other.jsonl", change([dict(r) for r in rows]))
    cli_fails(capsys, _regions_argv(out, other), message)


@pytest.mark.parametrize("extra, message", [
    (["--weights", "nan", "1"], "weights must be >= 0"),
    (["--weights", "inf", "1"], "weights must be >= 0"),
    (["--weights", "0", "0"], "positive sum"),
    (["--tune-on", "validation", "--validation", "v.jsonl", "--step", "0"], "grid step must divide 1"),
    (["--batch-size", "0"], "--batch-size must be at least 1"),
    (["--max-length", "-3"], "--max-length must be at least 1"),
    (["--class-names", "a,b,a"], "duplicate --class-names"),
    (["--split", "../../x", "--regions-from", "run"], "invalid split name"),
])
def test_option_checks_run_before_any_model_loads(tmp_path, capsys, monkeypatch, extra, message):
    from datacarto.train import ensemble

    def no_models(*a, **k):
        raise AssertionError("a model was loaded before the options were checked")

    monkeypatch.setattr(ensemble.Ensemble, "_load_members", no_models)
    data = write_jsonl(tmp_path / "d.jsonl", toy_nli(6))
    argv = ["ensemble", "--models", "m1", "m2", "--dataset", data, *extra]
    if "--weights" not in extra:
        argv += ["--weights", "1", "1"] if "--tune-on" not in extra else []
    cli_fails(capsys, argv, message)
