"""Shared fixtures: a tiny offline BERT and toy NLI data (no hub access)."""

from __future__ import annotations

import json
import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("DISABLE_TQDM", "1")


@pytest.fixture(scope="session")
def toy_rows():
    from datacarto.testing import toy_nli

    return toy_nli(60, seed=1)


@pytest.fixture(scope="session")
def toy_jsonl(tmp_path_factory, toy_rows):
    path = tmp_path_factory.mktemp("data") / "train.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in toy_rows))
    return path


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory, toy_rows):
    """A tiny BERT folder with dropout (a realistic model)."""
    from datacarto.testing import make_tiny_model_dir

    texts = [r["premise"] + " " + r["hypothesis"] for r in toy_rows]
    return make_tiny_model_dir(tmp_path_factory.mktemp("model") / "tiny", texts)


@pytest.fixture(scope="session")
def tiny_model_no_dropout(tmp_path_factory, toy_rows):
    """A tiny BERT folder without dropout, so training-mode and eval-mode logits agree."""
    from datacarto.testing import make_tiny_model_dir

    texts = [r["premise"] + " " + r["hypothesis"] for r in toy_rows]
    return make_tiny_model_dir(tmp_path_factory.mktemp("model") / "tiny0", texts, dropout=0.0)


def training_args(output_dir, **overrides):
    """Fast, quiet TrainingArguments for tests."""
    from transformers import TrainingArguments

    fields = dict(output_dir=str(output_dir), num_train_epochs=2, per_device_train_batch_size=8,
                  per_device_eval_batch_size=16, learning_rate=5e-3, report_to="none", save_strategy="no",
                  logging_strategy="no", use_cpu=True, disable_tqdm=True, seed=0)
    fields.update(overrides)
    return TrainingArguments(**fields)


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread():
    """Tiny models gain nothing from 2 threads; on a loaded machine OpenMP spinning makes them ~20x slower."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def stop_at(step):
    """A Trainer callback that stops training at a global step (a crash or early stop inside an epoch)."""
    from transformers import TrainerCallback

    class StopAt(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step == step:
                control.should_training_stop = True

    return StopAt()


def write_jsonl(path, rows):
    """Write ``rows`` as JSON lines; returns the path as a string (what the CLI takes)."""
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def cli_fails(capsys, argv, message):
    """Run ``datacarto argv`` in-process: exit code 2, exactly one error line naming ``message``, no traceback."""
    from datacarto.cli import main

    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2, err
    lines = [line for line in err.strip().splitlines() if line.startswith("datacarto: error:")]
    assert len(lines) == 1 and message in lines[0], err
    assert "Traceback" not in err
    return lines[0]


@pytest.fixture(scope="module")
def browser():
    """Headless Chromium for the page tests (skipped without playwright or Chromium); pages: ``open_page``."""
    from _browser import ARGS, CHROMIUM, MISSING

    if MISSING:
        pytest.skip(MISSING)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


@pytest.fixture
def open_page(browser):
    """``open_page(path_or_url) -> page``, ready and offline; checked when the test ends (tests/_browser.py)."""
    from _browser import PageOpener

    opener = PageOpener(browser)
    yield opener
    opener.close()
