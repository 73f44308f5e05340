"""Task types: what a *unit* (the thing that carries one gold label) is, and how a batch becomes units.

* sequence classification, multiple choice: a unit is an example (logits: classes, or choices);
* multi-label classification: an (example, label) pair, a binary decision stored as the two-class
  logits ``[0, z]`` (softmax of them is the sigmoid of ``z``);
* token classification: an (example, word) pair, the first sub-token of each word (positions
  labelled -100 are skipped); its sub id is the word's index in the sentence (the data set's
  ``unit_words`` column, from the tokenizer's ``word_ids()``), so a word with no token shifts no other;
* causal language modelling (SFT): an example, its response tokens (labels != -100) reduced on
  the device to mean NLL, token accuracy and token count, stored as the two-class logits
  ``[0, z]`` with ``sigmoid(z) = exp(-mean NLL)`` and gold 1 (:mod:`datacarto.record.causal_lm`).

Every metric is then computed per unit by the code that exists; per-example scores aggregate the
units (:mod:`datacarto.units`). The store keys units by ``(row_id, sub_id)`` (docs/format.md).

Which class records a task is its registry entry's ``recorder`` (:mod:`datacarto.tasks`): a task
is looked up by name (:func:`get_task`) and checked against the model's head (:func:`task_of`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..dynamics.generative import STATS
from ..errors import DatacartoError
from ..task_data import IGNORE, UNIT_WORDS
from ..tasks import TASK_TYPES, TaskType, head_task, task_type

_UNSUPPORTED_HEADS = {
    "ForMaskedLM": "masked language modelling",
    "ForQuestionAnswering": "question answering", "ForConditionalGeneration": "sequence-to-sequence",
    "ForSeq2SeqLM": "sequence-to-sequence",
}


@dataclass
class Units:
    """The units of one data set: unit u belongs to row ``row[u]``, is its ``sub[u]``-th, gold ``gold[u]``."""

    row: np.ndarray
    sub: np.ndarray
    gold: np.ndarray
    offsets: np.ndarray  # units of row r: offsets[r]:offsets[r + 1]
    scale: float = 1.0  # regression: the standard deviation s of the split's gold scores (closeness's width)
    scores: np.ndarray | None = None  # regression: each unit's gold score in the data set

    @property
    def n(self) -> int:
        return int(self.row.shape[0])

    def rows_of(self, units: np.ndarray) -> np.ndarray:
        return np.unique(self.row[units])


class Task:
    """Sequence classification (and the base): one unit per example, one class id per example."""

    #: how the labels of a batch are checked (:func:`datacarto.record.examples.task_labels`)
    label_form = "classes"

    def __init__(self, entry: TaskType):
        self.entry = entry

    @property
    def name(self) -> str:
        return self.entry.name

    @property
    def unit(self) -> str:
        return self.entry.unit

    @property
    def per_row(self) -> bool:
        """Several units per row, stored with a sub_id."""
        return self.entry.per_row

    def num_classes(self, model, dataset) -> int | None:
        """Classes of the task's decision: the model's labels."""
        return getattr(getattr(model, "config", None), "num_labels", None)

    def units(self, labels, words=None) -> Units:
        """The units of a data set's labels (``words``: token classification's units' word indices)."""
        gold = np.asarray(labels, dtype=np.int64)
        n = len(gold)
        return Units(row=np.arange(n), sub=np.zeros(n, np.int64), gold=gold, offsets=np.arange(n + 1))

    def example_labels(self, labels):
        """Each example's gold label as stored in examples.parquet (an id, or a list)."""
        return labels

    def labels_of_units(self, units: Units):
        """:meth:`example_labels` rebuilt from the units (an evaluation split's recorded gold)."""
        if not self.per_row:
            return units.gold
        return [units.gold[units.offsets[r]:units.offsets[r + 1]].tolist() for r in range(len(units.offsets) - 1)]

    def keyed(self, units: Units) -> Units | None:
        """The units the store keys by ``(row_id, sub_id)``: only a task with several per row has them."""
        return units if self.per_row else None

    #: epoch-file columns a unit carries besides its logits (their values follow the logits' C columns)
    extra_columns: tuple[str, ...] = ()
    #: label names stored for the task (None: the model's or the data's)
    label_names: list[str] | None = None

    def to_units(self, rows: np.ndarray, labels: np.ndarray, logits: np.ndarray, units: Units):
        """(unit ids, gold, logits (k, C)) of a batch of ``rows``."""
        return np.asarray(rows, np.int64), np.asarray(labels, np.int64), np.asarray(logits, np.float32)

    def reduce(self, labels, logits, segments=None):
        """A batch's labels and logits (tensors) as NumPy arrays for :meth:`to_units`, on the host."""
        if segments is not None:
            raise DatacartoError(f"a packed or padding-free batch (several examples in one row) is recorded for "
                                 f"causal LMs only, not for {self.name}: use a collator that pads")
        labels = None if labels is None else labels.detach().cpu().numpy()
        return labels, logits.detach().float().cpu().numpy()


class MultipleChoice(Task):
    """One unit per example; its classes are the choices."""

    def num_classes(self, model, dataset) -> int | None:
        """The number of choices of an example."""
        first = dataset[0].get("input_ids") if len(dataset) else None
        return len(first) if isinstance(first, (list, tuple)) or hasattr(first, "shape") else None


class MultiLabel(Task):
    """One unit per (example, label): a yes/no decision."""

    label_form = "multi_hot"

    def units(self, labels, words=None) -> Units:
        hot = np.asarray(labels, dtype=np.float64)
        n, width = hot.shape
        return Units(row=np.repeat(np.arange(n), width), sub=np.tile(np.arange(width), n),
                     gold=np.rint(hot).astype(np.int64).reshape(-1), offsets=np.arange(n + 1) * width)

    def example_labels(self, labels):
        return [np.flatnonzero(row).tolist() for row in np.asarray(labels)]  # the label ids of each example

    def labels_of_units(self, units):
        return self.example_labels(super().labels_of_units(units))

    def to_units(self, rows, labels, logits, units):
        rows = np.asarray(rows, np.int64)
        z = np.asarray(logits, np.float32)
        width = z.shape[1]
        ids = (units.offsets[rows][:, None] + np.arange(width)).reshape(-1)
        pairs = np.stack([np.zeros_like(z), z], axis=-1).reshape(-1, 2)
        return ids, np.rint(np.asarray(labels, np.float64)).astype(np.int64).reshape(-1), pairs


class TokenClassification(Task):
    """One unit per (example, word): the first sub-token of the word."""

    label_form = "tags"

    def units(self, labels, words=None) -> Units:
        """One unit per tagged token; its sub id is its word's index (``words``), else its place among them."""
        rows = [np.asarray(r, dtype=np.int64) for r in labels]
        kept = [r[r != IGNORE] for r in rows]
        counts = np.array([len(k) for k in kept], dtype=np.int64)
        offsets = np.concatenate([[0], np.cumsum(counts)])
        row = np.repeat(np.arange(len(rows)), counts)
        sub = np.arange(offsets[-1]) - offsets[row]
        if words is not None:
            sub = _word_subs(words, counts, sub.dtype)
        gold = np.concatenate(kept) if kept else np.empty(0, np.int64)
        return Units(row=row, sub=sub, gold=gold, offsets=offsets)

    def example_labels(self, labels):
        """One tag per (kept) word: the -100 of special tokens and later sub-tokens dropped."""
        return [np.asarray(tags)[np.asarray(tags) != IGNORE].tolist() for tags in labels]

    def to_units(self, rows, labels, logits, units):
        rows = np.asarray(rows, np.int64)
        labels = np.asarray(labels, np.int64)
        logits = np.asarray(logits, np.float32)
        mask = labels != IGNORE
        k = np.cumsum(mask, axis=1) - 1
        ids = (units.offsets[rows][:, None] + k)[mask]
        return ids, labels[mask], logits[mask]


def _word_subs(words, counts: np.ndarray, dtype) -> np.ndarray:
    """The units' word indices, one per tagged token of each row, increasing within a row."""
    if len(words) != len(counts):
        raise DatacartoError(f"the {UNIT_WORDS!r} column has {len(words)} rows, the labels {len(counts)}")
    for r, (w, k) in enumerate(zip(words, counts)):
        if len(w) != k or np.any(np.diff(w) <= 0) or (k and w[0] < 0):
            raise DatacartoError(f"row {r}: the {UNIT_WORDS!r} column lists {len(w)} increasing word indices for "
                                 f"{k} tagged tokens; tokenize with datacarto.tasks.tokenize_task again")
    return np.concatenate([np.asarray(w, dtype=dtype) for w in words]) if len(words) else np.empty(0, dtype)


class CausalLM(Task):
    """Causal language modelling: one unit per example, its response tokens reduced on the device."""

    label_form = "tokens"
    extra_columns = STATS  # the epoch-file columns nll, token_accuracy, n_tokens (docs/format.md)
    label_names = ["other", "response"]

    def num_classes(self, model, dataset) -> None:
        return None

    def units(self, labels, words=None) -> Units:
        return super().units(np.ones(len(labels), dtype=np.int64))

    def example_labels(self, labels):
        return np.ones(len(labels), dtype=np.int64)

    def reduce(self, labels, logits, segments=None):
        """(gold, (k, 3) statistics) of a batch: per row, or per segment of a packed or padding-free batch."""
        from .causal_lm import token_stats

        stats = token_stats(labels, logits.detach(), segments=segments).cpu().numpy()
        return np.ones(len(stats), np.int64), stats

    def device_stats(self, labels, outputs, segments=None):
        """(B, 3) statistics tensor, on the device, of a step's loss or outputs (see :meth:`reduce`).

        ``outputs``: a :class:`~datacarto.record.causal_lm.TokenLoss` (the training loss's own
        per-token NLL), or the model's output (a fused LM head's per-token log-probs, else the logits).
        ``segments`` (:class:`~datacarto.record.causal_lm.Segments`): (S, 3), one row per segment.
        """
        from .causal_lm import TokenLoss, fused_stats, token_stats

        if isinstance(outputs, TokenLoss):
            return outputs.stats(segments)
        stats = fused_stats(outputs, segments)
        if stats is None:
            logits = (outputs["logits"] if isinstance(outputs, dict) else outputs[0]).detach()
            stats = token_stats(labels, logits, segments=segments)
        return stats

    def to_units(self, rows, labels, logits, units):
        from .causal_lm import pseudo_logits

        rows = np.asarray(rows, np.int64)
        return rows, np.ones(len(rows), np.int64), pseudo_logits(logits)


class Regression(Task):
    """One unit per example with a float gold score; stored as the pseudo-logits ``[0, z]`` with
    ``sigmoid(z) = exp(-(prediction - score)^2 / (2 s^2))`` (its closeness), gold 1, and the prediction
    and gold score in the epoch files' ``prediction`` and ``score`` columns (docs/tasks.md)."""

    label_form = "scores"
    extra_columns = ("prediction", "score")
    label_names = ["far", "near"]

    def num_classes(self, model, dataset) -> None:
        return None

    def units(self, labels, words=None) -> Units:
        scores = np.asarray(labels, dtype=np.float64)
        spread = float(np.std(scores)) if scores.size else 0.0
        units = super().units(np.ones(len(scores), dtype=np.int64))
        units.scale = spread if np.isfinite(spread) and spread > 0 else 1.0
        units.scores = scores
        return units

    def example_labels(self, labels):
        return np.ones(len(labels), dtype=np.int64)

    def to_units(self, rows, labels, logits, units):
        rows = np.asarray(rows, np.int64)
        pred = np.asarray(logits, np.float64).reshape(len(rows), -1)[:, 0]
        score = np.asarray(labels, np.float64).reshape(-1)
        if units.scores is not None and not np.allclose(score, units.scores[rows], rtol=1e-5, atol=1e-6):
            bad = int(np.flatnonzero(~np.isclose(score, units.scores[rows], rtol=1e-5, atol=1e-6))[0])
            raise DatacartoError(f"row {int(rows[bad])}: the batch's gold score {score[bad]:g} is not the data set's "
                                 f"{units.scores[rows[bad]]:g}: the collator takes the labels from another column "
                                 "(keep one label column)")
        # log q - log(1 - q) with log q = -err^2 / (2 s^2): z = log q - log(-expm1(log q)), stable at both ends
        log_q = np.minimum(-((pred - score) ** 2) / (2.0 * units.scale ** 2), -1e-12)
        z = log_q - np.log(-np.expm1(log_q))
        values = np.stack([np.zeros_like(z), z, pred, score], axis=1).astype(np.float32)
        return rows, np.ones(len(rows), np.int64), values


_CLASSES = {c.__name__: c for c in (Task, MultipleChoice, MultiLabel, TokenClassification, CausalLM, Regression)}


def get_task(name: str | None = None) -> Task:
    """The recorder's unit class of the registered task ``name`` (None: the default task)."""
    entry = task_type(name)
    if entry.recorder not in _CLASSES:
        raise DatacartoError(f"task {entry.name!r}: no recorder class {entry.recorder!r}; classes: "
                             f"{', '.join(_CLASSES)}")
    return _CLASSES[entry.recorder](entry)


def _supported() -> str:
    return ", ".join(name.replace("-", " ") for name in TASK_TYPES)


def task_of(model, task: str | None = None) -> Task:
    """The task of a model: ``task`` (a registered name) checked against the model's head, else the
    task its head and config say; one line for what is not supported."""
    name = type(model).__name__
    config = getattr(model, "config", None)
    found = head_task(name, config)
    if found is not None and found.generative and getattr(config, "is_encoder_decoder", False):
        found = None
    if found is None:
        for suffix, what in _UNSUPPORTED_HEADS.items():
            if name.endswith(suffix):
                raise DatacartoError(f"{name} is a {what} model: datacarto records {_supported()} so far")
        found = task_type(None)  # a model of no known head: recorded as the default task
    if task is None:
        return get_task(found.name)
    entry = task_type(task)
    if (entry.heads, entry.problem_type) != (found.heads, found.problem_type):
        raise DatacartoError(f"the task is {entry.name}, but the model {name} has a {found.name} head "
                             f"({found.heads[0]}{f', problem_type {found.problem_type}' if found.problem_type else ''})")
    return get_task(entry.name)
