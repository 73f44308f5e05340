"""When snapshots are taken: at epoch ends (``CartographyCallback``) or from the training pass.

Both modes share :class:`_Recording`: the same checks before the first step, the same
:class:`~datacarto.record.recorder.SplitRecorder`, the same rules for partial epochs, resumes and
evaluation snapshots, so the two modes cannot disagree about what is recorded.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import torch
from transformers import TrainerCallback

from ..dynamics.store import dynamics_dir
from ..errors import DatacartoError
from ..tasks import manifest_task
from .distributed import barrier, gather_arrays, is_main, rank_world
from .examples import (
    check_map_style,
    label_keys,
    label_names_of,
    model_name,
    records_frame,
    units_of,
)
from .packing import Packed, check_packing, packing_reason
from .predict import predict_logits, preserved_rng
from .recorder import EpochBuffer, SplitRecorder, warn_once
from .segments import merge_pieces
from .tasks import task_of
from .trackers import install as install_trackers

STATE_FILE = "datacarto_recorder_rank{rank}.npz"
PENDING_BATCHES = 64  # training-pass batches whose (B, 3) causal-LM statistics wait on the device


def at_epoch_boundary(epoch: float | None) -> bool:
    return bool(epoch) and abs(epoch - round(epoch)) < 1e-9


def steps_per_epoch(args, train_dataloader) -> int:
    """Optimizer steps per epoch, computed as the Trainer computes them."""
    n, k = len(train_dataloader), args.gradient_accumulation_steps
    return max(n // k + int(n % k > 0), 1)


def partial_epoch_message(epoch_index: int, *, planned: bool) -> str:
    """The one sentence both modes say about an epoch that training does not finish."""
    when = "ends" if planned else "stopped"
    return (f"training {when} inside epoch {epoch_index}: epochs 0..{epoch_index - 1} are recorded, "
            f"epoch {epoch_index} is not (a partial epoch is never recorded, in either mode) unless "
            "training resumes from a checkpoint")


def check_plan(args, state, train_dataloader) -> None:
    """Refuse a run that would record no epoch; warn when the last epoch will be cut short."""
    if state.max_steps <= 0:
        raise DatacartoError(f"nothing to train (num_train_epochs={args.num_train_epochs}, max_steps="
                             f"{args.max_steps}): no epoch would be recorded")
    per_epoch = steps_per_epoch(args, train_dataloader)
    full, rest = divmod(state.max_steps, per_epoch)
    if full == 0:
        raise DatacartoError(f"training ends after {state.max_steps} steps, inside the first epoch ({per_epoch} "
                             "steps): no epoch would be recorded; train at least one whole epoch")
    if rest and state.global_step < state.max_steps:
        warn_once(partial_epoch_message(full, planned=True))


def best_model_note(args, state) -> str | None:
    """One line when ``load_best_model_at_end`` left an earlier epoch's model than the last one recorded."""
    checkpoint = state.best_model_checkpoint
    if not args.load_best_model_at_end or not checkpoint or not state.epoch:
        return None
    step = state.best_global_step or int(str(checkpoint).rstrip("/").rsplit("-", 1)[-1] or 0)
    epochs = [h["epoch"] for h in state.log_history if h.get("step") == step and "epoch" in h]
    if not epochs or abs(epochs[0] - state.epoch) < 1e-6:
        return None
    return (f"load_best_model_at_end: the model at the end of training is epoch {epochs[0]:g}'s ({Path(checkpoint).name}"
            f", the best {args.metric_for_best_model or 'loss'}), while the dynamics record every epoch up to "
            f"{state.epoch:g}: the later epochs' predictions are not this model's")


class _Recording(TrainerCallback):
    """The start-of-training checks and the evaluation snapshots that both modes share."""

    mode = "epoch_end"
    #: whose options a refusal to mix runs names (record.recorder.STORE_OPTIONS); the mixin sets "trainer"
    entry = "callback"

    def __init__(self, *, records=None, label_names=None, text_columns=None, dataset_name=None,
                 output_dir=None, overwrite: bool = False, eval_dynamics: bool = True, snapshots_per_epoch: int = 1,
                 task_spec=None):
        self.task_spec = task_spec  # a datacarto.tasks.TaskSpec: the task checked against the head, in the manifest
        self.records = records
        self.label_names = label_names
        self.text_columns = text_columns
        self.dataset_name = dataset_name
        self.output_dir = output_dir
        self.overwrite = overwrite
        self.eval_dynamics = eval_dynamics
        self.snapshots_per_epoch = int(snapshots_per_epoch)
        self.recorder: SplitRecorder | None = None
        self.n_examples = 0
        self._eval: dict[str, SplitRecorder] = {}
        self._planned_stop = None
        self.packed: Packed | None = None  # a packed training set's examples (the mixin with TRL packing)
        self.examples = None  # the data set whose rows are the examples: predicted at epoch ends and for filled rows
        self.handler = None  # the Trainer's CallbackHandler where known (the mixin's); else found when training starts

    def run_dir(self, args) -> Path:
        return Path(self.output_dir or args.output_dir)

    def resume_index(self, state) -> int | None:
        """The first snapshot index this train() call writes; None for a new run."""
        if not state.global_step:
            return None
        return int(math.floor(state.epoch * self.snapshots_per_epoch + 1e-6))

    def on_train_begin(self, args, state, control, model=None, train_dataloader=None, processing_class=None,
                       **kwargs):
        train_set = getattr(train_dataloader, "dataset", None)
        check_map_style(train_set)
        self.task = task_of(model, getattr(self.task_spec, "task", None))
        check_packing(self.task, train_set, self.packed, args)
        self.examples = train_set if self.packed is None else self.packed.examples
        records = self.records if self.records is not None else self.examples
        check_map_style(records, "records data set")
        if len(records) != len(self.examples):
            raise DatacartoError(f"the dataset given for records has {len(records)} rows, the training set "
                                 f"{len(self.examples)}")
        self.label_keys = label_keys(args.label_names)
        labels, self.units, column = self.read_units(self.examples, model, records=records)
        check_plan(args, state, train_dataloader)
        self._planned_stop = state.max_steps
        frame, text = records_frame(records, processing_class if hasattr(processing_class, "batch_decode") else None)
        self.n_examples = self.units.n
        self.recorder = SplitRecorder(dynamics_dir(self.run_dir(args)), mode=self.mode, meta={
            "model": model_name(model), "dataset": self.dataset_name, "split": "train",
            "snapshots_per_epoch": self.snapshots_per_epoch, **manifest_task(self.task.name, self.task_spec)},
            extra_columns=self.task.extra_columns)
        self.recorder.expect(self.units.gold)
        resume = self.resume_index(state)
        self.label_names = self.task.label_names or label_names_of(model, records, self.label_names, column)
        self.recorder.begin(frame, self.task.example_labels(labels), self.label_names, self.text_columns or text,
                            resume_from=resume, overwrite=self.overwrite, units=self.task.keyed(self.units),
                            entry=self.entry)
        if resume is not None:
            self._drop_later_evaluations(args, state.global_step)
        self.start(args, state, model)
        install_trackers(self, args, self.handler)  # the data map in TensorBoard, MLflow, W&B (record/trackers.py)
        barrier()

    def read_units(self, dataset, model, what: str = "training set", records=None):
        """(example labels, Units, label column) of a data set, validated for the task."""
        return units_of(self.task, dataset, model, what, label_keys=self.label_keys, records=records)

    def start(self, args, state, model) -> None:
        """Mode-specific set-up after the shared checks."""

    def on_epoch_end(self, args, state, control, **kwargs):
        if state.epoch and not at_epoch_boundary(state.epoch) and state.global_step != self._planned_stop:
            warn_once(partial_epoch_message(int(state.epoch), planned=False))

    def on_train_end(self, args, state, control, **kwargs):
        note = best_model_note(args, state)  # the Trainer has loaded the best model by now
        if note:
            warn_once(note)

    # -- evaluation snapshots (both modes)
    def _drop_later_evaluations(self, args, global_step: int) -> None:
        eval_root = dynamics_dir(self.run_dir(args)) / "eval"
        if is_main() and eval_root.is_dir():
            for folder in sorted(p for p in eval_root.iterdir() if p.is_dir()):
                SplitRecorder(folder, mode=self.mode, meta={}).drop_snapshots(
                    lambda i, s: (s.get("global_step") or 0) > global_step)

    def record_eval(self, args, state, model, split: str, records, units, ids, gold, logits, *, gathered: bool,
                    tokenizer=None, fill=None) -> None:
        """Write one evaluation snapshot of ``split`` (unit ids of its ``units``), numbered in evaluation order.

        Every rank calls it. The set is recorded whole: units the evaluation did not see (a loop
        that drops its last batch) are predicted by ``fill`` (every rank takes part) and marked.
        """
        if not gathered:
            ids, gold, logits = gather_arrays(ids, gold, logits)
        recorder = self._eval.get(split) or SplitRecorder(dynamics_dir(self.run_dir(args), split), mode=self.mode,
                                                          meta={"model": model_name(model), "split": split,
                                                                "task": self.task.name, "unit": self.task.unit},
                                                          extra_columns=self.task.extra_columns)
        self._eval[split] = recorder
        n_rows = len(units.offsets) - 1
        if is_main() and not recorder.has_examples:
            source = records if records is not None and len(records) == n_rows else _Positions(n_rows)
            frame, text = records_frame(source, tokenizer)
            recorder.begin(frame, self.task.labels_of_units(units), self.label_names, text, overwrite=True)
        recorder.units = self.task.keyed(units)  # this evaluation's units (begin ran at the first one only)
        recorder.expect(units.gold)
        index = recorder.next_eval_index(state.global_step)
        written = recorder.write(index, ids, gold, logits, epoch=state.epoch, global_step=state.global_step,
                                 n_expected=units.n, fill=fill, gathered=True)
        if written:
            recorder.drop_snapshots(lambda i, s: i > index)


class _Positions:
    """A stand-in for an eval set without records: only its length."""

    def __init__(self, n: int):
        self.n = n

    def __len__(self) -> int:
        return self.n


class CartographyCallback(_Recording):
    """Record training dynamics with a plain ``Trainer(callbacks=[CartographyCallback()])``.

    At each epoch end (``snapshots_per_epoch`` times per epoch) the model predicts over the whole
    training set in eval mode, sequentially; at each evaluation it predicts over the evaluation set
    too (``eval_dynamics=True``). Dynamics go to ``<output_dir>/training_dynamics/``.

    Parameters
    ----------
    dataset : datasets.Dataset, optional
        The training set with its text columns, for the records in ``examples.parquet`` (the
        Trainer drops unused columns before callbacks see the data; without ``dataset`` the input
        ids are decoded into a ``text`` column).
    overwrite : bool
        Start a new store in a folder that holds recorded epochs of an earlier run (refused otherwise).
    """

    def __init__(self, mode: str = "epoch_end", *, snapshots_per_epoch: int = 1, eval_dynamics: bool = True,
                 dataset=None, label_names: list[str] | None = None, text_columns: list[str] | None = None,
                 dataset_name: str | None = None, output_dir: str | os.PathLike | None = None,
                 overwrite: bool = False, task_spec=None):
        if mode != "epoch_end":
            raise DatacartoError(
                f"CartographyCallback records in mode 'epoch_end'; got {mode!r}. For 'training_pass' "
                "use CartographyTrainer (or CartographyMixin), which sees the training forward pass")
        if int(snapshots_per_epoch) < 1:
            raise DatacartoError(f"snapshots_per_epoch must be >= 1, got {snapshots_per_epoch}")
        super().__init__(records=dataset, label_names=label_names, text_columns=text_columns,
                         dataset_name=dataset_name, output_dir=output_dir, overwrite=overwrite,
                         eval_dynamics=eval_dynamics, snapshots_per_epoch=snapshots_per_epoch, task_spec=task_spec)
        self._done = 0

    def start(self, args, state, model) -> None:
        self._done = self.resume_index(state) or 0

    def on_step_end(self, args, state, control, model=None, train_dataloader=None, **kwargs):
        reached = int(math.floor(state.epoch * self.snapshots_per_epoch + 1e-6))
        if reached > self._done:
            ids, gold, logits = predict_logits(model, self.examples, train_dataloader.collate_fn,
                                               args.per_device_eval_batch_size, task=self.task, units=self.units)
            self.recorder.write(reached - 1, ids, gold, logits, epoch=state.epoch, global_step=state.global_step,
                                n_expected=self.n_examples)
            self._done = reached

    def on_evaluate(self, args, state, control, model=None, eval_dataloader=None, metrics=None, **kwargs):
        if not self.eval_dynamics or eval_dataloader is None or self.recorder is None or not state.epoch:
            return  # (an evaluation before the first step, eval_on_start, is not a snapshot: as in the mixin)
        dataset = eval_dataloader.dataset
        if packing_reason(dataset, args, evaluation=True):
            warn_once(f"the evaluation set {_split_of(metrics)!r} is packed: its dynamics are not recorded (record TRL "
                      "packing with class SFT(CartographyMixin, SFTTrainer), which keeps each token's row id)")
            return
        _, units, _ = self.read_units(dataset, model, "evaluation set")
        ids, gold, logits = predict_logits(model, dataset, eval_dataloader.collate_fn,
                                           args.per_device_eval_batch_size, task=self.task, units=units)
        tokenizer = kwargs.get("processing_class")
        self.record_eval(args, state, model, _split_of(metrics), dataset, units, ids, gold, logits,
                         gathered=False, tokenizer=tokenizer if hasattr(tokenizer, "batch_decode") else None)


def _split_of(metrics: dict | None) -> str:
    """The split an ``on_evaluate`` call is about, from its metric names (``eval_X_runtime`` -> X)."""
    from .examples import split_name

    key = next((k for k in (metrics or {}) if k.endswith("_runtime")), "eval_runtime")
    return split_name(key[: -len("_runtime")])


class TrainingPassCallback(_Recording):
    """Records the logits the trainer mixin forwards from each training step; flushes per epoch."""

    mode = "training_pass"

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.buffer: EpochBuffer | None = None
        self._pending: list = []  # (row ids, (B, 3) device statistics) not yet in the buffer
        self.resume_path: str | None = None
        self._observed = 0
        self._first_step: int | None = None
        self._expect_gaps = False

    def observe(self, row_ids, labels, logits, *, outputs=None, segments=None) -> None:
        """One micro-batch of the training pass (called by the mixin's ``compute_loss``).

        ``outputs``: instead of ``logits``, what a causal LM's step gives (the loss's per-token NLL,
        or the model's output): reduced to (B, 3) on the device and kept there, then moved to the
        host for :data:`PENDING_BATCHES` batches at a time (and before every flush and checkpoint),
        so a step adds no device-to-host copy and no host work. ``segments``: a packed or
        padding-free batch's (B, T) segment index; ``row_ids`` then holds each segment's row id.
        """
        if self.buffer is None:
            return
        if segments is not None:
            from .causal_lm import Segments

            segments = Segments(segments, len(row_ids))
        if outputs is not None:
            self._pending.append((row_ids, self.task.device_stats(labels, outputs, segments)))
            if len(self._pending) >= PENDING_BATCHES:
                self._drain()
        else:  # on the host: (B, C) logits, or a causal LM's statistics
            gold, values = self.task.reduce(labels, logits, segments)
            rows = np.asarray(row_ids.cpu())
            if segments is not None:
                rows, values = self._pieces(rows, values)
                gold = np.ones(len(rows), np.int64)
            self._add(rows, gold, values)
        self._observed += len(row_ids)

    def _add(self, row_ids, labels, logits) -> None:
        self.buffer.add(*self.task.to_units(np.asarray(row_ids), labels, logits, self.units))

    def _pieces(self, rows: np.ndarray, stats: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Segments' statistics as examples': one with no target token dropped; an example cut across packed rows
        (TRL ``"wrapped"``) gets its pieces added, with those already in this epoch's buffer."""
        if self.packed is None or not self.packed.splits:
            keep = stats[:, 2] > 0
            return rows[keep], stats[keep]
        earlier = rows[self.buffer.seen[rows]]
        before = self.buffer.logits[earlier, -3:] if len(earlier) else np.empty((0, 3))
        return merge_pieces(np.concatenate([earlier, rows]), np.concatenate([before, stats]))

    def _drain(self) -> None:
        """Move the batches kept on the device into the epoch buffer (one transfer)."""
        if self._pending:
            rows = torch.cat([r.reshape(-1).cpu() for r, _ in self._pending]).numpy()
            stats = torch.cat([s for _, s in self._pending]).cpu().numpy()
            self._pending.clear()
            rows, stats = self._pieces(rows, stats)
            self._add(rows, np.ones(len(rows), np.int64), stats)

    def start(self, args, state, model) -> None:
        self.buffer = EpochBuffer(self.n_examples)
        self._pending.clear()
        self._observed, self._first_step = 0, state.global_step
        self._expect_gaps = _gaps_expected(args)
        if args.dataloader_drop_last:
            warn_once("dataloader_drop_last=True: the rows each epoch's training pass drops are predicted in eval "
                      "mode at the epoch end and marked 'filled' in the epoch file (docs/format.md)")
        if self.resume_path and state.global_step:
            state_file = Path(self.resume_path) / STATE_FILE.format(rank=rank_world()[0])
            if state_file.is_file():
                with np.load(state_file) as f:
                    self.buffer.load_state_dict({k: f[k] for k in ("ids", "gold", "logits")})
            elif not at_epoch_boundary(state.epoch):
                self._expect_gaps = True
                warn_once(f"{self.resume_path} holds no recorder state: the rows the resumed epoch trained on "
                          "before the checkpoint are predicted in eval mode at the epoch end and marked 'filled'")

    def on_step_end(self, args, state, control, model=None, train_dataloader=None, **kwargs):
        if self._first_step is not None and state.global_step == self._first_step + 1 and not self._observed:
            raise DatacartoError(
                "the training pass forwarded no logits to the recorder: a compute_loss override does not call "
                "super().compute_loss (put CartographyMixin first and call super), or record with "
                "CartographyCallback / dynamics_mode='epoch_end'")
        if at_epoch_boundary(state.epoch):  # flush before any checkpoint of this step is saved
            self._flush(args, state, model, train_dataloader, int(round(state.epoch)) - 1)
            self._expect_gaps = _gaps_expected(args)  # a resume without recorder state affected one epoch only

    def _flush(self, args, state, model, train_dataloader, index: int) -> None:
        self._drain()
        if self.buffer.count < self.n_examples and not self._expect_gaps:
            why = ("a packed row that starts with an example's only target token?" if self.packed is not None
                   else "a sampler that skips rows?")
            warn_once(f"epoch {index}: the training pass saw {self.buffer.count} of {self.n_examples} rows ({why}): "
                      "the others are predicted in eval mode and marked 'filled'")

        def fill(missing_units):
            return predict_logits(model, self.examples, train_dataloader.collate_fn,
                                  args.per_device_eval_batch_size, rows=self.units.rows_of(missing_units),
                                  task=self.task, units=self.units)

        self.recorder.write(index, *self.buffer.take(), epoch=state.epoch, global_step=state.global_step,
                            n_expected=self.n_examples, fill=fill)
        self.buffer.reset()

    def on_save(self, args, state, control, **kwargs):
        if self.buffer is None:
            return
        self._drain()
        folder = Path(args.output_dir) / f"checkpoint-{state.global_step}"
        folder.mkdir(parents=True, exist_ok=True)
        np.savez(folder / STATE_FILE.format(rank=rank_world()[0]), global_step=state.global_step,
                 **self.buffer.state_dict())


def _gaps_expected(args) -> bool:
    """Rows a training pass may miss without anything being wrong: drop_last, or another rank's share."""
    return bool(args.dataloader_drop_last) or rank_world()[1] > 1


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
        with preserved_rng():  # a pass a plain Trainer would not run: it must not shift later dropout masks
            self.trainer.predict(self.dataset, metric_key_prefix=self.split)
