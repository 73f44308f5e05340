"""``report.html`` and ``report.md`` of a pipeline run, built from what the run left on disk.

``write_report(output_dir)`` reads the run folder through a :class:`~.layout.RunLayout` (config.json,
stages/*.json, metrics/, evaluation/, ensembles.json, maps/ and the baseline's recorded examples),
so a finished run can be reported again without training; of the pipeline it imports only the
layout and the stage summaries. Both files hold the same sections: with cleaning recipes first label
errors and retraining (:mod:`.report_cleaning`), then data map, regions (counts, label mix, examples),
label noise (when a column marks known wrong labels, as in the demo), focused subsets, accuracy,
time per stage, config and versions. The HTML page is self-contained and escapes all record text.
"""

from __future__ import annotations

import datetime as _dt
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .._io import write_text_atomic
from ..errors import DatacartoError
from ..learning_check import learning_warning
from ..metrics import REGIONS
from ..selection import REGION_RANKING, ranks_descending
from ..units import words_column
from .document import Document, fmt_float, pct, share
from .layout import RunLayout
from .report_cleaning import cleaning_lines, cleaning_results, cleaning_section
from .report_results import configuration_section, scores_section, subsets_section, times_section
from .report_state import RunState, fold, read_run, read_train_metrics

REGION_HELP = {
    "easy-to-learn": "high confidence, low variability: the model gets these right from the start",
    "ambiguous": "high variability: the model keeps changing its mind about these",
    "hard-to-learn": "low confidence, low variability: the model rarely gives the gold label (often label errors)",
}


def planted_summary(metrics: pd.DataFrame, marked: np.ndarray, region: str, scores: list[str]) -> dict[str, Any]:
    """Where planted examples (a boolean mask) landed and how well each score finds them.

    ``in_region`` / ``region_size``: marked examples in ``region`` and the region's size (the counts
    of :func:`datacarto.noise.noise_by_region`); ``auroc``: score -> AUROC of
    :func:`datacarto.noise.audit_scores` in the score's own direction (NaN unless some but not all
    are marked); ``by_region``: region -> examples and marked ones.
    """
    from ..noise import audit_scores, noise_by_region

    marked = np.asarray(marked, dtype=bool)
    spread = noise_by_region(metrics, marked)
    out = {"n": int(len(marked)), "n_marked": int(marked.sum()), "region": region,
           "in_region": int(spread.loc[region, "n_flipped"]), "region_size": int(spread.loc[region, "n"]),
           "auroc": dict.fromkeys(scores, float("nan")),
           "by_region": {r: {"n": int(spread.loc[r, "n"]), "noisy": int(spread.loc[r, "n_flipped"])}
                         for r in REGIONS}}
    if 0 < out["n_marked"] < len(marked):
        table = audit_scores(metrics, pd.Series(marked, index=metrics.index), scores=scores).set_index("score")
        out["auroc"] = {name: float(table.loc[name, "auroc"]) for name in scores}
    return out


def noise_summary(metrics: pd.DataFrame, is_noisy: np.ndarray) -> dict[str, Any]:
    """How many known-wrong labels fall in hard-to-learn, and how well low confidence finds them.

    The counts are :func:`datacarto.noise.noise_by_region`'s; ``auroc_confidence`` is
    :func:`datacarto.noise.audit_scores`' for ``confidence`` (NaN unless some but not all are noisy).
    """
    ps = planted_summary(metrics, is_noisy, "hard-to-learn", ["confidence"])
    return {"n": ps["n"], "n_noisy": ps["n_marked"], "in_hard": ps["in_region"], "hard_size": ps["region_size"],
            "auroc_confidence": ps["auroc"]["confidence"], "by_region": ps["by_region"]}


def vague_summary(metrics: pd.DataFrame, is_vague: np.ndarray) -> dict[str, Any]:
    """The demo's vague pairs (``is_ambiguous``), reported like the flipped labels: in ambiguous?"""
    return planted_summary(metrics, is_vague, "ambiguous", ["variability", "confidence"])


def _noise_column(examples: pd.DataFrame | None, name: str | None) -> str | None:
    if examples is None:
        return None
    if name is not None:
        if name not in examples.columns:
            raise DatacartoError(f"noise column {name!r} is not a column of the training data "
                                 f"(columns: {list(examples.columns)})")
        return name
    return "is_flipped" if "is_flipped" in examples.columns else None


# ----------------------------------------------------------------------------------------------
# sections


def _intro(doc: Document, run: RunState, title: str) -> None:
    doc.h(1, title)
    rows = run.summary("data").rows
    word = run.task_type.label_word  # the task's wording (datacarto.tasks)
    labels = "" if word is None else f" {word}: {', '.join(run.label_names)}."
    doc.p(f"Model: {run.config.get('model')}. Task: {run.task}. Training examples: "
          f"{rows.get('train', len(run.metrics)):,}; validation: {rows.get('validation', 0):,}; test: "
          f"{rows.get('test', 0):,}.{labels} Generated {_dt.datetime.now().strftime('%Y-%m-%d %H:%M')}.")
    if run.task_type.about:
        doc.p(run.task_type.about)


def _data_map(doc: Document, run: RunState) -> None:
    layout = run.layout
    doc.h(2, "Data map")
    for path, alt in ((layout.data_map_png, "data map: variability (x) against confidence (y)"),
                      (layout.data_map_regions_png, "data map coloured by region")):
        if path.is_file():
            doc.img(path, layout.rel(path), alt)
    html_map = layout.rel(layout.data_map_html)
    doc.link(html_map, f"interactive data map ({html_map})", "Open the ")
    doc.p("Each point is one training example: confidence is the mean probability the model gave its gold "
          "label over the epochs, variability its standard deviation, and the colour how often it was "
          "predicted correctly.")


def _regions(doc: Document, run: RunState) -> None:
    metrics, names = run.metrics, run.label_names
    doc.h(2, "Regions")
    barely = learning_warning(metrics)
    if barely:
        doc.p(f"Warning: {barely}.")
    region = metrics["region"].astype(object)
    gold = metrics["gold"].to_numpy()
    names = names if run.task_type.single_label else []  # others: the per-label table below
    table = []
    for r in REGIONS:
        members = (region == r).to_numpy()
        counts = np.bincount(gold[members], minlength=len(names)) if names else []
        table.append([r, int(members.sum()), share(members.sum(), len(metrics)), *[int(c) for c in counts],
                      REGION_HELP[r]])
    doc.table(["region", "examples", "share", *[f"label: {n}" for n in names], "meaning"], table)
    thresholds = run.summary("metrics").attrs
    if thresholds.get("variability_threshold") is not None:
        doc.p(f"Thresholds ({thresholds.get('method', 'quantile')}): ambiguous when variability > "
              f"{thresholds['variability_threshold']:.3f}; otherwise hard-to-learn when confidence <= "
              f"{thresholds.get('confidence_threshold', float('nan')):.3f}.")
    _by_label(doc, run)


def _by_label(doc: Document, run: RunState) -> None:
    """Multi-label: which labels are hard or ambiguous; token classification: which tags."""
    rows = run.summary("metrics").by_label
    if not rows:
        return
    what = "label" if run.task_type.unit == "label" else "gold tag"  # grouped by the label, or by the gold tag
    doc.p(f"Per {what} (units, hardest first):")
    doc.table([what, "units", "confidence", "variability", *REGIONS],
              [[r["label"], r["n"], fmt_float(r["confidence"]), fmt_float(r["variability"]),
                *[pct(r[g]) for g in REGIONS]] for r in rows])


def _crossfit(doc: Document, run: RunState) -> None:
    info = run.summary("metrics").crossfit
    if info is None:
        return
    shown = info.map
    other = "in-sample (the baseline)" if shown == "out-of-sample" else "out-of-sample (cross-fitted)"
    doc.h(2, "Cross-fitted dynamics")
    doc.p(f"{info.folds} fold models, each trained on {info.folds - 1} of {info.folds} folds (stratified "
          f"by label) and predicting its held-out fold at every epoch end. The map, the regions and the subsets "
          f"use the {shown} dynamics; {pct(info.same_region_share)} of the examples fall in the same region "
          f"with the {other} dynamics, whose regions are:")
    counts = info.other_regions
    doc.table(["region", "examples"], [[r, int(counts.get(r, 0))] for r in REGIONS])


def _seed_stability(doc: Document, run: RunState, n_examples: int) -> None:
    info = run.summary("metrics").seed_stability
    if not info:
        return
    doc.h(2, "Seed stability")
    seeds = ", ".join(info["runs"])
    doc.p(f"One run per seed ({seeds}): {info['stable']} of {info['n']} examples ({pct(info['stable_share'])}) "
          f"keep their region in every seed; {info['unstable']} are unstable (their region depends on the seed, "
          "so read it with care). Per majority region:")
    doc.table(["majority region", "examples", "stable", "share stable"],
              [[r, v["n"], v["stable"], share(v["stable"], v["n"]) if v["n"] else "-"]
               for r, v in info["per_region"].items()])
    table = pd.read_parquet(run.layout.seed_stability).set_index("row_id") if run.layout.seed_stability.is_file() \
        else None
    if table is not None and info["unstable"]:
        unstable = table[~table["stable"]].head(n_examples)
        text_columns = run.summary("data").text_columns
        rows = []
        for rid, row in unstable.iterrows():
            ex = run.examples.loc[rid] if run.examples is not None and rid in run.examples.index else None
            texts = [ex[c] if ex is not None and c in ex.index else "" for c in text_columns]
            rows.append([int(rid), *texts, *[str(row[r]) for r in info["runs"]], str(row["majority"])])
        doc.p(f"Unstable examples (first {len(rows)} of {info['unstable']}; all in "
              f"{run.layout.rel(run.layout.seed_stability)}):")
        doc.table(["row", *text_columns, *info["runs"], "majority"], rows)


def _gold_cell(run: RunState, ex, row) -> str:
    """An example's gold as the report shows it: its label, its label set, its hardest word and tag."""
    names = run.label_names

    def name(i) -> str:
        return names[int(i)] if 0 <= int(i) < len(names) else str(i)
    if run.task_type.unit == "label":
        return ", ".join(name(i) for i in ex["label"]) if ex is not None else ""
    if run.task_type.unit == "word":
        column = words_column(run.examples) if run.examples is not None else None
        words = ex[column] if ex is not None and column is not None else None
        sub = int(row.get("hardest_unit", -1))
        word = words[sub] if words is not None and 0 <= sub < len(words) else "?"
        return f"{word}: {name(row['gold'])}"
    return name(row["gold"])


def _region_examples(doc: Document, run: RunState, noise_col: str | None, n_examples: int) -> None:
    metrics, examples = run.metrics, run.examples
    data = run.summary("data")
    text_columns = [*data.text_columns, *run.spec.choice_columns]
    extra = [c for c in (noise_col, "is_ambiguous") if c and examples is not None and c in examples.columns]
    region = metrics["region"].astype(object)
    gold_header = run.task_type.gold_header
    for r in REGIONS:
        doc.h(3, f"Examples: {r}")
        metric, order = REGION_RANKING[r]  # first the examples select's region mode takes first
        members = metrics[region == r].sort_values([metric], ascending=not ranks_descending(metric, order),
                                                   kind="stable").head(n_examples)
        if members.empty:
            doc.p("No example in this region.")
            continue
        rows = []
        for rid, row in members.iterrows():
            ex = examples.loc[rid] if examples is not None else None
            texts = [fold(ex[c]) if ex is not None and c in ex.index else "" for c in text_columns]
            column = run.task_type.gold_column
            gold = fmt_float(row[column]) if column in row.index else _gold_cell(run, ex, row)
            rows.append([int(rid), *texts, gold, f"{row['confidence']:.3f}", f"{row['variability']:.3f}",
                         f"{row['correctness']:.2f}", *[bool(ex[c]) if ex is not None else "" for c in extra]])
        doc.table(["row", *text_columns, gold_header, "confidence", "variability", "correctness", *extra], rows)


def _label_noise(doc: Document, run: RunState, noise_col: str) -> None:
    noisy = run.examples[noise_col].fillna(False).astype(bool).to_numpy()
    ns = noise_summary(run.metrics, noisy)
    doc.h(2, "Label noise")
    what = "responses" if run.task_type.generative else "labels"
    doc.p(f"{ns['n_noisy']} of {ns['n']} training {what} are known to be wrong (column {noise_col!r}). "
          f"{ns['in_hard']} of them ({share(ns['in_hard'], ns['n_noisy'])}) landed in hard-to-learn, a region "
          f"of {ns['hard_size']} examples ({share(ns['hard_size'], ns['n'])} of the data). AUROC of low "
          f"confidence for finding them: {fmt_float(ns['auroc_confidence'])} (chance: 0.500).")
    doc.table(["region", "examples", "wrong labels", "share wrong"],
              [[r, v["n"], v["noisy"], share(v["noisy"], v["n"])] for r, v in ns["by_region"].items()])


def _vague_pairs(doc: Document, run: RunState) -> None:
    """The demo's deliberately vague pairs, counted the way the flipped labels are (docs/maps.md)."""
    vs = vague_summary(run.metrics, run.examples["is_ambiguous"].fillna(False).astype(bool).to_numpy())
    if not vs["n_marked"]:
        return
    doc.h(2, "Vague pairs")
    expected = vs["region_size"] / vs["n"] if vs["n"] else float("nan")
    found = vs["in_region"] / vs["n_marked"]
    doc.p(f"{vs['n_marked']} of {vs['n']} training pairs are deliberately vague (column 'is_ambiguous': a "
          f"hypothesis such as \"A man is busy.\" whose label was drawn from two plausible ones). "
          f"{vs['in_region']} of them ({share(vs['in_region'], vs['n_marked'])}) landed in ambiguous, a region of "
          f"{vs['region_size']} examples ({share(vs['region_size'], vs['n'])} of the data). AUROC of high "
          f"variability for finding them: {fmt_float(vs['auroc']['variability'])}; of low confidence: "
          f"{fmt_float(vs['auroc']['confidence'])} (chance: 0.500).")
    if not found > 1.5 * expected:  # no better than the region's share: say so, claim nothing more
        doc.p("So this map does not single out the vague pairs as ambiguous. The ambiguous region is about "
              "training dynamics (p(gold) changing from epoch to epoch), not about labels a person would "
              "call ambiguous: a coin-flip label on a vague hypothesis is learned as a middling p(gold) that "
              "stays put, which gives middling confidence and low variability (see docs/maps.md, "
              "\"Vague pairs and the ambiguous region\").")
    doc.table(["region", "examples", "vague pairs", "share vague"],
              [[r, v["n"], v["noisy"], share(v["noisy"], v["n"])] for r, v in vs["by_region"].items()])


# ----------------------------------------------------------------------------------------------
# the report


def write_report(output_dir: str | os.PathLike | RunLayout, *, title: str | None = None,
                 noise_column: str | None = None, n_examples: int = 5) -> tuple[Path, Path]:
    """Write ``report.html`` and ``report.md`` into a pipeline run folder; returns both paths.

    Parameters
    ----------
    output_dir : path or RunLayout
        The run folder ``run_pipeline`` wrote.
    title : str, optional
        Default: the config's title.
    noise_column : str, optional
        A boolean column of the training data marking known-wrong labels (default: ``is_flipped``
        when present, as in the demo); adds the label-noise section.
    n_examples : int, default 5
        Examples shown per region.

    Returns
    -------
    (Path, Path)
        The HTML and the Markdown report.
    """
    layout = output_dir if isinstance(output_dir, RunLayout) else RunLayout(output_dir)
    run = read_run(layout)
    title = title or run.config.get("title") or "datacarto report"
    noise_col = _noise_column(run.examples, noise_column)
    doc = Document()
    _intro(doc, run, title)
    cleaning_section(doc, run, noise_col)  # with cleaning recipes: the first section
    _data_map(doc, run)
    _regions(doc, run)
    _crossfit(doc, run)
    _seed_stability(doc, run, n_examples)
    _region_examples(doc, run, noise_col, n_examples)
    if noise_col is not None:
        _label_noise(doc, run, noise_col)
    if run.examples is not None and "is_ambiguous" in run.examples.columns:
        _vague_pairs(doc, run)
    subsets_section(doc, run)
    scores_section(doc, run)
    times_section(doc, run)
    configuration_section(doc, run)
    md_path = write_text_atomic(layout.report_md, doc.markdown())
    html_path = write_text_atomic(layout.report_html, doc.html(title))
    return html_path, md_path


def label_error_lines(output_dir: str | os.PathLike | RunLayout, *, noise_column: str | None = None) -> list[str]:
    """The lead lines of the report's "Label errors and retraining" section (none without a cleaning recipe)."""
    layout = output_dir if isinstance(output_dir, RunLayout) else RunLayout(output_dir)
    run = read_run(layout)
    results = cleaning_results(run, _noise_column(run.examples, noise_column or run.config.get("noise_column")))
    return cleaning_lines(results) if results is not None else []


__all__ = ["RunState", "label_error_lines", "noise_summary", "planted_summary", "vague_summary", "pct", "read_run", "read_train_metrics", "write_report"]
