"""The built-in demo data set: exact planted shares, seeding, columns, learnability; the demo config."""

from __future__ import annotations

import numpy as np
import pytest

from datacarto.demo_data import LABEL_NAMES, make_demo_dataset, write_demo_dataset
from datacarto.errors import DatacartoError


@pytest.fixture(scope="module")
def demo():
    return make_demo_dataset(n_train=250, n_validation=120, n_test=80, flip=0.08, ambiguous=0.1, seed=3)


def test_splits_columns_and_label_names(demo):
    assert set(demo) == {"train", "validation", "test"}
    assert [len(demo[s]) for s in ("train", "validation", "test")] == [250, 120, 80]
    for ds in demo.values():
        assert ds.column_names == ["premise", "hypothesis", "label", "original_label", "is_flipped", "is_ambiguous"]
        assert ds.features["label"].names == LABEL_NAMES == ["entailment", "neutral", "contradiction"]
        assert set(ds["label"]) <= {0, 1, 2}
        assert all(p.endswith(".") and h.endswith(".") for p, h in zip(ds["premise"], ds["hypothesis"]))


def test_exact_flipped_and_ambiguous_shares(demo):
    train = demo["train"].to_pandas()
    assert train["is_flipped"].sum() == round(0.08 * 250) == 20
    assert train["is_ambiguous"].sum() == 25
    for split, n in (("validation", 120), ("test", 80)):
        frame = demo[split].to_pandas()
        assert frame["is_flipped"].sum() == 0  # evaluation sets stay clean
        assert frame["is_ambiguous"].sum() == round(0.1 * n)
        assert (frame["label"] == frame["original_label"]).all()
    # a flipped label differs from the template's, and only flipped ones do
    assert ((train["label"] != train["original_label"]) == train["is_flipped"]).all()
    assert not (train["is_flipped"] & train["is_ambiguous"]).any()
    # the templates' labels are balanced
    counts = np.bincount(train.loc[~train["is_ambiguous"], "original_label"], minlength=3)
    assert counts.max() - counts.min() <= 1


def test_seeded_and_deterministic(demo):
    again = make_demo_dataset(n_train=250, n_validation=120, n_test=80, flip=0.08, ambiguous=0.1, seed=3)
    for split in demo:
        assert demo[split].to_list() == again[split].to_list()
    other = make_demo_dataset(n_train=250, n_validation=120, n_test=80, flip=0.08, ambiguous=0.1, seed=4)
    assert other["train"]["premise"] != demo["train"]["premise"]


def test_no_pair_repeats_within_or_across_splits(demo):
    pairs = [(p, h) for ds in demo.values() for p, h in zip(ds["premise"], ds["hypothesis"])]
    assert len(pairs) == len(set(pairs))


def test_vocabulary_is_varied_and_task_is_learnable(demo):
    """A bag-of-words classifier learns the clean pairs well: the demo's model can learn it fast."""
    from sklearn.feature_extraction.text import CountVectorizer
    from sklearn.linear_model import LogisticRegression

    big = make_demo_dataset(n_train=600, n_validation=10, n_test=300, seed=0)
    words = {w for p in big["train"]["premise"] for w in p.lower().split()}
    assert len(words) > 100
    vec = CountVectorizer(ngram_range=(1, 2))
    clf = LogisticRegression(max_iter=2000).fit(vec.fit_transform(big["train"]["hypothesis"]), big["train"]["label"])
    test = big["test"].to_pandas()
    clean = ~test["is_ambiguous"]
    pred = clf.predict(vec.transform(test["hypothesis"]))
    assert (pred[clean] == test["label"][clean]).mean() > 0.75
    # ambiguous pairs carry one of two plausible labels at random: far harder
    assert (pred[~clean] == test["label"][~clean]).mean() < 0.7


@pytest.mark.parametrize("kwargs", [{"flip": 1.5}, {"ambiguous": -0.1}, {"flip": 0.6, "ambiguous": 0.6},
                                    {"n_train": 0}, {"n_test": -1}])
def test_bad_arguments(kwargs):
    with pytest.raises(DatacartoError):
        make_demo_dataset(**{"n_train": 20, "n_validation": 5, "n_test": 5, **kwargs})


def test_write_demo_dataset_keeps_unchanged_files(tmp_path):
    """Rewriting identical data keeps the files (and mtimes), so a rerun of the demo is up to date."""
    import json

    paths = write_demo_dataset(tmp_path, n_train=30, n_validation=10, n_test=10, seed=1)
    rows = [json.loads(line) for line in paths["train"].read_text().splitlines()]
    assert len(rows) == 30 and rows[0].keys() == {"premise", "hypothesis", "label", "original_label", "is_flipped",
                                                  "is_ambiguous"}
    mtimes = {s: p.stat().st_mtime_ns for s, p in paths.items()}
    write_demo_dataset(tmp_path, n_train=30, n_validation=10, n_test=10, seed=1)
    assert {s: p.stat().st_mtime_ns for s, p in paths.items()} == mtimes
    write_demo_dataset(tmp_path, n_train=30, n_validation=10, n_test=10, seed=2)
    assert paths["train"].stat().st_mtime_ns != mtimes["train"] or \
        [json.loads(line) for line in paths["train"].read_text().splitlines()] != rows


def test_demo_config(tmp_path, tiny_model):
    from datacarto.commands.demo import demo_config

    config = demo_config(tmp_path / "demo", n_train=40, n_validation=20, n_test=20, model=tiny_model)
    assert config.model == tiny_model
    assert config.class_names == LABEL_NAMES and config.text_columns == ["premise", "hypothesis"]
    assert config.noise_column == "is_flipped"
    assert config.training_args["num_train_epochs"] == 3
    for split in ("train", "validation", "test"):
        assert (tmp_path / "demo" / "demo_data" / f"{split}.jsonl").is_file()
    assert [r["name"] for r in config.recipes] == ["ambiguous-33", "hard-10", "drop-flagged", "relabel-flagged"]
    assert [r.get("action") for r in config.recipes] == [None, None, "drop", "relabel"]  # the cleaning recipes
