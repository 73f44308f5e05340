"""The trainer mixin: the training pass's logits, forwarded to the recording callback.

The mixin owns no recording state; :class:`~datacarto.record.callbacks.TrainingPassCallback`
(or, in ``epoch_end`` mode, :class:`~datacarto.record.callbacks.CartographyCallback`) does.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
from transformers import Trainer

from ..errors import DatacartoError
from .callbacks import CartographyCallback, TrainingPassCallback, _Recording
from .examples import ROW_ID, SEGMENTS, RowIdCollator, label_column_of, label_keys, split_name, with_row_ids
from .recorder import warn_once

MODES = ("training_pass", "epoch_end")


class CartographyMixin:
    """Add training-dynamics recording to any ``transformers.Trainer`` subclass.

    ``class MyTrainer(CartographyMixin, SomeTrainer): ...`` (the mixin must come first). Keyword
    arguments:

    * ``dynamics_mode``: ``"training_pass"`` (default; logits of the training forward pass, no
      extra cost) or ``"epoch_end"`` (eval-mode prediction over the training set, paper definition).
    * ``snapshots_per_epoch``: with ``"epoch_end"``, K snapshots per epoch.
    * ``eval_dynamics``: also record the evaluation set's logits at every evaluation.
    * ``loss``: optional ``loss(logits, labels, row_ids) -> scalar`` replacing cross-entropy
      (see :mod:`datacarto.train.losses`).
    * ``label_names``, ``text_columns``, ``dataset_name``: stored in the manifest and records.
    * ``overwrite_dynamics``: start a new store where an earlier run recorded epochs (else refused).
    * ``task_spec``: the run's :class:`~datacarto.tasks.TaskSpec`; its task is checked against the
      model's head (else the head says the task) and it is written whole into the manifest.

    The training set may keep its raw text columns: they go to ``examples.parquet`` for
    tooltips and are kept away from the collator. Packed (TRL ``packing=True``) and padding-free
    batches are recorded per example (docs/generative.md, "Packed and padding-free SFT").
    """

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        mro = cls.__mro__
        if Trainer in mro and mro.index(CartographyMixin) > mro.index(Trainer):
            bases = ", ".join(b.__name__ for b in cls.__bases__ if b is not CartographyMixin)
            raise DatacartoError(
                f"CartographyMixin comes after Trainer in the bases of {cls.__name__}, so it would record nothing: "
                f"write class {cls.__name__}(CartographyMixin, {bases})")

    def __init__(self, *args, dynamics_mode: str = "training_pass", snapshots_per_epoch: int = 1,
                 eval_dynamics: bool = True, loss: Callable | None = None, label_names: list[str] | None = None,
                 text_columns: list[str] | None = None, dataset_name: str | None = None,
                 record: bool = True, overwrite_dynamics: bool = False, task_spec=None, **kwargs):
        if dynamics_mode not in MODES:
            raise DatacartoError(f"dynamics_mode must be one of {MODES}, got {dynamics_mode!r}")
        if dynamics_mode == "training_pass" and snapshots_per_epoch != 1:
            raise DatacartoError("snapshots_per_epoch needs dynamics_mode='epoch_end'")
        self.dynamics_mode = dynamics_mode
        self.record_dynamics = record
        self.record_eval_dynamics = eval_dynamics and record
        self.custom_loss = loss
        self._dc_row_ids = self._dc_segments = None
        self._dc_packed: dict = {}  # id(packed set) -> its Packed (record/packing.py): TRL packing, row ids kept
        self._dc_eval_records = None
        self._dc_eval_ids: list | None = None  # row ids of the evaluation loop's batches, while one records
        self._dc_with_ids: dict = {}  # id(evaluation set) -> (the set, the set with row ids)
        records = kwargs.get("train_dataset", args[3] if len(args) > 3 else None)
        if record and records is not None:
            if "train_dataset" in kwargs:
                kwargs["train_dataset"] = with_row_ids(records)
            else:
                args = (*args[:3], with_row_ids(records), *args[4:])
        super().__init__(*args, **kwargs)
        self.data_collator = RowIdCollator(self.data_collator)
        self.cartography: _Recording | None = None
        if record:
            options = dict(label_names=label_names, text_columns=text_columns, dataset_name=dataset_name,
                           overwrite=overwrite_dynamics, task_spec=task_spec)
            if dynamics_mode == "epoch_end":  # the mixin records evaluations itself, from the evaluation pass
                self.cartography = CartographyCallback(snapshots_per_epoch=snapshots_per_epoch, eval_dynamics=False,
                                                       dataset=records, **options)
            else:
                self.cartography = TrainingPassCallback(records=records, **options)
            self.cartography.packed = self._dc_packed.get(id(self.train_dataset))
            self.cartography.entry = "trainer"  # a refusal names overwrite_dynamics=True, this class's option
            self.cartography.handler = self.callback_handler
            self.add_callback(self.cartography)

    def _prepare_dataset(self, dataset, *args, **kwargs):
        """TRL's ``SFTTrainer`` preparation; with packing, each token's row id is carried through (record/packing.py)."""
        if not self.record_dynamics or len(args) + len(kwargs) != 5:
            return super()._prepare_dataset(dataset, *args, **kwargs)
        from .packing import prepare_with_row_ids

        return prepare_with_row_ids(self, super()._prepare_dataset, dataset, *args, **kwargs)

    # -- columns: keep our row id through the Trainer's column filter
    def _set_signature_columns_if_needed(self):
        super()._set_signature_columns_if_needed()
        if ROW_ID not in self._signature_columns:
            self._signature_columns.append(ROW_ID)

    def train(self, resume_from_checkpoint=None, *args, **kwargs):
        resume_from_checkpoint = _checkpoint_path(resume_from_checkpoint, self.args.output_dir)
        if isinstance(self.cartography, TrainingPassCallback):
            self.cartography.resume_path = resume_from_checkpoint
        return super().train(resume_from_checkpoint, *args, **kwargs)

    # -- the training forward pass
    def training_step(self, model, inputs, num_items_in_batch=None):
        self._dc_row_ids = inputs.pop(ROW_ID, None)  # kept away from any compute_loss override
        self._dc_segments = inputs.pop(SEGMENTS, None)
        try:
            return super().training_step(model, inputs, num_items_in_batch)
        finally:
            self._dc_row_ids = self._dc_segments = None

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        row_ids, segments = inputs.pop(ROW_ID, None), inputs.pop(SEGMENTS, None)
        if row_ids is None:
            row_ids, segments = self._dc_row_ids, self._dc_segments
        labels = inputs.get("labels")
        recording = (model.training and row_ids is not None and labels is not None
                     and isinstance(self.cartography, TrainingPassCallback))
        if recording and self.custom_loss is None and self.cartography.task.entry.generative and not return_outputs:
            return self._causal_lm_loss(model, inputs, row_ids, segments, labels, num_items_in_batch)
        if self.custom_loss is not None and labels is not None:
            outputs = model(**{k: v for k, v in inputs.items() if k != "labels"})
            loss = self.custom_loss(outputs.logits, labels, row_ids)
        elif recording or return_outputs:
            result = super().compute_loss(model, inputs, return_outputs=True, num_items_in_batch=num_items_in_batch)
            if not (isinstance(result, (tuple, list)) and len(result) == 2):
                raise DatacartoError(
                    f"{type(self).__name__}.compute_loss returned only the loss when asked for (loss, outputs) "
                    "(return_outputs=True): return both, so the training pass's logits can be recorded, or "
                    "record with CartographyCallback / dynamics_mode='epoch_end'")
            loss, outputs = result
        else:
            return super().compute_loss(model, inputs, return_outputs=False, num_items_in_batch=num_items_in_batch)
        if recording:
            logits = outputs["logits"] if isinstance(outputs, dict) else outputs[0]
            self.cartography.observe(row_ids, labels, logits, segments=segments)
        return (loss, outputs) if return_outputs else loss

    def _causal_lm_loss(self, model, inputs, row_ids, segments, labels, num_items_in_batch):
        """A causal LM's training loss, with the per-example statistics of the forward it uses.

        The loss is computed once: the model's ``ForCausalLMLoss`` keeps its per-token NLL
        (:func:`~datacarto.record.causal_lm.per_token_loss`), so recording adds no second reduction
        over the (B, T, V) logits. The model's outputs are caught by a forward hook rather than
        asked for: asking (``return_outputs=True``) costs TRL's ``SFTTrainer`` a second forward
        pass, as its fused LM head builds no logits and calls no loss function.
        """
        from .causal_lm import per_token_loss

        caught = []
        handle = model.register_forward_hook(lambda module, args, output: caught.append(output))
        try:
            with per_token_loss(model) as token_losses:
                loss = super().compute_loss(model, inputs, return_outputs=False, num_items_in_batch=num_items_in_batch)
        finally:
            handle.remove()
        fused = [o for o in caught if getattr(o, "log_probs", None) is not None]
        # one loss over the whole batch (nn.DataParallel's replicas each compute a part: their logits, gathered)
        whole = [t for t in token_losses if t.nll.shape[0] == labels.shape[0]] if len(token_losses) == 1 else []
        usable = fused or whole or [o for o in caught if getattr(o, "logits", None) is not None]
        if usable:
            self.cartography.observe(row_ids, labels, None, outputs=usable[0], segments=segments)
        return loss

    def _get_dataloader(self, dataset, description, batch_size, sampler_fn=None, is_training=False,
                        dataloader_key=None):
        """Evaluation and test sets carry their row ids too, whatever sampler the Trainer picks for them.

        The loader of a packed set (TRL ``eval_packing``) carries its unpacked examples (``_datacarto_examples``).
        """
        packed = None
        if self.record_eval_dynamics and not is_training and dataset is not None:
            packed = self._dc_packed.get(id(dataset))
            cached = self._dc_with_ids.get(id(dataset))  # evaluated every epoch: one copy with ids per set
            if cached is None or cached[0] is not dataset:
                cached = self._dc_with_ids[id(dataset)] = (dataset, with_row_ids(dataset, "evaluation set"))
            dataset = cached[1]
        loader = super()._get_dataloader(dataset, description, batch_size, sampler_fn=sampler_fn,
                                         is_training=is_training, dataloader_key=dataloader_key)
        if packed is not None:
            loader._datacarto_examples = packed.examples
        return loader

    def prediction_step(self, model, inputs, prediction_loss_only, ignore_keys=None):
        inputs = dict(inputs)
        row_ids = inputs.pop(ROW_ID, None)
        inputs.pop(SEGMENTS, None)
        if self._dc_eval_ids is not None and row_ids is not None:  # gathered as the loop gathers the logits
            self._dc_eval_ids.append(self.gather_function(row_ids.to(self.args.device)).cpu().numpy())
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
        record = bool(self.record_eval_dynamics and self.state.epoch and self.cartography is not None
                      and self.cartography.recorder is not None)
        if record and self.cartography.task.entry.generative:  # a causal LM: never gather (N, T, V) predictions
            output = super().evaluation_loop(dataloader, description, prediction_loss_only=prediction_loss_only,
                                             ignore_keys=ignore_keys, metric_key_prefix=metric_key_prefix)
            self._record_reduced_eval(dataloader, metric_key_prefix)
            return output
        self._dc_eval_ids = [] if record else None
        try:
            output = super().evaluation_loop(dataloader, description,
                                             prediction_loss_only=False if record else prediction_loss_only,
                                             ignore_keys=ignore_keys, metric_key_prefix=metric_key_prefix)
            row_ids = np.concatenate(self._dc_eval_ids) if self._dc_eval_ids else None
        finally:
            self._dc_eval_ids = None
        labelled = output.label_ids is not None or (row_ids is None and label_column_of(dataloader.dataset, label_keys(self.args.label_names)) is not None)
        if record and labelled:  # (a loop that dropped every batch, drop_last, saw nothing: all rows are filled)
            self._record_eval_output(dataloader, metric_key_prefix, output, row_ids)
        return output

    def _record_eval_output(self, dataloader, metric_key_prefix: str, output, row_ids) -> None:
        """An evaluation's gathered logits, keyed by the row ids its batches carried (never by position)."""
        from .predict import predict_logits

        rec, dataset = self.cartography, dataloader.dataset
        records = self._dc_eval_records
        records = records if records is not None and len(records) == len(dataset) else dataset
        _, units, _ = rec.read_units(dataset, self.model, "evaluation set", records=records)
        if output.predictions is None:
            ids, gold, unit_logits = np.empty(0, np.int64), np.empty(0, np.int64), np.empty((0, 0), np.float32)
        else:
            logits = output.predictions[0] if isinstance(output.predictions, tuple) else output.predictions
            logits = np.asarray(logits)
            if row_ids is None or len(row_ids) != len(logits):
                raise DatacartoError(
                    f"the evaluation loop gave {len(logits)} predictions but {0 if row_ids is None else len(row_ids)} "
                    "row ids: a collator or prediction_step drops datacarto's row ids (keep the collator wrapper the "
                    "trainer installs), or set eval_dynamics=False")
            ids, gold, unit_logits = rec.task.to_units(row_ids, np.asarray(output.label_ids), logits, units)

        def fill(missing_units):  # rows the loop dropped (dataloader_drop_last): predicted in eval mode
            return predict_logits(self.model, dataset, dataloader.collate_fn, self.args.per_device_eval_batch_size,
                                  rows=units.rows_of(missing_units), task=rec.task, units=units)

        rec.record_eval(self.args, self.state, self.model, split_name(metric_key_prefix), records, units, ids, gold,
                        unit_logits, gathered=True, fill=fill)

    def _record_reduced_eval(self, dataloader, metric_key_prefix: str) -> None:
        """Evaluation dynamics of a task reduced on the device (causal LM): one eval-mode pass over the set."""
        from .packing import packing_reason
        from .predict import predict_logits

        rec, dataset = self.cartography, dataloader.dataset
        examples = getattr(dataloader, "_datacarto_examples", None)
        if examples is None and packing_reason(dataset, self.args, evaluation=True):
            warn_once(f"the evaluation set {split_name(metric_key_prefix)!r} is packed without datacarto's row ids: "
                      "its dynamics are not recorded (pass it unprocessed to the trainer, which keeps them)")
            return
        records = self._dc_eval_records if self._dc_eval_records is not None else dataset
        if examples is not None:  # a packed set: its examples, unpacked, one segment each
            records = dataset = examples
        _, units, _ = rec.read_units(dataset, self.model, "evaluation set")
        ids, gold, logits = predict_logits(self.model, dataset, dataloader.collate_fn, self.args.per_device_eval_batch_size,
                                           task=rec.task, units=units)
        rec.record_eval(self.args, self.state, self.model, split_name(metric_key_prefix), records, units, ids, gold,
                        logits, gathered=False)


def _checkpoint_path(resume_from_checkpoint, output_dir) -> str | None:
    """The checkpoint folder to resume from, or one line saying why there is none."""
    if resume_from_checkpoint in (None, False, "", "false", "False"):
        return None
    if resume_from_checkpoint is True or resume_from_checkpoint in ("true", "True"):
        from transformers.trainer_utils import get_last_checkpoint

        last = get_last_checkpoint(output_dir) if Path(output_dir).is_dir() else None
        if last is None:
            raise DatacartoError(f"no checkpoint to resume from in {output_dir} (no checkpoint-* folder)")
        return last
    if not Path(resume_from_checkpoint).is_dir():
        raise DatacartoError(f"checkpoint folder not found: {os.fspath(resume_from_checkpoint)}")
    return os.fspath(resume_from_checkpoint)


class CartographyTrainer(CartographyMixin, Trainer):
    """A ``transformers.Trainer`` that records training dynamics (see :class:`CartographyMixin`)."""
