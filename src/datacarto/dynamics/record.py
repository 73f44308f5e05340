"""Record training dynamics while a ``transformers.Trainer`` trains.

Two ways to record:

* ``CartographyTrainer`` (or ``CartographyMixin`` on any Trainer subclass), default mode
  ``"training_pass"``: each example's logits are taken from the training forward pass itself, so
  recording costs no extra forward pass. The model changes during the epoch and dropout is on, so
  these are the dynamics *as trained*, a cheap approximation of the paper's definition.
* ``CartographyCallback`` (mode ``"epoch_end"``), usable with a plain ``Trainer``: at each epoch end
  (or ``snapshots_per_epoch`` times an epoch) it predicts over the whole training set in eval mode
  with a sequential loader: the paper's definition, at the price of one extra forward pass.

Both write through :class:`~datacarto.dynamics.store.DynamicsWriter`; row id = the example's
position in the training set handed to the Trainer. Distributed runs gather to rank 0, which drops
the sampler's padding duplicates. Partial epochs are saved with each checkpoint, so
``train(resume_from_checkpoint=...)`` neither loses nor duplicates an epoch.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from transformers import Trainer, TrainerCallback

from ..data import column_values
from ..errors import DatacartoError
from .store import DynamicsWriter, dataset_fingerprint, dynamics_dir, example_fingerprints, package_versions

ROW_ID = "datacarto_row_id"
_STATE_FILE = "datacarto_recorder_rank{rank}.npz"
_MODES = ("training_pass", "epoch_end")


# ----------------------------------------------------------------------------------------------
# distributed helpers


def _dist() -> tuple[int, int]:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


def _gather_to_main(ids: np.ndarray, gold: np.ndarray, logits: np.ndarray):
    """Concatenate every rank's (ids, gold, logits) on rank 0; other ranks get None."""
    rank, world = _dist()
    if world == 1:
        return ids, gold, logits
    parts = [None] * world
    torch.distributed.all_gather_object(parts, (ids, gold, logits))
    if rank != 0:
        return None
    return tuple(np.concatenate([p[k] for p in parts]) for k in range(3))


def _barrier() -> None:
    if _dist()[1] > 1:
        torch.distributed.barrier()


# ----------------------------------------------------------------------------------------------
# buffer and writing


class EpochBuffer:
    """Preallocated (N, C) logits for one epoch, indexed by row id: O(N x C), no appends.

    Writing a row twice keeps the last value, which also drops the distributed sampler's
    padding duplicates.
    """

    def __init__(self, n_examples: int, num_labels: int):
        self.logits = np.full((n_examples, num_labels), np.nan, dtype=np.float32)
        self.gold = np.full(n_examples, -1, dtype=np.int64)
        self.seen = np.zeros(n_examples, dtype=bool)

    def add(self, row_ids: np.ndarray, gold: np.ndarray, logits: np.ndarray) -> None:
        self.logits[row_ids] = logits
        self.gold[row_ids] = gold
        self.seen[row_ids] = True

    def reset(self) -> None:
        self.logits.fill(np.nan)
        self.gold.fill(-1)
        self.seen.fill(False)

    @property
    def count(self) -> int:
        return int(self.seen.sum())

    def take(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        idx = np.flatnonzero(self.seen)
        return idx, self.gold[idx], self.logits[idx]

    def save(self, path: str | os.PathLike, **meta: Any) -> None:
        ids, gold, logits = self.take()
        np.savez(path, ids=ids, gold=gold, logits=logits, **{k: np.asarray(v) for k, v in meta.items()})

    def load(self, path: str | os.PathLike) -> dict[str, Any]:
        with np.load(path) as f:
            self.reset()
            self.add(f["ids"], f["gold"], f["logits"])
            return {k: f[k].item() for k in f.files if k not in ("ids", "gold", "logits")}


class _Session:
    """What one recording writes: examples, manifest and epochs of one split (rank 0 only)."""

    def __init__(self, directory: Path, *, mode: str, meta: dict[str, Any]):
        self.writer = DynamicsWriter(directory)
        self.mode = mode
        self.meta = meta
        self.started = False

    def start(self, examples: pd.DataFrame, labels: np.ndarray, label_names: list[str] | None,
              text_columns: list[str]) -> None:
        """Check the data set against what the folder holds, then write examples and manifest."""
        if _dist()[0] != 0:
            self.started = True
            return
        cols = [c for c in text_columns if c in examples.columns]
        fp_frame = examples[cols].assign(__label=labels) if cols else pd.DataFrame({"__label": labels})
        fps = example_fingerprints(fp_frame)
        fingerprint = dataset_fingerprint(fps)
        self.writer.check_fingerprint(fingerprint, dataset=self.meta.get("dataset"))
        self.writer.write_examples(np.arange(len(labels)), fps, labels, examples)
        manifest = {
            "mode": self.mode,
            "n_examples": int(len(labels)),
            "dataset_fingerprint": fingerprint,
            "text_columns": cols,
            "versions": package_versions(),
        }
        if label_names:
            manifest["label_names"] = list(label_names)
            manifest["num_labels"] = len(label_names)
        manifest.update({k: v for k, v in self.meta.items() if v is not None})
        self.writer.update_manifest(**manifest)
        self.started = True

    def write(self, index: int, ids, gold, logits, *, epoch: float | None, global_step: int | None,
              expected: int | None = None) -> bool:
        """Gather to rank 0 and write one epoch; with ``expected``, an incomplete epoch is skipped."""
        gathered = _gather_to_main(ids, gold, logits)
        if gathered is None:
            return False
        ids, gold, logits = gathered
        # drop duplicates (distributed padding), keep one row per id, sorted
        uniq, first = np.unique(ids, return_index=True)
        if expected is not None and len(uniq) < expected:
            warnings.warn(f"epoch {index} ended after {len(uniq)} of {expected} examples: not recorded",
                          stacklevel=2)
            return False
        self.writer.write_epoch(index, uniq, gold[first], logits[first], epoch=epoch, global_step=global_step)
        return True


MODEL_INPUTS = ("input_ids", "attention_mask", "token_type_ids", "position_ids", "labels", "label_ids", ROW_ID)


def _records_frame(dataset) -> pd.DataFrame:
    """Every original column of a datasets.Dataset (not the tokenizer's outputs) as a DataFrame."""
    import datasets

    if isinstance(dataset, datasets.Dataset):
        cols = [c for c in dataset.column_names if c not in MODEL_INPUTS]
        return dataset.select_columns(cols).to_pandas() if cols else pd.DataFrame(index=range(len(dataset)))
    return pd.DataFrame(index=range(len(dataset)))


def _text_columns(frame: pd.DataFrame) -> list[str]:
    return [c for c in frame.columns if pd.api.types.is_string_dtype(frame[c])]


def _labels_of(dataset, label_column: str | None) -> np.ndarray:
    import datasets

    if isinstance(dataset, datasets.Dataset):
        for col in ([label_column] if label_column else []) + ["labels", "label", "label_ids"]:
            if col in dataset.column_names:
                return np.asarray(column_values(dataset, col), dtype=np.int64)
        raise DatacartoError(f"no label column found in the training set (columns: {dataset.column_names})")
    labels = []
    for i in range(len(dataset)):
        item = dataset[i]
        value = next((item[k] for k in ("labels", "label", "label_ids") if k in item), None)
        if value is None:
            raise DatacartoError("training examples have no 'labels' or 'label' field")
        labels.append(int(value))
    return np.asarray(labels, dtype=np.int64)


def _check_labels(labels: np.ndarray, num_labels: int | None) -> None:
    if labels.size == 0:
        raise DatacartoError("the training set is empty")
    if labels.min() < 0 or (num_labels is not None and labels.max() >= num_labels):
        raise DatacartoError(
            f"training labels range over [{labels.min()}, {labels.max()}] but the model has {num_labels} labels"
        )


def _model_name(model) -> str | None:
    config = getattr(model, "config", None)
    return getattr(config, "_name_or_path", None) or getattr(config, "model_type", None)


def _split_name(metric_key_prefix: str) -> str:
    """Trainer metric prefixes to split names: eval -> validation, eval_X -> X, test -> test."""
    return "validation" if metric_key_prefix == "eval" else metric_key_prefix.removeprefix("eval_")


# ----------------------------------------------------------------------------------------------
# collator: carries the row id, keeps raw text away from the user's collator


class RowIdCollator:
    """Wraps a data collator: drops text fields, collates the rest, adds the row ids as a tensor."""

    def __init__(self, inner: Callable):
        self.inner = inner

    @staticmethod
    def _is_text(value: Any) -> bool:
        if isinstance(value, str) or value is None:
            return True
        return isinstance(value, (list, tuple)) and len(value) > 0 and isinstance(value[0], str)

    def __call__(self, features: list[dict[str, Any]]) -> dict[str, Any]:
        features = [dict(f) for f in features]
        row_ids = [f.pop(ROW_ID, None) for f in features]
        if features:
            text = [k for k, v in features[0].items() if self._is_text(v)]
            for f in features:
                for k in text:
                    f.pop(k, None)
        batch = self.inner(features)
        if row_ids and row_ids[0] is not None:
            batch[ROW_ID] = torch.as_tensor(row_ids, dtype=torch.long)
        return batch


def _with_row_ids(dataset):
    """The training set with a row-id column (its position), without copying the data."""
    import datasets

    if dataset is None or (isinstance(dataset, datasets.Dataset) and ROW_ID in dataset.column_names):
        return dataset
    if isinstance(dataset, datasets.Dataset):
        return dataset.add_column(ROW_ID, np.arange(len(dataset), dtype=np.int64))
    if isinstance(dataset, torch.utils.data.IterableDataset):
        raise DatacartoError("recording needs a map-style training set (with a length), not an IterableDataset")
    return _IndexedDataset(dataset)


class _IndexedDataset(torch.utils.data.Dataset):
    def __init__(self, base):
        self.base = base

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, i: int) -> dict[str, Any]:
        item = dict(self.base[i])
        item[ROW_ID] = i
        return item


# ----------------------------------------------------------------------------------------------
# the callback: epoch-end prediction with a plain Trainer


class CartographyCallback(TrainerCallback):
    """Record training dynamics with a plain ``Trainer(callbacks=[CartographyCallback()])``.

    At each epoch end (``snapshots_per_epoch`` times per epoch) the model predicts over the whole
    training set in eval mode, sequentially; at each evaluation it predicts over the evaluation set
    too (``eval_dynamics=True``). Dynamics go to ``<output_dir>/training_dynamics/``.

    ``dataset``: the training set with its text columns, for the records in ``examples.parquet``
    (the Trainer drops text columns from what it hands to callbacks).
    """

    def __init__(self, mode: str = "epoch_end", *, snapshots_per_epoch: int = 1, eval_dynamics: bool = True,
                 dataset=None, label_names: list[str] | None = None, text_columns: list[str] | None = None,
                 dataset_name: str | None = None, output_dir: str | os.PathLike | None = None):
        if mode != "epoch_end":
            raise DatacartoError(
                f"CartographyCallback records in mode 'epoch_end'; got {mode!r}. For 'training_pass' "
                "use CartographyTrainer (or CartographyMixin), which sees the training forward pass"
            )
        if int(snapshots_per_epoch) < 1:
            raise DatacartoError(f"snapshots_per_epoch must be >= 1, got {snapshots_per_epoch}")
        self.mode = mode
        self.snapshots_per_epoch = int(snapshots_per_epoch)
        self.eval_dynamics = eval_dynamics
        self.dataset = dataset
        self.label_names = label_names
        self.text_columns = text_columns
        self.dataset_name = dataset_name
        self.output_dir = output_dir
        self._session: _Session | None = None
        self._done = 0

    def _directory(self, args) -> Path:
        return dynamics_dir(self.output_dir or args.output_dir)

    def on_train_begin(self, args, state, control, model=None, train_dataloader=None, **kwargs):
        train_set = train_dataloader.dataset
        records = self.dataset if self.dataset is not None else train_set
        if len(records) != len(train_set):
            raise DatacartoError(
                f"the dataset given for records has {len(records)} rows, the training set {len(train_set)}"
            )
        labels = _labels_of(train_set, None)
        num_labels = getattr(getattr(model, "config", None), "num_labels", None)
        _check_labels(labels, num_labels)
        frame = _records_frame(records)
        text_columns = self.text_columns or _text_columns(frame)
        self._session = _Session(self._directory(args), mode=self.mode, meta={
            "model": _model_name(model), "dataset": self.dataset_name,
            "snapshots_per_epoch": self.snapshots_per_epoch, "split": "train",
        })
        names = self.label_names or _config_label_names(model)
        self._session.start(frame, labels, names, text_columns)
        self._done = int(math.floor(state.epoch * self.snapshots_per_epoch + 1e-6)) if state.epoch else 0
        _barrier()

    def on_step_end(self, args, state, control, model=None, train_dataloader=None, **kwargs):
        reached = int(math.floor(state.epoch * self.snapshots_per_epoch + 1e-6))
        if reached > self._done:
            self._snapshot(args, state, model, train_dataloader, reached - 1)
            self._done = reached

    def on_epoch_end(self, args, state, control, model=None, train_dataloader=None, **kwargs):
        # an epoch cut short (max_steps) still gets its snapshot
        reached = int(math.ceil(state.epoch * self.snapshots_per_epoch - 1e-6))
        if reached > self._done:
            self._snapshot(args, state, model, train_dataloader, reached - 1)
            self._done = reached

    def on_evaluate(self, args, state, control, model=None, eval_dataloader=None, **kwargs):
        if not self.eval_dynamics or eval_dataloader is None or self._session is None:
            return
        ids, gold, logits = predict_logits(model, eval_dataloader.dataset, eval_dataloader.collate_fn,
                                           args.per_device_eval_batch_size)
        index = max(self._done - 1, 0)
        _write_eval(self.output_dir or args.output_dir, "validation", eval_dataloader.dataset, ids, gold, logits,
                    index=index, state=state, mode=self.mode, model=model, label_names=self.label_names)

    def _snapshot(self, args, state, model, train_dataloader, index: int) -> None:
        ids, gold, logits = predict_logits(model, train_dataloader.dataset, train_dataloader.collate_fn,
                                           args.per_device_eval_batch_size)
        self._session.write(index, ids, gold, logits, epoch=state.epoch, global_step=state.global_step)


def _config_label_names(model) -> list[str] | None:
    id2label = getattr(getattr(model, "config", None), "id2label", None)
    if not id2label:
        return None
    names = [id2label[i] for i in sorted(id2label)]
    return None if all(n == f"LABEL_{i}" for i, n in enumerate(names)) else names


@torch.no_grad()
def predict_logits(model, dataset, collate_fn, batch_size: int, *, progress: bool = False):
    """Eval-mode logits over this rank's contiguous share of ``dataset`` with a sequential loader.

    Returns (row ids, gold labels, logits); rows are dataset positions.
    """
    rank, world = _dist()
    n = len(dataset)
    lo, hi = n * rank // world, n * (rank + 1) // world
    subset = torch.utils.data.Subset(dataset, range(lo, hi))
    loader = torch.utils.data.DataLoader(subset, batch_size=batch_size, shuffle=False, collate_fn=collate_fn)
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    out_logits, out_gold = [], []
    try:
        for batch in loader:
            batch = dict(batch)
            batch.pop(ROW_ID, None)
            gold = None
            for key in ("labels", "label", "label_ids"):
                if key in batch:
                    gold = batch.pop(key)
                    break
            batch = {k: v.to(device) if hasattr(v, "to") else v for k, v in batch.items()}
            logits = model(**batch).logits
            out_logits.append(logits.float().cpu().numpy())
            out_gold.append(np.full(len(logits), -1) if gold is None else gold.cpu().numpy())
    finally:
        model.train(was_training)
    c = model.config.num_labels if hasattr(model, "config") else out_logits[0].shape[1]
    logits = np.concatenate(out_logits) if out_logits else np.empty((0, c), np.float32)
    gold = np.concatenate(out_gold).astype(np.int64) if out_gold else np.empty(0, np.int64)
    return np.arange(lo, hi, dtype=np.int64), gold, logits


def _write_eval(output_dir, split: str, dataset, ids, gold, logits, *, index: int, state, mode: str, model,
                label_names) -> None:
    session = _Session(dynamics_dir(output_dir, split), mode=mode, meta={
        "model": _model_name(model), "split": split,
    })
    # examples of an eval split are written once (and checked) the first time
    if not (session.writer.directory / "examples.parquet").is_file():
        frame = _records_frame(dataset)
        labels = np.asarray(gold, dtype=np.int64)
        gathered = _gather_to_main(ids, gold, logits)
        if gathered is not None and len(gathered[0]) == len(dataset):
            order = np.argsort(gathered[0])
            labels = gathered[1][order]
            session.start(frame, labels, label_names or _config_label_names(model), _text_columns(frame))
    session.write(index, ids, gold, logits, epoch=state.epoch, global_step=state.global_step)


# ----------------------------------------------------------------------------------------------
# the trainer mixin: recording from the training forward pass


class CartographyMixin:
    """Add training-dynamics recording to any ``transformers.Trainer`` subclass.

    ``class MyTrainer(CartographyMixin, SomeTrainer): ...``. Keyword arguments:

    * ``dynamics_mode``: ``"training_pass"`` (default; logits of the training forward pass, no
      extra cost) or ``"epoch_end"`` (eval-mode prediction over the training set, paper definition).
    * ``snapshots_per_epoch``: with ``"epoch_end"``, K snapshots per epoch.
    * ``eval_dynamics``: also record the evaluation set's logits at every evaluation.
    * ``loss``: optional ``loss(logits, labels, row_ids) -> scalar`` replacing cross-entropy
      (see :mod:`datacarto.train.losses`).
    * ``label_names``, ``text_columns``, ``dataset_name``: stored in the manifest and records.

    The training set may keep its raw text columns: they go to ``examples.parquet`` for
    tooltips and are kept away from the collator.
    """

    def __init__(self, *args, dynamics_mode: str = "training_pass", snapshots_per_epoch: int = 1,
                 eval_dynamics: bool = True, loss: Callable | None = None, label_names: list[str] | None = None,
                 text_columns: list[str] | None = None, dataset_name: str | None = None,
                 record: bool = True, **kwargs):
        if dynamics_mode not in _MODES:
            raise DatacartoError(f"dynamics_mode must be one of {_MODES}, got {dynamics_mode!r}")
        if dynamics_mode == "training_pass" and snapshots_per_epoch != 1:
            raise DatacartoError("snapshots_per_epoch needs dynamics_mode='epoch_end'")
        self.dynamics_mode = dynamics_mode
        self.record_dynamics = record
        self.record_eval_dynamics = eval_dynamics and record
        self.custom_loss = loss
        self._dc_label_names = label_names
        self._dc_text_columns = text_columns
        self._dc_dataset_name = dataset_name
        self._dc_buffer: EpochBuffer | None = None
        self._dc_session: _Session | None = None
        self._dc_resume: str | None = None

        train_dataset = kwargs.get("train_dataset")
        if train_dataset is None and len(args) > 3:
            train_dataset = args[3]
        self._dc_records = train_dataset
        if record and train_dataset is not None:
            if "train_dataset" in kwargs:
                kwargs["train_dataset"] = _with_row_ids(train_dataset)
            else:
                args = (*args[:3], _with_row_ids(train_dataset), *args[4:])
        super().__init__(*args, **kwargs)
        self.data_collator = RowIdCollator(self.data_collator)
        if record and dynamics_mode == "epoch_end":
            self.add_callback(CartographyCallback(
                snapshots_per_epoch=snapshots_per_epoch, eval_dynamics=False, dataset=train_dataset,
                label_names=label_names, text_columns=text_columns, dataset_name=dataset_name))
        elif record:
            self.add_callback(_TrainingPassCallback(self))

    # -- columns: keep our row id through the Trainer's column filter
    def _set_signature_columns_if_needed(self):
        super()._set_signature_columns_if_needed()
        if ROW_ID not in self._signature_columns:
            self._signature_columns.append(ROW_ID)

    def train(self, resume_from_checkpoint=None, *args, **kwargs):
        if resume_from_checkpoint is True:
            from transformers.trainer_utils import get_last_checkpoint

            self._dc_resume = get_last_checkpoint(self.args.output_dir)
        elif isinstance(resume_from_checkpoint, (str, os.PathLike)):
            self._dc_resume = str(resume_from_checkpoint)
        else:
            self._dc_resume = None
        return super().train(resume_from_checkpoint, *args, **kwargs)

    # -- the training forward pass
    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        row_ids = inputs.pop(ROW_ID, None)
        labels = inputs.get("labels")
        if self.custom_loss is not None and labels is not None:
            model_inputs = {k: v for k, v in inputs.items() if k != "labels"}
            outputs = model(**model_inputs)
            loss = self.custom_loss(outputs.logits, labels, row_ids)
        else:
            loss, outputs = super().compute_loss(model, inputs, return_outputs=True,
                                                 num_items_in_batch=num_items_in_batch)
        if (row_ids is not None and labels is not None and model.training and self._dc_buffer is not None):
            logits = outputs["logits"] if isinstance(outputs, dict) else outputs[0]
            self._dc_buffer.add(row_ids.cpu().numpy(), labels.detach().cpu().numpy(),
                                logits.detach().float().cpu().numpy())
        return (loss, outputs) if return_outputs else loss

    def prediction_step(self, model, inputs, prediction_loss_only, ignore_keys=None):
        inputs = dict(inputs)
        inputs.pop(ROW_ID, None)
        return super().prediction_step(model, inputs, prediction_loss_only, ignore_keys=ignore_keys)

    # -- evaluation: record the eval set's logits from the evaluation pass itself
    def evaluate(self, eval_dataset=None, ignore_keys=None, metric_key_prefix="eval"):
        if isinstance(eval_dataset, str) and isinstance(self.eval_dataset, dict):
            self._dc_eval_records = self.eval_dataset[eval_dataset]
        else:
            self._dc_eval_records = eval_dataset if eval_dataset is not None else self.eval_dataset
        return super().evaluate(eval_dataset, ignore_keys=ignore_keys, metric_key_prefix=metric_key_prefix)

    def predict(self, test_dataset, ignore_keys=None, metric_key_prefix="test"):
        self._dc_eval_records = test_dataset
        return super().predict(test_dataset, ignore_keys=ignore_keys, metric_key_prefix=metric_key_prefix)

    def evaluation_loop(self, dataloader, description, prediction_loss_only=None, ignore_keys=None,
                        metric_key_prefix="eval"):
        record = bool(self.record_eval_dynamics and self.state.epoch)
        if record:
            prediction_loss_only = False
        output = super().evaluation_loop(dataloader, description, prediction_loss_only=prediction_loss_only,
                                         ignore_keys=ignore_keys, metric_key_prefix=metric_key_prefix)
        if record and output.predictions is not None and output.label_ids is not None:
            logits = output.predictions[0] if isinstance(output.predictions, tuple) else output.predictions
            n = len(logits)
            if _dist()[0] == 0:
                index = max(int(math.ceil(self.state.epoch - 1e-6)) - 1, 0)
                split = _split_name(metric_key_prefix)
                session = _Session(dynamics_dir(self.args.output_dir, split), mode=self.dynamics_mode,
                                   meta={"model": _model_name(self.model), "split": split})
                if not (session.writer.directory / "examples.parquet").is_file():
                    raw = getattr(self, "_dc_eval_records", None)
                    frame = _records_frame(raw if raw is not None and len(raw) == n else dataloader.dataset)
                    session.start(frame, np.asarray(output.label_ids, dtype=np.int64),
                                  self._dc_label_names or _config_label_names(self.model), _text_columns(frame))
                session.writer.write_epoch(index, np.arange(n), np.asarray(output.label_ids), np.asarray(logits),
                                           epoch=self.state.epoch, global_step=self.state.global_step)
        return output


class PredictEachEpoch(TrainerCallback):
    """Predicts a data set at each epoch end, so a CartographyTrainer records its dynamics.

    The logits are recorded under ``training_dynamics/eval/<split>/``, one file per epoch, like the
    evaluation set's. Costs one prediction pass over the data set per epoch.
    """

    def __init__(self, trainer, dataset, *, split: str = "test"):
        self.trainer = trainer
        self.dataset = dataset
        self.split = split

    def on_epoch_end(self, args, state, control, **kwargs):
        self.trainer.predict(self.dataset, metric_key_prefix=self.split)


class _TrainingPassCallback(TrainerCallback):
    """Flushes the mixin's buffer at each epoch end and saves it with each checkpoint."""

    def __init__(self, trainer: CartographyMixin):
        self.trainer = trainer

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        t = self.trainer
        train_set = t.train_dataset
        labels = _labels_of(t._dc_records, None)
        num_labels = getattr(getattr(model, "config", None), "num_labels", None)
        _check_labels(labels, num_labels)
        c = num_labels or int(labels.max()) + 1
        t._dc_buffer = EpochBuffer(len(train_set), c)
        frame = _records_frame(t._dc_records)
        t._dc_session = _Session(dynamics_dir(args.output_dir), mode=t.dynamics_mode, meta={
            "model": _model_name(model), "dataset": t._dc_dataset_name, "snapshots_per_epoch": 1,
            "split": "train",
        })
        t._dc_session.start(frame, labels, t._dc_label_names or _config_label_names(model),
                            t._dc_text_columns or _text_columns(frame))
        if t._dc_resume:
            state_file = Path(t._dc_resume) / _STATE_FILE.format(rank=_dist()[0])
            if state_file.is_file():
                t._dc_buffer.load(state_file)
            elif state.global_step and not _at_epoch_boundary(state.epoch):
                warnings.warn(
                    f"{t._dc_resume} holds no recorder state: the resumed epoch will miss the examples "
                    "seen before the checkpoint", stacklevel=2)
        _barrier()

    def on_step_end(self, args, state, control, **kwargs):
        # the last step of an epoch: flush before any checkpoint of this step is saved
        if _at_epoch_boundary(state.epoch):
            self._flush(state, int(round(state.epoch)) - 1)

    def on_epoch_end(self, args, state, control, **kwargs):
        # complete epochs were flushed at their last step; an epoch cut short (early stop,
        # max_steps) stays in the buffer, which the checkpoint saves for a resume
        buffer = self.trainer._dc_buffer
        if buffer is not None and buffer.count and not _at_epoch_boundary(state.epoch) and _dist()[0] == 0:
            warnings.warn(f"training stopped inside epoch {int(state.epoch)}: that epoch is not recorded "
                          "unless training resumes from a checkpoint", stacklevel=2)

    def on_save(self, args, state, control, **kwargs):
        buffer = self.trainer._dc_buffer
        if buffer is None:
            return
        folder = Path(args.output_dir) / f"checkpoint-{state.global_step}"
        folder.mkdir(parents=True, exist_ok=True)
        buffer.save(folder / _STATE_FILE.format(rank=_dist()[0]), global_step=state.global_step)

    def _flush(self, state, index: int) -> None:
        t = self.trainer
        ids, gold, logits = t._dc_buffer.take()
        t._dc_session.write(index, ids, gold, logits, epoch=state.epoch, global_step=state.global_step,
                            expected=len(t._dc_buffer.seen))
        t._dc_buffer.reset()


def _at_epoch_boundary(epoch: float | None) -> bool:
    return bool(epoch) and abs(epoch - round(epoch)) < 1e-9


class CartographyTrainer(CartographyMixin, Trainer):
    """A ``transformers.Trainer`` that records training dynamics (see :class:`CartographyMixin`)."""
