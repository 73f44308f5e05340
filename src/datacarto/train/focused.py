"""Focused fine-tuning: train on a subset of a run's training data, from the baseline or from scratch.

``train_focused`` takes the run's label names and text columns from its manifest and hands the
training itself to :func:`~datacarto.train.baseline.train_baseline` (which also records the focused
run's own dynamics). Compare the result with a random control of the same size
(``random_control``) and with the baseline, and try the ensemble of both (``Ensemble``).
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

from .._validation import check_choice
from ..data import column_values
from ..errors import DatacartoError
from ..tasks import TaskSpec
from .baseline import TrainResult, train_baseline

INITS = ("baseline", "pretrained")
#: The subset's ``row_id`` (row ids of the baseline run) is kept under this name in the focused run.
SOURCE_ROW_ID = "baseline_row_id"


def _run_manifest(run_dir: Path) -> dict:
    from ..dynamics.store import dynamics_dir, read_manifest

    if not run_dir.is_dir():
        raise DatacartoError(f"run directory {run_dir} not found")
    manifest = read_manifest(dynamics_dir(run_dir))
    if not manifest:
        raise DatacartoError(f"{run_dir} holds no training_dynamics/manifest.json: not a datacarto run")
    return manifest


def start_model(run_dir: str | os.PathLike, init: str = "baseline", model: str | None = None) -> str:
    """The model folder or name focused training starts from.

    ``init="baseline"``: the run's final model ``<run>/model``; ``"pretrained"``: the model the run
    started from (manifest key ``model``). ``model`` overrides either.
    """
    run_dir = Path(run_dir)
    check_choice(init, INITS, "init")
    manifest = _run_manifest(run_dir)
    if model is not None:
        return str(model)
    if init == "baseline":
        folder = run_dir / "model"
        if not (folder / "config.json").is_file():
            raise DatacartoError(f"{folder} holds no saved model: train the baseline with save_model=True "
                                 "or pass model=")
        return str(folder)
    name = manifest.get("model")
    if not name:
        raise DatacartoError(f"the manifest of {run_dir} does not name the pretrained model: pass model=")
    return str(name)


def subset_spec(spec: TaskSpec, label_column: str, columns_of_subset) -> TaskSpec:
    """The run's spec for training on a subset of its records: the gold is ``label_column`` (the
    records' ``label``), but a task whose records' gold lacks some units (token classification: the
    words without a token) keeps the data's own label column when the subset has it and
    ``label_column`` is the default; a generative task has no label column."""
    entry = spec.type
    if entry.generative:
        return spec
    if entry.gold_from_data and label_column == "label" and spec.label_column in columns_of_subset:
        return spec
    return dataclasses.replace(spec, label_column=label_column)


def train_focused(run_dir: str | os.PathLike, subset, *, init: str = "baseline", model: str | None = None,
                  output_dir: str | os.PathLike, validation=None, training_args=None, loss=None,
                  label_column: str = "label", max_length: int = 128, dynamics_mode: str = "training_pass",
                  eval_dynamics: bool = True, save_model: bool = True) -> TrainResult:
    """Fine-tune on ``subset`` of the run ``run_dir`` and return the :class:`TrainResult`.

    ``subset``: a .jsonl/.csv/.parquet file written by ``datacarto select``, a ``datasets.Dataset``,
    or row ids of the run. ``init``: ``"baseline"`` continues from ``<run>/model``; ``"pretrained"``
    starts again from the run's original model (``model=`` overrides the start point). Label names
    and text columns are the baseline's. A ``row_id`` column (the baseline's row ids) is kept as
    ``baseline_row_id``; a :class:`~datacarto.train.losses.WeightedLoss` indexed by the baseline's
    row ids is re-indexed to the subset through it. ``validation``: a file or Dataset evaluated at
    each epoch. Writes ``<output_dir>/focus.json`` (what was trained, from where).
    """
    from .._io import write_json_atomic
    from ..dynamics.subsets import read_subset
    from .losses import WeightedLoss

    run_dir = Path(run_dir)
    manifest = _run_manifest(run_dir)
    start = start_model(run_dir, init, model)
    if output_dir is None:
        raise DatacartoError("train_focused needs an output_dir")
    output_dir = Path(output_dir)
    if output_dir.resolve() == run_dir.resolve():
        raise DatacartoError("output_dir is the baseline run itself: focused training would overwrite its "
                             "model and dynamics; choose another folder")
    label_names = manifest.get("label_names")
    text_columns = manifest.get("text_columns") or None
    ds, source, source_ids = read_subset(run_dir, subset)
    if text_columns:
        missing = [c for c in text_columns if c not in ds.column_names]
        if missing:
            raise DatacartoError(f"the subset lacks the baseline's text column(s) {missing} "
                                 f"(columns: {ds.column_names})")
    spec = subset_spec(TaskSpec.from_manifest(manifest), label_column, ds.column_names)
    if not spec.type.generative and spec.label_column not in ds.column_names:
        raise DatacartoError(f"label column {spec.label_column!r} not in the subset (columns: {ds.column_names})")

    if source_ids is not None:
        if SOURCE_ROW_ID in ds.column_names:
            ds = ds.remove_columns(SOURCE_ROW_ID)
        ds = ds.rename_column("row_id", SOURCE_ROW_ID)
    if isinstance(loss, WeightedLoss) and source_ids is not None:
        labels = column_values(ds, label_column)
        if labels.dtype.kind in "iu" and (labels < 0).any():
            raise DatacartoError("the subset has rows without a gold label (< 0): drop them before weighting")
        loss = loss.for_rows(source_ids)

    result = train_baseline(
        model=start, train=ds, validation=validation, task_spec=spec,
        num_labels=len(label_names) if label_names else manifest.get("num_labels"),
        output_dir=output_dir, training_args=training_args, dynamics_mode=dynamics_mode,
        eval_dynamics=eval_dynamics, max_length=max_length, loss=loss, save_model=save_model,
    )
    if result.trainer is None or result.trainer.is_world_process_zero():
        write_json_atomic(Path(result.output_dir) / "focus.json", {
            "baseline_run": str(run_dir), "init": init, "start_model": start,
            "subset": source, "n_examples": len(ds),
            "n_baseline_examples": manifest.get("n_examples"),
            "loss": repr(loss) if loss is not None else "cross_entropy()",
            "label_names": label_names, "text_columns": text_columns,
            "validation": str(validation) if isinstance(validation, (str, os.PathLike)) else None,
        })
    return result
