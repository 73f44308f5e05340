"""What a person sees in the terminal: the CLI with stderr not a terminal, the library log, the
--logging_steps flag winning over our default, and the packaging metadata."""

from __future__ import annotations

import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_train_prints_plain_lines_and_logs_the_libraries(tmp_path, tiny_model, toy_jsonl):
    out = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    env.pop("DISABLE_TQDM", None)
    env["TRANSFORMERS_VERBOSITY"] = "info"  # the library has something to say on every run (not only some)
    proc = subprocess.run(
        [sys.executable, "-m", "datacarto.cli", "train", "--model", tiny_model, "--dataset", str(toy_jsonl),
         "--validation", str(toy_jsonl), "--text-columns", "premise,hypothesis", "--output-dir", str(out),
         "--num_train_epochs", "2", "--per_device_train_batch_size", "4", "--logging_steps", "3", "--use_cpu"],
        capture_output=True, text=True, env=env, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr
    assert "\r" not in proc.stderr and "\r" not in proc.stdout
    lines = proc.stderr.splitlines()
    assert "training: 30 steps, 2 epochs" in lines
    evaluations = [line for line in lines if line.startswith("evaluation at epoch ")]
    assert len(evaluations) == 2
    from sklearn.metrics import f1_score

    from datacarto import load_dynamics

    dyn = load_dynamics(out, "validation")  # the line's accuracy and macro-F1 are the recorded logits'
    for line, epoch in zip(evaluations, range(2)):
        pred = dyn.logits[:, epoch].argmax(1)
        assert f"accuracy {(pred == dyn.gold).mean():.4g}" in line
        assert f"macro-F1 {f1_score(dyn.gold, pred, average='macro'):.4g}" in line and "loss " in line
    assert lines[-1].startswith("training done: 30 steps in ") and ", last loss " in lines[-1]
    assert len(lines) <= 5  # the max-length warning, the header, 2 evaluations, the end (a short run)
    assert not any("it/s]" in line or "%|" in line for line in lines)  # no library progress bars
    assert proc.stdout.splitlines() == [f"training dynamics: {out / 'training_dynamics'}", f"model: {out / 'model'}"]
    log = (out / "datacarto.log").read_text(encoding="utf-8")
    assert " INFO transformers." in log and "\r" not in log  # the library's lines: in the log, not on stderr


def test_progress_lines_off_a_terminal(monkeypatch, capsys):
    """A long training says where it is at 25, 50 and 75% (each at least LINE_GAP_S after the last)
    and after HEARTBEAT_S without a line."""
    from types import SimpleNamespace

    from datacarto.commands import _terminal

    clock = [0.0]
    monkeypatch.setattr(_terminal.time, "perf_counter", lambda: clock[0])
    progress = _terminal.progress_callback(tty=False)()
    state = SimpleNamespace(is_world_process_zero=True, max_steps=40, global_step=0, epoch=0.0)
    args = SimpleNamespace(num_train_epochs=2)
    progress.on_train_begin(args, state, None)
    for step in range(1, 41):
        clock[0] = step * (0.1 if step < 20 else 1.0) + (100.0 if step >= 34 else 0.0)  # fast, slower, a stall
        state.global_step, state.epoch = step, step / 20
        if step % 5 == 0:
            progress.on_log(args, state, None, logs={"loss": 1.0 / step})
        progress.on_step_end(args, state, None)
    args.output_dir = "/nonexistent"  # nothing recorded: the metrics the Trainer gave
    progress.on_evaluate(args, state, None, metrics={"eval_loss": 0.5, "eval_runtime": 1.0, "eval_accuracy": 0.75})
    progress.on_train_end(args, state, None)
    lines = capsys.readouterr().err.splitlines()
    assert lines == ["training: 40 steps, 2 epochs",
                     "training: step 20/40 (50%), epoch 1.00, loss 0.05",  # 10 was 1 s after the header
                     "training: step 30/40 (75%), epoch 1.50, loss 0.03333",
                     "training: step 34/40 (85%), epoch 1.70, loss 0.03333",  # 100 s without a line
                     "evaluation at epoch 2.00: loss 0.5, accuracy 0.75",
                     "training done: 40 steps in 140.0 s, last loss 0.025"]


def test_the_terminal_routes_library_logs_and_puts_everything_back(tmp_path, capsys):
    import logging

    import transformers.trainer as trainer_module

    from datacarto.commands._terminal import LOG_NAME, Terminal

    before = (trainer_module.DEFAULT_PROGRESS_CALLBACK, warnings.formatwarning,
              logging.getLogger("transformers").handlers[:])
    term = Terminal("train", ["--output_dir", str(tmp_path / "out")])
    logging.getLogger("transformers.modeling_utils").warning("a library warning")
    assert not (tmp_path / "out").exists()  # held until the command makes its folder
    (tmp_path / "out").mkdir()
    assert warnings.formatwarning("from a library", UserWarning, "/elsewhere/lib.py", 3) == ""
    own = str(ROOT / "src" / "datacarto" / "maps" / "__init__.py")
    assert warnings.formatwarning("ours", UserWarning, own, 1) == "datacarto: warning: ours\n"
    term.close()
    log = (tmp_path / "out" / LOG_NAME).read_text(encoding="utf-8")
    assert "a library warning" in log and "from a library" in log
    assert capsys.readouterr().err == ""
    assert (trainer_module.DEFAULT_PROGRESS_CALLBACK, warnings.formatwarning,
            logging.getLogger("transformers").handlers[:]) == before
    assert Terminal("map", []).undo == []  # commands without training are left alone
    quiet = Terminal("train", ["--output_dir", str(tmp_path / "quiet")])  # nothing logged: no empty file
    (tmp_path / "quiet").mkdir()
    quiet.close()
    assert not (tmp_path / "quiet" / LOG_NAME).exists()


@pytest.mark.parametrize("flags, strategy", [(["--logging_steps", "5"], "steps"), ([], "epoch"),
                                             (["--logging_steps", "5", "--logging_strategy", "no"], "no")])
def test_logging_steps_wins_over_our_default(flags, strategy):
    from datacarto.commands.train import DataArguments, TestArguments, parse_with_training_args

    *_, args = parse_with_training_args(["--model", "m", "--dataset", "d", "--output-dir", "o", *flags],
                                        DataArguments, TestArguments)
    assert str(getattr(args.logging_strategy, "value", args.logging_strategy)) == strategy
    import torch

    if not torch.cuda.is_available():
        assert args.dataloader_pin_memory is False  # no pin_memory warning on CPU


def test_license_is_an_spdx_string():
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert project["project"]["license"] == "Apache-2.0"
    assert any(r.startswith("setuptools>=77") for r in project["build-system"]["requires"])


def test_where_the_log_goes(tmp_path):
    from datacarto.commands._terminal import DEMO_OUTPUT, output_dir_of

    config = tmp_path / "run.yaml"
    config.write_text("model: m\noutput_dir: runs/x\n")
    assert output_dir_of("train", ["--model", "m", "--output_dir", "o1"]) == Path("o1")
    assert output_dir_of("focus", ["run", "--output-dir=o2"]) == Path("o2")
    assert output_dir_of("run", ["--config", str(config)]) == Path("runs/x")
    assert output_dir_of("run", [f"--config={config}", "--output-dir", "o3"]) == Path("o3")
    assert output_dir_of("demo", []) == Path(DEMO_OUTPUT)
    assert output_dir_of("run", ["--config", str(tmp_path / "missing.yaml")]) is None
    assert output_dir_of("ensemble", ["--models", "a", "b"]) is None  # no folder: no log file


def test_verbose_shows_library_logs_on_stderr_too(tmp_path, capsys):
    import logging

    from datacarto.commands._terminal import LOG_NAME, Terminal

    term = Terminal("train", ["--output_dir", str(tmp_path)], verbose=True)
    logging.getLogger("datasets.builder").warning("loud enough")
    term.close()
    assert "loud enough" in capsys.readouterr().err
    assert "loud enough" in (tmp_path / LOG_NAME).read_text(encoding="utf-8")
