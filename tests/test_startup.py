"""Commands that train nothing start at once: they import neither torch, transformers nor peft.

Each case runs ``datacarto.cli.main([...])`` in a fresh interpreter on a small store, then reads
``sys.modules``. ``--help`` of every command, the training ones included, is held to the same rule.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from datacarto.cli import COMMANDS

SRC = Path(__file__).resolve().parents[1] / "src"
HEAVY = ("torch", "transformers", "peft", "accelerate", "datasets")
PROBE = f"""
import json, sys
from datacarto.cli import main
try:
    code = main(sys.argv[1:])
except SystemExit as stop:
    code = stop.code
heavy = sorted(m for m in sys.modules if m.split('.')[0] in {set(HEAVY)!r})
print(json.dumps({{"code": code, "heavy": heavy}}))
"""


def _write_store(folder: Path, n: int, epochs: int, seed: int, learned: bool = False) -> None:
    """A classification run's store as the recorder writes it (examples, manifest, epochs); ``seed`` seeds
    the logits only, so two stores hold the same training data. ``learned``: logits favour the labels."""
    from datacarto.dynamics.store import DynamicsWriter, dataset_fingerprint, example_fingerprints

    frame = pd.DataFrame({"text": [f"example {i}" for i in range(n)], "label": np.arange(n) % 3})
    labels = frame["label"].to_numpy()
    fps = example_fingerprints(frame[["text"]].assign(__label=labels))
    writer = DynamicsWriter(folder)
    writer.write_examples(np.arange(n), fps, labels, frame)
    writer.update_manifest(mode="training_pass", n_examples=n, dataset_fingerprint=dataset_fingerprint(fps),
                           text_columns=["text"], label_names=["a", "b", "c"], num_labels=3)
    rng = np.random.default_rng(seed)
    for e in range(epochs):
        logits = rng.normal(size=(n, 3)) + (3.0 * np.eye(3)[labels] if learned else 0.0)
        writer.write_epoch(e, np.arange(n), labels, logits.astype(np.float32), epoch=e + 1.0)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("startup")
    for name, seed in (("run", 0), ("other", 1)):
        _write_store(root / name / "training_dynamics", 40, 3, seed)
    from datacarto.dynamics.interop import export_allenai

    export_allenai(root / "run", root / "paper")  # what import-allenai reads
    _write_store(root / "learned" / "training_dynamics", 40, 3, 2, learned=True)  # what label-errors can read
    (root / "corrections.jsonl").write_text(json.dumps({"row_id": 0, "decision": "relabel", "new_label": "b"}) + "\n")
    return root


def _heavy_after(args: list[str], cwd: Path) -> tuple[object, list[str], str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, "-c", PROBE, *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    found = json.loads(proc.stdout.strip().splitlines()[-1])
    return found["code"], found["heavy"], proc.stderr


WORK = [
    ["metrics", "run"],
    ["metrics", "run", "--out", "metrics.parquet"],
    ["map", "run", "--png", "map.png", "--html", "map.html"],
    ["map", "run", "--compare", "other"],
    ["select", "run", "--region", "ambiguous", "--fraction", "0.2", "--out", "subset.jsonl",
     "--control-out", "control.jsonl"],
    ["export-allenai", "run", "exported"],
    ["import-allenai", "paper", "imported"],
    ["label-errors", "learned", "--out", "queue.jsonl"],
    ["label-errors", "learned", "--out", "queue.json", "--format", "label-studio"],
    ["apply-corrections", "learned", "--corrections", "corrections.jsonl", "--out", "corrected.jsonl"],
]
HELP = [[name, "--help"] for name in COMMANDS] + [["--help"], ["--version"], ["audit", "--run", "x", "--help"]]


@pytest.mark.parametrize("args", WORK + HELP, ids=lambda a: " ".join(a))
def test_a_command_that_trains_nothing_imports_no_torch(runs, args):
    code, heavy, err = _heavy_after(args, runs)
    assert code in (0, None), err
    assert heavy == [], f"datacarto {' '.join(args)} imported {sorted({m.split('.')[0] for m in heavy})}"


def test_help_of_a_training_command_names_its_flags_and_the_training_arguments(runs):
    """The light help still lists datacarto's flags and says every TrainingArguments flag is accepted."""
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    out = subprocess.run([sys.executable, "-m", "datacarto.cli", "train", "--help"], cwd=runs, env=env,
                         capture_output=True, text=True, timeout=120).stdout
    for flag in ("--model", "--dataset", "--dynamics-mode", "--folds", "--output-dir", "--learning_rate",
                 "--help-all"):
        assert flag in out, flag


def test_help_all_still_lists_every_training_argument(capsys):
    """``--help-all`` is HfArgumentParser's help: datacarto's flags and every TrainingArguments flag."""
    from datacarto.cli import main

    with pytest.raises(SystemExit) as stop:
        main(["focus", "--help-all"])
    assert stop.value.code == 0
    printed = capsys.readouterr().out
    assert "--subset" in printed and "--gradient_accumulation_steps" in printed and "--lr_scheduler_type" in printed


NOTEBOOK_PROBE = f"""
import json, sys
import datacarto
page = datacarto.show("run", max_points=10)._repr_html_()
png = datacarto.plot_data_map(datacarto.get_metrics("run"), color_by="region")._repr_png_()
heavy = sorted(m for m in sys.modules if m.split('.')[0] in {set(HEAVY)!r})
print(json.dumps({{"ok": "srcdoc" in page and png[:4] == b"\\x89PNG", "heavy": heavy}}))
"""


def test_show_and_plot_data_map_in_a_notebook_import_no_torch(runs):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, "-c", NOTEBOOK_PROBE], cwd=runs, env=env, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    found = json.loads(proc.stdout.strip().splitlines()[-1])
    assert found == {"ok": True, "heavy": []}


SERVE_PROBE = f"""
import json, sys
from datacarto.maps.serve import serve
server = serve("run", port=0)
ok = "dc-plotlyjs" in server.run.page() and len(server.run.answer({{"search": "example 1"}})) > 0
server.stop()
heavy = sorted(m for m in sys.modules if m.split('.')[0] in {set(HEAVY)!r})
print(json.dumps({{"ok": ok, "heavy": heavy}}))
"""


def test_serve_reads_a_run_and_answers_without_torch(runs):
    """``datacarto serve`` serves until stopped, so its work is probed through the Python entry."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, "-c", SERVE_PROBE], cwd=runs, env=env, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == {"ok": True, "heavy": []}
