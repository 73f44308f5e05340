"""The ten stages of the pipeline: their bodies ``stage(ctx) -> (outputs, summary, content digest)``
and :data:`PIPELINE`, the declaration of each (what it reads, its summary type), in order.

No body states its resume inputs: the runner derives the key from the declaration, and a body that
reads a config key or an upstream stage it does not declare fails (``declare.UndeclaredRead``).
"""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np
import pandas as pd

from .._io import write_frame
from ..errors import DatacartoError
from ..evaluation import accuracy_table
from ..tasks import DEFAULT_TASK, option_owners
from .cleaning import clean_review, clean_stage, cleaning_model_names
from .config import PipelineConfig, selection_recipes
from .context import Context, label_counts, load_predictions, region_counts, save_prepared
from .declare import Stage
from .hashing import digest, frame_digest, ids_digest
from .layout import STAGES
from .models import baseline_stage, ensemble_stage, focus_stage, prediction_names
from .request import prepare_request
from .runner import StageOutput
from .summaries import (
    BaselineSummary,
    CleanSummary,
    CrossfitSummary,
    DataSummary,
    EnsembleSummary,
    EvaluateSummary,
    FocusSummary,
    MetricsSummary,
    NoSummary,
    SelectSummary,
    Subset,
    SubsetPart,
    jsonable,
)

# ----------------------------------------------------------------------------------------------
# 1 data


def data_stage(ctx: Context) -> StageOutput:
    """Load and validate the splits for the task; write the prepared copies (digest: their content)."""
    from ..train.baseline import load_split

    c = ctx.config
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
    summary = DataSummary(rows=rows, digests=digests, text_columns=list(spec.text_columns),
                          label_column=spec.label_column, label_names=list(spec.label_names),
                          columns=train.column_names, task=spec.task, task_spec=spec.to_dict())
    return outputs, summary, digest(digests)


def _load_train(ctx: Context):
    """The training split and its TaskSpec, for the task given or inferred from its columns (said when not the default).

    ``run_pipeline`` prepared and checked it before anything was written (``request.check_request``).
    """
    checked = ctx.checked or prepare_request(ctx.config)
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


def metrics_stage(ctx: Context) -> StageOutput:
    """Per-example metrics and regions of the training data, regions of validation and test."""
    from ..dynamics.cache import get_metrics

    layout = ctx.layout
    m = get_metrics(ctx.map_dir())
    write_frame(m, layout.train_metrics)
    outputs = [layout.rel(layout.train_metrics)]
    summary = MetricsSummary(regions=region_counts(m["region"]), attrs=jsonable(dict(m.attrs)), n=int(len(m)))
    outputs += _repeat_metrics(ctx, m, summary)
    if ctx.spec.type.per_row:
        summary.by_label = _by_label(ctx)
    for split in ("validation", "test"):
        regions = regions_from_dynamics(layout.baseline_dir, split)
        if regions is not None:
            write_frame(regions.to_frame("region"), layout.split_regions(split))
            outputs.append(layout.rel(layout.split_regions(split)))
            setattr(summary, f"{split}_regions", region_counts(regions))
    return outputs, summary, frame_digest(m)


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


def _repeat_metrics(ctx: Context, m: pd.DataFrame, summary: MetricsSummary) -> list[str]:
    """With ``folds``: the other dynamics' regions beside the map's; with ``seeds``: seed stability."""
    from ..dynamics.cache import get_metrics

    c, layout, outputs = ctx.config, ctx.layout, []
    if c.folds:
        other_dir = layout.baseline_dir if ctx.map_dir() == layout.crossfit_dir else layout.crossfit_dir
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            other = get_metrics(other_dir)
        same = float((other["region"].astype(object) == m["region"].astype(object)).mean())
        summary.crossfit = CrossfitSummary(folds=c.folds, map=c.dynamics, other_regions=region_counts(other["region"]),
                                           same_region_share=same)
    if c.seeds:
        from ..dynamics.stability import seed_regions, stability_summary

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            table = seed_regions(ctx.seed_runs())
        table.columns = [*(f"seed_{s}" for s in c.seeds), "majority", "stable"]
        write_frame(table, layout.seed_stability)
        summary.seed_stability = jsonable(stability_summary(table))
        outputs.append(layout.rel(layout.seed_stability))
    return outputs


# ----------------------------------------------------------------------------------------------
# 7 maps (after clean: the suspected labels it shows are the clean stage's estimate)


def maps_stage(ctx: Context) -> StageOutput:
    """The data map PNGs (by ``map_color_by`` and by region) and the interactive HTML map; its suspected
    labels are the run's one estimate (the clean stage's, else made here: cleaning.clean_review)."""
    from ..maps.run_maps import write_run_maps

    c, layout = ctx.config, ctx.layout
    write_run_maps(ctx.map_dir(), html=layout.data_map_html, png=layout.data_map_png,
                   extra_pngs={layout.data_map_regions_png: "region"}, color_by=c.map_color_by,
                   title=c.title, dpi=110, review=clean_review(ctx), label_errors=False)
    paths = (layout.data_map_png, layout.data_map_regions_png, layout.data_map_html)
    return [layout.rel(p) for p in paths], NoSummary(), None


# ----------------------------------------------------------------------------------------------
# 4 select


def select_stage(ctx: Context) -> StageOutput:
    """One subset per recipe, plus its random control (digest: the chosen row ids)."""
    m = ctx.train_metrics()
    subsets, outputs = {}, []
    for recipe in ctx.bar(selection_recipes(ctx.config.recipes), "selecting"):  # cleaning recipes: the clean stage
        subsets[recipe["name"]] = entry = _select_recipe(ctx, m, recipe)
        outputs += [entry.path] + ([entry.control.path] if entry.control is not None else [])
    summary = SelectSummary(subsets=subsets, order=list(subsets))
    return outputs, summary, digest({name: [s.digest, s.control and s.control.digest] for name, s in subsets.items()})


def _select_recipe(ctx: Context, m: pd.DataFrame, recipe: dict) -> Subset:
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

    def part(chosen: np.ndarray, control: bool) -> SubsetPart:
        path = layout.subset(name, control=control)
        export_subset(subset_rows(layout.baseline_dir, chosen), path)
        labels = label_counts(m.loc[chosen, "gold"], ctx.spec.label_names) if single else {}
        return SubsetPart(n=int(chosen.size), digest=ids_digest(chosen), path=layout.rel(path),
                          regions=region_counts(m.loc[chosen, "region"]), labels=labels)

    single = ctx.spec.type.single_label  # an example has one gold label to count and match
    entry = Subset(recipe=dict(recipe), **vars(part(ids, control=False)))
    if c.control:
        entry.control = part(random_control(ids, m, match_labels=single, seed=c.seed), control=True)
    return entry


# ----------------------------------------------------------------------------------------------
# 9 evaluate


def evaluate_stage(ctx: Context) -> StageOutput:
    """The task's scores (accuracy, macro-F1, ...) of every model and ensemble, overall and per region."""
    layout = ctx.layout
    preds = {n: load_predictions(layout.predictions(n)) for n in [*prediction_names(ctx), *cleaning_model_names(ctx)]}
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
    summary = EvaluateSummary(accuracy=jsonable(table.reset_index().to_dict("records")))
    return [layout.rel(layout.accuracy_csv)], summary, None


def outside_tag(label_names: list[str]) -> int:
    """The id of the outside tag of token classification: the one named O, else 0 (the usual first tag)."""
    return next((i for i, name in enumerate(label_names or []) if name.upper() == "O"), 0)


# ----------------------------------------------------------------------------------------------
# 10 report


def report_stage(ctx: Context) -> StageOutput:
    """``report.html`` and ``report.md`` (redone whenever any stage ran: the report shows their times)."""
    from .report import write_report

    c = ctx.config
    html_path, md_path = write_report(ctx.layout, title=c.title, noise_column=c.noise_column)
    return [ctx.layout.rel(html_path), ctx.layout.rel(md_path)], NoSummary(), None


# ----------------------------------------------------------------------------------------------
# the declarations


def _upstream_records(layout) -> list:
    """The records of the stages before the report (their times are in it)."""
    return [layout.stage_record(n) for n in STAGES[:-1]]


#: every config key but ``output_dir`` (a moved run stays up to date): the report shows them all
REPORTED = tuple(f.name for f in dataclasses.fields(PipelineConfig) if f.name != "output_dir")
_MAP_RUN = ("folds", "dynamics")  # which run's dynamics the map, regions and subsets use (Context.map_dir)

#: The stages in the order they run (their names are :data:`~.layout.STAGES`), each with what it reads.
PIPELINE: tuple[Stage, ...] = (
    Stage("data", data_stage, DataSummary,
          config=("dataset", "validation", "test", "text_columns", "label_column", "class_names", "model", "task",
                  *option_owners())),
    Stage("baseline", baseline_stage, BaselineSummary, reads=("data",),
          config=("model", "training_args", "seed", "dynamics_mode", "max_length", "seeds", *_MAP_RUN)),
    Stage("metrics", metrics_stage, MetricsSummary, reads=("data", "baseline"),
          config=("seeds", "training_args.seed", "seed", *_MAP_RUN)),
    Stage("select", select_stage, SelectSummary, reads=("data", "metrics"),
          config=("recipes", "control", "seed", *_MAP_RUN)),
    Stage("focus", focus_stage, FocusSummary, reads=("data", "baseline", "select"), per_unit=("select",),
          config=("focus_init", "model", "training_args", "focus_training_args", "seed", "max_length",
                  "save_focused_models")),
    Stage("clean", clean_stage, CleanSummary, reads=("data", "baseline"),
          config=("recipes", "control", "seed", "model", "training_args", "max_length", "dynamics_mode",
                  "save_focused_models", *_MAP_RUN)),
    Stage("maps", maps_stage, NoSummary, reads=("metrics", "clean"), config=("map_color_by", "title", *_MAP_RUN)),
    Stage("ensemble", ensemble_stage, EnsembleSummary, reads=("data", "baseline", "select", "focus"),
          config=("ensemble_combine", "ensemble_tune")),
    Stage("evaluate", evaluate_stage, EvaluateSummary,
          reads=("data", "baseline", "metrics", "select", "focus", "clean", "ensemble")),
    Stage("report", report_stage, NoSummary, reads=STAGES[:-1], config=REPORTED, files=_upstream_records),
)
assert tuple(s.name for s in PIPELINE) == STAGES
