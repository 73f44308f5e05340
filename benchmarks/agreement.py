"""Human agreement: do the map's scores track what 100 annotators disagree on? (ChaosNLI-MNLI, MiniLM)

Trains all-MiniLM-L6-v2 cross-fitted (``train_crossfit``, K folds) on the 1,599 ChaosNLI-MNLI pairs
(``../shared/data/nli-annotators``; each has the label counts of 100 annotators), optionally with
SNLI rows as filler (``--filler N``), and compares each score, in-sample and out-of-sample, with the annotators' label
entropy: Spearman correlation, and the share of high-entropy items (top quartile) in each region
against the region's share of all ChaosNLI items (the base rate).

    .venv/bin/python benchmarks/agreement.py             # the measured run: 2 folds, 3 epochs, 7 min on 2 busy cores
    .venv/bin/python benchmarks/agreement.py --folds 3 --filler 1000 --max-length 128   # bigger: ~3x longer

The ChaosNLI data are CC BY-NC 4.0: benchmark use only, never shipped with the package.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from _minilm import add_training_flags, offline_cpu_env
from _minilm import training_args as minilm_training_args

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
CHAOS = SHARED / "nli-annotators" / "mnli_dev_matched_chaosnli.jsonl"
FILLER = SHARED / "snli-9k" / "train.jsonl"
SCORES = ("confidence", "variability", "correctness", "forgetfulness", "aum", "el2n", "entropy", "last_loss",
          "threshold_closeness", "self_confidence")


def annotator_entropy(counts) -> np.ndarray:  # noqa: F821
    import numpy as np

    p = np.asarray(counts, dtype=float)
    p = p / p.sum(axis=1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        return -np.nansum(np.where(p > 0, p * np.log(p), 0.0), axis=1)


def agreement_tables(metrics, entropy, *, high_quantile: float = 0.75):
    """Spearman of each score with ``entropy`` and the high-entropy share per region vs base rate."""
    import numpy as np
    import pandas as pd
    from scipy.stats import spearmanr

    from datacarto.metrics import REGIONS

    rows = []
    for score in SCORES:
        if score in metrics.columns:
            rho = spearmanr(metrics[score].to_numpy(), entropy).statistic
            rows.append({"score": score, "spearman": round(float(rho), 4)})
    high = entropy >= np.quantile(entropy, high_quantile)
    region = metrics["region"].astype(str).to_numpy()
    regions = [{"region": r, "base_rate": round(float((region == r).mean()), 4),
                "high_entropy_share": round(float((region[high] == r).mean()), 4)} for r in REGIONS]
    return pd.DataFrame(rows), pd.DataFrame(regions), int(high.sum())


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--filler", type=int, default=0, help="SNLI rows added as filler (default none)")
    p.add_argument("--limit", type=int, default=None, help="use only the first N ChaosNLI pairs (default: all)")
    add_training_flags(p, folds=2, max_length=96)
    ns = p.parse_args(argv)

    offline_cpu_env()
    import datasets
    import numpy as np
    import pandas as pd

    from datacarto.data import minilm_path
    from datacarto.dynamics.cache import get_metrics
    from datacarto.train.crossfit import train_crossfit

    chaos = pd.read_json(CHAOS, lines=True)
    if ns.limit is not None:
        chaos = chaos.iloc[: ns.limit]
    entropy = annotator_entropy(np.stack(chaos["chaos_label_count"].to_numpy()))
    frame = chaos[["premise", "hypothesis", "label"]].assign(source="chaosnli")
    if ns.filler:
        filler = pd.read_json(FILLER, lines=True).sample(n=ns.filler, random_state=ns.seed)
        frame = pd.concat([frame, filler[["premise", "hypothesis", "label"]].assign(source="snli")],
                          ignore_index=True)
    out = Path(ns.output_dir or tempfile.mkdtemp(prefix="datacarto-agreement-"))
    training_args = minilm_training_args(ns)
    print(f"agreement: {len(chaos)} ChaosNLI pairs + {ns.filler} SNLI filler, MiniLM, {ns.folds} folds, "
          f"{ns.epochs} epochs, lr {ns.learning_rate} -> {out}", flush=True)
    start = time.perf_counter()
    train_crossfit(model=minilm_path(), train=datasets.Dataset.from_pandas(frame, preserve_index=False),
                   folds=ns.folds, seed=ns.seed, output_dir=out, text_columns=["premise", "hypothesis"],
                   label_names=["entailment", "neutral", "contradiction"], training_args=training_args,
                   max_length=ns.max_length, overwrite_dynamics=True)
    seconds = time.perf_counter() - start
    n_chaos = len(chaos)
    summary = {"chaos_rows": n_chaos, "filler_rows": ns.filler, "folds": ns.folds, "epochs": ns.epochs,
               "seconds": round(seconds, 1)}
    for name, split in (("in-sample", "insample"), ("out-of-sample", "train")):
        metrics = get_metrics(out, split=split).sort_index()
        chaos_metrics = metrics.iloc[:n_chaos]  # row ids = positions: the ChaosNLI rows come first
        corr, regions, n_high = agreement_tables(chaos_metrics, entropy)
        acc = float((metrics["last_pred"] == metrics["gold"]).mean())
        print(f"\n== {name}: last-epoch accuracy on the trained labels {acc:.1%}; "
              f"{n_high} high-entropy items (top quartile)")
        print(corr.to_string(index=False))
        print(regions.to_string(index=False))
        summary[name] = {"last_epoch_accuracy": round(acc, 4),
                         "spearman": dict(zip(corr["score"], corr["spearman"])),
                         "regions": regions.set_index("region").to_dict(orient="index")}
    print(f"\n{seconds / 60:.1f} min in all")
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
