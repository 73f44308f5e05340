"""Which probabilities should the label-error count use? Measured on tiny-model runs with injected noise.

For each seed and noise setting, flips labels of the toy NLI data (``datacarto.testing.toy_nli``,
learnable from a cue word, so the injected flips are the only wrong labels), trains a tiny BERT once
in-sample and once cross-fitted (``train_crossfit``, 3 folds), and runs the confident-learning count
(``run_label_errors``) on each store with each epoch rule (mean of the epochs' probabilities, last
epoch) and each score: the estimated count against the true one, and precision and recall of the
flagged rows. Prints one table (the figures in docs/label_errors.md) and writes it as JSON.

    PYTHONPATH=src .venv/bin/python benchmarks/label_errors_tiny.py               # about 10 min on 2 busy cores
    PYTHONPATH=src .venv/bin/python benchmarks/label_errors_tiny.py --seeds 0 --rows 150   # quicker

CPU only, offline; no cleanlab.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
NOISES = {"uniform 10%": ("uniform", 0.1), "uniform 20%": ("uniform", 0.2),
          "class-conditional 10%": ("class-conditional", 0.1)}
#: (rows, epochs, hidden size, dropout): a model that learns the cue and never fits the flips, and one
#: that memorises (no dropout, few rows, many epochs: in-sample it fits most flips). Learning rate 1e-3:
#: higher rates (2e-3, 5e-3) leave some seeds stuck at chance or on two of the three classes.
REGIMES = {"learns": (240, 8, 64, 0.1), "memorises": (90, 30, 64, 0.0)}


def training_args(out, epochs: int, seed: int):
    from transformers import TrainingArguments

    return TrainingArguments(output_dir=str(out), num_train_epochs=epochs, per_device_train_batch_size=8,
                             per_device_eval_batch_size=32, learning_rate=1e-3, report_to="none",
                             save_strategy="no", logging_strategy="no", use_cpu=True, disable_tqdm=True, seed=seed)


def noisy_rows(n: int, seed: int, kind: str, rate: float):
    from datacarto.noise import inject_label_noise
    from datacarto.testing import toy_nli

    rows = toy_nli(n, seed=seed)
    noisy, flipped = inject_label_noise(np.array([r["label"] for r in rows]), rate, kind=kind, seed=seed)
    return [{**r, "label": int(y)} for r, y in zip(rows, noisy)], flipped


def score_stores(stores: dict, flipped: np.ndarray) -> list[dict]:
    from datacarto.dynamics.label_errors import run_label_errors
    from datacarto.dynamics.store import load_dynamics
    from datacarto.errors import DatacartoError

    out = []
    for name, (run, split) in stores.items():
        dyn = load_dynamics(run, split)
        last = dyn.logits[:, -1].argmax(axis=1) == dyn.gold
        fit = {"fits_flips": float(last[flipped].mean()), "fits_clean": float(last[~flipped].mean())}
        for epochs in ("mean", "last"):
            for score in ("self_confidence", "normalized_margin"):
                try:
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        found = run_label_errors(run, split=split, method="auto", epochs=epochs, score=score)
                except DatacartoError as e:
                    out.append({"store": name, "epochs": epochs, "score": score, **fit, "refused": str(e)[:60]})
                    continue
                ids = found.flagged["row_id"].to_numpy()
                hits = int(flipped[ids].sum())
                out.append({"store": name, "epochs": epochs, "score": score, **fit, "true": int(flipped.sum()),
                            "estimated": found.total, "ratio": found.total / max(int(flipped.sum()), 1),
                            "precision": hits / max(len(ids), 1), "recall": hits / max(int(flipped.sum()), 1)})
    return out


def one_setting(tmp: Path, model: str, n: int, seed: int, noise: str, epochs: int, folds: int,
                regime: str) -> list[dict]:
    import datasets

    from datacarto.train.baseline import train_baseline
    from datacarto.train.crossfit import train_crossfit

    kind, rate = NOISES[noise]
    rows, flipped = noisy_rows(n, seed, kind, rate)
    ds = datasets.Dataset.from_list(rows)
    ins, cf = tmp / f"in-{regime}-{seed}-{noise}", tmp / f"cf-{regime}-{seed}-{noise}"
    with contextlib.redirect_stdout(sys.stderr):  # the Trainer's progress lines
        train_baseline(model=model, train=ds, output_dir=ins, training_args=training_args(ins, epochs, seed),
                       save_model=False)
        train_crossfit(model=model, train=ds, folds=folds, seed=seed, output_dir=cf,
                       training_args=training_args(cf, epochs, seed))
    stores = {"in-sample (one model)": (ins, "train"), "out-of-sample (cross-fitted)": (cf, "train"),
              "in-sample (fold models)": (cf, "insample")}
    return [{"regime": regime, "seed": seed, "noise": noise, **r} for r in score_stores(stores, flipped)]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--regimes", nargs="+", default=list(REGIMES), choices=list(REGIMES))
    p.add_argument("--folds", type=int, default=3)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--noise", nargs="+", default=list(NOISES), choices=list(NOISES))
    p.add_argument("--out", default=None, help="write the rows as JSON here")
    args = p.parse_args(argv)
    import torch

    from datacarto.testing import make_tiny_model_dir, toy_nli

    torch.set_num_threads(1)
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        texts = [r["premise"] + " " + r["hypothesis"] for r in toy_nli(60, seed=1)]
        for regime in args.regimes:
            rows, epochs, hidden, dropout = REGIMES[regime]
            model = make_tiny_model_dir(tmp / f"model-{regime}", texts, hidden_size=hidden, dropout=dropout)
            for seed in args.seeds:
                for noise in args.noise:
                    results += one_setting(tmp, model, rows, seed, noise, epochs, args.folds, regime)
                    print(f"done {regime}, seed {seed}, {noise}", file=sys.stderr, flush=True)
    frame = pd.DataFrame(results)
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=1))
    if "refused" in frame.columns:
        print(frame[frame["refused"].notna()][["regime", "seed", "noise", "store", "refused"]].drop_duplicates(
            ["regime", "seed", "noise", "store"]).to_string())
    keys = ["regime", "noise", "store", "epochs", "score"]
    table = frame.groupby(keys, sort=False)[["fits_flips", "fits_clean", "true", "estimated", "ratio", "precision",
                                             "recall"]].mean()
    with pd.option_context("display.width", 200, "display.max_rows", 200):
        print(table.round(3))
        print(frame.groupby(["regime", "store", "epochs", "score"], sort=False)[
            ["fits_flips", "ratio", "precision", "recall"]].mean().round(3))
    return 0


if __name__ == "__main__":
    sys.exit(main())
