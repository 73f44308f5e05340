"""`datacarto train`, `import-allenai`, `export-allenai`: real runs and one clear line per bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from conftest import cli_fails, write_jsonl
from datacarto import load_dynamics, load_examples
from datacarto.cli import main
from datacarto.testing import make_tiny_model_dir

FAST = ["--num_train_epochs", "1", "--per_device_train_batch_size", "16", "--use_cpu", "--disable_tqdm", "true",
        "--save_strategy", "no", "--logging_strategy", "no"]






def test_train_records_with_every_training_arguments_flag(tmp_path, tiny_model, toy_jsonl, toy_rows, capsys):
    out = tmp_path / "run"
    code = main(["train", "--model", tiny_model, "--dataset", str(toy_jsonl), "--validation", str(toy_jsonl),
                 "--text-columns", "premise,hypothesis", "--output-dir", str(out), "--learning_rate", "1e-3",
                 "--class-names", "entailment,neutral,contradiction", "--dynamics-mode", "epoch_end",
                 "--snapshots-per-epoch", "2", *FAST])
    assert code == 0
    dyn = load_dynamics(out)
    assert dyn.logits.shape == (len(toy_rows), 2, 3)
    assert dyn.label_names == ["entailment", "neutral", "contradiction"]
    assert dyn.manifest["dataset"] == str(toy_jsonl)
    assert dyn.manifest["model"] == tiny_model
    assert load_dynamics(out, "validation").n_examples == len(toy_rows)
    assert load_examples(out)["premise"].tolist() == [r["premise"] for r in toy_rows]
    assert (out / "model" / "config.json").is_file()
    assert "training dynamics:" in capsys.readouterr().out


def test_train_with_a_test_set_records_it_every_epoch(tmp_path, tiny_model, toy_rows, capsys):
    """--test: predicted at each epoch end, so test examples get dynamics (and regions) too."""
    from datacarto.dynamics.cache import eval_regions
    from datacarto.train.ensemble import Ensemble

    train = write_jsonl(tmp_path / "train.jsonl", toy_rows[:40])
    test = write_jsonl(tmp_path / "test.jsonl", toy_rows[40:])
    out = tmp_path / "run"
    assert FAST[:2] == ["--num_train_epochs", "1"]
    fast = ["--num_train_epochs", "3", *FAST[2:]]
    assert main(["train", "--model", tiny_model, "--dataset", train, "--test", test, "--learning_rate", "1e-3",
                 "--text-columns", "premise,hypothesis", "--output-dir", str(out), *fast]) == 0
    dyn = load_dynamics(out, "test")
    assert dyn.logits.shape == (20, 3, 3) and dyn.epochs == [0, 1, 2]
    np.testing.assert_array_equal(dyn.gold, [r["label"] for r in toy_rows[40:]])
    assert load_examples(out, "test")["hypothesis"].tolist() == [r["hypothesis"] for r in toy_rows[40:]]
    # the last snapshot is the final model's prediction
    fresh = Ensemble([str(out / "model")], text_columns=["premise", "hypothesis"],
                            args={"use_cpu": True}).member_logits(test, split="test")[0]
    np.testing.assert_allclose(dyn.logits[:, -1, :], fresh, rtol=1e-4, atol=1e-4)
    assert len(eval_regions(out, "test")) == 20
    assert not (out / "training_dynamics" / "eval" / "validation").exists()


def test_string_labels_with_class_names(tmp_path, tiny_model, toy_rows):
    names = ["entailment", "neutral", "contradiction"]
    data = write_jsonl(tmp_path / "s.jsonl", [{**r, "label": names[r["label"]]} for r in toy_rows])
    assert main(["train", "--model", tiny_model, "--dataset", data, "--class-names", ",".join(names),
                 "--output-dir", str(tmp_path / "run"), *FAST]) == 0
    np.testing.assert_array_equal(load_dynamics(tmp_path / "run").gold, [r["label"] for r in toy_rows])


def test_missing_text_column(tmp_path, tiny_model, toy_jsonl, capsys):
    cli_fails(capsys, ["train", "--model", tiny_model, "--dataset", str(toy_jsonl), "--text-columns", "premise,nope",
                    "--output-dir", str(tmp_path)], "text column(s) ['nope'] not in the training set")


def test_missing_label_column(tmp_path, tiny_model, toy_jsonl, capsys):
    cli_fails(capsys, ["train", "--model", tiny_model, "--dataset", str(toy_jsonl), "--label-column", "gold",
                    "--output-dir", str(tmp_path)], "label column 'gold' not in the training set")


def test_labels_out_of_range(tmp_path, tiny_model, toy_rows, capsys):
    data = write_jsonl(tmp_path / "d.jsonl", toy_rows[:5] + [{**toy_rows[5], "label": 7}])
    cli_fails(capsys, ["train", "--model", tiny_model, "--dataset", data, "--class-names", "a,b,c",
                    "--output-dir", str(tmp_path / "o")], "label 7 in the training set is out of range for 3 labels")


def test_string_labels_without_names(tmp_path, tiny_model, toy_rows, capsys):
    data = write_jsonl(tmp_path / "d.jsonl", [{**r, "label": "yes"} for r in toy_rows[:4]])
    cli_fails(capsys, ["train", "--model", tiny_model, "--dataset", data, "--output-dir", str(tmp_path / "o")],
           "labels in 'label' are strings but no label names were given")


def test_empty_data_set(tmp_path, tiny_model, capsys):
    data = tmp_path / "empty.csv"
    data.write_text("premise,hypothesis,label\n")
    cli_fails(capsys, ["train", "--model", tiny_model, "--dataset", str(data), "--output-dir", str(tmp_path / "o")],
           "empty")


def test_missing_data_file(tmp_path, tiny_model, capsys):
    cli_fails(capsys, ["train", "--model", tiny_model, "--dataset", str(tmp_path / "nope.jsonl"),
                    "--output-dir", str(tmp_path / "o")], "data file not found")


def test_num_labels_not_matching_the_data(tmp_path, toy_rows, toy_jsonl, capsys):
    texts = [r["premise"] + " " + r["hypothesis"] for r in toy_rows]
    two = make_tiny_model_dir(tmp_path / "two", texts, num_labels=2)
    cli_fails(capsys, ["train", "--model", two, "--dataset", str(toy_jsonl), "--output-dir", str(tmp_path / "o")],
              f"label 2 in the training set is out of range for model {two!r}, a classifier with 2 labels")
    cli_fails(capsys, ["train", "--model", two, "--dataset", str(toy_jsonl), "--class-names", "a,b,c",
                       "--output-dir", str(tmp_path / "o")],
              f"3 label names given but model {two!r}, a classifier with 2 labels")
    assert not (tmp_path / "o").exists()


def _absent_lines(recwarn) -> list[str]:
    """The absent-class warnings, as the CLI prints them (a datacarto warning: one ``datacarto: warning:`` line)."""
    import datacarto

    package = str(Path(datacarto.__file__).parent)
    return [f"datacarto: warning: {w.message}" if w.filename.startswith(package) else str(w.message)
            for w in recwarn if "no example in" in str(w.message)]


@pytest.mark.parametrize("relabel,absent", [
    (lambda y: y % 2, "class '2' has no example in the training set"),
    (lambda y: 0, "classes '1', '2' have no example in the training set"),
])
def test_a_classifier_trains_on_data_lacking_some_of_its_classes(tmp_path, tiny_model, toy_rows, recwarn, relabel,
                                                                  absent):
    """A 3-class model on labels {0, 1}, or on one class: it keeps its 3 classes; the absent ones are said once."""
    rows = [{**r, "label": relabel(r["label"])} for r in toy_rows]
    data = write_jsonl(tmp_path / "d.jsonl", rows)
    assert main(["train", "--model", tiny_model, "--dataset", data, "--output-dir", str(tmp_path / "run"), *FAST]) == 0
    assert _absent_lines(recwarn) == [f"datacarto: warning: {absent}"]
    dyn = load_dynamics(tmp_path / "run")
    assert dyn.logits.shape == (len(rows), 1, 3) and dyn.label_names == ["0", "1", "2"]
    np.testing.assert_array_equal(dyn.gold, [r["label"] for r in rows])


def test_label_names_come_from_the_models_id2label(tmp_path, toy_rows, recwarn):
    """Real id2label names name the classes (and map string labels); transformers' LABEL_i do not (above)."""
    names = ["yes", "maybe", "no"]
    texts = [r["premise"] + " " + r["hypothesis"] for r in toy_rows]
    model = make_tiny_model_dir(tmp_path / "named", texts, label_names=names)
    data = write_jsonl(tmp_path / "d.jsonl", [{**r, "label": r["label"] % 2} for r in toy_rows])
    assert main(["train", "--model", model, "--dataset", data, "--output-dir", str(tmp_path / "run"), *FAST]) == 0
    assert _absent_lines(recwarn) == ["datacarto: warning: class 'no' has no example in the training set"]
    assert load_dynamics(tmp_path / "run").label_names == names
    words = write_jsonl(tmp_path / "w.jsonl", [{**r, "label": names[r["label"]]} for r in toy_rows])
    assert main(["train", "--model", model, "--dataset", words, "--output-dir", str(tmp_path / "run2"), *FAST]) == 0
    np.testing.assert_array_equal(load_dynamics(tmp_path / "run2").gold, [r["label"] for r in toy_rows])


def test_a_token_classifier_trains_on_data_without_its_rare_tags(tmp_path, capsys, recwarn):
    """NER: a model with more tags than the sentences use (WNUT-17's 13 on a subset) fine-tunes as it is."""
    from datacarto.testing import TOY_TAGS, toy_task_words, toy_tokens

    tags = [*TOY_TAGS, "B-ORG", "B-MISC"]
    model = make_tiny_model_dir(tmp_path / "ner", toy_task_words(), label_names=tags, token_classifier=True)
    rows = toy_tokens(24)
    data = write_jsonl(tmp_path / "d.jsonl", rows)
    assert main(["train", "--task", "token-classification", "--model", model, "--dataset", data,
                 "--output-dir", str(tmp_path / "run"), *FAST]) == 0
    assert _absent_lines(recwarn) == [
        "datacarto: warning: classes 'B-ORG', 'B-MISC' have no example in 'ner_tags' of the training set"]
    dyn = load_dynamics(tmp_path / "run")
    assert dyn.label_names == tags and dyn.logits.shape[-1] == len(tags)
    cli_fails(capsys, ["train", "--task", "token-classification", "--model", model, "--dataset",
                       write_jsonl(tmp_path / "bad.jsonl", [{**rows[0], "ner_tags": [5] * len(rows[0]["tokens"])}]),
                       "--output-dir", str(tmp_path / "o")],
              f"tag 5 in 'ner_tags' of the training set is out of range for model {model!r}, a classifier with 5 labels")


def test_output_dir_holding_another_data_sets_dynamics(tmp_path, tiny_model, toy_rows, toy_jsonl, capsys):
    out = str(tmp_path / "run")
    assert main(["train", "--model", tiny_model, "--dataset", str(toy_jsonl), "--output-dir", out, *FAST]) == 0
    before = load_dynamics(out).logits.copy()
    other = write_jsonl(tmp_path / "other.jsonl", toy_rows[:30])
    line = cli_fails(capsys, ["train", "--model", tiny_model, "--dataset", other, "--output-dir", out, *FAST],
                     "already holds training dynamics of a different data set")
    assert "--overwrite_output_dir" in line and "overwrite_dynamics" not in line
    np.testing.assert_array_equal(load_dynamics(out).logits, before)  # nothing already written lost


def test_unknown_command_and_help(capsys):
    assert main(["nope"]) == 2
    assert "unknown command 'nope'" in capsys.readouterr().err
    assert main(["--help"]) == 0
    assert "import-allenai" in capsys.readouterr().out


def test_allenai_round_trip_through_the_cli(tmp_path, capsys):
    rng = np.random.default_rng(4)
    src = tmp_path / "paper" / "training_dynamics"
    src.mkdir(parents=True)
    logits = rng.normal(size=(6, 2, 3)).round(4)
    guids = [f"ex-{i}" for i in range(6)]
    for e in range(2):
        order = rng.permutation(6)
        (src / f"dynamics_epoch_{e}.jsonl").write_text("".join(
            json.dumps({"guid": guids[i], f"logits_epoch_{e}": logits[i, e].tolist(), "gold": i % 3}) + "\n"
            for i in order.tolist()))
    assert main(["import-allenai", str(tmp_path / "paper"), str(tmp_path / "run")]) == 0
    dyn = load_dynamics(tmp_path / "run")
    np.testing.assert_allclose(dyn.logits, logits, atol=1e-6)  # guids sort as ex-0..ex-5
    np.testing.assert_array_equal(dyn.gold, np.arange(6) % 3)
    assert main(["export-allenai", str(tmp_path / "run"), str(tmp_path / "back")]) == 0
    back = [json.loads(line) for line in (tmp_path / "back" / "training_dynamics" / "dynamics_epoch_1.jsonl")
            .read_text().splitlines()]
    assert [b["guid"] for b in back] == guids
    np.testing.assert_allclose([b["logits_epoch_1"] for b in back], logits[:, 1], atol=1e-6)
    # importing again into the same folder is refused, nothing overwritten
    cli_fails(capsys, ["import-allenai", str(tmp_path / "back"), str(tmp_path / "run")], "already holds")


def test_import_allenai_bad_input(tmp_path, capsys):
    cli_fails(capsys, ["import-allenai", str(tmp_path), str(tmp_path / "run")], "no allenai dynamics found")
    d = tmp_path / "bad" / "training_dynamics"
    d.mkdir(parents=True)
    (d / "dynamics_epoch_0.jsonl").write_text(json.dumps({"guid": 1, "gold": 0}) + "\n")
    cli_fails(capsys, ["import-allenai", str(tmp_path / "bad"), str(tmp_path / "run")], "missing fields")


@pytest.mark.parametrize("argv", [["train", "--model", "x", "--dataset", "y"]])
def test_output_dir_is_required(argv, capsys):
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2
    assert "--output-dir" in capsys.readouterr().err


def test_train_caps_max_length_at_the_models_positions(tmp_path, tiny_model, toy_rows, capsys):
    # the tiny model has 64 positions; the default --max-length 128 used to crash on a 70-token example
    rows = [dict(r) for r in toy_rows]
    rows[0]["premise"] = " ".join(["a man is eating in the park"] * 10)
    data = write_jsonl(tmp_path / "long.jsonl", rows)
    with pytest.warns(UserWarning, match="--max-length 128 is longer than the model's 64 positions: using 64"):
        assert main(["train", "--model", tiny_model, "--dataset", data, "--text-columns", "premise,hypothesis",
                     "--output-dir", str(tmp_path / "run"), *FAST]) == 0
    assert load_dynamics(tmp_path / "run").n_examples == len(rows)


def test_train_again_into_a_run_folder(tmp_path, tiny_model, toy_jsonl, toy_rows, capsys):
    out = tmp_path / "run"
    args = ["train", "--model", tiny_model, "--dataset", str(toy_jsonl), "--text-columns", "premise,hypothesis",
            "--output-dir", str(out), *FAST]
    three = [a if a != "1" else "3" for a in args]  # --num_train_epochs 3
    assert main(three) == 0
    before = {p.name: p.read_bytes() for p in (out / "training_dynamics").iterdir() if p.is_file()}
    line = cli_fails(capsys, args, "already holds 3 recorded epoch(s) of this data set")
    assert "--overwrite_output_dir" in line and "--resume_from_checkpoint" in line and "=True" not in line
    assert {p.name: p.read_bytes() for p in (out / "training_dynamics").iterdir() if p.is_file()} == before
    assert main([*args, "--overwrite_output_dir"]) == 0
    assert load_dynamics(out).epochs == [0]  # a new store, not 1 new epoch beside 2 old ones


@pytest.mark.parametrize("extra,message", [
    (["--resume_from_checkpoint", "/nonexistent/checkpoint-5"], "checkpoint folder not found"),
    (["--num_train_epochs", "0"], "nothing to train"),
])
def test_train_refuses_before_training(tmp_path, tiny_model, toy_jsonl, capsys, extra, message):
    cli_fails(capsys, ["train", "--model", tiny_model, "--dataset", str(toy_jsonl), "--text-columns",
                       "premise,hypothesis", "--output-dir", str(tmp_path / "run"), *FAST, *extra], message)


def test_train_names_a_missing_model_folder(tmp_path, toy_jsonl, capsys):
    cli_fails(capsys, ["train", "--model", str(tmp_path / "no-such-model"), "--dataset", str(toy_jsonl),
                       "--output-dir", str(tmp_path / "run"), *FAST], "model folder not found")


@pytest.mark.parametrize("name,local", [("models/no-such-model", True), ("no/such/model", True),
                                        ("no-such-org/no-such-model", False), ("no-such-model", False)])
def test_a_path_like_model_name_is_a_folder_and_a_hub_name_fails_in_one_line(tmp_path, toy_jsonl, capsys,
                                                                             monkeypatch, name, local):
    """PARENT/NAME whose parent exists here, or more than one /, is a folder; a hub name gets the hub's reason."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "models").mkdir()
    code = main(["train", "--model", name, "--dataset", str(toy_jsonl), "--output-dir", "run", *FAST])
    err = capsys.readouterr().err
    assert code == 2 and [line for line in err.splitlines() if line.strip()] == [err.strip()], err
    expected = f"model folder not found: {name}" if local else f"cannot load model {name!r} (no local folder"
    assert err.startswith(f"datacarto: error: {expected}"), err
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("change,columns,message", [
    (lambda r, i: {**r, "premise": None if i == 3 else r["premise"]}, "premise,hypothesis",
     "text column 'premise' of the training set has 1 missing value(s) (first in row 3)"),
    (lambda r, i: {**r, "premise": i}, "premise,hypothesis", "text column 'premise' of the training set holds int64"),
    (lambda r, i: r, "premise,label", "column 'label' is the label column"),
])
def test_train_checks_text_columns(tmp_path, tiny_model, toy_rows, capsys, change, columns, message):
    data = write_jsonl(tmp_path / "bad.jsonl", [change(r, i) for i, r in enumerate(toy_rows)])
    cli_fails(capsys, ["train", "--model", tiny_model, "--dataset", data, "--text-columns", columns,
                       "--output-dir", str(tmp_path / "run"), *FAST], message)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("sampling", ["group_by_length", "sequential", "random"])
def test_every_stored_split_keeps_the_datas_gold_whatever_the_sampler(tmp_path, tiny_model, toy_rows, sampling):
    """Validation, test and cross-fitted out-of-sample stores: gold equals the file's label, row by row."""
    rows = [dict(r, hypothesis=r["hypothesis"] + " and more" * (i % 5)) for i, r in enumerate(toy_rows)]
    train = write_jsonl(tmp_path / "train.jsonl", rows[:36])
    val = write_jsonl(tmp_path / "val.jsonl", rows[36:48])
    test = write_jsonl(tmp_path / "test.jsonl", rows[48:])
    common = ["--model", tiny_model, "--dataset", train, "--text-columns", "premise,hypothesis",
              "--train_sampling_strategy", sampling, "--per_device_eval_batch_size", "4", *FAST]
    out = tmp_path / "run"
    assert main(["train", *common, "--validation", val, "--test", test, "--eval_strategy", "epoch",
                 "--output-dir", str(out)]) == 0
    labels = [r["label"] for r in rows]
    np.testing.assert_array_equal(load_dynamics(out, "train").gold, labels[:36])
    np.testing.assert_array_equal(load_dynamics(out, "validation").gold, labels[36:48])
    np.testing.assert_array_equal(load_dynamics(out, "test").gold, labels[48:])
    folds = tmp_path / "folds"
    assert main(["train", *common, "--folds", "2", "--output-dir", str(folds)]) == 0
    oos = load_dynamics(folds)
    assert oos.manifest["dynamics"] == "out-of-sample"
    np.testing.assert_array_equal(oos.gold, labels[:36])
