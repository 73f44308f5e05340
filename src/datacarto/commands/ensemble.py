"""``datacarto ensemble --models A B [C ...] [--weights ... | --tune-on validation] --dataset FILE --split test``.

Combines N models by a weighted mean of logits and prints the accuracy of each model and of the
ensemble, with the weights used. ``--tune-on validation`` chooses the weights on ``--validation``
(never on ``--dataset``, which is refused if it is the same data). See docs/focus.md.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np

from ..errors import DatacartoError
from ..models import check_model_path
from .train import split_list


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="datacarto ensemble",
                                description="Evaluate a weighted-mean ensemble of N text classifiers.")
    p.add_argument("--models", nargs="+", required=True, help="model folders (each with its tokenizer)")
    how = p.add_mutually_exclusive_group()
    how.add_argument("--weights", nargs="+", type=float, help="one weight per model (normalised to sum 1)")
    how.add_argument("--tune-on", choices=["validation"],
                     help="choose the weights on --validation (grid for <= 4 models, log-loss otherwise)")
    p.add_argument("--dataset", required=True, help="data to evaluate: a .jsonl/.csv/.parquet file or a hub name")
    p.add_argument("--split", default="test", help="split of a hub data set, and the name of the evaluated split")
    p.add_argument("--validation", help="validation data for --tune-on validation (file, or hub NAME:SPLIT)")
    p.add_argument("--combine", choices=["logits", "probs"], default="logits",
                   help="weighted mean of logits (default) or of probabilities")
    p.add_argument("--step", type=float, default=0.05, help="grid step on the simplex when tuning")
    p.add_argument("--objective", choices=["accuracy", "log_loss"], default="accuracy",
                   help="what the grid maximises (accuracy, ties by log-loss) or minimises")
    p.add_argument("--text-columns", help="comma-separated text columns (default: every string column)")
    p.add_argument("--label-column", default="label")
    p.add_argument("--class-names", help="comma-separated label names (for string labels)")
    p.add_argument("--max-length", type=int, default=128)
    p.add_argument("--batch-size", type=int, default=64, help="prediction batch size")
    p.add_argument("--regions-from", metavar="RUN",
                   help="also break accuracy down by region, from RUN's recorded dynamics of --split "
                        "(e.g. validation; a test split needs test dynamics)")
    p.add_argument("--out", help="write the results as JSON here")
    return p


def _same_source(a: str, b: str, split_a: str, split_b: str) -> bool:
    pa, pb = Path(a), Path(b)
    if pa.exists() and pb.exists():
        return os.path.samefile(pa, pb)
    name_a, _, s_a = a.partition(":")
    name_b, _, s_b = b.partition(":")
    return name_a == name_b and (s_a or split_a) == (s_b or split_b)


def _check_options(args) -> None:
    """Every check that needs neither the data nor a model: before anything loads."""
    from ..ensemble_weights import check_weights, simplex_grid

    if args.weights is not None:
        if len(args.weights) != len(args.models):
            raise DatacartoError(f"{len(args.weights)} --weights given for {len(args.models)} --models")
        check_weights(args.weights, len(args.models))  # NaN, inf, negative, all zero
    if args.tune_on and not args.validation:
        raise DatacartoError("--tune-on validation needs the validation data: pass --validation FILE")
    if args.tune_on and _same_source(args.validation, args.dataset, "validation", args.split):
        raise DatacartoError(f"--validation and --dataset are the same data ({args.dataset}): "
                             "tuning weights on the evaluated split would overstate the result")
    if args.tune_on:
        simplex_grid(2, args.step)  # the step must divide 1
    for flag in ("batch_size", "max_length"):
        if getattr(args, flag) < 1:
            raise DatacartoError(f"--{flag.replace('_', '-')} must be at least 1, got {getattr(args, flag)}")
    names = split_list(args.class_names) or []
    if len(set(names)) != len(names):
        raise DatacartoError(f"duplicate --class-names: {args.class_names}")
    if args.out:
        from .._io import check_output_file

        check_output_file(args.out)  # JSON, whatever the extension
    for m in args.models:
        check_model_path(m)
    if args.regions_from:
        from ..dynamics.store import dynamics_dir, list_epoch_files

        directory = dynamics_dir(args.regions_from, args.split)  # the split must be a name
        if not list_epoch_files(directory):
            raise DatacartoError(f"no training dynamics found in {directory}: {args.regions_from} recorded no "
                                 f"split {args.split!r} (--regions-from needs it)")


def _check_recorded_examples(trainer, data, args) -> None:
    """Refuse --regions-from unless --dataset holds the very examples the run recorded for --split.

    Compares content fingerprints computed as the recorder computes them (the recorded text columns
    and the integer label of each row, in row order): same size is not enough.
    """
    import pandas as pd

    from ..dynamics.store import (
        dataset_fingerprint,
        dynamics_dir,
        example_fingerprints,
        load_examples,
        read_manifest,
    )

    directory = dynamics_dir(args.regions_from, args.split)
    manifest = read_manifest(directory)
    recorded = load_examples(args.regions_from, args.split)
    ds, gold = trainer.prepared(data, split=args.split)
    what = f"{args.regions_from} recorded {{}} examples of split {args.split!r}, {args.dataset} has {len(ds)}"
    n = manifest.get("n_examples", None if recorded is None else len(recorded))
    if n is not None and n != len(ds):
        raise DatacartoError(what.format(n) + ": not the same data")
    columns = list(manifest.get("text_columns") or [])
    if manifest.get("dataset_fingerprint") is None or recorded is None or gold is None:
        raise DatacartoError(f"{directory} records no example fingerprints: cannot check that {args.dataset} is "
                             "the data its regions belong to")
    missing = [c for c in columns if c not in ds.column_names]
    if missing:
        raise DatacartoError(f"{args.dataset} lacks the column(s) {missing} recorded for split {args.split!r} "
                             f"in {args.regions_from}: not the same data")
    frame = ds.select_columns(columns).to_pandas() if columns else pd.DataFrame(index=range(len(ds)))
    fps = example_fingerprints(frame.assign(__label=gold))
    if dataset_fingerprint(fps) != manifest["dataset_fingerprint"]:
        differ = np.flatnonzero(fps != recorded["fingerprint"].to_numpy(dtype=np.uint64)[:len(fps)])
        first = f" (first at row {int(differ[0])})" if differ.size else " (their order differs)"
        raise DatacartoError(f"{args.dataset} is not the data {args.regions_from} recorded for split "
                             f"{args.split!r}: {differ.size} of {len(fps)} examples differ in text or label{first}; "
                             "its regions would be wrong here")


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    _check_options(args)
    import torch

    from ..data import load_table
    from ..train.ensemble import Ensemble

    # the data first: a wrong path fails before N models are loaded
    data = load_table(args.dataset, args.split)
    validation = load_table(args.validation, "validation") if args.tune_on else None
    trainer = Ensemble(
        args.models, weights=args.weights, combine=args.combine,
        args={"per_device_eval_batch_size": args.batch_size, "use_cpu": not torch.cuda.is_available()},
        text_columns=split_list(args.text_columns), label_column=args.label_column,
        label_names=split_list(args.class_names), max_length=args.max_length,
    )
    if args.regions_from:
        _check_recorded_examples(trainer, data, args)  # before any forward pass
    if args.tune_on:
        if trainer.fingerprint(validation) == trainer.fingerprint(data):
            raise DatacartoError("--validation holds the same examples as --dataset: refusing to tune on the "
                                 "evaluated data")
        trainer.tune(validation, step=args.step, objective=args.objective)
    members = trainer.member_logits(data, split=args.split)
    out = trainer.predict(data)
    if out.label_ids is None:
        raise DatacartoError(f"label column {args.label_column!r} not in {args.dataset}: nothing to score")
    return _report(args, trainer, members, out)


def _report(args, trainer, members, out) -> int:
    gold = out.label_ids
    weights = trainer.current_weights
    source = {"given": "given", "uniform": "uniform (no --weights)", "tuned": f"tuned on {args.validation}"}
    results = {
        "dataset": args.dataset, "split": args.split, "n_examples": int(len(gold)), "combine": args.combine,
        "models": [{"model": path, "name": m.name, "weight": float(w),
                    "accuracy": float((L.argmax(axis=1) == gold).mean())}
                   for path, m, w, L in zip(args.models, trainer.members, weights, members)],
        "weights": [float(w) for w in weights], "weights_source": trainer.weights_source,
        "tuning": trainer.tuning, "accuracy": out.metrics["test_accuracy"],
        "macro_f1": out.metrics["test_macro_f1"], "log_loss": out.metrics["test_loss"],
    }
    width = max(len(m["name"]) for m in results["models"])
    print(f"{args.dataset} ({args.split}, {len(gold)} examples)")
    for m in results["models"]:
        print(f"  {m['name']:<{width}}  weight {m['weight']:.3f}  accuracy {m['accuracy']:.4f}")
    print(f"  {'ensemble':<{width}}  {args.combine} mean   accuracy {results['accuracy']:.4f}  "
          f"macro-F1 {results['macro_f1']:.4f}")
    print(f"weights ({source[trainer.weights_source]}): " + " ".join(f"{w:.3f}" for w in weights))
    if args.regions_from:
        from ..dynamics.cache import eval_regions
        from ..evaluation import evaluate_by_region

        regions = eval_regions(args.regions_from, args.split)
        preds = {m.name: L for m, L in zip(trainer.members, members)}
        preds["ensemble"] = out.predictions
        table = evaluate_by_region(preds, gold, regions.to_numpy())
        print(table.to_string(float_format=lambda x: f"{x:.4f}"))
        results["by_region"] = table.reset_index().replace({np.nan: None}).to_dict(orient="records")
    if args.out:
        from .._io import write_json_atomic

        write_json_atomic(args.out, results)
        print(f"results: {args.out}")
    return 0
