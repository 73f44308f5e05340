"""The Parquet store: round trips, alignment across epochs, and clear errors on bad files."""

from __future__ import annotations

import json
import os

import numpy as np
import pandas as pd
import pytest

from datacarto.dynamics.store import (
    DynamicsWriter,
    dataset_fingerprint,
    dynamics_dir,
    example_fingerprints,
    load_dynamics,
    load_examples,
)
from datacarto.errors import DatacartoError


def _write(tmp_path, n=7, e=3, c=3, seed=0, shuffle=True):
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(n, e, c)).astype(np.float32)
    gold = rng.integers(0, c, size=n)
    writer = DynamicsWriter(dynamics_dir(tmp_path / "run"))
    for j in range(e):
        order = rng.permutation(n) if shuffle else np.arange(n)
        writer.write_epoch(j, order, gold[order], logits[order, j], epoch=j + 1.0, global_step=10 * (j + 1))
    return writer, gold, logits


def test_round_trip_sorts_by_row_id_and_aligns_epochs(tmp_path):
    writer, gold, logits = _write(tmp_path)
    dyn = load_dynamics(tmp_path / "run")
    ids, g, lg = dyn
    np.testing.assert_array_equal(ids, np.arange(7))
    np.testing.assert_array_equal(g, gold)
    np.testing.assert_array_equal(lg, logits)  # float32 stored exactly
    assert dyn.n_epochs == 3 and dyn.num_labels == 3
    assert dyn.manifest["epochs"] == [0, 1, 2]
    assert dyn.manifest["snapshots"]["2"]["global_step"] == 30
    # the training_dynamics folder itself is accepted too
    np.testing.assert_array_equal(load_dynamics(tmp_path / "run" / "training_dynamics").logits, logits)


def test_select_epochs(tmp_path):
    _, _, logits = _write(tmp_path)
    dyn = load_dynamics(tmp_path / "run", epochs=[0, 2])
    np.testing.assert_array_equal(dyn.logits, logits[:, [0, 2]])
    with pytest.raises(DatacartoError, match="no recorded epochs"):
        load_dynamics(tmp_path / "run", epochs=[5])


def test_epochs_over_different_examples_are_refused(tmp_path):
    writer, gold, logits = _write(tmp_path)
    writer.write_epoch(3, np.arange(6), gold[:6], logits[:6, 0])
    with pytest.raises(DatacartoError, match="same examples"):
        load_dynamics(tmp_path / "run")


def test_gold_labels_changing_between_epochs_are_refused(tmp_path):
    writer, gold, logits = _write(tmp_path)
    writer.write_epoch(3, np.arange(7), (gold + 1) % 3, logits[:, 0])
    with pytest.raises(DatacartoError, match="gold labels differ"):
        load_dynamics(tmp_path / "run")


def test_nothing_recorded(tmp_path):
    with pytest.raises(DatacartoError, match="no training dynamics"):
        load_dynamics(tmp_path)


def test_truncated_file_is_a_clear_error(tmp_path):
    _write(tmp_path)
    path = dynamics_dir(tmp_path / "run") / "epoch_001.parquet"
    path.write_bytes(path.read_bytes()[:40])
    with pytest.raises(DatacartoError, match="unreadable or partial"):
        load_dynamics(tmp_path / "run")


def test_manifest_listing_a_missing_epoch(tmp_path):
    _write(tmp_path)
    (dynamics_dir(tmp_path / "run") / "epoch_002.parquet").unlink()
    with pytest.raises(DatacartoError, match=r"epochs \[2\] whose files are missing"):
        load_dynamics(tmp_path / "run")


def test_unreadable_manifest(tmp_path):
    _write(tmp_path)
    (dynamics_dir(tmp_path / "run") / "manifest.json").write_text("{not json")
    with pytest.raises(DatacartoError, match="unreadable manifest"):
        load_dynamics(tmp_path / "run")


def test_nan_logits_are_recorded_warned_and_counted(tmp_path):
    writer = DynamicsWriter(dynamics_dir(tmp_path))
    logits = np.zeros((4, 2), np.float32)
    logits[1, 0] = np.nan
    logits[3] = np.nan
    with pytest.warns(UserWarning, match="2 examples have NaN logits"):
        assert writer.write_epoch(0, np.arange(4), np.zeros(4), logits) == 2
    assert json.loads((writer.directory / "manifest.json").read_text())["nan_logits"] == 2
    assert np.isnan(load_dynamics(tmp_path).logits[3, 0]).all()


def test_writes_leave_no_temporary_files(tmp_path):
    _write(tmp_path)
    names = sorted(p.name for p in dynamics_dir(tmp_path / "run").iterdir())
    assert names == ["epoch_000.parquet", "epoch_001.parquet", "epoch_002.parquet", "manifest.json", "units.parquet"]


def test_written_files_get_the_umask_mode_not_a_private_one(tmp_path):
    import os
    import stat

    from datacarto._io import write_text_atomic

    mask = os.umask(0o022)
    os.umask(mask)
    path = write_text_atomic(tmp_path / "a.txt", "x")
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~mask  # 0644 with the usual umask, not 0600


def test_examples_and_fingerprints(tmp_path):
    frame = pd.DataFrame({"premise": ["a", "b", "a"], "hypothesis": ["x", "y", "x"], "extra": [1.5, 2.5, 3.5]})
    fps = example_fingerprints(frame, ["premise", "hypothesis"])
    assert fps[0] == fps[2] and fps[0] != fps[1]
    assert dataset_fingerprint(fps) != dataset_fingerprint(fps[[1, 0, 2]])  # row order matters
    writer = DynamicsWriter(dynamics_dir(tmp_path))
    writer.write_examples(np.arange(3), fps, np.array([0, 1, 0]), frame)
    back = load_examples(tmp_path)
    assert list(back.columns) == ["fingerprint", "label", "premise", "hypothesis", "extra"]
    assert back["extra"].tolist() == [1.5, 2.5, 3.5]


def test_fingerprint_mismatch_is_refused(tmp_path):
    writer = DynamicsWriter(dynamics_dir(tmp_path))
    writer.update_manifest(dataset_fingerprint="aaa")
    writer.write_epoch(0, np.arange(2), np.zeros(2), np.zeros((2, 2)))
    writer.check_fingerprint("aaa")  # same data: fine
    with pytest.raises(DatacartoError, match="different data set"):
        writer.check_fingerprint("bbb")


# ----------------------------------------------------------------------------------------------
# split names, manifests of the wrong shape, the run lock


@pytest.mark.parametrize("split", ["../../../other", "a/b", "eval/x", ".", "..", "", "test\n", "vali dation",
                                   "x.y", "/abs", "ünï"])
def test_split_names_are_names_never_paths(tmp_path, split):
    from datacarto.dynamics.store import check_split_name

    with pytest.raises(DatacartoError, match="invalid split name"):
        check_split_name(split)
    with pytest.raises(DatacartoError, match="invalid split name"):
        dynamics_dir(tmp_path, split)  # every path to a split goes through it
    with pytest.raises(DatacartoError, match="invalid split name"):
        load_dynamics(tmp_path, split)


@pytest.mark.parametrize("split", ["train", "validation", "test", "validation_matched", "eval-2", "X9"])
def test_plain_split_names_are_accepted(tmp_path, split):
    from datacarto.dynamics.store import check_split_name

    assert check_split_name(split) == split
    assert dynamics_dir(tmp_path, split).name in (split, "training_dynamics")


@pytest.mark.parametrize("content", [b"[1, 2]", b'"text"', b"\xff\xfe{}", b"{"])
def test_manifest_of_the_wrong_shape_or_not_utf8_is_one_error(tmp_path, content):
    from datacarto.dynamics.store import read_manifest

    _write(tmp_path)
    (dynamics_dir(tmp_path / "run") / "manifest.json").write_bytes(content)
    with pytest.raises(DatacartoError, match="unreadable manifest"):
        read_manifest(dynamics_dir(tmp_path / "run"))
    with pytest.raises(DatacartoError, match="unreadable manifest"):
        load_dynamics(tmp_path / "run")


def test_run_lock_refuses_a_second_holder_and_releases(tmp_path):
    from datacarto._io import LOCK_NAME, run_lock

    with run_lock(tmp_path / "run") as lock:
        assert lock.read_text().strip() == str(os.getpid())
        with pytest.raises(DatacartoError, match=f"in use by process {os.getpid()}"):
            with run_lock(tmp_path / "run"):
                pass
        assert lock.exists()  # the refused one did not remove the holder's lock
    assert not (tmp_path / "run" / LOCK_NAME).exists()
    with pytest.raises(RuntimeError):  # released on errors too
        with run_lock(tmp_path / "run"):
            raise RuntimeError("boom")
    assert not (tmp_path / "run" / LOCK_NAME).exists()


def test_run_lock_takes_over_a_stale_lock(tmp_path):
    import subprocess
    import sys

    from datacarto._io import LOCK_NAME, run_lock

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (tmp_path / LOCK_NAME).write_text(f"{dead.pid}\n")
    with run_lock(tmp_path) as lock:
        assert lock.read_text().strip() == str(os.getpid())
    assert not lock.exists()


def test_run_lock_in_two_processes_at_once(tmp_path):
    """Two processes ask at the same moment: exactly one holds the lock, the other is refused."""
    import subprocess
    import sys
    from pathlib import Path

    script = ("import sys, time; from datacarto._io import run_lock; from datacarto.errors import DatacartoError\n"
              "time.sleep(max(0, float(sys.argv[2]) - time.time()))\n"
              "try:\n    with run_lock(sys.argv[1]):\n        print('held', flush=True); time.sleep(1.5)\n"
              "except DatacartoError as e:\n    print('refused', e, flush=True)\n")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")}
    import time

    start = str(time.time() + 1.0)
    procs = [subprocess.Popen([sys.executable, "-c", script, str(tmp_path), start], stdout=subprocess.PIPE,
                              text=True, env=env) for _ in range(2)]
    outs = sorted(p.communicate(timeout=60)[0].strip() for p in procs)
    assert outs[0] == "held" and outs[1].startswith("refused") and "in use by process" in outs[1], outs


@pytest.mark.parametrize("field, value, expected", [
    ("label_names", "abc", "label_names must be a list of strings, got 'abc'"),
    ("label_names", ["a", 2], "label_names must be a list of strings"),
    ("text_columns", "premise", "text_columns must be a list of strings, got 'premise'"),
    ("num_labels", "3", "num_labels must be an integer >= 0, got '3'"),
    ("num_labels", True, "num_labels must be an integer >= 0, got True"),
    ("n_examples", 29.5, "n_examples must be an integer >= 0, got 29.5"),
    ("n_examples", -1, "n_examples must be an integer >= 0, got -1"),
    ("epochs", "0,1", "epochs must be a list of integers"),
    ("dataset_fingerprint", 12, "dataset_fingerprint must be a string"),
    ("snapshots", [1], "snapshots must be a mapping"),
    ("task", ["causal-lm"], "task must be a string"),
])
def test_manifest_fields_are_type_checked_where_they_are_read(tmp_path, field, value, expected):
    """One reader for everyone: a field of the wrong type is one error naming the manifest file and the field."""
    from datacarto.dynamics.store import read_manifest

    _write(tmp_path)
    path = dynamics_dir(tmp_path / "run") / "manifest.json"
    good = json.loads(path.read_text())
    good.update(label_names=["a", "b", "c"], num_labels=3, text_columns=["t"], n_examples=7, task="sequence-classification")
    path.write_text(json.dumps(good))
    assert read_manifest(path.parent)["label_names"] == ["a", "b", "c"]  # the right types pass
    path.write_text(json.dumps({**good, field: value}))
    for read in (lambda: read_manifest(path.parent), lambda: load_dynamics(tmp_path / "run")):
        with pytest.raises(DatacartoError) as info:
            read()
        assert str(info.value).startswith(f"{path}: {expected}") and "\n" not in str(info.value)
