"""The nine stages of the pipeline, as functions ``stage(ctx) -> StageRecord``, and their table.

Each function states the inputs its resume key hashes and hands a body to the runner; the body
returns (outputs, summary, content digest). :data:`STAGE_FUNCTIONS` maps every name of
:data:`~datacarto.pipeline.layout.STAGES` to its function, in order.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import numpy as np
import pandas as pd

from .._io import write_frame
from ..errors import DatacartoError
from ..evaluation import accuracy_table
from ..models import classifier_head
from ..tasks import DEFAULT_TASK, task_type
from .config import PipelineConfig
from .context import Context, jsonable, label_counts, load_predictions, region_counts, save_prepared
from .hashing import describe_data, digest, frame_digest, ids_digest
from .layout import STAGES
from .models import baseline_stage, ensemble_stage, focus_stage, prediction_names
from .request import check_request
from .runner import StageRecord

# ----------------------------------------------------------------------------------------------
# 1 data


def data_stage(ctx: Context) -> StageRecord:
    """Load and validate the splits for the task; write the prepared copies (digest: their content)."""
    c = ctx.config
    inputs = {"dataset": describe_data(c.dataset), "validation": describe_data(c.validation),
              "test": describe_data(c.test), "text_columns": c.text_columns, "label_column": c.label_column,
              "class_names": c.class_names}
    defaults = task_options(PipelineConfig())
    inputs.update({k: v for k, v in task_options(c).items() if v != defaults[k]})  # defaults absent: old hashes hold
    head = classifier_head(c.model, None) if c.task is None or not task_type(c.task).generative else None
    if head is not None:  # a classifier's classes are the run's (a base model's come from the data)
        inputs["model_classes"] = head.labels

    def body():
        from ..train.baseline import load_split

        train, spec = _load_train(ctx)
        splits = {"train": train}
        splits["validation"], _ = load_split(c.validation, spec, split="validation", what="validation set")
        if c.test is not None:
            splits["test"], _ = load_split(c.test, spec, split="test", what="test set")
        outputs, rows, digests = [], {}, {}
        for name, ds in splits.items():
            save_prepared(ds, ctx.layout.data_split(name))
            outputs.append(ctx.layout.rel(ctx.layout.data_split(name)))
            rows[name] = len(ds)
            digests[name] = frame_digest(ds.to_pandas())
        summary = {"rows": rows, "digests": digests, "text_columns": spec.text_columns,
                   "label_column": spec.label_column, "label_names": spec.label_names,
                   "columns": train.column_names, "task_spec": spec.to_dict()}
        return outputs, summary, digest([digests, summary["label_names"], summary["text_columns"]])

    return ctx.runner.run("data", inputs, body)


def task_options(c) -> dict:
    """The config's task and task columns, as ``load_split``/``train_baseline`` take them."""
    return {"task": c.task, **c.task_options()}


def _load_train(ctx: Context):
    """The training split and its TaskSpec, for the task given or inferred from its columns (said when not the default).

    ``run_pipeline`` prepared and checked it before anything was written (:func:`check_request`).
    """
    checked = ctx.checked or check_request(ctx.config)
    if checked.spec.task != DEFAULT_TASK:
        ctx.log(f"      task: {checked.spec.task} ({checked.why})")
    return checked.train, checked.spec


# ----------------------------------------------------------------------------------------------
# 3 metrics


def regions_from_dynamics(baseline_dir, split: str) -> pd.Series | None:
    """Regions of a validation or test set from the baseline's dynamics on it (None if unrecorded)."""
    from ..dynamics.cache import eval_regions
    from ..dynamics.store import dynamics_dir, list_epoch_files

    if not list_epoch_files(dynamics_dir(baseline_dir, split)):
        return None
    with warnings.catch_warnings():  # one epoch: regions are degenerate, and the report says how many
        warnings.simplefilter("ignore", UserWarning)
        regions = eval_regions(baseline_dir, split=split)
    regions = pd.Series(np.asarray(regions, dtype=object), index=np.arange(len(regions)), name="region")
    regions.index.name = "row_id"
    return regions


def metrics_stage(ctx: Context) -> StageRecord:
    """Per-example metrics and regions of the training data, regions of validation and test."""
    def body():
        from ..dynamics.cache import get_metrics

        layout = ctx.layout
        m = get_metrics(ctx.map_dir())
        write_frame(m, layout.train_metrics)
        outputs = [layout.rel(layout.train_metrics)]
        summary = {"regions": region_counts(m["region"]), "attrs": jsonable(dict(m.attrs)), "n": int(len(m))}
        outputs += _repeat_metrics(ctx, m, summary)
        if ctx.spec.type.per_row:
            summary["by_label"] = _by_label(ctx)
        for split in ("validation", "test"):
            regions = regions_from_dynamics(layout.baseline_dir, split)
            if regions is not None:
                write_frame(regions.to_frame("region"), layout.split_regions(split))
                outputs.append(layout.rel(layout.split_regions(split)))
                summary[f"{split}_regions"] = region_counts(regions)
        return outputs, summary, frame_digest(m)

    return ctx.runner.run("metrics", {"baseline": ctx.rec("baseline").digest}, body)


def _by_label(ctx: Context) -> list[dict]:
    """Per label (multi-label) or per gold tag (token classification): units, confidence, region shares."""
    from ..dynamics.cache import get_metrics
    from ..units import summary_by

    with warnings.catch_warnings():  # said once for the example table
        warnings.simplefilter("ignore", UserWarning)
        unit_metrics = get_metrics(ctx.map_dir(), level="unit")
    groups = unit_metrics["sub_id" if ctx.spec.type.unit == "label" else "gold"].to_numpy()  # the label, or the tag
    table = summary_by(unit_metrics, groups, ctx.spec.label_names)
    return jsonable(table.reset_index().to_dict("records"))


def _repeat_metrics(ctx: Context, m: pd.DataFrame, summary: dict) -> list[str]:
    """With ``folds``: the other dynamics' regions beside the map's; with ``seeds``: seed stability."""
    from ..dynamics.cache import get_metrics

    c, layout, outputs = ctx.config, ctx.layout, []
    if c.folds:
        other_dir = layout.baseline_dir if ctx.map_dir() == layout.crossfit_dir else layout.crossfit_dir
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            other = get_metrics(other_dir)
        same = float((other["region"].astype(object) == m["region"].astype(object)).mean())
        summary["crossfit"] = {"folds": c.folds, "map": c.dynamics, "other_regions": region_counts(other["region"]),
                               "same_region_share": same}
    if c.seeds:
        from ..dynamics.stability import seed_regions, stability_summary

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            table = seed_regions(ctx.seed_runs())
        table.columns = [*(f"seed_{s}" for s in c.seeds), "majority", "stable"]
        write_frame(table, layout.seed_stability)
        summary["seed_stability"] = stability_summary(table)
        outputs.append(layout.rel(layout.seed_stability))
    return outputs


# ----------------------------------------------------------------------------------------------
# 4 maps


def maps_stage(ctx: Context) -> StageRecord:
    """The data map PNGs (by ``map_color_by`` and by region) and the interactive HTML map."""
    c = ctx.config
    inputs = {"metrics": ctx.rec("metrics").digest, "color_by": c.map_color_by, "title": c.title}

    def body():
        from ..maps.run_maps import write_run_maps

        layout = ctx.layout
        write_run_maps(ctx.map_dir(), html=layout.data_map_html, png=layout.data_map_png,
                       extra_pngs={layout.data_map_regions_png: "region"}, color_by=c.map_color_by,
                       title=c.title, dpi=110)
        paths = (layout.data_map_png, layout.data_map_regions_png, layout.data_map_html)
        return [layout.rel(p) for p in paths], {}, None

    return ctx.runner.run("maps", inputs, body)


# ----------------------------------------------------------------------------------------------
# 5 select


def select_stage(ctx: Context) -> StageRecord:
    """One subset per recipe, plus its random control (digest: the chosen row ids)."""
    c = ctx.config
    inputs = {"metrics": ctx.rec("metrics").digest, "recipes": c.recipes, "control": c.control, "seed": c.seed}

    def body():
        m = ctx.train_metrics()
        subsets, outputs = {}, []
        for recipe in ctx.bar(c.recipes, "selecting"):
            subsets[recipe["name"]] = entry = _select_recipe(ctx, m, recipe)
            outputs += [entry["path"]] + ([entry["control"]["path"]] if "control" in entry else [])
        return outputs, {"subsets": subsets}, digest(subsets)

    return ctx.runner.run("select", inputs, body)


def _select_recipe(ctx: Context, m: pd.DataFrame, recipe: dict) -> dict:
    """Select one recipe's subset (and its random control), write them, and describe them."""
    from ..dynamics.subsets import export_subset, select_from_run, subset_rows
    from ..selection import random_control

    c, layout, name = ctx.config, ctx.layout, recipe["name"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        try:  # the selection of `datacarto select` (S2L clusters the map's loss trajectories)
            ids = select_from_run(ctx.map_dir(), m, seed=c.seed, **{k: v for k, v in recipe.items() if k != "name"})
        except DatacartoError as e:
            raise DatacartoError(f"recipe {name!r}: {e}") from None
    if ids.size == 0:
        raise DatacartoError(f"recipe {name!r} selects no example: loosen its criteria")

    def part(chosen: np.ndarray, control: bool) -> dict:
        path = layout.subset(name, control=control)
        export_subset(subset_rows(layout.baseline_dir, chosen), path)
        labels = label_counts(m.loc[chosen, "gold"], ctx.spec.label_names) if single else {}
        return {"n": int(chosen.size), "digest": ids_digest(chosen), "path": layout.rel(path),
                "regions": region_counts(m.loc[chosen, "region"]), "labels": labels}

    single = ctx.spec.type.single_label  # an example has one gold label to count and match
    entry = {"recipe": recipe, **part(ids, control=False)}
    if c.control:
        entry["control"] = part(random_control(ids, m, match_labels=single, seed=c.seed), control=True)
    return entry


# ----------------------------------------------------------------------------------------------
# 8 evaluate


def evaluate_stage(ctx: Context) -> StageRecord:
    """The task's scores (accuracy, macro-F1, ...) of every model and ensemble, overall and per region."""
    inputs = {"ensemble": ctx.rec("ensemble").digest, "focus": ctx.rec("focus").digest,
              "baseline": ctx.rec("baseline").digest, "metrics": ctx.rec("metrics").digest}

    def body():
        layout = ctx.layout
        preds = {n: load_predictions(layout.predictions(n)) for n in prediction_names(ctx)}
        test_gold = test_regions = None
        if all("test" in p for p in preds.values()) and layout.data_split("test").is_file():
            test_gold = ctx.gold("test")
            test_regions = ctx.read_split_regions("test")
            if test_regions is not None and len(test_regions) != len(test_gold):
                test_regions = None
        val_gold, val_regions = ctx.gold("validation"), ctx.read_split_regions("validation")
        if val_regions is not None and len(val_regions) != len(val_gold):
            val_regions = None
        table = accuracy_table({n: p["validation"] for n, p in preds.items()}, val_gold, val_regions,
                               test={n: p["test"] for n, p in preds.items()} if test_gold is not None else None,
                               test_gold=test_gold, test_regions=test_regions, scores=ctx.spec.type.scores,
                               outside=outside_tag(ctx.spec.label_names))
        write_frame(table, layout.accuracy_csv, index=True)
        return [layout.rel(layout.accuracy_csv)], {"accuracy": jsonable(table.reset_index().to_dict("records"))}, None

    return ctx.runner.run("evaluate", inputs, body)


def outside_tag(label_names: list[str]) -> int:
    """The id of the outside tag of token classification: the one named O, else 0 (the usual first tag)."""
    return next((i for i, name in enumerate(label_names or []) if name.upper() == "O"), 0)


# ----------------------------------------------------------------------------------------------
# 9 report


def report_stage(ctx: Context) -> StageRecord:
    """``report.html`` and ``report.md`` (redone whenever any stage ran)."""
    c = ctx.config
    upstream = {n: ctx.rec(n).digest for n in STAGES[:-1]}
    config = {k: v for k, v in c.to_dict().items() if k != "output_dir"}  # a moved run stays up to date
    inputs = {"upstream": upstream, "config": config,
              # when each stage last ran: the report shows their times, so any stage that ran redoes it
              # (seconds alone can repeat to the millisecond)
              "ran": {n: [ctx.rec(n).seconds, ctx.rec(n).finished_at] for n in STAGES[:-1]}}

    def body():
        from .report import write_report

        html_path, md_path = write_report(ctx.layout, title=c.title, noise_column=c.noise_column)
        return [ctx.layout.rel(html_path), ctx.layout.rel(md_path)], {}, None

    return ctx.runner.run("report", inputs, body)


#: Stage name -> its function, in the order they run (the keys are :data:`STAGES`).
STAGE_FUNCTIONS: dict[str, Callable[[Context], StageRecord]] = {
    "data": data_stage, "baseline": baseline_stage, "metrics": metrics_stage, "maps": maps_stage,
    "select": select_stage, "focus": focus_stage, "ensemble": ensemble_stage, "evaluate": evaluate_stage,
    "report": report_stage,
}
assert tuple(STAGE_FUNCTIONS) == STAGES
