"""The stages that train or combine models: baseline, focus (one unit per model) and ensemble."""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from .._io import write_json_atomic
from ..errors import DatacartoError
from .context import Context, load_predictions, predict, save_predictions, seed_everything
from .hashing import digest
from .layout import read_json
from .runner import StageOutput
from .summaries import (
    BaselineSummary,
    Ensemble,
    EnsembleSummary,
    FocusModel,
    FocusSummary,
    jsonable,
    summary_json,
)


class Unit(NamedTuple):
    """One focused or control model of the focus stage."""

    model_name: str  # "focused/<recipe>" or "control/<recipe>"
    kind: str  # "focused" or "control"
    recipe: str
    subset_digest: str  # hash of its training row ids


def units(ctx: Context) -> list[Unit]:
    """Every focused and control model, in config order."""
    out = []
    for name, entry in ctx.rec("select").summary.in_order().items():
        out.append(Unit(f"focused/{name}", "focused", name, entry.digest))
        if entry.control is not None:
            out.append(Unit(f"control/{name}", "control", name, entry.control.digest))
    return out


def model_names(ctx: Context) -> list[str]:
    """The baseline, then every focused and control model."""
    return ["baseline", *[u.model_name for u in units(ctx)]]


def ensemble_plans(ctx: Context) -> dict[str, list[str]]:
    """Ensemble name -> member model names: baseline + each focused / control model, + all focused."""
    plans = {}
    if ctx.spec.type.generative or ctx.spec.type.numeric:  # pseudo-logits + per-example statistics: nothing to average
        return plans
    for u in units(ctx):
        prefix = "ensemble" if u.kind == "focused" else "ensemble-control"
        plans[f"{prefix}/{u.recipe}"] = ["baseline", u.model_name]
    focused = [u.model_name for u in units(ctx) if u.kind == "focused"]
    if len(focused) > 1:
        plans["ensemble/all"] = ["baseline", *focused]
    return plans


def prediction_names(ctx: Context) -> list[str]:
    """Every model and ensemble with a predictions file."""
    return [*model_names(ctx), *ensemble_plans(ctx)]


# ----------------------------------------------------------------------------------------------
# 2 baseline


def baseline_stage(ctx: Context) -> StageOutput:
    """Fine-tune the model on all training data, recording dynamics; save its logits.

    An interrupted baseline with the same key resumes from its last checkpoint.
    """
    return _train_baseline(ctx, ctx.key)


def _baseline_args(ctx: Context) -> dict[str, Any]:
    args = ctx.training_args()
    if str(args.get("eval_strategy", "epoch")) not in ("epoch", "steps"):
        warnings.warn("the pipeline evaluates the baseline every epoch (validation dynamics give "
                      "the validation regions): eval_strategy set to 'epoch'", stacklevel=3)
    if str(args.get("eval_strategy", "epoch")) != "steps":
        args["eval_strategy"] = "epoch"
    return args


def _resume_or_clear(ctx: Context, key: str) -> bool | None:
    """True to resume an interrupted baseline with the same inputs from its last checkpoint, else None."""
    layout = ctx.layout
    started = read_json(layout.baseline_started, {})
    if isinstance(started, dict) and started.get("key") == key and any(layout.baseline_dir.glob("checkpoint-*")):
        ctx.log("      resuming the interrupted baseline from its last checkpoint")
        return True
    if layout.baseline_dir.exists():
        shutil.rmtree(layout.baseline_dir)
    return None


def _train_baseline(ctx: Context, key: str):
    from ..train.baseline import train_baseline

    c, layout, spec = ctx.config, ctx.layout, ctx.spec
    resume = _resume_or_clear(ctx, key)
    write_json_atomic(layout.baseline_started, {"key": key})
    args = _baseline_args(ctx)
    splits = {"validation": ctx.split("validation"), **({"test": ctx.split("test")} if ctx.has_test() else {})}
    seed_everything(args.get("seed", c.seed))  # the new classifier head is drawn before the Trainer seeds
    # with a test set, the baseline predicts it at each epoch end: test dynamics give test regions
    result = train_baseline(
        model=c.model, train=ctx.split("train"), validation=splits["validation"], task_spec=spec,
        output_dir=layout.baseline_dir, training_args=args, dynamics_mode=c.dynamics_mode, max_length=ctx.max_length,
        resume_from_checkpoint=resume, test=splits.get("test"))
    # the epochs the Trainer ran with, from its resolved arguments (not guessed from defaults)
    epochs = float(result.trainer.args.num_train_epochs)
    gold, logits = {}, {}
    for split, ds in splits.items():
        recorded = None
        if resume is None and (split == "test" or str(args.get("eval_strategy")) == "epoch"):
            recorded = _final_eval_logits(layout.baseline_dir, split, len(ds), epochs)
        gold[split], logits[split] = recorded or predict(result.trainer, ds, spec, max_length=ctx.max_length)
    save_predictions(layout.unit_gold, **gold)
    save_predictions(layout.predictions("baseline"), **logits)
    repeats = _train_repeats(ctx, args)
    layout.baseline_started.unlink(missing_ok=True)
    summary = BaselineSummary(
        output_dir=layout.rel(layout.baseline_dir), model_dir=layout.rel(layout.baseline_model),
        train_metrics={k: float(v) for k, v in result.metrics.items() if isinstance(v, (int, float))},
        units={split: int(len(g)) for split, g in gold.items()}, repeats=[layout.rel(p) for p in repeats])
    outputs = [layout.rel(layout.baseline_model), layout.rel(layout.baseline_dynamics),
               layout.rel(layout.predictions("baseline")), layout.rel(layout.unit_gold),
               *[layout.rel(p / "training_dynamics") for p in repeats]]
    return outputs, summary, None


def _train_repeats(ctx: Context, args: dict[str, Any]) -> list[Path]:
    """With ``folds``: the cross-fitted run; with ``seeds``: one run per other seed (recording only).

    A seed run is of the map's kind: cross-fitted with ``folds`` and ``dynamics: out-of-sample``,
    else a baseline. None of them evaluates (validation regions come from the baseline).
    """
    from ..train.baseline import train_baseline
    from ..train.crossfit import train_crossfit

    c, layout, spec = ctx.config, ctx.layout, ctx.spec
    quiet = {**args, "eval_strategy": "no", "save_strategy": "no"}
    common = dict(model=c.model, train=ctx.split("train"), task_spec=spec, dynamics_mode=c.dynamics_mode,
                  max_length=ctx.max_length, overwrite_dynamics=True)
    own_seed, done = args.get("seed", c.seed), []
    if c.folds:
        ctx.log(f"      cross-fitting: {c.folds} fold models")
        train_crossfit(**common, folds=c.folds, seed=own_seed, output_dir=layout.crossfit_dir, training_args=quiet)
        done.append(layout.crossfit_dir)
    for seed in c.seeds or []:
        if seed == own_seed:
            continue
        ctx.log(f"      seed {seed}")
        out, seeded = layout.seed_dir(seed), {**quiet, "seed": seed}
        seed_everything(seed)
        if ctx.map_dir() == layout.crossfit_dir:
            train_crossfit(**common, folds=c.folds, seed=seed, output_dir=out, training_args=seeded)
        else:
            train_baseline(**common, output_dir=out, training_args=seeded, save_model=False)
        done.append(out)
    return done


def _final_eval_logits(run_dir: Path, split: str, n: int, epochs: float) -> tuple[np.ndarray, np.ndarray] | None:
    """(gold, logits) of the final model on ``split``'s units, as recorded at the last epoch end (None: predict).

    With one evaluation (or test prediction) per epoch and no best-model reloading, the last
    recorded epoch *is* the final model on that set, so predicting it again would only repeat that
    pass. ``n``: the split's examples; ``epochs``: the Trainer's ``num_train_epochs``. A causal
    LM's token statistics and a regression's predicted and gold scores are predicted again (the
    store keeps them beside the logits).
    """
    from ..dynamics.generative import is_generative
    from ..dynamics.regression import is_numeric
    from ..dynamics.store import load_dynamics

    try:
        dyn = load_dynamics(run_dir, split)
    except DatacartoError:
        return None
    rows = dyn.row_ids if dyn.unit_level else dyn.ids
    if is_generative(run_dir, split) or is_numeric(run_dir, split) or not np.array_equal(np.unique(rows), np.arange(n)) \
            or dyn.epochs[-1] != int(np.ceil(epochs)) - 1:
        return None
    return np.asarray(dyn.gold, dtype=np.int64), np.ascontiguousarray(dyn.logits[:, -1, :], dtype=np.float32)


# ----------------------------------------------------------------------------------------------
# 6 focus


def focus_stage(ctx: Context) -> StageOutput:
    """One model per subset, each a unit of the runner keyed by its subset (unchanged recipes reuse theirs).

    Their weights are kept only with ``save_focused_models``; their predictions always.
    """
    keep = ctx.config.save_focused_models
    done, outputs = {}, []
    for u in units(ctx):
        weights = [ctx.layout.rel(ctx.layout.model_dir(u.model_name) / "model")] if keep else []
        unit_outputs = [*weights, ctx.layout.rel(ctx.layout.predictions(u.model_name))]
        record = ctx.runner.run_unit("focus", u.model_name, {"subset": u.subset_digest}, unit_outputs,
                                     lambda u=u: _train_focused(ctx, u))
        done[u.model_name] = FocusModel(token=record.token, seconds=record.seconds, n=record.summary["n"],
                                        ran=record.ran)
        outputs += unit_outputs
    return outputs, FocusSummary(models=done), digest({k: v.token for k, v in done.items()})


def _train_focused(ctx: Context, u: Unit) -> dict[str, Any]:
    """Train one focused or control model and save its validation (and test) logits."""
    from ..train.focused import train_focused

    c, layout = ctx.config, ctx.layout
    entry = ctx.rec("select").summary.subsets[u.recipe]
    part = entry if u.kind == "focused" else entry.control
    ctx.log(f"      {u.model_name}: training on {part.n} examples (init: {c.focus_init})")
    directory = layout.model_dir(u.model_name)
    if directory.exists():
        shutil.rmtree(directory)
    args = ctx.training_args(focus=True)
    seed_everything(args.get("seed", c.seed))
    result = train_focused(layout.baseline_dir, layout.root / part.path, init=c.focus_init,
                           model=c.model if c.focus_init == "pretrained" else None, output_dir=directory,
                           training_args=args, label_column="label", max_length=ctx.max_length,
                           save_model=c.save_focused_models)
    save_model_predictions(ctx, result.trainer, u.model_name)
    return {"n": part.n}


def save_model_predictions(ctx: Context, trainer, model_name: str) -> None:
    """A trained model's validation (and test) logits, on the same units as the baseline's, to its predictions file."""
    logits = {}
    for split in ("validation", *(["test"] if ctx.has_test() else [])):
        gold, logits[split] = predict(trainer, ctx.split(split), ctx.spec, max_length=ctx.max_length)
        if not np.array_equal(gold, ctx.gold(split)):  # the same units as the baseline's, or no comparison
            raise DatacartoError(f"{model_name} predicted {len(gold)} units of the {split} set, the baseline "
                                 f"{len(ctx.gold(split))}: were they tokenized alike?")
    save_predictions(ctx.layout.predictions(model_name), **logits)


# ----------------------------------------------------------------------------------------------
# 8 ensemble


def ensemble_stage(ctx: Context) -> StageOutput:
    """Baseline + each focused (and control) model, weights tuned on validation only."""
    from ..ensemble_weights import combine_logits, tune_weights

    c, layout = ctx.config, ctx.layout
    gold = ctx.gold("validation")
    preds = {name: load_predictions(layout.predictions(name)) for name in model_names(ctx)}
    plans = ensemble_plans(ctx)
    ensembles, outputs = {}, []
    for name, members in ctx.bar(plans.items(), "ensembles", total=len(plans)):
        val = np.stack([preds[m]["validation"] for m in members])
        info = {}
        if c.ensemble_tune:  # weights chosen on validation only; test never seen here
            weights, info = tune_weights(val, gold, combine=c.ensemble_combine)
        else:
            weights = np.full(len(members), 1.0 / len(members))
        arrays = {"validation": combine_logits(val, weights, c.ensemble_combine)}
        if all("test" in preds[m] for m in members):
            arrays["test"] = combine_logits(np.stack([preds[m]["test"] for m in members]), weights,
                                            c.ensemble_combine)
        save_predictions(layout.predictions(name), **arrays)
        outputs.append(layout.rel(layout.predictions(name)))
        tuning = {k: info[k] for k in ("method", "objective", "accuracy", "log_loss") if k in info}
        ensembles[name] = Ensemble(members=members, weights=[float(w) for w in weights], combine=c.ensemble_combine,
                                   tuned=c.ensemble_tune, tuning=jsonable(tuning))
    summary = EnsembleSummary(ensembles=ensembles)
    write_json_atomic(layout.ensembles_json, summary_json(summary)["ensembles"])
    outputs.append(layout.rel(layout.ensembles_json))
    return outputs, summary, None
