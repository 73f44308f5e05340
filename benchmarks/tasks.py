"""Multiple choice, multi-label and token classification with all-MiniLM-L6-v2 on real data.

For each task: train with recording (training-pass mode), then print the share of examples per region
(example level: units aggregated), the validation score read from the recorded validation dynamics
(last epoch), and the audit AUROC of a second run with 10% of the units changed (a choice flipped, a
label added or dropped, a tag changed).

    python benchmarks/tasks.py [--n 1000] [--epochs 3] [--tasks multiple-choice,multi-label,token-classification]
    python benchmarks/tasks.py --pipeline [--n 600]   # datacarto run on each task: baseline, focused, controls
    python benchmarks/tasks.py --pipeline --tasks causal-lm --n 480 --epochs 12   # generated SFT data, tiny GPT-2

Data: ../shared/data/{winogrande,goemotions,wnut17} (see its README); not needed by the product.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
GOEMOTIONS = ["admiration", "amusement", "anger", "annoyance", "approval", "caring", "confusion", "curiosity",
              "desire", "disappointment", "disapproval", "disgust", "embarrassment", "excitement", "fear",
              "gratitude", "grief", "joy", "love", "nervousness", "optimism", "pride", "realization", "relief",
              "remorse", "sadness", "surprise", "neutral"]
WNUT = ["O", "B-corporation", "I-corporation", "B-creative-work", "I-creative-work", "B-group", "I-group",
        "B-location", "I-location", "B-person", "I-person", "B-product", "I-product"]
#: 28 sparse labels need a higher rate than the paired choices to predict any positive within a few epochs
LEARNING_RATES = {"multiple-choice": 5e-5, "multi-label": 5e-4, "token-classification": 1e-4}
TASKS = {
    "multiple-choice": dict(folder="winogrande", text_columns=["sentence"], choice_columns=["option1", "option2"],
                            label_column="label", label_names=None),
    "multi-label": dict(folder="goemotions", text_columns=["text"], label_column="labels", label_names=GOEMOTIONS),
    "token-classification": dict(folder="wnut17", label_column="ner_tags", label_names=WNUT),
}


def task_columns(task: str, spec: dict) -> dict:
    """The task options of ``spec`` that ``task`` has (its registry entry's): choices, or the tag column."""
    from datacarto.tasks import task_type

    given = {"tags_column": spec["label_column"], "choice_columns": spec.get("choice_columns")}
    return {k: v for k, v in given.items() if k in task_type(task).options}


def head(path: Path, n: int, out: Path) -> str:
    lines = path.read_text(encoding="utf-8").splitlines()[:n]
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return str(out)


def validation_score(task: str, run: Path) -> str:
    """The task's scores (datacarto.evaluation, the pipeline's own) of the last recorded validation epoch."""
    from datacarto import load_dynamics
    from datacarto.evaluation import evaluate_by_region
    from datacarto.tasks import task_type

    dyn = load_dynamics(run, "validation")
    table = evaluate_by_region({"last epoch": dyn.logits[:, -1]}, dyn.gold, scores=task_type(task).scores).iloc[0]
    return ", ".join(f"{name.removeprefix('overall_')} {table[name]:.3f}" for name in table.index
                     if name.startswith("overall_"))


#: causal LM (``--pipeline`` only): generated instructions, 15% of the training responses corrupted
#: (another row's), a clean test set, a tiny random GPT-2; recipes: S2L and the least-confident 15% left out
CAUSAL_RECIPES = [{"name": "s2l-30", "method": "trajectory-clusters", "fraction": 0.3, "clusters": 6},
                  {"name": "confident-85", "metric": "confidence", "fraction": 0.85, "order": "easiest"}]


def _causal_config(n: int, n_val: int, epochs: int, work: Path):
    import json

    from datacarto.pipeline import PipelineConfig
    from datacarto.testing import make_tiny_causal_lm_dir, toy_instruction_words, toy_instructions

    rows = toy_instructions(n, corrupt=0.15, seed=0)
    held_out = toy_instructions(2 * n_val, seed=1)
    files = {}
    for split, part in (("train", rows), ("validation", held_out[:n_val]), ("test", held_out[n_val:])):
        files[split] = work / f"causal-{split}.jsonl"
        files[split].write_text("".join(json.dumps(r) + "\n" for r in part), encoding="utf-8")
    model = make_tiny_causal_lm_dir(work / "gpt2", toy_instruction_words())
    args = dict(num_train_epochs=epochs, learning_rate=3e-2, per_device_train_batch_size=8,
                per_device_eval_batch_size=64, use_cpu=True, disable_tqdm=True, save_strategy="no",
                logging_strategy="no", report_to="none")
    return PipelineConfig(model=model, dataset=str(files["train"]), validation=str(files["validation"]),
                          test=str(files["test"]), output_dir=str(work / "causal-lm-pipeline"), task="causal-lm",
                          prompt_column="prompt", response_column="response", training_args=args,
                          focus_training_args={"num_train_epochs": max(1, epochs // 2)},
                          recipes=[dict(r) for r in CAUSAL_RECIPES], noise_column="corrupted")


def run_pipeline_task(task: str, n: int, n_val: int, epochs: int, work: Path) -> None:
    """``datacarto run`` on the task: the baseline, two focused models and their random controls, scored."""

    from datacarto.data import minilm_path
    from datacarto.pipeline import PipelineConfig, run_pipeline

    if task == "causal-lm":
        start = time.perf_counter()
        result = run_pipeline(_causal_config(n, n_val, epochs, work), quiet=True)
        _print_scores(task, work / "causal-lm-pipeline", "test", n, epochs, time.perf_counter() - start)
        noise = [line for line in result.report_md.read_text().splitlines() if "known to be wrong" in line]
        print("  report:", *noise, flush=True)
        return
    spec = dict(TASKS[task])
    folder = DATA / spec.pop("folder")
    files = {s: head(folder / f"{s}.jsonl", n if s == "train" else n_val, work / f"{task}-{s}.jsonl")
             for s in ("train", "validation", "test") if (folder / f"{s}.jsonl").is_file()}
    args = dict(num_train_epochs=epochs, learning_rate=LEARNING_RATES[task], per_device_train_batch_size=16,
                per_device_eval_batch_size=64, use_cpu=True, disable_tqdm=True, save_strategy="no",
                logging_strategy="no", report_to="none")
    config = PipelineConfig(model=minilm_path(), dataset=files["train"], validation=files["validation"],
                            test=files.get("test"), output_dir=str(work / f"{task}-pipeline"),
                            text_columns=spec.get("text_columns"), label_column=spec["label_column"],
                            class_names=spec["label_names"], training_args=args,
                            focus_training_args={"num_train_epochs": max(1, epochs - 1)},
                            task=task, **task_columns(task, spec))
    start = time.perf_counter()
    run_pipeline(config, quiet=True)
    _print_scores(task, work / f"{task}-pipeline", "test" if "test" in files else "validation", n, epochs,
                  time.perf_counter() - start)


def _print_scores(task: str, out: Path, split: str, n: int, epochs: int, seconds: float) -> None:
    import pandas as pd

    table = pd.read_csv(out / "evaluation" / "accuracy.csv").set_index("model")
    columns = [c for c in table.columns if c.startswith(f"{split}_") and c.count("_") <= 2
               and not any(r in c for r in ("easy", "ambiguous", "hard"))]
    print(f"{task} pipeline: {n} examples x {epochs} epochs, all stages in {seconds:.0f} s; {split} scores:")
    print(table[columns].round(3).to_string(), flush=True)


def run_task(task: str, n: int, n_val: int, epochs: int, work: Path) -> None:
    from datacarto.audit_tasks import run_task_audit
    from datacarto.data import minilm_path
    from datacarto.dynamics.cache import get_metrics
    from datacarto.metrics import REGIONS
    from datacarto.tasks import TaskSpec
    from datacarto.train.baseline import train_baseline

    spec = dict(TASKS[task])
    folder = DATA / spec.pop("folder")
    train = head(folder / "train.jsonl", n, work / f"{task}-train.jsonl")
    val = head(folder / "validation.jsonl", n_val, work / f"{task}-val.jsonl")
    args = dict(num_train_epochs=epochs, learning_rate=LEARNING_RATES[task],
                per_device_train_batch_size=16, per_device_eval_batch_size=64, use_cpu=True, disable_tqdm=True,
                save_strategy="no", logging_strategy="no", report_to="none", eval_strategy="epoch")
    start = time.perf_counter()
    columns = task_columns(task, spec)
    task_spec = TaskSpec.from_options(task, text_columns=spec.get("text_columns"), label_column=spec["label_column"],
                                      label_names=spec["label_names"], **columns)
    train_baseline(model=minilm_path(), train=train, validation=val, task_spec=task_spec, output_dir=work / task,
                   training_args=args, max_length=128, save_model=False)
    seconds = time.perf_counter() - start
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        metrics = get_metrics(work / task)
    for w in caught:
        if "barely learned" in str(w.message):
            print(f"  warning: {w.message}", flush=True)
    shares = ", ".join(f"{r} {np.mean(metrics['region'] == r):.1%}" for r in REGIONS)
    print(f"{task}: {n} examples x {epochs} epochs in {seconds:.0f} s; regions: {shares}; "
          f"validation ({n_val}): {validation_score(task, work / task)}", flush=True)
    audit_args = {k: v for k, v in args.items() if k != "eval_strategy"}
    audit = run_task_audit(dataset=train, model=minilm_path(), output_dir=work / f"{task}-audit",
                           noise=0.1, seed=0, text_columns=spec.get("text_columns"),
                           label_column=spec["label_column"], label_names=spec["label_names"],
                           training_args=audit_args, max_length=128, task=task, **columns)
    table = audit.scores.set_index("score")
    best = table["auroc"].idxmax()
    print(f"  audit, 10% of {audit.n_examples} units changed: AUROC confidence "
          f"{table.loc['confidence', 'auroc']:.3f}, best {best} {table.loc[best, 'auroc']:.3f}", flush=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=1000, help="training examples per task")
    p.add_argument("--n-val", type=int, default=300)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--tasks", default=",".join(TASKS))
    p.add_argument("--pipeline", action="store_true",
                   help="run datacarto run on each task instead (focused models and random controls, scored)")
    a = p.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    warnings.filterwarnings("ignore")
    from transformers.utils import logging

    logging.set_verbosity_error()
    with tempfile.TemporaryDirectory() as tmp:
        for task in a.tasks.split(","):
            if task == "causal-lm" and not a.pipeline:
                p.error("causal-lm is measured with --pipeline here (benchmarks/generative.py for the rest)")
            (run_pipeline_task if a.pipeline else run_task)(task, a.n, a.n_val, a.epochs, Path(tmp))


if __name__ == "__main__":
    main()
