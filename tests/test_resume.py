"""Resume and crashes: no epoch lost or duplicated; finished epochs survive a kill -9."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from datasets import Dataset
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from conftest import stop_at, training_args
from datacarto import CartographyTrainer, load_dynamics
from datacarto.data import prepare_labels, tokenize
from datacarto.dynamics.store import dynamics_dir, list_epoch_files

SCRIPT = Path(__file__).with_name("train_script.py")



def _trainer(model_dir, rows, out, callbacks=()):
    tok = AutoTokenizer.from_pretrained(model_dir)
    raw, spec = prepare_labels(Dataset.from_list(rows), text_columns=["premise", "hypothesis"])
    data = tokenize(raw, tok, spec)
    model = AutoModelForSequenceClassification.from_pretrained(model_dir)
    # 60 rows / batch 8 = 8 steps an epoch; a checkpoint every 5 steps lands inside epochs
    args = training_args(out, num_train_epochs=3, learning_rate=0.0, save_strategy="steps", save_steps=5)
    return CartographyTrainer(model=model, args=args, train_dataset=data, processing_class=tok,
                              callbacks=list(callbacks))


def test_resume_from_a_mid_epoch_checkpoint(tmp_path, tiny_model_no_dropout, toy_rows):
    first = _trainer(tiny_model_no_dropout, toy_rows, tmp_path, [stop_at(13)])
    with pytest.warns(UserWarning, match="stopped inside epoch 1"):
        first.train()
    assert sorted(list_epoch_files(dynamics_dir(tmp_path))) == [0]  # the cut epoch is not written
    assert (tmp_path / "checkpoint-10" / "datacarto_recorder_rank0.npz").is_file()

    second = _trainer(tiny_model_no_dropout, toy_rows, tmp_path)
    second.train(resume_from_checkpoint=True)  # from checkpoint-10: 2 batches of epoch 1 were done
    dyn = load_dynamics(tmp_path)
    assert dyn.epochs == [0, 1, 2] and dyn.manifest["epochs"] == [0, 1, 2]
    assert not np.isnan(dyn.logits).any()
    # lr = 0: every epoch holds the same logits; a lost or duplicated batch would show as NaN or a gap
    np.testing.assert_allclose(dyn.logits[:, 1], dyn.logits[:, 0], atol=1e-5)
    np.testing.assert_allclose(dyn.logits[:, 2], dyn.logits[:, 0], atol=1e-5)


def test_resume_without_recorder_state_fills_the_rows_trained_before_the_checkpoint(
        tmp_path, tiny_model_no_dropout, toy_rows):
    # without the checkpoint's recorder state, the 16 rows of epoch 1 trained before checkpoint-10 are
    # predicted at the epoch end and marked, so the epoch is still complete (never a gap or a silent hole)
    _trainer(tiny_model_no_dropout, toy_rows, tmp_path, [stop_at(13)]).train()
    (tmp_path / "checkpoint-10" / "datacarto_recorder_rank0.npz").unlink()
    with pytest.warns(UserWarning, match="no recorder state"):
        _trainer(tiny_model_no_dropout, toy_rows, tmp_path).train(resume_from_checkpoint=True)
    dyn = load_dynamics(tmp_path)
    assert dyn.epochs == [0, 1, 2] and not np.isnan(dyn.logits).any()
    assert dyn.manifest["snapshots"]["1"]["filled"] == 16 and "filled" not in dyn.manifest["snapshots"]["2"]
    filled = pq.read_table(dynamics_dir(tmp_path) / "epoch_001.parquet").column("filled").to_numpy()
    assert filled.sum() == 16
    np.testing.assert_allclose(dyn.logits[:, 1], dyn.logits[:, 0], atol=1e-5)  # lr = 0: same logits


def test_kill_9_mid_epoch_keeps_finished_epochs_and_resumes(tmp_path, tiny_model, toy_jsonl, toy_rows):
    out, marker = tmp_path / "run", tmp_path / "marker"
    proc = subprocess.Popen([sys.executable, str(SCRIPT), "--model", tiny_model, "--data", str(toy_jsonl),
                             "--out", str(out), "--epochs", "3", "--pause-at-step", "12", "--marker", str(marker)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 120
    while not marker.exists():
        assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
        assert time.time() < deadline, "the training process never reached step 12"
        time.sleep(0.2)
    proc.kill()  # SIGKILL in the middle of epoch 1 (step 12 of 8..16)
    proc.wait()
    dyn = load_dynamics(out)
    assert dyn.epochs == [0] and dyn.n_examples == len(toy_rows) and not np.isnan(dyn.logits).any()
    assert not [p for p in dynamics_dir(out).iterdir() if p.name.endswith(".tmp")]

    tok = AutoTokenizer.from_pretrained(tiny_model)
    raw, spec = prepare_labels(Dataset.from_list(toy_rows), text_columns=["premise", "hypothesis"])
    model = AutoModelForSequenceClassification.from_pretrained(tiny_model)
    args = training_args(out, num_train_epochs=3, save_strategy="epoch")
    CartographyTrainer(model=model, args=args, train_dataset=tokenize(raw, tok, spec),
                       processing_class=tok).train(resume_from_checkpoint=True)
    after = load_dynamics(out)
    assert after.epochs == [0, 1, 2] and not np.isnan(after.logits).any()
    np.testing.assert_array_equal(after.logits[:, 0], dyn.logits[:, 0])  # epoch 0 untouched
