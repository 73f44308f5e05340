"""Two CPU processes under torchrun (gloo): every example recorded exactly once per epoch."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from datacarto import load_dynamics, load_examples
from datacarto.testing import toy_nli

EXAMPLE = Path(__file__).parents[1] / "examples" / "run_glue_cartography.py"
N = 61  # odd: the distributed sampler pads with a repeated example


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.distributed
@pytest.mark.parametrize("mode,launch,extra", [
    ("training_pass", "example", []), ("epoch_end", "example", []), ("epoch_end", "cli", []),
    # the Trainer's evaluation loop then uses a length-grouped sampler and drops each rank's last batch
    ("training_pass", "example", ["--train_sampling_strategy", "group_by_length", "--dataloader_drop_last", "true"]),
])
def test_two_processes_record_each_example_once(tmp_path, tiny_model, mode, launch, extra):
    """Our example fine-tuning script in both modes, and ``torchrun -m datacarto.cli train``."""
    rows = toy_nli(N, seed=3)
    data = tmp_path / "train.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "1", "--nproc_per_node", "2",
           "--master_addr", "127.0.0.1", "--master_port", str(_free_port())]
    if launch == "example":  # with a validation set evaluated each epoch: eval recording under torchrun
        dev = tmp_path / "dev.jsonl"
        dev.write_text("".join(json.dumps(r) + "\n" for r in rows[:21]))
        cmd += [str(EXAMPLE), *example_args(tiny_model, data, out, mode), "--validation_file", str(dev),
                "--eval_strategy", "epoch", *extra]
    else:
        cmd += ["-m", "datacarto.cli", "train", "--model", tiny_model, "--dataset", str(data),
                "--output-dir", str(out), "--dynamics_mode", mode, "--num_train_epochs", "2",
                "--per_device_train_batch_size", "8", "--learning_rate", "5e-3", "--use_cpu", "--disable_tqdm",
                "true", "--save_strategy", "no", "--logging_strategy", "no", "--seed", "0"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    dyn = load_dynamics(out)  # refuses duplicate row ids
    assert dyn.epochs == [0, 1]
    np.testing.assert_array_equal(dyn.ids, np.arange(N))
    np.testing.assert_array_equal(dyn.gold, [r["label"] for r in rows])
    assert not np.isnan(dyn.logits).any()
    assert all(s["n"] == N for s in dyn.manifest["snapshots"].values())
    assert load_examples(out)["hypothesis"].tolist() == [r["hypothesis"] for r in rows]
    if launch == "example":  # two epoch evaluations; the script's final one (same step) replaces the last
        val = load_dynamics(out, "validation")
        assert val.epochs == [0, 1] and val.n_examples == 21 and val.ids.tolist() == list(range(21))
        np.testing.assert_array_equal(val.gold, [r["label"] for r in rows[:21]])
        assert all(s["n"] == 21 for s in val.manifest["snapshots"].values())


def example_args(model, data, out, mode):
    """The example script's flags for a fast, reproducible CPU run."""
    return ["--model_name_or_path", model, "--train_file", str(data), "--text_columns", "premise,hypothesis",
            "--output_dir", str(out), "--cartography", mode, "--num_train_epochs", "2",
            "--per_device_train_batch_size", "8", "--learning_rate", "5e-3", "--use_cpu", "--report_to", "none",
            "--save_strategy", "no", "--logging_strategy", "no", "--seed", "0", "--disable_tqdm", "true",
            "--average_tokens_across_devices", "false"]


@pytest.mark.distributed
@pytest.mark.parametrize("task", ["token-classification", "multi-label", "multiple-choice"])
def test_two_processes_record_each_unit_once(tmp_path, task):
    """The other task types under torchrun (CLI): every unit (word, label, example) once per epoch."""
    from datacarto.testing import (
        TOY_TAGS,
        make_tiny_model_dir,
        toy_choices,
        toy_multilabel,
        toy_task_words,
        toy_tokens,
    )

    make, flags = {
        "token-classification": (toy_tokens, ["--class-names", ",".join(TOY_TAGS)]),
        "multi-label": (toy_multilabel, ["--label-column", "labels", "--class-names", "sunny,rainy,windy"]),
        "multiple-choice": (toy_choices, ["--text-columns", "sentence", "--choice-columns", "option1,option2"]),
    }[task]
    rows = make(N, seed=3)
    data = tmp_path / "train.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    model = make_tiny_model_dir(tmp_path / "tiny", toy_task_words(), dropout=0.0)
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "1", "--nproc_per_node", "2",
           "--master_addr", "127.0.0.1", "--master_port", str(_free_port()), "-m", "datacarto.cli", "train",
           "--model", model, "--dataset", str(data), *flags, "--output-dir", str(out),
           "--num_train_epochs", "2", "--per_device_train_batch_size", "8", "--learning_rate", "5e-3", "--use_cpu",
           "--disable_tqdm", "true", "--save_strategy", "no", "--logging_strategy", "no", "--seed", "0"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    dyn = load_dynamics(out)
    assert dyn.epochs == [0, 1] and dyn.manifest["task"] == task and not np.isnan(dyn.logits).any()
    if task == "token-classification":
        lengths = [len(r["tokens"]) for r in rows]
        np.testing.assert_array_equal(dyn.row_ids, np.repeat(np.arange(N), lengths))
        np.testing.assert_array_equal(dyn.sub_ids, np.concatenate([np.arange(k) for k in lengths]))
        np.testing.assert_array_equal(dyn.gold, np.concatenate([r["ner_tags"] for r in rows]))
    elif task == "multi-label":
        np.testing.assert_array_equal(dyn.row_ids, np.repeat(np.arange(N), 3))
        np.testing.assert_array_equal(dyn.gold, [int(j in r["labels"]) for r in rows for j in range(3)])
    else:
        np.testing.assert_array_equal(dyn.ids, np.arange(N))
        np.testing.assert_array_equal(dyn.gold, [r["label"] for r in rows])


@pytest.mark.distributed
def test_two_processes_record_each_causal_lm_example_once(tmp_path):
    """Causal LM (SFT) under torchrun (CLI): every example once per epoch, train and validation, token counts right."""
    from datacarto.dynamics.store import load_epoch_columns
    from datacarto.testing import make_tiny_causal_lm_dir, toy_instruction_words, toy_instructions

    rows = [{"prompt": r["prompt"], "response": r["response"]} for r in toy_instructions(N, seed=3)]
    data, dev = tmp_path / "train.jsonl", tmp_path / "dev.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    dev.write_text("".join(json.dumps(r) + "\n" for r in rows[:11]))  # odd: the sampler pads one rank
    model = make_tiny_causal_lm_dir(tmp_path / "gpt2", toy_instruction_words())
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "1", "--nproc_per_node", "2",
           "--master_addr", "127.0.0.1", "--master_port", str(_free_port()), "-m", "datacarto.cli", "train",
           "--model", model, "--dataset", str(data), "--validation", str(dev), "--task", "causal-lm",
           "--prompt-column", "prompt", "--response-column", "response", "--output-dir", str(out),
           "--num_train_epochs", "2", "--per_device_train_batch_size", "8", "--learning_rate", "5e-3", "--use_cpu",
           "--save_strategy", "no", "--logging_strategy", "no", "--seed", "0"]  # progress lines, as a user sees
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    dyn = load_dynamics(out)
    assert dyn.epochs == [0, 1] and dyn.manifest["task"] == "causal-lm"
    np.testing.assert_array_equal(dyn.ids, np.arange(N))
    assert np.isfinite(dyn.logits).all()
    n_tokens = load_epoch_columns(out, 1)
    want = [len(r["response"].split()) + 1 for r in rows]  # the response's words and the end token
    np.testing.assert_array_equal(n_tokens["n_tokens"], want)
    validation = load_dynamics(out, "validation")
    np.testing.assert_array_equal(validation.ids, np.arange(11))
    assert validation.n_epochs == 2
    # rank 0 alone speaks: each line once; and a causal LM's evaluation has no class accuracy to report
    said = proc.stdout + proc.stderr
    for line in ("task: causal-lm", "datacarto: warning: --max-length 128", "training: ", "evaluation at epoch 1.00",
                 "evaluation at epoch 2.00", "training dynamics: "):
        assert said.count(line) == 1, (line, said[-3000:])
    assert "accuracy" not in said and "macro-F1" not in said


FSDP_LAUNCH = Path(__file__).with_name("fsdp_launch.py")
# accelerate 1.16 shards BERT's embeddings module (its _no_split_modules) and then its word embeddings
# again, which fails in fully_shard: wrap only the encoder layers
BERT_FSDP = '{"version": 2, "transformer_layer_cls_to_wrap": ["BertLayer"]}'


@pytest.mark.distributed
@pytest.mark.parametrize("mode", ["training_pass", "epoch_end"])
@pytest.mark.parametrize("task", ["sequence-classification", "causal-lm"])
def test_fsdp_two_processes_record_each_example_once(tmp_path, tiny_model, mode, task):
    """FSDP2 through the Trainer (accelerate's fully_shard, gloo on CPU: tests/fsdp_launch.py).

    Eval batches of 5 over 61 training rows (31 + 30) and 21 or 11 validation rows give the
    ranks unequal batch counts unless the epoch-end and evaluation passes pad their shares: a
    sharded forward on one rank alone would wait for the other (here gloo aborts). The causal LM
    records its evaluations with such a pass in both modes.
    """
    from datacarto.testing import make_tiny_causal_lm_dir, toy_instruction_words, toy_instructions

    cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "1", "--nproc_per_node", "2",
           "--master_addr", "127.0.0.1", "--master_port", str(_free_port()), str(FSDP_LAUNCH)]
    out, data, dev = tmp_path / "run", tmp_path / "train.jsonl", tmp_path / "dev.jsonl"
    if task == "causal-lm":
        rows = [{"prompt": r["prompt"], "response": r["response"]} for r in toy_instructions(N, seed=3)]
        model, n_dev = make_tiny_causal_lm_dir(tmp_path / "gpt2", toy_instruction_words()), 11
        cmd += ["-m", "datacarto.cli", "train", "--model", model, "--dataset", str(data), "--validation", str(dev),
                "--task", "causal-lm", "--prompt-column", "prompt", "--response-column", "response",
                "--output-dir", str(out), "--dynamics_mode", mode, "--num_train_epochs", "2",
                "--per_device_train_batch_size", "8", "--learning_rate", "5e-3", "--use_cpu", "--disable_tqdm",
                "true", "--save_strategy", "no", "--logging_strategy", "no", "--seed", "0",
                "--fsdp_config", '{"version": 2}']
    else:
        rows, n_dev = toy_nli(N, seed=3), 21
        cmd += [str(EXAMPLE), *example_args(tiny_model, data, out, mode), "--validation_file", str(dev),
                "--eval_strategy", "epoch", "--fsdp_config", BERT_FSDP]
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    dev.write_text("".join(json.dumps(r) + "\n" for r in rows[:n_dev]))
    cmd += ["--fsdp", "--per_device_eval_batch_size", "5"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    dyn = load_dynamics(out)
    assert dyn.epochs == [0, 1] and dyn.manifest["task"] == task and dyn.manifest["mode"] == mode
    np.testing.assert_array_equal(dyn.ids, np.arange(N))
    assert np.isfinite(dyn.logits).all()
    assert all(s["n"] == N for s in dyn.manifest["snapshots"].values())
    val = load_dynamics(out, "validation")
    assert val.epochs == [0, 1]
    np.testing.assert_array_equal(val.ids, np.arange(n_dev))
    assert np.isfinite(val.logits).all()
