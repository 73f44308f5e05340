"""examples/run_glue_cartography.py, run as a user runs it: a subprocess, both modes, checked row by row."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from datacarto import load_dynamics, load_examples
from test_distributed import EXAMPLE, example_args


@pytest.mark.parametrize("mode", ["training_pass", "epoch_end"])
def test_example_script_records_every_row_once_per_epoch(tmp_path, tiny_model, toy_rows, mode):
    data, dev = tmp_path / "train.jsonl", tmp_path / "dev.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in toy_rows))
    dev.write_text("".join(json.dumps(r) + "\n" for r in toy_rows[:20]))
    out = tmp_path / "run"
    proc = subprocess.run([sys.executable, str(EXAMPLE), *example_args(tiny_model, data, out, mode),
                           "--validation_file", str(dev), "--eval_strategy", "epoch"],
                          capture_output=True, text=True, timeout=300, env={"OMP_NUM_THREADS": "1",
                                                                             "HF_HUB_OFFLINE": "1",
                                                                             "PATH": "/usr/bin:/bin"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    dyn = load_dynamics(out)
    assert dyn.manifest["mode"] == mode and dyn.epochs == [0, 1]
    np.testing.assert_array_equal(dyn.ids, np.arange(len(toy_rows)))
    np.testing.assert_array_equal(dyn.gold, [r["label"] for r in toy_rows])
    assert np.isfinite(dyn.logits).all()
    assert load_examples(out)["premise"].tolist() == [r["premise"] for r in toy_rows]
    val = load_dynamics(out, "validation")  # two epoch evaluations, then the script's final one (same step)
    assert val.epochs == [0, 1] and val.n_examples == 20
    assert (out / "model.safetensors").is_file() or (out / "config.json").is_file()
