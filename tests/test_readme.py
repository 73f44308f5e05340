"""README.md stays true: its quick start and its Python example run as written (with a tiny model)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def _block(section: str, language: str) -> str:
    """The first ```language block after the heading ``section``."""
    text = README.read_text(encoding="utf-8")
    assert section in text, f"README has no section {section!r}"
    after = text.split(section, 1)[1]
    fence = f"```{language}\n"
    assert fence in after, f"no {language} block in {section!r}"
    return after.split(fence, 1)[1].split("```", 1)[0]


def test_readme_names_exactly_the_two_setup_commands():
    setup = _block("## Set up", "bash")
    commands = [line.split("#")[0].strip() for line in setup.splitlines() if line.split("#")[0].strip()]
    assert commands == ["make demo", "make test"]


@pytest.fixture(scope="module")
def demo_model(tmp_path_factory):
    """A tiny BERT whose vocabulary covers the demo data (the README uses the bundled MiniLM)."""
    from datacarto.demo_data import make_demo_dataset
    from datacarto.testing import make_tiny_model_dir

    splits = make_demo_dataset(400, 200, 200)
    texts = [r["premise"] + " " + r["hypothesis"] for ds in splits.values() for r in ds]
    return make_tiny_model_dir(tmp_path_factory.mktemp("readme") / "tiny", texts, dropout=0.0)


def test_quick_start_runs_as_written(tmp_path, demo_model):
    script = _block("## Quick start (offline)", "bash")
    model_line = next(line for line in script.splitlines() if line.startswith("MODEL="))
    assert "minilm_path()" in model_line
    # the only change: the tiny model instead of MiniLM, and the test's own interpreter's scripts
    script = script.replace(model_line, f"MODEL={demo_model}")
    script = script.replace(". .venv/bin/activate", f'export PATH="{Path(sys.executable).parent}:$PATH"')
    env = {**os.environ, "OMP_NUM_THREADS": "1", "DISABLE_TQDM": "1"}
    done = subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    qs = tmp_path / "qs"
    for name in ("data/train.jsonl", "run/training_dynamics/manifest.json", "run/model/config.json",
                 "metrics.csv", "map.html", "map.png", "ambiguous.jsonl", "random.jsonl", "focused/model/config.json"):
        assert (qs / name).is_file(), name
    from datacarto import load_dynamics

    dyn = load_dynamics(qs / "run")
    assert dyn.logits.shape == (400, 3, 3)
    n_subset = sum(1 for _ in (qs / "ambiguous.jsonl").open())
    assert n_subset == round(0.33 * 400) == sum(1 for _ in (qs / "random.jsonl").open())
    assert "ensemble" in done.stdout


def test_python_example_runs_as_written(tmp_path, demo_model):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from conftest import training_args
    from datacarto.data import prepare_labels, tokenize
    from datacarto.demo_data import make_demo_dataset

    splits = make_demo_dataset(120, 60, 0)
    tokenizer = AutoTokenizer.from_pretrained(demo_model)
    train, spec = prepare_labels(splits["train"], text_columns=["premise", "hypothesis"])
    dev, _ = prepare_labels(splits["validation"], text_columns=["premise", "hypothesis"])
    namespace = {
        "model": AutoModelForSequenceClassification.from_pretrained(demo_model, num_labels=3),
        "training_args": training_args(tmp_path / "run", eval_strategy="epoch"),
        "train": tokenize(train, tokenizer, spec), "dev": tokenize(dev, tokenizer, spec), "tokenizer": tokenizer,
    }
    exec(_block("In Python, recording", "python"), namespace)
    assert namespace["dyn"].logits.shape == (120, 2, 3)
    metrics = namespace["metrics"]
    assert len(metrics) == 120 and set(metrics["region"]) <= {"easy-to-learn", "ambiguous", "hard-to-learn"}
    ids = namespace["ids"]
    assert len(ids) == round(0.33 * 120) and set(ids) <= set(metrics.index)


def test_generative_quick_start_runs_as_written(tmp_path):
    script = _block("## Generative fine-tuning (causal LM)", "bash")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "DISABLE_TQDM": "1",
           "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}"}
    done = subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    said = done.stdout + done.stderr  # clean: no warning about the README's own settings, no library bars
    assert "warning" not in said.lower() and "Writing model shards" not in said, said[-3000:]
    from datacarto import load_dynamics

    assert load_dynamics(tmp_path / "sft-run").logits.shape == (120, 12, 2)
    assert sum(1 for _ in (tmp_path / "sft-s2l.jsonl").open()) == 36
    assert (tmp_path / "sft-map.html").is_file() and (tmp_path / "sft-metrics.csv").is_file()


def test_readme_refusals_leave_out_what_is_recorded():
    """Multi-label labels (a list per row) and the other task heads are recorded (tests/test_tasks.py):
    the README's list of refused set-ups must not name them."""
    text = " ".join(README.read_text(encoding="utf-8").split())
    paragraph = text.split("Recording either stores", 1)[1].split("The table of set-ups", 1)[0]
    refused = paragraph.split("refuses before training with one line", 1)[1].split(". ", 1)[0]
    for recorded in ("multi-label", "a head other than sequence classification"):
        assert recorded not in refused, refused
    assert "multi-label" in paragraph and "recorded per" in paragraph


def test_find_fix_retrain_runs_as_written(tmp_path):
    """README's first-screen loop, on a cross-fitted tiny-model run of toy rows with 10% of labels flipped."""
    import datasets
    import numpy as np

    from conftest import training_args
    from datacarto.noise import inject_label_noise
    from datacarto.testing import make_tiny_model_dir, toy_nli
    from datacarto.train.crossfit import train_crossfit

    script = _block("**Find, fix, retrain**", "bash")
    model = make_tiny_model_dir(tmp_path / "model", [r["premise"] + " " + r["hypothesis"] for r in toy_nli(60, seed=1)],
                                hidden_size=64)
    rows = toy_nli(240, seed=0)
    noisy, _ = inject_label_noise(np.array([r["label"] for r in rows]), 0.1, seed=0)
    data = datasets.Dataset.from_list([{**r, "label": int(y)} for r, y in zip(rows, noisy)])
    train_crossfit(model=model, train=data, folds=3, seed=0, output_dir=tmp_path / "run",
                   label_names=["entailment", "neutral", "contradiction"],
                   training_args=training_args(tmp_path / "run", num_train_epochs=8, learning_rate=1e-3))
    env = {**os.environ, "MODEL": model, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
           "OMP_NUM_THREADS": "1", "DISABLE_TQDM": "1"}
    # the retraining line as written, made quick with the Trainer's own flags
    script = script.replace("--output-dir run-fixed", "--output-dir run-fixed --num_train_epochs 1 --use_cpu "
                            "--save_strategy no --report_to none --disable_tqdm true")
    done = subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "estimated wrong labels" in done.stdout
    fixed = [json.loads(line) for line in (tmp_path / "train.fixed.jsonl").read_text().splitlines()]
    assert len(fixed) == 240 and {"given_label", "new_label", "decision"} <= set(fixed[0])
    assert (tmp_path / "run-fixed" / "training_dynamics" / "manifest.json").is_file()
