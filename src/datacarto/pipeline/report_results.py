"""The report's results sections: focused subsets, scores (accuracy or held-out loss), ensembles, times, config."""

from __future__ import annotations

import datetime as _dt
import json

import pandas as pd

from .._validation import fmt_seconds
from ..metrics import REGIONS
from .document import Document, fmt_float, mix, pct
from .report_state import RunState


def subsets_section(doc: Document, run: RunState) -> None:
    subsets = run.summary("select").in_order(run.recipe_order)
    if not subsets:
        return
    doc.h(2, "Focused subsets")
    rows = []
    for name, s in subsets.items():
        recipe = ", ".join(f"{k}={v}" for k, v in s.recipe.items() if k != "name")
        for kind, part in (("focused", s), ("random control", s.control)):
            if part is not None:
                control = "same size and label mix, random" if run.task_type.single_label else "same size, random"
                rows.append([name, kind, recipe if kind == "focused" else control,
                             part.n, mix(part.regions), mix(part.labels), part.path])
    doc.table(["recipe", "subset", "selection", "examples", "regions", "labels", "file"], rows)


def scores_section(doc: Document, run: RunState) -> None:
    if not run.layout.accuracy_csv.is_file():
        return
    acc = pd.read_csv(run.layout.accuracy_csv).set_index("model")
    scores = [s for s in run.task_type.scores
              if f"validation_{s}" in acc and s != "macro_f1"]  # macro-F1 is in accuracy.csv
    if not scores:
        return
    head = scores[0]
    doc.h(2, {"loss": "Held-out loss", "rmse": "Held-out RMSE"}.get(head, "Accuracy"))
    by_split = {split: [r for r in REGIONS if f"{split}_{r}_{head}" in acc] for split in ("test", "validation")}

    def region_header(split: str) -> list[str]:
        return [f"{split}: {r} (n={int(acc[f'{split}_{r}_n'].iloc[0]) if f'{split}_{r}_n' in acc else '?'})"
                for r in by_split[split]]

    def cell(value, score: str) -> str:
        return fmt_float(value) if score in RAW_SCORES else pct(value)

    def cells(row, split: str) -> list[str]:
        return [*[cell(row[f"{split}_{s}"], s) for s in scores],
                *[cell(row[f"{split}_{r}_{head}"], head) for r in by_split[split]]]

    titles = {s: SCORE_TITLES.get(s, s) for s in scores}
    doc.table(["model", *[f"test {titles[s]}" for s in scores], *region_header("test"),
               *[f"validation {titles[s]}" for s in scores], *region_header("validation")],
              [[name, *cells(row, "test"), *cells(row, "validation")] for name, row in acc.iterrows()])
    if head == "loss":
        doc.p("Loss: the mean negative log-likelihood per response token of the held-out set (lower is better); "
              "compare each focused model with its random control of the same size.")
    elif head != "accuracy" and run.task_type.score_help:
        doc.p(run.task_type.score_help)
    if by_split["validation"] or by_split["test"]:
        doc.p("Regions of validation and test examples come from the baseline's own predictions on them at "
              "each epoch end, so the baseline's per-region scores are biased by construction (easy-to-learn "
              "is where it was right): compare the other models with it region by region, and a focused "
              "model with its random control.")
    _ensembles(doc, run, list(acc.index))


SCORE_TITLES = {"accuracy": "accuracy", "macro_f1": "macro-F1", "micro_f1": "micro-F1", "micro_ap": "micro AP",
                "tag_f1": "tag F1",
                "loss": "loss", "token_accuracy": "token accuracy", "rmse": "RMSE", "spearman": "Spearman"}
#: scores shown as numbers, not percentages
RAW_SCORES = ("loss", "rmse", "spearman")


def _ensembles(doc: Document, run: RunState, order: list[str]) -> None:
    ensembles = run.summary("ensemble").ensembles
    ensembles = {n: ensembles[n] for n in [*order, *ensembles] if n in ensembles}
    if not ensembles:
        return
    first = next(iter(ensembles.values()))
    how = "weighted mean of logits" if first.combine == "logits" else "weighted mean of probabilities"
    doc.p(f"Ensembles: {how}, " + (
        "weights tuned on the validation set (so their validation accuracy is optimistic; compare them "
        "on test):" if first.tuned else "equal weights:"))
    doc.table(["ensemble", "members", "weights"],
              [[n, " + ".join(e.members), " / ".join(f"{w:.2f}" for w in e.weights)]
               for n, e in ensembles.items()])


def times_section(doc: Document, run: RunState) -> None:
    doc.h(2, "Time per stage")
    rows, total = [], 0.0
    for name, rec in run.stages.items():
        if name == "report":
            continue
        total += float(rec.get("seconds", 0.0))
        finished = _dt.datetime.fromtimestamp(rec.get("finished_at", 0)).strftime("%Y-%m-%d %H:%M:%S")
        rows.append([name, fmt_seconds(float(rec.get("seconds", 0.0))), finished])
    rows.append(["total (without the report)", fmt_seconds(total), ""])
    doc.table(["stage", "time", "finished"], rows)
    models = run.summary("focus").models
    if models:
        order = [f"{k}/{r}" for r in run.summary("select").in_order(run.recipe_order) for k in ("focused", "control")]
        models = {n: models[n] for n in [*order, *models] if n in models}
        doc.table(["model", "training examples", "time (training and prediction)"],
                  [[n, m.n, fmt_seconds(m.seconds)] for n, m in models.items()])


def configuration_section(doc: Document, run: RunState) -> None:
    from ..dynamics.store import package_versions

    text = json.dumps(run.config, indent=2, sort_keys=True, default=str)
    doc.h(2, "Configuration")
    with doc.folded(f"the run's whole configuration (config.json, {text.count(chr(10)) + 1} lines)"):
        doc.code(text)
    doc.h(2, "Package versions")
    versions = package_versions()
    head = ", ".join(f"{k} {v}" for k, v in list(versions.items())[:3])
    with doc.folded(head + (f" and {len(versions) - 3} more" if len(versions) > 3 else "")):
        doc.table(["package", "version"], [[k, v] for k, v in versions.items()])
