"""The report's first section with cleaning recipes: how many labels are wrong, which were flagged, and
whether the model retrained on the corrected data beats the baseline and its random-drop control.

Everything is read from the run folder (the clean stage's record, ``cleaning/*.corrections.csv``,
``predictions/*.npz``); the intervals and paired tests are :mod:`datacarto.significance`'s, on the
same test rows (validation rows when the run has no test set).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from ..dynamics.label_errors import describe_method
from ..significance import compare_paired, flag_precision_recall, fmt_p
from .document import Document, pct
from .report_state import RunState

TITLE = "Label errors and retraining"


def _correct(run: RunState, names: list[str]) -> tuple[str, dict[str, np.ndarray]]:
    """(split, model -> per-row correct) on the test set, else validation, for the models with predictions."""
    layout = run.layout
    with np.load(layout.unit_gold) as data:
        split = "test" if "test" in data.files else "validation"
        gold = data[split]
    out = {}
    for name in names:
        with np.load(layout.predictions(name)) as data:
            out[name] = np.argmax(data[split], axis=1) == gold
    return split, out


def cleaning_results(run: RunState, noise_col: str | None) -> dict[str, Any] | None:
    """The clean stage's figures: estimate, flags (precision and recall against ``noise_col``), comparisons.

    None without a cleaning recipe; ``{"refused": why}`` when the run could not support an estimate.
    """
    summary = run.summary("clean")
    if not summary.order:
        return None
    if summary.refused:
        return {"refused": summary.refused}
    entries = summary.in_order()
    names = ["baseline", *summary.model_names()]
    split, correct = _correct(run, names)
    noisy = None
    if noise_col is not None and run.examples is not None:
        noisy = run.examples[noise_col].fillna(False).astype(bool).to_numpy()
    recipes = {}
    for name, e in entries.items():
        r = {"entry": e}
        if noisy is not None:
            flagged = pd.read_csv(run.layout.root / e.corrections)["row_id"] if e.corrections else []
            hits, precision, recall = flag_precision_recall(np.isin(run.examples.index, flagged), noisy)
            r["flags"] = {"true": hits, "precision": precision, "recall": recall}
        if e.model:
            r["vs_baseline"] = compare_paired(correct[e.model], correct["baseline"])
            if e.control is not None:
                r["vs_control"] = compare_paired(correct[e.model], correct[e.control.model])
                r["control_vs_baseline"] = compare_paired(correct[e.control.model], correct["baseline"])
        recipes[name] = r
    return {"refused": None, "summary": summary, "split": split, "n_rows": int(len(correct["baseline"])),
            "noise_column": noise_col, "n_noisy": int(noisy.sum()) if noisy is not None else None,
            "recipes": recipes}


def _acc(interval: tuple[float, float, float]) -> str:
    acc, low, high = interval
    return f"{pct(acc)} ({pct(low)}–{pct(high)})"


def cleaning_lines(results: dict[str, Any]) -> list[str]:
    """The section's lead: the estimate and the flags, then one line per cleaning recipe (``datacarto demo`` prints them)."""
    if results.get("refused"):
        return [f"Label errors: not estimated, nothing retrained: {results['refused']}."]
    s = results["summary"]
    est, src = s.estimate, s.source
    first = next(iter(results["recipes"].values()), None)
    flagged = first["entry"].flagged if first else est["total"]
    line = (f"Label errors: {est['total']} of {est['n']} training labels estimated wrong "
            f"({pct(est['total'] / max(est['n'], 1))}; {describe_method(src)}, "
            f"{src['epochs']} of {src['n_epochs']} epochs' probabilities); {flagged} flagged")
    if first and "flags" in first:
        f = first["flags"]
        line += (f", {f['true']} of them known to be wrong (column {results['noise_column']!r}, "
                 f"{results['n_noisy']} in all): precision {_ratio(f['precision'])}, recall {_ratio(f['recall'])}")
    lines = [line + "."]
    what = "test" if results["split"] == "test" else "validation"
    for name, r in results["recipes"].items():
        e = r["entry"]
        if "vs_baseline" not in r:
            lines.append(f"{name}: nothing flagged, nothing retrained.")
            continue
        done = f"{e.relabelled} relabelled" if e.action == "relabel" else f"{e.dropped} dropped"
        text = (f"{name} ({e.action}: {done}), {what} accuracy on {results['n_rows']} rows with 95% intervals: "
                f"cleaned {_acc(r['vs_baseline'].accuracy_a)}, baseline {_acc(r['vs_baseline'].accuracy_b)}")
        if "vs_control" in r:
            text += (f", random-drop control {_acc(r['vs_control'].accuracy_b)}; "
                     f"{r['vs_control'].describe('cleaned', 'control')}")
        lines.append(f"{text}; {r['vs_baseline'].describe('cleaned', 'baseline')}.")
    return lines


def _ratio(x: float) -> str:
    return "–" if x != x else f"{x:.2f}"


def cleaning_section(doc: Document, run: RunState, noise_col: str | None) -> None:
    """``## Label errors and retraining``: the lead lines, the estimate per class, the models side by side."""
    results = cleaning_results(run, noise_col)
    if results is None:
        return
    doc.h(2, TITLE)
    for line in cleaning_lines(results):
        doc.p(line)
    if results.get("refused"):
        return
    s = results["summary"]
    if s.source.get("warning"):
        doc.p(f"Warning: {s.source['warning']}.")
    per_class = s.estimate["per_class"]  # stored records sort their keys: back to the classes' order
    order = [*[n for n in run.label_names if n in per_class], *[n for n in per_class if n not in run.label_names]]
    doc.table(["given label", "examples", "estimated wrong", "share"],
              [[k, per_class[k]["n"], per_class[k]["estimated_errors"],
                pct(per_class[k]["estimated_errors"] / max(per_class[k]["n"], 1))] for k in order])
    rows = []
    for name, r in results["recipes"].items():
        e = r["entry"]
        if "vs_baseline" not in r:
            continue
        rows.append(_model_row(name, "cleaned", e.model, e.n_train, e.data, r["vs_baseline"], r.get("vs_control")))
        if "vs_control" in r:
            c = e.control
            rows.append(_model_row(name, "random-drop control", c.model, c.n_train, c.data,
                                   r["control_vs_baseline"], None))
    what = "test" if results["split"] == "test" else "validation"
    doc.p(f"Each model is trained from the pretrained model with the baseline's training arguments; {what} "
          f"accuracy on the same {results['n_rows']} rows. Intervals: Wilson (accuracy) and paired bootstrap "
          "(differences); p: McNemar's exact test on the rows where the two models disagree. The corrected "
          "data and the corrections (the flagged rows, an apply-corrections file) are under cleaning/.")
    doc.table(["recipe", "model", "examples", f"{what} accuracy (95% interval)", "vs baseline (points, 95% interval)",
               "p", "vs control", "p", "data"], rows)


def _model_row(recipe: str, kind: str, model: str, n: int, data: str, vs_baseline, vs_control) -> list:
    def diff(c) -> str:
        d, low, high = (100 * x for x in c.difference)
        return f"{d:+.1f} ({low:+.1f} to {high:+.1f})"

    return [recipe, f"{kind}: {model}", n, _acc(vs_baseline.accuracy_a), diff(vs_baseline), fmt_p(vs_baseline.p_value),
            diff(vs_control) if vs_control else "–", fmt_p(vs_control.p_value) if vs_control else "–", data]
