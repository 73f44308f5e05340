"""The clean stage: retrain without (or with corrected) flagged labels, beside a random-drop control.

A cleaning recipe ``{name, action: drop | relabel, score?}`` (docs/pipeline.md, "Cleaning recipes"):

1. the label-error estimate of the baseline's training data (:func:`~datacarto.dynamics.label_errors.run_label_errors`):
   with ``folds``, the rows flagged on the cross-fitted run's out-of-sample dynamics and on the
   in-sample ones (the fold models' and the baseline's) alike, else on the baseline's in-sample
   dynamics; a run that cannot support an estimate is recorded as refused;
2. its flagged rows, with the recipe's decision and the suggested label, as a corrections file
   (``cleaning/<recipe>.corrections.csv``), applied by :func:`~datacarto.dynamics.corrections.apply_corrections`
   (the one code path of ``datacarto apply-corrections``) into ``cleaning/<recipe>.jsonl``;
3. with ``control``, a random control of the same size and label mix (``random_control``, the
   run's ``seed``) dropped instead (``cleaning/<recipe>.control.jsonl``);
4. one model per training set, from the pretrained model with the baseline's training arguments
   (without its per-epoch evaluation and checkpoints), each a unit of the runner keyed by its
   training rows and labels; identical training sets (the controls of a drop and a relabel recipe
   of the same flags) train once. Their weights are kept only with ``save_focused_models``; their
   predictions always.

The estimate's flagged rows are kept for the map (``cleaning/label_errors.parquet``): the maps stage, which
runs after this one, shows them instead of estimating again (:func:`clean_review`); without a cleaning
recipe it makes the same estimate (:func:`run_estimate`).

The stage is declared in ``stages.PIPELINE`` (what it reads: data, baseline, the recipes, the
training arguments, ...); its summary is :class:`~.summaries.CleanSummary`.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from .._io import write_frame
from ..dynamics.store import CROSSFIT_OTHER_SPLIT
from ..errors import DatacartoError
from ..label_errors import DEFAULT_SCORE
from ..maps.review import Review
from .config import cleaning_recipes
from .context import Context, load_predictions, save_predictions, seed_everything
from .hashing import describe_model, digest, frame_digest, ids_digest
from .layout import RunLayout, read_json
from .models import save_model_predictions
from .runner import StageOutput
from .summaries import CleanControl, CleanModel, CleanRecipe, CleanSummary, jsonable

#: the model kinds of the clean stage: ``cleaned/<recipe>`` and ``random-drop/<recipe>``
CLEANED, CONTROL = "cleaned", "random-drop"


class CleanUnit(NamedTuple):
    """One retrained model: its name, recipe, training file, rows and the digest of its rows and labels."""

    model_name: str
    recipe: str
    path: str  # relative to the run folder
    n: int
    data: str


class EstimateSource(NamedTuple):
    """Where a run's one label-error estimate comes from: the store, the in-sample stores to agree with,
    and the score that ranks its flags (None: the finder's default)."""

    run: Path
    split: str
    agree_with: list[tuple[Path, str]]
    score: str | None = None


def estimate_source(ctx: Context) -> EstimateSource:
    """The stores of this run's label-error estimate (:func:`estimate_stores`)."""
    folds = ctx.config.folds
    return estimate_stores(ctx.layout, folds=folds, dynamics=ctx.config.dynamics if folds else None)


def recipe_score(recipe: dict) -> str:
    """The score that ranks a cleaning recipe's flags (default ``self_confidence``)."""
    return recipe.get("score", DEFAULT_SCORE)


def estimate_score(recipes) -> str:
    """The score that ranks a run's one estimate (the report's and the map's flags): its first cleaning
    recipe's, else the default (a run without one: the map's own estimate)."""
    first = cleaning_recipes(recipes)[:1]
    return recipe_score(first[0]) if first else DEFAULT_SCORE


def estimate_stores(layout: RunLayout, *, folds: int | None, dynamics: str | None,
                    score: str | None = None) -> EstimateSource:
    """The source of a pipeline run's label-error estimate, the clean stage's, the map's and the report's.

    With ``folds``: the cross-fitted run's out-of-sample store, agreed with its in-sample store and
    the baseline's (method auto of :func:`~datacarto.dynamics.label_errors.run_label_errors`: a store
    that cannot support an estimate is left out); else the baseline's in-sample store alone."""
    if folds:
        split = "train" if dynamics == "out-of-sample" else CROSSFIT_OTHER_SPLIT["in-sample"]
        return EstimateSource(layout.crossfit_dir, split, [(layout.baseline_dir, "train")], score)
    return EstimateSource(layout.baseline_dir, "train", [], score)


def folder_estimate_source(folder: str | Path, split: str = "train", method: str = "auto") -> EstimateSource:
    """What ``datacarto label-errors`` and ``apply-corrections`` read when named ``folder``.

    A pipeline run folder (``datacarto run``) whose baseline stage finished: its own estimate's source
    (:func:`estimate_stores`; ``method="in-sample"``: its baseline's store alone); any other folder: its
    ``split`` store alone.
    """
    layout = RunLayout(folder)
    if not layout.is_run():
        return EstimateSource(Path(folder), split, [])
    if not layout.stage_record("baseline").is_file():
        raise DatacartoError(f"{folder}: the pipeline has not finished its baseline stage (nothing recorded to "
                             "read yet); resume it with datacarto run")
    config = read_json(layout.config_json, {})
    source = estimate_stores(layout, folds=config.get("folds"), dynamics=config["dynamics"],
                             score=estimate_score(config.get("recipes")))
    if split != "train":
        runs = " or ".join(str(d) for d in dict.fromkeys((layout.baseline_dir, source.run)))
        raise DatacartoError(f"{folder} is a pipeline run folder: --split {split} names a store of one of its "
                             f"runs; give that run's folder ({runs})")
    return EstimateSource(layout.baseline_dir, "train", [], source.score) if method == "in-sample" else source


def cleaning_model_names(ctx: Context) -> list[str]:
    """The clean stage's models with predictions, in config order (none when the estimate was refused)."""
    return ctx.rec("clean").summary.model_names()


def retrain_args(ctx: Context) -> dict[str, Any]:
    """The baseline's training arguments, without its per-epoch evaluation and checkpoints."""
    return {**ctx.training_args(), "eval_strategy": "no", "save_strategy": "no"}


def clean_stage(ctx: Context) -> StageOutput:
    """The cleaning recipes' corrected training data and models (nothing without a cleaning recipe)."""
    recipes = cleaning_recipes(ctx.config.recipes)
    if not recipes:
        return [], CleanSummary(), digest("no cleaning recipe")
    order = [r["name"] for r in recipes]
    source = estimate_source(ctx)
    found = {}
    try:
        for score in dict.fromkeys(map(recipe_score, recipes)):
            found[score] = run_estimate(ctx, score)
    except DatacartoError as e:  # e.g. a model that barely learned: said in the log and the report
        ctx.log(f"      no label-error estimate, nothing retrained: {e}")
        return [], CleanSummary(order=order, refused=str(e)), None
    first = found[estimate_score(recipes)]  # the one estimate the map and the report show
    ctx.log(f"      estimated wrong labels: {first.total} of {first.n} ({first.info['dynamics']} dynamics)")
    review, outputs = _save_review(ctx, first, source.run, source.split)
    entries, units = {}, []
    for recipe in recipes:
        entry, recipe_units = _prepare(ctx, recipe, found[recipe_score(recipe)], source.run, source.split)
        entries[recipe["name"]] = entry
        units += recipe_units
        outputs += [entry.corrections, entry.data] if entry.model else []
        outputs += [entry.control.data] if entry.control is not None else []
    models, unit_outputs = _train_units(ctx, units)
    summary = CleanSummary(order=order, source=jsonable({"run": ctx.layout.rel(source.run), "split": source.split,
                                                         **_info(first)}),
                           estimate=jsonable(_estimate(first)), review=review, recipes=entries, models=models)
    return outputs + unit_outputs, summary, digest({"models": {k: v.token for k, v in models.items()}, "review": review})


def _save_review(ctx: Context, found, source: Path, split: str) -> tuple[dict[str, Any], list[str]]:
    """The estimate's flags for the map (:attr:`~.layout.RunLayout.label_error_flags`) and what else its
    review says; nothing where the run has no data-set fingerprint (its decisions could not be applied)."""
    from ..dynamics.label_errors import run_fingerprint
    from ..maps.review import review_of

    try:
        review = review_of(found, run_fingerprint(source, split))
    except DatacartoError:
        return {}, []
    path = ctx.layout.label_error_flags
    write_frame(review.flagged, path, index=False)
    return ({"flags": ctx.layout.rel(path), "flags_digest": frame_digest(review.flagged),
             "fingerprint": review.fingerprint, "note": review.note, "level": review.level}, [ctx.layout.rel(path)])


def run_estimate(ctx: Context, score: str = DEFAULT_SCORE):
    """The run's one label-error estimate of its training data (:func:`estimate_source`): the clean stage's
    and, without a cleaning recipe, the map's."""
    from ..dynamics.label_errors import run_label_errors

    source = estimate_source(ctx)
    return run_label_errors(source.run, split=source.split, score=score, agree_with=source.agree_with)


def clean_review(ctx: Context) -> Review | None:
    """The map's review: the clean stage's estimate where it made one, else :func:`run_estimate` made here;
    None where the run cannot support an estimate (or its data has no fingerprint)."""
    import warnings

    from ..dynamics.label_errors import run_fingerprint
    from ..maps.review import review_of

    summary = ctx.rec("clean").summary
    if not summary.order:  # no cleaning recipe: the same estimate, made for the map
        source = estimate_source(ctx)
        try:
            with warnings.catch_warnings():  # what the map's own reading of the run says already
                warnings.simplefilter("ignore")
                return review_of(run_estimate(ctx), run_fingerprint(source.run, source.split))
        except DatacartoError:
            return None
    if not summary.review or summary.refused:
        return None
    r = summary.review
    flagged = pd.read_parquet(ctx.layout.root / r["flags"])
    return Review(flagged, r["fingerprint"], int(summary.estimate["total"]), r["note"], r["level"])


def _info(found) -> dict[str, Any]:
    return {k: found.info.get(k) for k in ("dynamics", "epochs", "n_epochs", "method", "warning")}


def _estimate(found) -> dict[str, Any]:
    per_class = found.per_class
    return {"total": found.total, "n": found.n,
            "per_class": {str(k): {"n": int(row["n"]), "estimated_errors": int(row["estimated_errors"])}
                          for k, row in per_class.iterrows()}}


def _prepare(ctx: Context, recipe: dict, found, source: Path, split: str) -> tuple[CleanRecipe, list[CleanUnit]]:
    """Write one recipe's corrections, corrected data and control data; its entry and its models."""
    from ..dynamics.corrections import apply_corrections, write_corrected
    from ..dynamics.label_errors import review_queue
    from ..dynamics.review import write_review_queue

    c, layout, name, action = ctx.config, ctx.layout, recipe["name"], recipe["action"]
    queue = review_queue(source, found, split=split)
    if queue.empty:  # nothing flagged: the corrected data would be the baseline's
        return CleanRecipe(action=action, score=found.score), []
    queue["decision"] = action
    queue["new_label"] = queue["suggested_label"] if action == "relabel" else ""
    write_review_queue(queue, layout.cleaning_corrections(name), fmt="csv")
    corrected, counts = apply_corrections(source, queue, split=split)
    write_corrected(_decided(corrected), layout.cleaning_data(name))
    flagged = queue["row_id"].to_numpy(dtype=np.int64)
    changed = int((corrected["label"] != corrected["given_label"]).sum()) if action == "relabel" else 0
    units = [_unit(ctx, f"{CLEANED}/{name}", name, layout.cleaning_data(name), corrected)]
    entry = CleanRecipe(action=action, score=found.score, flagged=int(flagged.size), model=units[0].model_name,
                        corrections=layout.rel(layout.cleaning_corrections(name)), data=units[0].path,
                        n_train=int(len(corrected)), relabelled=changed, dropped=int(counts["dropped_rows"]))
    if c.control:
        drop = _control_ids(ctx, source, split, flagged)
        kept, _ = apply_corrections(source, pd.DataFrame({"row_id": drop, "decision": "drop"}), split=split)
        write_corrected(_decided(kept), layout.cleaning_data(name, control=True))
        units.append(_unit(ctx, f"{CONTROL}/{name}", name, layout.cleaning_data(name, control=True), kept))
        entry.control = CleanControl(model=units[1].model_name, data=units[1].path, n_train=int(len(kept)),
                                     dropped=int(drop.size))
    return entry, units


def _decided(frame: pd.DataFrame) -> pd.DataFrame:
    """The corrected records with ``decision`` "" on the rows left as they were (a text column without nulls)."""
    return frame.assign(decision=frame["decision"].fillna(""))


def _control_ids(ctx: Context, source: Path, split: str, flagged: np.ndarray) -> np.ndarray:
    """As many random rows as were flagged, with the same given labels, drawn with the run's seed."""
    from ..dynamics.store import load_examples
    from ..selection import random_control

    examples = load_examples(source, split)
    gold = pd.DataFrame({"gold": examples["label"].to_numpy(dtype=np.int64)}, index=examples.index)
    return random_control(flagged, gold, match_labels=True, seed=ctx.config.seed)


def _unit(ctx: Context, model_name: str, recipe: str, path: Path, frame: pd.DataFrame) -> CleanUnit:
    rows = frame["row_id"].to_numpy(dtype=np.int64)
    labels = frame["label"].to_numpy(dtype=np.int64)
    return CleanUnit(model_name, recipe, ctx.layout.rel(path), int(len(frame)),
                     digest([ids_digest(rows), ids_digest(labels)]))


def _train_units(ctx: Context, units: list[CleanUnit]) -> tuple[dict[str, CleanModel], list[str]]:
    """Each unit through the runner; a training set met before in this stage copies that model's predictions.

    A unit's key is its training rows and labels with what its training reads (not the recipes or
    ``control``: a changed recipe retrains only the models whose training set changed).
    """
    c, layout = ctx.config, ctx.layout
    keep = c.save_focused_models
    common = {"data_stage": ctx.rec("data").digest, "model": describe_model(c.model), "max_length": c.max_length,
              "training_args": retrain_args(ctx), "dynamics_mode": c.dynamics_mode, "save_model": keep}
    first_of: dict[str, str] = {}
    done, outputs = {}, []
    for u in units:
        twin = first_of.setdefault(u.data, u.model_name)

        def body(u=u, twin=twin):
            if twin != u.model_name:
                save_predictions(layout.predictions(u.model_name), **load_predictions(layout.predictions(twin)))
                return {"n": u.n, "same_as": twin}
            return _retrain(ctx, u)

        weights = [layout.rel(layout.model_dir(u.model_name) / "model")] if keep and twin == u.model_name else []
        unit_outputs = [*weights, layout.rel(layout.predictions(u.model_name))]
        record = ctx.runner.run_unit("clean", u.model_name, {**common, "data": u.data}, unit_outputs, body)
        done[u.model_name] = CleanModel(token=record.token, seconds=record.seconds, ran=record.ran, n=u.n,
                                        same_as=record.summary.get("same_as"))
        outputs += unit_outputs
    return done, outputs


def _retrain(ctx: Context, u: CleanUnit) -> dict[str, Any]:
    """Train one model from the pretrained model on ``u``'s data; save its validation (and test) logits."""
    from ..train.focused import train_focused

    c, layout = ctx.config, ctx.layout
    ctx.log(f"      {u.model_name}: training on {u.n} examples (from {c.model})")
    directory = layout.model_dir(u.model_name)
    if directory.exists():
        shutil.rmtree(directory)
    args = retrain_args(ctx)
    seed_everything(args.get("seed", c.seed))
    # the weights only when asked: the report and the evaluation read the predictions
    result = train_focused(layout.baseline_dir, layout.root / u.path, init="pretrained", model=c.model,
                           output_dir=directory, training_args=args, label_column="label",
                           max_length=ctx.max_length, dynamics_mode=c.dynamics_mode,
                           save_model=c.save_focused_models)
    save_model_predictions(ctx, result.trainer, u.model_name)
    return {"n": u.n}
