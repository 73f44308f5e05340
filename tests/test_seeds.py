"""Seed stability (one run per seed, regions compared) and the ``train --folds/--seeds`` flags."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from conftest import cli_fails
from datacarto.cli import main
from datacarto.errors import DatacartoError
from datacarto.metrics import REGIONS

FAST = ["--num_train_epochs", "2", "--per_device_train_batch_size", "8", "--use_cpu", "--disable_tqdm", "true",
        "--save_strategy", "no", "--logging_strategy", "no", "--learning_rate", "5e-3"]


def test_majority_and_stable_follow_the_votes():
    from datacarto.dynamics.compare import with_majority
    from datacarto.dynamics.stability import region_agreement, stability_summary

    e, a, h = REGIONS
    table = pd.DataFrame({"s0": [e, a, h, e, a], "s1": [e, a, e, h, h], "s2": [e, h, e, a, e]},
                         index=pd.Index(range(5), name="row_id"))
    out = with_majority(table)
    # row 2: two of three say easy; rows 3 and 4: three different regions, the tie goes to the earliest run
    assert out["majority"].astype(str).tolist() == [e, a, e, e, a]
    assert out["stable"].tolist() == [True, False, False, False, False]
    np.testing.assert_allclose(region_agreement(out), [1, 2 / 3, 2 / 3, 1 / 3, 1 / 3])
    s = stability_summary(out)
    assert (s["n"], s["stable"], s["unstable"]) == (5, 1, 4)
    assert s["per_region"][e] == {"n": 3, "stable": 1} and s["per_region"][a] == {"n": 2, "stable": 0}


def test_seed_regions_refuses_one_run_or_different_data(tmp_path):
    from datacarto.dynamics.stability import seed_regions

    with pytest.raises(DatacartoError, match="at least 2 runs"):
        seed_regions([tmp_path])


def test_train_seeds_writes_regions_per_seed_and_their_stability(tmp_path, tiny_model, toy_jsonl, capsys):
    from datacarto.dynamics.cache import get_metrics

    out = tmp_path / "seeds"
    assert main(["train", "--model", tiny_model, "--dataset", str(toy_jsonl), "--output-dir", str(out),
                 "--seeds", "0", "1", "2", *FAST]) == 0
    printed = capsys.readouterr().out
    table = pd.read_parquet(out / "seed_stability.parquet").set_index("row_id")
    # the same computation by hand, from each seed's own metrics
    regions = pd.DataFrame({f"seed_{s}": get_metrics(out / f"seed_{s}")["region"].astype(str) for s in (0, 1, 2)})
    assert list(table.columns) == ["seed_0", "seed_1", "seed_2", "majority", "stable"]
    for col in regions:
        assert table[col].astype(str).tolist() == regions[col].tolist()
    stable = (regions.nunique(axis=1) == 1).to_numpy()
    assert table["stable"].tolist() == stable.tolist()
    votes = regions.apply(lambda row: row.value_counts().max(), axis=1).to_numpy()
    for row, majority in zip(regions.itertuples(index=False), table["majority"].astype(str)):
        assert list(row).count(majority) == max(list(row).count(r) for r in REGIONS)
    assert (votes[stable] == 3).all()
    assert f"{int(stable.sum())} of 60 examples" in printed
    # the seeds really differ: not every seed gives the same logits
    from datacarto.dynamics.store import load_dynamics

    assert not np.array_equal(load_dynamics(out / "seed_0").logits, load_dynamics(out / "seed_1").logits)


def test_train_folds_records_both_stores(tmp_path, tiny_model, toy_jsonl, capsys):
    from datacarto.dynamics.store import load_dynamics, load_examples

    out = tmp_path / "cf"
    assert main(["train", "--model", tiny_model, "--dataset", str(toy_jsonl), "--output-dir", str(out),
                 "--folds", "3", "--dynamics", "in-sample", *FAST]) == 0
    assert "split 'oos'" in capsys.readouterr().out
    assert load_dynamics(out).manifest["dynamics"] == "in-sample"
    oos = load_dynamics(out, "oos")
    assert np.array_equal(oos.ids, np.arange(60)) and oos.n_epochs == 2
    assert sorted(np.bincount(load_examples(out)["fold"])) == [20, 20, 20]


def test_train_repeat_flags_refuse_bad_combinations(tmp_path, tiny_model, toy_jsonl, capsys):
    base = ["train", "--model", tiny_model, "--dataset", str(toy_jsonl), "--output-dir", str(tmp_path / "x"), *FAST]
    cli_fails(capsys, [*base, "--dynamics", "in-sample"], "it needs --folds K")
    cli_fails(capsys, [*base, "--seeds", "1", "1"], "at least 2 different seeds")
    cli_fails(capsys, [*base, "--folds", "1"], "folds must be >= 2")


def test_pipeline_with_folds_and_seeds(tmp_path):
    """``folds`` and ``seeds`` in the pipeline: the map reads the cross-fitted run, the report shows both."""
    from datacarto.demo_data import LABEL_NAMES, write_demo_dataset
    from datacarto.dynamics.cache import get_metrics
    from datacarto.pipeline import PipelineConfig, run_pipeline
    from datacarto.testing import make_tiny_model_dir

    paths = write_demo_dataset(tmp_path / "data", n_train=48, n_validation=24, n_test=0, seed=0)
    rows = [json.loads(line) for p in paths.values() for line in p.read_text().splitlines()]
    model = make_tiny_model_dir(tmp_path / "tiny", [r["premise"] + " " + r["hypothesis"] for r in rows])
    training = {"num_train_epochs": 2, "per_device_train_batch_size": 16, "learning_rate": 5e-3, "use_cpu": True,
                "disable_tqdm": True, "save_strategy": "no", "logging_strategy": "no", "report_to": "none"}
    config = PipelineConfig(model=model, dataset=str(paths["train"]), validation=str(paths["validation"]),
                            output_dir=str(tmp_path / "run"), text_columns=["premise", "hypothesis"],
                            class_names=list(LABEL_NAMES), max_length=48, training_args=training,
                            focus_training_args={"num_train_epochs": 1}, control=False,
                            recipes=[{"name": "hard", "region": "hard-to-learn", "fraction": 0.25}],
                            folds=3, seeds=[0, 1])
    result = run_pipeline(config, quiet=True)
    out = result.output_dir
    m = pd.read_parquet(out / "metrics" / "train.parquet").set_index("row_id")
    oos = get_metrics(out / "crossfit")
    assert m["confidence"].tolist() == oos["confidence"].tolist()  # the map's metrics: out-of-sample
    table = pd.read_parquet(out / "metrics" / "seed_stability.parquet").set_index("row_id")
    seed1 = get_metrics(out / "seeds" / "seed_1")["region"].astype(str)
    assert table["seed_0"].astype(str).tolist() == m["region"].astype(str).tolist()
    assert table["seed_1"].astype(str).tolist() == seed1.tolist()
    stable = int((m["region"].astype(str) == seed1).sum())
    assert int(table["stable"].sum()) == stable
    md = (out / "report.md").read_text()
    assert "## Cross-fitted dynamics" in md and "## Seed stability" in md
    assert f"{stable} of 48 examples" in md
