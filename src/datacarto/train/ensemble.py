"""N-model ensembles: a weighted mean of the members' logits (or probabilities), weights tuned on validation.

``Ensemble`` (it trains nothing) has the ``evaluate()`` / ``predict()`` interface of a ``transformers.Trainer``.
Each member predicts over a data set once: its logits are cached by the data set's content
fingerprint, so tuning on validation and then evaluating costs one forward pass per member and data
set. Members may have different tokenizers: each tokenizes the raw text columns itself.

Weights are given or tuned with ``tune(validation)``, the only method that chooses weights and the
only one that sees gold labels for that purpose; ``tuning["fingerprint"]`` records which data set it
was (``tuned_on``: every data set ever used), so a test can assert the test set never was.
The numeric core (``combine_logits``, ``tune_weights``) is NumPy only.
"""

from __future__ import annotations

import os
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..data import column_values
from ..ensemble_weights import COMBINES, check_weights, combine_logits, log_loss_of, tune_weights
from ..errors import DatacartoError

_NO_LABEL = "__datacarto_no_label"


# ----------------------------------------------------------------------------------------------
# the trainer


@dataclass
class _Prepared:
    """A data set ready for the members: raw rows with integer labels, gold (or None), fingerprint."""

    dataset: Any
    gold: np.ndarray | None
    fingerprint: str
    text_columns: list[str]
    label_column: str | None


@dataclass
class _Member:
    name: str
    key: str
    model: Any
    tokenizer: Any
    trainer: Any = None


def _default_args():
    import torch
    from transformers import TrainingArguments

    return TrainingArguments(output_dir=str(Path(tempfile.gettempdir()) / "datacarto-ensemble"),
                             per_device_eval_batch_size=64, report_to="none", disable_tqdm=True,
                             use_cpu=not torch.cuda.is_available())


def _label_names_of(model) -> list[str] | None:
    id2label = getattr(getattr(model, "config", None), "id2label", None) or {}
    names = [id2label[i] for i in sorted(id2label)]
    if not names or all(n == f"LABEL_{i}" for i, n in enumerate(names)):
        return None
    return names


class Ensemble:
    """Combine N sequence classifiers by a weighted mean of logits (``combine="logits"``) or probabilities.

    ``models``: model folders (each with its tokenizer), ``TrainResult`` objects, or loaded models
    with ``processing_class`` (one tokenizer or one per model). ``weights``: given (normalised to
    sum 1), or None for the plain mean until :meth:`tune` chooses them on a validation set.
    ``args``: ``TrainingArguments`` (or a dict of fields) for the members' inference (batch size,
    device). ``cache``: a dict to share member logits between ensembles of the same models.
    Data sets are ``datasets.Dataset`` objects or files, with the raw ``text_columns`` and,
    for scores, the ``label_column`` (rows without a gold label, < 0, are dropped).
    """

    def __init__(self, models, weights=None, *, combine: str = "logits", args=None, processing_class=None,
                 text_columns: list[str] | None = None, label_column: str = "label",
                 label_names: list[str] | None = None, max_length: int = 128, eval_dataset=None,
                 names: list[str] | None = None, cache: dict | None = None):
        if combine not in COMBINES:
            raise DatacartoError(f"combine must be one of {COMBINES}, got {combine!r}")
        models = list(models) if isinstance(models, (list, tuple)) else [models]
        if not models:
            raise DatacartoError("an ensemble needs at least one model")
        self.combine = combine
        self.args = self._make_args(args)
        self.text_columns = list(text_columns) if text_columns else None
        if self.text_columns and label_column in self.text_columns:
            raise DatacartoError(f"the label column {label_column!r} is also given as a text column: "
                                 "the models would read the answer")
        self.label_column = label_column
        self.max_length = max_length
        self.eval_dataset = eval_dataset
        self.cache = cache if cache is not None else {}
        self.members = self._load_members(models, processing_class, names)
        self.num_labels = self._check_labels()
        self.label_names = list(label_names) if label_names else _label_names_of(self.members[0].model)
        self.weights = None if weights is None else check_weights(weights, len(self.members))
        self.weights_source = "given" if weights is not None else "uniform"
        self.tuning: dict[str, Any] | None = None
        self.tuned_on: list[str] = []  # fingerprints of every data set handed to tune()
        self.forward_passes = [0] * len(self.members)  # data sets each member predicted over

    # -- construction
    @staticmethod
    def _make_args(args):
        from transformers import TrainingArguments

        if args is None:
            return _default_args()
        if isinstance(args, TrainingArguments):
            return args
        if isinstance(args, dict):
            fields = {"output_dir": str(Path(tempfile.gettempdir()) / "datacarto-ensemble"), "report_to": "none",
                      "disable_tqdm": True, **args}
            return TrainingArguments(**fields)
        raise DatacartoError(f"args must be TrainingArguments, a dict or None, got {type(args).__name__}")

    def _load_members(self, models, processing_class, names) -> list[_Member]:
        from transformers import AutoConfig

        from ..models import load_model

        if isinstance(processing_class, (list, tuple)):
            if len(processing_class) != len(models):
                raise DatacartoError(f"{len(processing_class)} tokenizers for {len(models)} models")
            tokenizers = list(processing_class)
        else:
            tokenizers = [processing_class] * len(models)
        if names is not None and len(names) != len(models):
            raise DatacartoError(f"{len(names)} names for {len(models)} models")
        members = []
        for i, (m, tok) in enumerate(zip(models, tokenizers)):
            if hasattr(m, "model_dir") and not hasattr(m, "forward"):
                m = m.model_dir
            if isinstance(m, (str, os.PathLike)):
                folder = str(m)
                try:
                    config = AutoConfig.from_pretrained(folder)
                except OSError as e:
                    raise DatacartoError(f"cannot load model {folder!r}: {e}") from e
                tokenizer, model = load_model(folder, config.num_labels)
                key = str(Path(folder).resolve()) if Path(folder).exists() else folder
                name = Path(folder).name if Path(folder).name != "model" else Path(folder).parent.name
                if tok is not None:
                    tokenizer = tok
            else:
                if tok is None:
                    raise DatacartoError(f"model {i} is loaded in memory: pass its tokenizer as processing_class")
                model, tokenizer, key, name = m, tok, f"object:{id(m)}", f"model{i}"
            members.append(_Member(name=names[i] if names else name, key=key, model=model, tokenizer=tokenizer))
        seen: dict[str, int] = {}
        for member in members:  # unique names for tables
            seen[member.name] = seen.get(member.name, 0) + 1
            if seen[member.name] > 1:
                member.name = f"{member.name}#{seen[member.name]}"
        return members

    def _check_labels(self) -> int:
        counts = {getattr(m.model.config, "num_labels", None) for m in self.members}
        if len(counts) != 1:
            raise DatacartoError(f"the models have different numbers of labels: {sorted(map(str, counts))}")
        named = [n for n in (_label_names_of(m.model) for m in self.members) if n is not None]
        if any(n != named[0] for n in named[1:]):
            raise DatacartoError(f"the models name their labels differently: {named}; ensembling would mix classes")
        return int(counts.pop())

    # -- data
    def _prepare(self, dataset, *, split: str = "validation", need_labels: bool = False) -> _Prepared:
        from ..data import infer_text_columns, load_table, prepare_labels
        from ..dynamics.store import dataset_fingerprint, example_fingerprints

        if dataset is None:
            raise DatacartoError("no data set given")
        ds = load_table(dataset, split)
        if not hasattr(ds, "column_names"):
            raise DatacartoError(f"expected a datasets.Dataset or a data file, got {type(ds).__name__}")
        gold = None
        label_column = self.label_column if self.label_column in ds.column_names else None
        if label_column is not None:
            ds, spec = prepare_labels(ds, text_columns=self.text_columns, label_column=label_column,
                                      label_names=self.label_names, num_labels=self.num_labels)
            text_columns = spec.text_columns
            gold = np.asarray(column_values(ds, label_column), dtype=np.int64)
        elif need_labels:
            raise DatacartoError(f"label column {self.label_column!r} not in the data set (columns: {ds.column_names})")
        else:
            if len(ds) == 0:
                raise DatacartoError("the data set is empty")
            text_columns = self.text_columns or infer_text_columns(ds, self.label_column)
            missing = [c for c in text_columns if c not in ds.column_names]
            if missing:
                raise DatacartoError(f"text column(s) {missing} not in the data set (columns: {ds.column_names})")
        frame = ds.select_columns(text_columns).to_pandas()
        if gold is not None:
            frame = frame.assign(__label=gold)
        fingerprint = dataset_fingerprint(example_fingerprints(frame))
        return _Prepared(ds, gold, fingerprint, text_columns, label_column)

    def fingerprint(self, dataset, split: str = "validation") -> str:
        """The content fingerprint (text columns and labels) under which a data set's logits are cached."""
        return self._prepare(dataset, split=split).fingerprint

    def prepared(self, dataset, split: str = "test"):
        """``(datasets.Dataset, gold)``: the rows the members predict, labels as integers (gold None if unlabelled)."""
        prep = self._prepare(dataset, split=split)
        return prep.dataset, prep.gold

    def labels(self, dataset, split: str = "test") -> np.ndarray:
        """Gold labels of ``dataset`` in the rows the ensemble predicts (no forward pass)."""
        return self._prepare(dataset, split=split, need_labels=True).gold

    # -- member predictions
    def _member_trainer(self, member: _Member):
        if member.trainer is None:
            from transformers import DataCollatorWithPadding, Trainer

            member.trainer = Trainer(model=member.model, args=self.args, processing_class=member.tokenizer,
                                     data_collator=DataCollatorWithPadding(member.tokenizer))
        return member.trainer

    def _run_member(self, i: int, prep: _Prepared) -> np.ndarray:
        from ..data import LabelSpec, tokenize

        member = self.members[i]
        ds = prep.dataset
        label_column = prep.label_column
        if label_column is None:
            label_column = _NO_LABEL
            ds = ds.add_column(_NO_LABEL, [0] * len(ds))
        spec = LabelSpec(text_columns=prep.text_columns, label_column=label_column,
                         label_names=[str(k) for k in range(self.num_labels)])
        tok = tokenize(ds, member.tokenizer, spec, max_length=self.max_length)
        keep = [c for c in ("input_ids", "attention_mask", "token_type_ids", "labels") if c in tok.column_names]
        tok = tok.select_columns(keep)
        out = self._member_trainer(member).predict(tok)
        logits = out.predictions[0] if isinstance(out.predictions, tuple) else out.predictions
        self.forward_passes[i] += 1
        logits = np.asarray(logits, dtype=np.float32)
        if logits.shape != (len(ds), self.num_labels):
            raise DatacartoError(f"model {member.name} returned logits of shape {logits.shape} for {len(ds)} rows")
        return logits

    def _logits(self, prep: _Prepared, indices) -> list[np.ndarray]:
        out = []
        for i in indices:
            key = (self.members[i].key, prep.fingerprint, self.max_length)
            if key not in self.cache:
                self.cache[key] = self._run_member(i, prep)
            out.append(self.cache[key])
        return out

    def member_logits(self, dataset, split: str = "test") -> np.ndarray:
        """(M, n, C) logits of every member over ``dataset`` (cached)."""
        prep = self._prepare(dataset, split=split)
        return np.stack(self._logits(prep, range(len(self.members))))

    def member_predictions(self, dataset, split: str = "test") -> dict[str, np.ndarray]:
        """Each member's logits by name (for :func:`datacarto.evaluation.evaluate_by_region`)."""
        return {m.name: L for m, L in zip(self.members, self.member_logits(dataset, split=split))}

    # -- weights
    @property
    def current_weights(self) -> np.ndarray:
        """The weights in use: given, tuned, or uniform."""
        if self.weights is not None:
            return self.weights
        return np.full(len(self.members), 1.0 / len(self.members))

    def tune(self, validation_dataset, *, step: float = 0.05, objective: str = "accuracy",
             method: str = "auto") -> np.ndarray:
        """Choose the weights on ``validation_dataset`` (and only it) with :func:`tune_weights`; return them.

        Records ``tuning`` (fingerprint, size, method, scores) and appends the data set's fingerprint
        to ``tuned_on``. Never call it with the test set: report test numbers with weights tuned here.
        """
        prep = self._prepare(validation_dataset, split="validation", need_labels=True)
        L = np.stack(self._logits(prep, range(len(self.members))))
        weights, info = tune_weights(L, prep.gold, combine=self.combine, step=step, objective=objective,
                                     method=method)
        self.weights = weights
        self.weights_source = "tuned"
        self.tuned_on.append(prep.fingerprint)
        self.tuning = {"fingerprint": prep.fingerprint, "weights": weights.tolist(), **info}
        return weights

    # -- the Trainer interface
    def _scores(self, dataset, split: str) -> tuple[np.ndarray, _Prepared]:
        prep = self._prepare(dataset, split=split)
        w = self.current_weights
        used = np.flatnonzero(w > 0)
        logits = self._logits(prep, used)  # members with weight 0 never run
        if prep.fingerprint in self.tuned_on:
            warnings.warn("evaluating on the data set the weights were tuned on: the score is optimistic",
                          stacklevel=3)
        return combine_logits(np.stack(logits), w[used], self.combine), prep

    def _metrics(self, scores: np.ndarray, gold: np.ndarray | None, prefix: str) -> dict[str, float]:
        metrics: dict[str, float] = {f"{prefix}_samples": float(len(scores))}
        if gold is not None and len(gold):
            from sklearn.metrics import f1_score

            pred = scores.argmax(axis=1)
            metrics[f"{prefix}_accuracy"] = float((pred == gold).mean())
            metrics[f"{prefix}_macro_f1"] = float(f1_score(gold, pred, average="macro", zero_division=0))
            metrics[f"{prefix}_loss"] = log_loss_of(scores, gold)
        return metrics

    def evaluate(self, eval_dataset=None, metric_key_prefix: str = "eval") -> dict[str, float]:
        """Metrics of the ensemble on ``eval_dataset``: ``<prefix>_accuracy``, ``_macro_f1``, ``_loss``, ``_samples``."""
        dataset = eval_dataset if eval_dataset is not None else self.eval_dataset
        if dataset is None:
            raise DatacartoError("evaluate needs an eval_dataset")
        scores, prep = self._scores(dataset, "validation")
        if prep.gold is None:
            raise DatacartoError(f"cannot evaluate: label column {self.label_column!r} not in the data set")
        return self._metrics(scores, prep.gold, metric_key_prefix)

    def predict(self, test_dataset, metric_key_prefix: str = "test"):
        """``PredictionOutput``: combined logits (``predictions``), gold ``label_ids`` (or None), metrics."""
        from transformers.trainer_utils import PredictionOutput

        scores, prep = self._scores(test_dataset, "test")
        return PredictionOutput(predictions=scores, label_ids=prep.gold,
                                metrics=self._metrics(scores, prep.gold, metric_key_prefix))

    def __repr__(self) -> str:
        w = [round(float(x), 4) for x in self.current_weights]
        return f"Ensemble({[m.name for m in self.members]}, weights={w} ({self.weights_source}), " \
               f"combine={self.combine!r})"
