"""The newcomer's path from a fresh clone: ``examples/`` runs from a copy of the repository with no
``../shared`` beside it, on the data it ships (the README quick start's generated pairs) and the
bundled model. The README's own blocks run in tests/test_readme.py; a tiny model stands in for MiniLM
here (the example's model is a flag), with two epochs (one gives no variability: no ambiguous region).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
FAST = ["--num_train_epochs", "2", "--learning_rate", "5e-3", "--focus-training-args", "{num_train_epochs: 1}",
        "--per_device_eval_batch_size", "64", "--quiet"]


def _repository_files() -> list[Path]:
    """The files a clone holds: git's tracked and not-ignored ones, else the folders a clone has."""
    try:
        listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                                capture_output=True, text=True, timeout=60, check=True).stdout.split("\n")
        return [Path(p) for p in listed if p and (REPO / p).is_file()]
    except (OSError, subprocess.SubprocessError):
        return [p.relative_to(REPO) for top in ("README.md", "Makefile", "pyproject.toml", "examples", "docs")
                for p in ([REPO / top] if (REPO / top).is_file() else (REPO / top).rglob("*")) if p.is_file()]


@pytest.fixture(scope="module")
def clone(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("newcomer") / "datacarto"
    for rel in _repository_files():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / rel, root / rel)
    assert not (root.parent / "shared").exists()  # nothing of the development machine's data
    return root


@pytest.fixture(scope="module")
def tiny(clone) -> str:
    """A tiny BERT whose vocabulary covers the shipped data (the example's model is MiniLM)."""
    import json

    from datacarto.testing import make_tiny_model_dir

    rows = [json.loads(line) for p in (clone / "examples" / "data").glob("*.jsonl") for line in p.open()]
    return make_tiny_model_dir(clone.parent / "tiny", [r["premise"] + " " + r["hypothesis"] for r in rows],
                               dropout=0.0)


def _env(**more) -> dict:
    return {**os.environ, "OMP_NUM_THREADS": "1", "DISABLE_TQDM": "1",
            "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}", **more}


def _ran(done: subprocess.CompletedProcess) -> str:
    said = done.stdout + done.stderr
    assert done.returncode == 0, said[-4000:]
    return said


def test_examples_point_at_nothing_outside_the_clone(clone):
    from datacarto.commands.run import read_yaml
    from datacarto.models import model_source
    from datacarto.pipeline.config import DATA_KEYS

    values = read_yaml(clone / "examples" / "run.yaml")
    for key in DATA_KEYS:
        assert (clone / values[key]).resolve().is_relative_to(clone.resolve()) and (clone / values[key]).is_file(), key
    for path in (clone / "examples").iterdir():
        if path.is_file():
            assert ".venv/lib/python" not in path.read_text(encoding="utf-8"), path.name
    try:
        from datacarto.data import minilm_path

        bundled = minilm_path()
    except Exception:  # no demo extra: the name goes to the Hub
        pytest.skip("the bundled MiniLM (demo extra) is not installed")
    assert model_source(values["model"]) == bundled  # the example's hub name loads the bundled copy, offline


def test_the_example_data_is_the_quick_starts(clone, tmp_path):
    """examples/data is what the README quick start's write_demo_dataset call writes, byte for byte."""
    from datacarto.demo_data import write_demo_dataset

    write_demo_dataset(tmp_path, n_train=400, n_validation=200, n_test=200)
    for split in ("train", "validation", "test"):
        assert (clone / "examples" / "data" / f"{split}.jsonl").read_bytes() == (tmp_path / f"{split}.jsonl").read_bytes()
    assert "datacarto run --config examples/run.yaml" in (clone / "README.md").read_text(encoding="utf-8")


def test_run_yaml_runs_from_a_fresh_clone(clone, tiny):
    said = _ran(subprocess.run(["datacarto", "run", "--config", "examples/run.yaml", "--model", tiny, *FAST],
                               cwd=clone, env=_env(), capture_output=True, text=True, timeout=600))
    out = clone / "runs" / "example"
    assert (out / "report.html").is_file() and f"report: {Path('runs/example/report.html')}" in said
    assert "## Label noise" in (out / "report.md").read_text()  # the shipped data marks its flipped labels


def test_local_script_runs_from_a_fresh_clone(clone, tiny):
    env = _env(DATACARTO="datacarto", PYTHON=sys.executable, MODEL=tiny)
    _ran(subprocess.run(["bash", "examples/snli_local.sh", "runs/local", *FAST, "--control", "false",
                         "--recipes", "amb:region=ambiguous,fraction=0.33"],
                        cwd=clone, env=env, capture_output=True, text=True, timeout=600))
    assert (clone / "runs" / "local" / "report.html").is_file()
