"""Faults and the CLI wrapper: one line for every OSError, decode, pyarrow, yaml and json error.

Full and read-only disks injected at the write (any machine) and a tmpfs that fills up midway
through an import (root only); the table of bad input is in test_bad_input.py.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from datacarto.cli import main
from test_bad_input import _mount, _one_error_line, build_world, snapshot


@pytest.fixture(scope="module")
def world(tmp_path_factory, tiny_model):
    return build_world(tmp_path_factory.mktemp("world"), tiny_model)


# ----------------------------------------------------------------------------------------------
# the CLI wrapper; --debug adds the traceback


def _raising(monkeypatch, exc):
    import datacarto.commands.metrics as command

    def boom(argv):
        raise exc

    monkeypatch.setattr(command, "main", boom)


def _errors():
    import errno

    import pyarrow as pa
    import yaml

    return [
        (OSError(errno.ENOSPC, "No space left on device", "/data/m.parquet"),
         "cannot write /data/m.parquet: no space left on device"),
        (OSError(errno.EROFS, "Read-only file system", "/ro/x"), "cannot write /ro/x: read-only file system"),
        (PermissionError(errno.EACCES, "Permission denied", "/etc/x"), "cannot access /etc/x: permission denied"),
        (IsADirectoryError(errno.EISDIR, "Is a directory", "/tmp"), "/tmp is a directory, expected a file"),
        (FileNotFoundError(errno.ENOENT, "No such file or directory", "/nope"), "file not found: /nope"),
        (OSError(errno.EIO, "Input/output error", "/disk/f"), "/disk/f: Input/output error"),
        (OSError(errno.ENOSPC, "No space left on device"), "input/output error: No space left on device"),
        (OSError("We couldn't connect to the Hub\nmore"), "We couldn't connect to the Hub"),
        (UnicodeDecodeError("utf-8", b"\xff", 0, 1, "invalid start byte"), "not valid UTF-8"),
        (json.JSONDecodeError("Expecting value", "x", 0), "invalid JSON: Expecting value"),
        (yaml.YAMLError("mapping values are not allowed here"), "invalid YAML: mapping values are not allowed here"),
        (pa.ArrowInvalid("Parquet magic bytes not found\nmore detail"), "unreadable data (pyarrow): Parquet magic bytes"),
    ]


@pytest.mark.parametrize("index", range(12))
def test_wrapper_turns_errors_into_one_line(monkeypatch, capsys, index):
    exc, message = _errors()[index]
    _raising(monkeypatch, exc)
    code = main(["metrics", "x"])
    err = capsys.readouterr().err
    _one_error_line(code, err, message, Path("/nonexistent"))
    assert err.count("\n") == 1


def test_debug_adds_the_traceback(monkeypatch, capsys):
    import errno

    _raising(monkeypatch, OSError(errno.ENOSPC, "No space left on device", "/data/m.parquet"))
    assert main(["--debug", "metrics", "x"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" in err and err.strip().endswith("datacarto: error: cannot write /data/m.parquet: no space left on "
                                                       "device")


def test_a_bug_keeps_its_traceback(monkeypatch):
    _raising(monkeypatch, ZeroDivisionError("a bug"))  # not bad input: the traceback is what a report needs
    with pytest.raises(ZeroDivisionError):
        main(["metrics", "x"])


def test_a_real_process_exits_2_with_one_line(world, tmp_path):
    import os
    import sys

    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")}
    proc = subprocess.run([sys.executable, "-m", "datacarto.cli", "metrics", str(world / "run"), "--split",
                           "../../../other/training_dynamics"], capture_output=True, text=True, env=env, timeout=120)
    _one_error_line(proc.returncode, proc.stderr, "invalid split name", tmp_path)
    assert proc.stderr.count("\n") == 1 and proc.stdout == ""


# ----------------------------------------------------------------------------------------------
# faults without a tmpfs: OSError 28 and 30 injected at the write


@pytest.mark.parametrize("code, message", [(28, "no space left on device"), (30, "read-only file system")])
def test_injected_write_errors_keep_old_files(world, tmp_path, capsys, monkeypatch, code, message):
    import os

    w = tmp_path / "w"
    shutil.copytree(world, w)
    target = w / "metrics.parquet"
    target.write_bytes(b"the old table")
    real = os.replace

    def failing(src, dst, *a, **k):
        if str(dst) == str(target):
            raise OSError(code, os.strerror(code))  # as a full or read-only disk raises it: no file name
        return real(src, dst, *a, **k)

    monkeypatch.setattr(os, "replace", failing)
    before = snapshot(tmp_path)
    _one_error_line(main(["metrics", str(w / "run"), "--out", str(target)]), capsys.readouterr().err,
                    f"cannot write {target}: {message}", Path("/nonexistent"))
    assert snapshot(tmp_path) == before  # the old table stays, no temporary file is left


def test_import_on_a_disk_that_fills_up_midway_leaves_nothing(tmp_path, capsys):
    """A tmpfs with room for the lock and a few epochs, not for all: no partial run, old files kept."""
    from datacarto.dynamics.interop import export_allenai  # noqa: F401  (imported before the disk fills)

    fs = tmp_path / "fs"
    if not _mount(fs):
        pytest.skip("cannot mount a tmpfs here (not root?)")
    try:
        paper = tmp_path / "paper" / "training_dynamics"
        paper.mkdir(parents=True)
        rng = np.random.default_rng(0)
        for e in range(6):
            paper.joinpath(f"dynamics_epoch_{e}.jsonl").write_text("".join(
                json.dumps({"guid": i, f"logits_epoch_{e}": rng.normal(size=3).tolist(), "gold": i % 3}) + "\n"
                for i in range(800)))
        (fs / "keep.txt").write_text("old")
        with open(fs / "filler", "wb") as f:
            f.write(b"x" * (36 << 10))
        before = snapshot(fs)
        code = main(["import-allenai", str(tmp_path / "paper"), str(fs / "run")])
        err = capsys.readouterr().err
        _one_error_line(code, err, "no space left on device", tmp_path)
        assert f"cannot write {fs}/run/training_dynamics/" in err  # an epoch file, not the lock: it filled midway
        assert snapshot(fs) == before and sorted(p.name for p in fs.iterdir()) == ["filler", "keep.txt"]
    finally:
        subprocess.run(["umount", "-l", str(fs)], capture_output=True, timeout=20)
