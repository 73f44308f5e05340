"""Cross-fitted (out-of-sample) training dynamics: K fold models, one merged store.

``train_crossfit`` splits the training set into K folds stratified by label
(``sklearn.model_selection.StratifiedKFold``, shuffled with ``seed``), trains one model per fold
on the other K-1 folds with :func:`~datacarto.train.baseline.train_baseline`, and lets each model
predict its held-out fold at every epoch end (``PredictEachEpoch``, split ``heldout``). The held-out
logits of the K models are merged into one store of the usual format, row ids = positions in the
full training set, every example exactly once per epoch, with a ``fold`` column in
``examples.parquet``. The in-sample dynamics are merged the same way at no extra cost: example
``i`` of fold ``f`` takes the training-pass logits of fold model ``(f + 1) mod K``, which trained
on it. Layout (docs/format.md, "Cross-fitted runs")::

    <output_dir>/training_dynamics/            the main store (``dynamics=``: out-of-sample by default)
    <output_dir>/training_dynamics/eval/oos/   or eval/insample/: the other one
    <output_dir>/folds/fold_<k>/               each fold model's own run (its validation/test dynamics)

Cost: K trainings on (K-1)/K of the data each, plus one prediction pass over N/K rows per epoch
and fold. Under torchrun the folds run in sequence, each one distributed; rank 0 merges.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .._validation import check_folds, check_seed
from ..dynamics.store import CROSSFIT_OTHER_SPLIT
from ..errors import DatacartoError

HELDOUT_SPLIT = "heldout"
#: ``dynamics=`` choices: which store is the run's main one (``training_dynamics/``).
DYNAMICS_CHOICES = ("out-of-sample", "in-sample")


def fold_assignments(labels, folds: int, *, seed: int = 0, label_names=None) -> np.ndarray:
    """The fold (0..K-1) of every example: stratified by label, shuffled with ``seed``.

    Every class needs at least ``folds`` examples (:func:`datacarto._validation.check_folds` names the
    one that has fewer, by ``label_names`` when given).
    """
    from sklearn.model_selection import StratifiedKFold

    labels = np.asarray(labels)
    folds = check_folds(folds, labels, label_names=label_names)
    seed = check_seed(seed)
    out = np.empty(labels.size, dtype=np.int64)
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=int(seed))
    for k, (_, held) in enumerate(splitter.split(np.zeros(labels.size), labels)):
        out[held] = k
    return out


@dataclass
class CrossfitResult:
    """Where a cross-fitted run put its stores and fold models."""

    output_dir: Path
    folds: np.ndarray = field(repr=False)
    fold_dirs: list[Path] = field(default_factory=list)
    dynamics: str = "out-of-sample"
    label_spec: Any = None
    trainer: Any = field(repr=False, default=None)

    @property
    def other_split(self) -> str:
        return CROSSFIT_OTHER_SPLIT[self.dynamics]

    def is_main_process(self) -> bool:
        return self.trainer is None or self.trainer.is_world_process_zero()


def _fold_args(training_args, fold_dir: Path):
    """A copy of ``training_args`` (None, dict or TrainingArguments) pointing at ``fold_dir``."""
    import dataclasses

    from transformers import TrainingArguments

    if isinstance(training_args, TrainingArguments):
        return dataclasses.replace(training_args, output_dir=str(fold_dir))
    return {**dict(training_args or {}), "output_dir": str(fold_dir)}


def train_crossfit(*, model: str, train, folds: int = 5, seed: int = 0, output_dir: str | os.PathLike,
                   dynamics: str = "out-of-sample", validation=None, test=None, text_columns=None,
                   label_column: str = "label", label_names=None, num_labels=None, training_args=None,
                   dynamics_mode: str = "training_pass", max_length: int = 128, loss=None,
                   save_fold_models: bool = False, overwrite_dynamics: bool = False,
                   task_spec=None) -> CrossfitResult:
    """Train ``folds`` models and record cross-fitted (out-of-sample) training dynamics.

    Each fold model trains on the other ``folds - 1`` folds (stratified by label, shuffled with
    ``seed``; ``training_args.seed`` seeds the training) and predicts its held-out fold at every
    epoch end. Both merged stores cover every training example exactly once per epoch, row ids =
    positions in ``train``: ``dynamics`` names the one written to ``<output_dir>/training_dynamics/``
    (so every command reads it by default); the other is split ``oos`` or ``insample``. Other
    arguments as for :func:`~datacarto.train.baseline.train_baseline`; ``validation``/``test`` are
    recorded by every fold model in its own folder ``<output_dir>/folds/fold_<k>/``. ``task_spec``
    (:class:`datacarto.tasks.TaskSpec`) instead of ``text_columns``, ``label_column`` and ``label_names``.
    """
    from ..tasks import check_repeats
    from .baseline import load_split, task_spec_of, train_baseline

    if dynamics not in DYNAMICS_CHOICES:
        raise DatacartoError(f"dynamics must be one of {DYNAMICS_CHOICES}, got {dynamics!r}")
    out = Path(output_dir)
    spec = task_spec_of(task_spec, text_columns=text_columns, label_column=label_column, label_names=label_names)
    check_repeats(spec.task, folds=folds)
    train_ds, spec = load_split(train, spec, split="train", num_labels=num_labels, model=model)
    labels = np.asarray(train_ds[spec.label_column], dtype=np.int64)
    fold_of = fold_assignments(labels, folds, seed=seed, label_names=spec.label_names)
    _check_target(out, overwrite_dynamics)
    fold_dirs, trainer = [], None
    for k in range(int(folds)):
        fold_dir = out / "folds" / f"fold_{k}"
        train_idx, held_idx = np.flatnonzero(fold_of != k), np.flatnonzero(fold_of == k)
        result = train_baseline(
            model=model, train=train_ds.select(train_idx), validation=validation, test=test,
            task_spec=spec, num_labels=spec.num_labels, output_dir=fold_dir,
            training_args=_fold_args(training_args, fold_dir),
            dynamics_mode=dynamics_mode, max_length=max_length, loss=loss, save_model=save_fold_models,
            overwrite_dynamics=True, predict_each_epoch={HELDOUT_SPLIT: train_ds.select(held_idx)})
        trainer = result.trainer
        fold_dirs.append(fold_dir)
        if trainer.is_world_process_zero():
            np.save(fold_dir / "train_rows.npy", train_idx)
    result = CrossfitResult(output_dir=out, folds=fold_of, fold_dirs=fold_dirs, dynamics=dynamics,
                            label_spec=spec, trainer=trainer)
    if result.is_main_process():
        meta = {"folds": int(folds), "seed": int(seed), "dataset": str(train) if isinstance(
            train, (str, os.PathLike)) else None}
        merge_folds(out, fold_of, fold_dirs, dynamics=dynamics, meta=meta)
    _barrier()
    return result


def _barrier() -> None:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def _check_target(out: Path, overwrite: bool) -> None:
    from ..dynamics.store import dynamics_dir, list_epoch_files
    from ..record.recorder import mixing_refused

    if list_epoch_files(dynamics_dir(out)) and not overwrite:
        raise DatacartoError(mixing_refused(dynamics_dir(out), "recorded epochs"))


def merge_folds(out: Path, fold_of: np.ndarray, fold_dirs: list[Path], *, dynamics: str = "out-of-sample",
                meta: dict | None = None) -> None:
    """Merge the fold runs under ``out``: the out-of-sample and the in-sample store."""
    from ..dynamics.store import DYNAMICS_DIRNAME, UNITS

    main = Path(out) / DYNAMICS_DIRNAME
    other = next(kind for kind in CROSSFIT_OTHER_SPLIT if kind != dynamics)
    places = {dynamics: main, other: main / "eval" / CROSSFIT_OTHER_SPLIT[dynamics]}
    for path in (main / "eval" / split for split in CROSSFIT_OTHER_SPLIT.values()):
        if path.is_dir():
            shutil.rmtree(path)
    if main.is_dir():  # an earlier merge: its files go, other eval splits stay
        for path in [*main.glob("epoch_*.parquet"), *(main / n for n in ("metrics.parquet", "metrics.json",
                                                                          "manifest.json", "examples.parquet",
                                                                          UNITS))]:
            path.unlink(missing_ok=True)
    held = [_held_rows(fold_of, k) for k in range(len(fold_dirs))]
    trained = [np.load(d / "train_rows.npy") for d in fold_dirs]
    for kind, target in places.items():
        split = "train" if target == main else target.name
        _write_merged(target, fold_of, fold_dirs, held, trained, oos=kind == "out-of-sample", split=split, meta=meta)


def _held_rows(fold_of: np.ndarray, k: int) -> np.ndarray:
    return np.flatnonzero(fold_of == k)


def _source(fold_dirs, k: int, *, oos: bool) -> tuple[Path, str]:
    """The fold run and split whose logits example rows of fold ``k`` take."""
    if oos:
        return fold_dirs[k], HELDOUT_SPLIT
    return fold_dirs[(k + 1) % len(fold_dirs)], "train"


def _write_merged(target: Path, fold_of, fold_dirs, held, trained, *, oos: bool, split: str, meta) -> None:
    """One store: every example once per epoch, from the fold model chosen by ``_source``."""
    from ..dynamics.store import (
        DynamicsWriter,
        dataset_fingerprint,
        load_dynamics,
        load_examples,
        read_manifest,
    )

    n, K = len(fold_of), len(fold_dirs)
    parts, n_epochs = [], None
    for k in range(K):
        run, source_split = _source(fold_dirs, k, oos=oos)
        dyn = load_dynamics(run, source_split)
        # local row ids -> positions in the full training set
        local_to_full = held[k] if oos else trained[(k + 1) % K]
        full = local_to_full[dyn.ids]
        keep = fold_of[full] == k
        parts.append((full[keep], dyn.gold[keep], dyn.logits[keep]))
        if n_epochs is not None and dyn.n_epochs != n_epochs:
            raise DatacartoError(f"fold {k} recorded {dyn.n_epochs} epochs ({source_split}), fold 0 {n_epochs}: the "
                                 "folds must train for the same number of epochs")
        n_epochs = dyn.n_epochs
    ids = np.concatenate([p[0] for p in parts])
    order = np.argsort(ids, kind="stable")
    ids, gold = ids[order], np.concatenate([p[1] for p in parts])[order]
    logits = np.concatenate([p[2] for p in parts])[order]
    if not np.array_equal(ids, np.arange(n)):
        raise DatacartoError(f"merged {'out-of-sample' if oos else 'in-sample'} dynamics cover {len(ids)} rows "
                             f"of {n} (some row missing or repeated)")
    examples = _full_examples(fold_dirs, trained, n, load_examples)
    examples["fold"] = fold_of
    target.mkdir(parents=True, exist_ok=True)
    writer = DynamicsWriter(target)
    writer.write_examples(examples.index.to_numpy(), examples["fingerprint"].to_numpy(),
                          examples["label"].to_numpy(), texts=examples.drop(columns=["fingerprint", "label"]))
    base = read_manifest(run_of_train(fold_dirs[0]))
    keep = ("model", "label_names", "text_columns", "mode", "versions", "snapshots_per_epoch", "num_labels", "task",
            "task_spec")
    fields = {k: base[k] for k in keep if k in base}
    if oos:
        fields["mode"] = "epoch_end"  # eval-mode predictions at each epoch end
    if (meta or {}).get("dataset"):
        fields["dataset"] = meta["dataset"]
    writer.update_manifest(**fields, split=split,
                           dynamics="out-of-sample" if oos else "in-sample", n_examples=int(n),
                           dataset_fingerprint=dataset_fingerprint(examples["fingerprint"].to_numpy()),
                           snapshots={}, epochs=[],
                           crossfit={**dict(meta or {}), "source": "held-out fold, predicted at each epoch end"
                                     if oos else "training pass of fold model (fold + 1) mod K"})
    epoch_info = read_manifest(run_of_train(fold_dirs[0])).get("snapshots", {})
    for e in range(n_epochs):
        info = epoch_info.get(str(e), {})
        writer.write_epoch(e, ids, gold, logits[:, e, :], epoch=info.get("epoch"), global_step=None)


def run_of_train(fold_dir: Path) -> Path:
    from ..dynamics.store import dynamics_dir

    return dynamics_dir(fold_dir)


def _full_examples(fold_dirs, trained, n: int, load_examples):
    """The training set's records by full row id, from the fold runs' own records."""
    import pandas as pd

    frames = []
    for d, rows in zip(fold_dirs, trained):
        ex = load_examples(d)
        if ex is None:
            raise DatacartoError(f"{d} recorded no examples.parquet")
        ex = ex.set_axis(rows[ex.index.to_numpy()], axis=0)
        frames.append(ex)
    full = pd.concat(frames)
    full = full[~full.index.duplicated(keep="first")].sort_index()
    full.index.name = "row_id"
    if len(full) != n:
        raise DatacartoError(f"the fold runs recorded {len(full)} of {n} training examples")
    return full
