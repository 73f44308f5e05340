"""Cross-fitted dynamics: folds, the merged out-of-sample and in-sample stores, and what they find."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from conftest import training_args
from datacarto.errors import DatacartoError

FOLDS = 3


@pytest.fixture(scope="module")
def crossfit_run(tmp_path_factory, toy_rows, tiny_model):
    import datasets

    from datacarto.train.crossfit import train_crossfit

    out = tmp_path_factory.mktemp("crossfit") / "run"
    result = train_crossfit(model=tiny_model, train=datasets.Dataset.from_list(toy_rows), folds=FOLDS, seed=7,
                            output_dir=out, training_args=training_args(out))
    return result


def test_folds_are_disjoint_stratified_and_seeded():
    from datacarto.train.crossfit import fold_assignments

    labels = np.array([0] * 31 + [1] * 20 + [2] * 12)
    folds = fold_assignments(labels, 4, seed=3)
    assert folds.shape == labels.shape and set(folds) == {0, 1, 2, 3}  # every example in exactly one fold
    for label in (0, 1, 2):  # stratified: each label spread evenly (counts differ by at most one)
        counts = np.bincount(folds[labels == label], minlength=4)
        assert counts.max() - counts.min() <= 1
    assert np.array_equal(folds, fold_assignments(labels, 4, seed=3))
    assert not np.array_equal(folds, fold_assignments(labels, 4, seed=4))


def test_folds_refuse_a_label_rarer_than_the_folds():
    from datacarto.train.crossfit import fold_assignments

    with pytest.raises(DatacartoError, match="class 1 has 2 examples"):
        fold_assignments(np.array([0, 0, 0, 1, 1]), 3)
    with pytest.raises(DatacartoError, match="folds must be >= 2"):
        fold_assignments(np.array([0, 1]), 1)


def test_every_example_once_per_epoch_out_of_sample(crossfit_run, toy_rows):
    from datacarto.dynamics.store import load_dynamics, load_examples
    from datacarto.train.crossfit import fold_assignments

    out, n = crossfit_run.output_dir, len(toy_rows)
    labels = np.array([r["label"] for r in toy_rows])
    folds = fold_assignments(labels, FOLDS, seed=7)
    assert np.array_equal(crossfit_run.folds, folds)
    oos = load_dynamics(out)  # the main store: out-of-sample by default
    assert oos.manifest["dynamics"] == "out-of-sample" and oos.manifest["crossfit"]["folds"] == FOLDS
    assert np.array_equal(oos.ids, np.arange(n)) and oos.n_epochs == 2
    assert np.array_equal(oos.gold, labels) and np.isfinite(oos.logits).all()
    examples = load_examples(out)
    assert np.array_equal(examples["fold"].to_numpy(), folds)
    assert examples["premise"].tolist() == [r["premise"] for r in toy_rows]
    for k, fold_dir in enumerate(crossfit_run.fold_dirs):
        held = np.flatnonzero(folds == k)
        trained = np.load(fold_dir / "train_rows.npy")
        assert np.array_equal(np.sort(np.concatenate([held, trained])), np.arange(n))  # disjoint, complete
        # the fold's model predicted exactly its held-out rows, and those logits are the merged ones
        own = load_dynamics(fold_dir, "heldout")
        assert own.n_examples == len(held)
        np.testing.assert_array_equal(oos.logits[held], own.logits)


def test_in_sample_store_comes_from_a_model_that_trained_on_each_example(crossfit_run, toy_rows):
    from datacarto.dynamics.store import load_dynamics

    out, folds = crossfit_run.output_dir, crossfit_run.folds
    ins = load_dynamics(out, "insample")
    assert ins.manifest["dynamics"] == "in-sample" and np.array_equal(ins.ids, np.arange(len(toy_rows)))
    for k in range(FOLDS):
        source = crossfit_run.fold_dirs[(k + 1) % FOLDS]
        trained = np.load(source / "train_rows.npy")
        own = load_dynamics(source)
        rows = np.flatnonzero(folds == k)
        local = np.searchsorted(trained, rows)
        assert np.array_equal(trained[local], rows)  # the source model did train on fold k
        np.testing.assert_array_equal(ins.logits[rows], own.logits[local])


def test_metrics_and_cli_work_unchanged_on_both_stores(crossfit_run, capsys):
    from datacarto.cli import main
    from datacarto.dynamics.cache import get_metrics

    out = crossfit_run.output_dir
    for split in ("train", "insample"):
        m = get_metrics(out, split=split)
        assert len(m) == 60 and m["region"].notna().all()
    assert main(["metrics", str(out), "--split", "insample"]) == 0
    assert "(insample): 60 examples, 2 epochs" in capsys.readouterr().out


def test_reproducible_and_in_sample_as_main_store(crossfit_run, toy_rows, tiny_model, tmp_path):
    import datasets

    from datacarto.dynamics.store import load_dynamics
    from datacarto.train.crossfit import train_crossfit

    out = tmp_path / "again"
    train_crossfit(model=tiny_model, train=datasets.Dataset.from_list(toy_rows), folds=FOLDS, seed=7,
                   output_dir=out, training_args=training_args(out), dynamics="in-sample")
    first = crossfit_run.output_dir
    np.testing.assert_array_equal(load_dynamics(out).logits, load_dynamics(first, "insample").logits)
    np.testing.assert_array_equal(load_dynamics(out, "oos").logits, load_dynamics(first).logits)
    with pytest.raises(DatacartoError, match=r"already holds recorded epochs: .*\(overwrite_dynamics=True\)"):
        train_crossfit(model=tiny_model, train=datasets.Dataset.from_list(toy_rows), folds=FOLDS, seed=7,
                       output_dir=out, training_args=training_args(out))


def test_cross_fitting_finds_flips_a_memorising_model_hides(tiny_model_no_dropout, tmp_path):
    """A model that memorises its flipped labels in-sample still disagrees with them out-of-sample."""
    import datasets

    from datacarto.dynamics.cache import get_metrics
    from datacarto.noise import audit_scores, inject_label_noise
    from datacarto.testing import toy_nli
    from datacarto.train.crossfit import train_crossfit

    rows = toy_nli(90, seed=3)
    noisy, flipped = inject_label_noise(np.array([r["label"] for r in rows]), 0.15, seed=0)
    rows = [{**r, "label": int(y)} for r, y in zip(rows, noisy)]
    out = tmp_path / "memo"
    train_crossfit(model=tiny_model_no_dropout, train=datasets.Dataset.from_list(rows), folds=2, seed=0,
                   output_dir=out, training_args=training_args(out, num_train_epochs=12))
    truth = pd.Series(flipped)
    ins, oos = get_metrics(out, split="insample"), get_metrics(out)
    # in-sample the model fits most labels, flipped ones included; held out it predicts the cue's label
    assert (ins["last_pred"] == ins["gold"]).mean() > 0.75
    assert (ins["last_pred"] == ins["gold"])[flipped].mean() > (oos["last_pred"] == oos["gold"])[flipped].mean()
    auroc_in = audit_scores(ins, truth).set_index("score").loc["last_loss", "auroc"]
    auroc_oos = audit_scores(oos, truth).set_index("score").loc["last_loss", "auroc"]
    assert auroc_in < auroc_oos
    assert auroc_oos > 0.7


@pytest.mark.distributed
def test_two_processes_cross_fit_each_example_once(tmp_path, tiny_model):
    """``torchrun -m datacarto.cli train --folds 2``: the folds run in sequence, each distributed; rank 0 merges."""
    import json
    import socket
    import subprocess
    import sys

    from datacarto.dynamics.store import load_dynamics
    from datacarto.testing import toy_nli

    rows = toy_nli(61, seed=3)  # odd: the distributed sampler pads with a repeated example
    data = tmp_path / "train.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "1", "--nproc_per_node", "2",
           "--master_addr", "127.0.0.1", "--master_port", str(port), "-m", "datacarto.cli", "train",
           "--model", tiny_model, "--dataset", str(data), "--output-dir", str(out), "--folds", "2",
           "--num_train_epochs", "2", "--per_device_train_batch_size", "8", "--learning_rate", "5e-3", "--use_cpu",
           "--disable_tqdm", "true", "--save_strategy", "no", "--logging_strategy", "no", "--seed", "0"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    for split in ("train", "insample"):
        dyn = load_dynamics(out, split)
        np.testing.assert_array_equal(dyn.ids, np.arange(61))
        np.testing.assert_array_equal(dyn.gold, [r["label"] for r in rows])
        assert dyn.epochs == [0, 1] and np.isfinite(dyn.logits).all()
