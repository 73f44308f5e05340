"""What the MiniLM benchmarks share: training flags, the offline environment, TrainingArguments fields."""

from __future__ import annotations

import argparse
import os


def add_training_flags(p: argparse.ArgumentParser, *, folds: int = 3, max_length: int = 128) -> None:
    """``--folds --epochs --seed --learning-rate --batch-size --max-length --output-dir``."""
    p.add_argument("--folds", type=int, default=folds, help=f"cross-fitting folds (default {folds})")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--learning-rate", type=float, default=1e-4, help="a small model: higher than the paper's 2e-5")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--max-length", type=int, default=max_length)
    p.add_argument("--output-dir", default=None, help="default: a new folder under the temp dir")


def offline_cpu_env() -> None:
    """No hub access; sleeping (not spinning) OpenMP threads, much faster on a shared 2-core machine.

    Call before torch loads.
    """
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def training_args(ns: argparse.Namespace) -> dict:
    """TrainingArguments fields over datacarto's TRAINING_DEFAULTS: CPU, no checkpoints, quiet."""
    return {"num_train_epochs": ns.epochs, "learning_rate": ns.learning_rate,
            "per_device_train_batch_size": ns.batch_size, "per_device_eval_batch_size": 128,
            "save_strategy": "no", "logging_strategy": "epoch", "report_to": "none", "use_cpu": True,
            "seed": ns.seed, "disable_tqdm": True}
