"""The task registry: every task type datacarto records, declared once (torch-free), and the TaskSpec.

A :class:`TaskType` says what a unit is (the thing that carries one gold label), whether an example
has one gold label, the model head it needs, its own options, its evaluation scores, how the report
words it, and the functions that prepare, tokenize and collate its data (:mod:`datacarto.task_data`).
Every other module reads these properties; none names a task (``tests/test_architecture.py``
checks it). A new task type is one :func:`register_task` call.

A :class:`TaskSpec` is one request: the task and its columns, built once (the CLI, run.yaml or
Python), resolved against the training data once (:func:`prepare_for_task`), written whole into the
manifest when recording starts (``task_spec``) and read back by everything after
(:meth:`TaskSpec.from_manifest`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from . import task_data as td
from .data import LabelSpec, tokenize
from .errors import DatacartoError
from .evaluation import EVALUATION_SCORES


@dataclass(frozen=True, eq=False)
class TaskType:
    """One task type: its name, its units, its model head, its options, its scores, its wording and data functions."""

    name: str
    prepare: Callable  # (ds, spec, *, num_labels, what, head, warn_absent) -> (ds, the resolved spec)
    tokenize: Callable  # (ds, tokenizer, spec, *, max_length) -> the tokenized ds
    collator: Callable | None = None  # tokenizer -> a transformers collator (None: the Trainer's padding one)
    recorder: str = "Task"  # the class of datacarto.record.tasks that turns a batch into units
    unit: str = "example"  # what carries one gold label: "example", "label" (a yes/no decision), "word"
    per_row: bool = False  # several units per example, stored with a sub_id
    single_label: bool = True  # an example has one gold class: label counts, label mixes, label-matched controls
    repeats: bool = False  # cross-fitting (folds) and seed repeats stratify by that label
    generative: bool = False  # the targets are the response tokens: no label column, per-example NLL statistics
    heads: tuple[str, ...] = ("ForSequenceClassification",)  # model class suffixes; the first names the AutoModel
    problem_type: str | None = None  # the config's problem_type that tells this task from another of the same head
    head_classes: bool = True  # the head has one output per class (its config's id2label names them)
    outputs: int | None = None  # a head with this many outputs and no problem_type is this task's (regression: 1)
    numeric: bool = False  # the gold is a number (a score), stored as pseudo-logits: no classes, no ensembles
    options: Mapping[str, Any] = field(default_factory=dict)  # the task's own options -> their default
    label_option: str | None = None  # the option that names the label column (token classification's tags)
    gold_from_data: bool = False  # a subset trains on the data's label column: the records' gold lacks units
    scores: tuple[str, ...] = ("accuracy", "macro_f1")  # evaluation scores (datacarto.evaluation), headline first
    label_word: str | None = "Labels"  # the report's "Labels: a, b." (None: no labels line)
    gold_header: str = "gold label"  # the report's column of an example's gold
    gold_column: str | None = None  # the metrics column the report shows there (None: the example's label)
    audits: tuple[str, ...] = ("labels",)  # the audits (metrics.Score.audits) whose scores its audit ranks by default
    about: str = ""  # the report's paragraph on what a unit is and how an example's scores come from its units
    score_help: str = ""  # the report's sentence on what the scores mean (when the headline is not accuracy)


DEFAULT_TASK = "sequence-classification"

#: name -> TaskType, in the order the head of a model is matched (:func:`head_task`)
TASK_TYPES: dict[str, TaskType] = {t.name: t for t in (
    TaskType(DEFAULT_TASK, prepare=td.prepare_classes, tokenize=tokenize, repeats=True),
    TaskType("multiple-choice", prepare=td.prepare_multiple_choice, tokenize=td.tokenize_multiple_choice,
             collator=td.multiple_choice_collator, recorder="MultipleChoice", heads=("ForMultipleChoice",),
             head_classes=False, options={"choice_columns": None}, label_word="Choices"),
    TaskType("multi-label", prepare=td.prepare_multi_label, tokenize=td.tokenize_multi_label, recorder="MultiLabel",
             unit="label", per_row=True, single_label=False, problem_type="multi_label_classification",
             scores=("micro_f1", "micro_ap", "accuracy", "macro_f1"), gold_header="gold labels",
             about="Each example is scored per label: every (example, label) pair is a yes/no decision with its "
                   "own dynamics; an example's confidence and variability are the means over its labels, and "
                   "its region is assigned from them.",
             score_help="Scores per (example, label) decision: micro-F1 of the labels that apply; micro AP, the "
                        "average precision of all the decisions ranked by the model's logit (threshold-free: it "
                        "tells models apart even when none predicts a label above 1/2); accuracy of the yes/no "
                        "decisions."),
    TaskType("token-classification", prepare=td.prepare_token_classification,
             tokenize=td.tokenize_token_classification, collator=td.token_classification_collator,
             recorder="TokenClassification", unit="word", per_row=True, single_label=False,
             heads=("ForTokenClassification",), options={"tokens_column": "tokens", "tags_column": "ner_tags"},
             label_option="tags_column", gold_from_data=True, scores=("accuracy", "tag_f1", "macro_f1"),
             label_word="Tags", gold_header="hardest word: gold tag",
             about="Each word (its first sub-token) carries a gold tag with its own dynamics; an example's "
                   "confidence and variability are the means over its words.",
             score_help="Scores per word: accuracy of the words' tags; tag F1 is the micro-F1 of the tags other "
                        "than O (word level, not entity spans)."),
    TaskType("causal-lm", prepare=td.prepare_causal_lm, tokenize=td.tokenize_causal_lm,
             collator=td.causal_lm_collator, recorder="CausalLM", single_label=False, generative=True,
             heads=("ForCausalLM", "LMHeadModel"), head_classes=False,
             options={"prompt_column": None, "response_column": None, "chat_template": False},
             scores=("loss", "token_accuracy"), label_word=None, gold_header="mean NLL", gold_column="nll",
             about="Each example's confidence is exp(-mean NLL) of its response tokens (the geometric-mean "
                   "token probability) at each epoch end; variability is its standard deviation over epochs "
                   "and correctness the mean token accuracy (docs/generative.md)."),
    TaskType("regression", prepare=td.prepare_regression, tokenize=tokenize, recorder="Regression",
             single_label=False, problem_type="regression", outputs=1, numeric=True,
             scores=("rmse", "spearman"), label_word=None, gold_header="gold score", gold_column="gold_score",
             audits=("labels", "scores"),
             about="Each example carries a gold score; at each epoch end its closeness is "
                   "exp(-(prediction - score)^2 / (2 s^2)), s the standard deviation of the split's gold scores. "
                   "Confidence is its mean over epochs, variability its standard deviation, correctness the share "
                   "of epochs within about 1.18 s of the gold score (closeness above 1/2; docs/tasks.md).",
             score_help="RMSE of the predicted scores (lower is better) and the Spearman rank correlation of "
                        "prediction and gold score."),
)}


def task_names() -> tuple[str, ...]:
    """The registered task names (``--task``), in registry order."""
    return tuple(TASK_TYPES)


def task_type(name: str | None = None) -> TaskType:
    """The registry entry of ``name`` (None: the default task); one line for a name not registered."""
    entry = TASK_TYPES.get(DEFAULT_TASK if name is None else name)
    if entry is None:
        raise DatacartoError(f"unknown task {name!r}; tasks: {', '.join(TASK_TYPES)}")
    return entry


def register_task(entry: TaskType) -> TaskType:
    """Add a task type to :data:`TASK_TYPES` (its name new, its scores those of :mod:`datacarto.evaluation`)."""
    if not isinstance(entry, TaskType):
        raise DatacartoError(f"register_task expects a TaskType, got {type(entry).__name__}")
    if entry.name in TASK_TYPES:
        raise DatacartoError(f"task {entry.name!r} exists already")
    unknown = [s for s in entry.scores if s not in EVALUATION_SCORES]
    if unknown or not entry.scores:
        raise DatacartoError(f"task {entry.name!r}: unknown score(s) {unknown}; scores: {', '.join(EVALUATION_SCORES)}")
    if entry.label_option is not None and entry.label_option not in entry.options:
        raise DatacartoError(f"task {entry.name!r}: its label option {entry.label_option!r} is not one of its options")
    fields = {f.name for f in dataclasses.fields(TaskSpec)}
    odd = [o for o in entry.options if o not in fields and o != entry.label_option]
    if odd:
        raise DatacartoError(f"task {entry.name!r}: option(s) {odd} are not fields of TaskSpec")
    TASK_TYPES[entry.name] = entry
    return entry


def head_task(class_name: str, config=None) -> TaskType | None:
    """The task a model's head is for (its class name; the config's ``problem_type`` among tasks of one head)."""
    candidates = [t for t in TASK_TYPES.values() if class_name.endswith(t.heads)]
    problem = getattr(config, "problem_type", None)
    if problem is None:  # a head whose output count says its task (one output: regression, as transformers does)
        problem = next((t.problem_type for t in candidates if t.outputs is not None
                        and t.outputs == getattr(config, "num_labels", None)), None)
    return next((t for t in candidates if t.problem_type == problem and problem is not None),
                next((t for t in candidates if t.problem_type is None), None))


# ----------------------------------------------------------------------------------------------
# options: which belongs to which task


def option_owners() -> dict[str, tuple[list[str], Any]]:
    """Option -> (the tasks it belongs to, its default: the value that says "not given")."""
    out: dict[str, tuple[list[str], Any]] = {}
    for t in TASK_TYPES.values():
        for name, default in t.options.items():
            out.setdefault(name, ([], default))[0].append(t.name)
    return out


def _given(value: Any, default: Any) -> bool:
    return value not in (None, [], (), "", False) and value != default


def check_task_options(task: str, **options: Any) -> None:
    """DatacartoError when an option of another task is given (an option set away from its default for
    another task would be ignored without a word: it is refused instead)."""
    owners = option_owners()
    for name, value in options.items():
        if name not in owners:
            raise DatacartoError(f"unknown task option {name!r}; options: {', '.join(owners)}")
        tasks, default = owners[name]
        if task not in tasks and _given(value, default):
            raise DatacartoError(f"{name} is an option of {' and '.join(tasks)}, not of {task}: drop it "
                                 f"(or choose task {tasks[0]})")


# ----------------------------------------------------------------------------------------------
# the spec


@dataclass
class TaskSpec(LabelSpec):
    """The task and its columns: a request (columns and classes None: found in the data) or, once
    :func:`prepare_for_task` resolved it on the training data, the run's (every field set)."""

    text_columns: list[str] | None = None
    label_column: str | None = None  # None: the task's default ("label"; token classification: its tags option)
    label_names: list[str] | None = None
    task: str = DEFAULT_TASK
    choice_columns: list[str] = field(default_factory=list)
    tokens_column: str | None = None
    prompt_column: str | None = None  # causal LM: the prompt (labels -100) and the response (the targets)
    response_column: str | None = None
    chat_template: bool = False  # causal LM: format prompt and response with the tokenizer's chat template

    def __post_init__(self):
        entry = task_type(self.task)  # an unknown task: one line, here
        if self.label_column is None:
            self.label_column = entry.options[entry.label_option] if entry.label_option else "label"
        for name, default in entry.options.items():
            if name != entry.label_option and getattr(self, name) is None and default is not None:
                setattr(self, name, default)

    @property
    def type(self) -> TaskType:
        """The task's registry entry."""
        return task_type(self.task)

    @classmethod
    def from_options(cls, task: str | None = None, *, text_columns=None, label_column: str = "label",
                     label_names=None, **options: Any) -> TaskSpec:
        """The spec of ``task`` from loose options (``choice_columns``, ``tokens_column``, ``tags_column``,
        ``prompt_column``, ...); an option of another task, given, is refused (:func:`check_task_options`)."""
        entry = task_type(task)
        check_task_options(entry.name, **options)
        own = {k: v for k, v in options.items() if k in entry.options and v is not None}
        if entry.label_option:
            label_column = own.pop(entry.label_option, None) or entry.options[entry.label_option]
        if "choice_columns" in own:
            own["choice_columns"] = list(own["choice_columns"])
        return cls(task=entry.name, text_columns=list(text_columns) if text_columns else None,
                   label_column=label_column, label_names=list(label_names) if label_names else None, **own)

    def to_dict(self) -> dict[str, Any]:
        """Every field, JSON-ready (the manifest's ``task_spec``)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TaskSpec:
        """The spec :meth:`to_dict` wrote (keys it does not know are left out)."""
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})

    @classmethod
    def from_manifest(cls, manifest: Mapping[str, Any]) -> TaskSpec:
        """A run's spec: the ``task_spec`` of its manifest (or of the pipeline's data stage summary).

        A run recorded before it keeps only ``task``, ``text_columns``, ``label_names``, (some of)
        the options in ``task_columns`` and (a pipeline's) ``label_column``: the spec is rebuilt from them.
        """
        if manifest.get("task_spec"):
            return cls.from_dict(manifest["task_spec"])
        entry = task_type(manifest.get("task"))
        columns = {k: v for k, v in (manifest.get("task_columns") or {}).items() if k in entry.options}
        text = list(manifest.get("text_columns") or []) or None
        if entry.generative and not columns.get("response_column") and text and len(text) == 2:
            columns.update(prompt_column=text[0], response_column=text[1])  # before task_columns held them
        label = columns.pop(entry.label_option, None) if entry.label_option else None
        return cls(task=entry.name, text_columns=text, label_column=label or manifest.get("label_column"),
                   label_names=manifest.get("label_names"), **{k: v for k, v in columns.items() if v is not None})


def manifest_task(task: str, spec: TaskSpec | None = None) -> dict[str, Any]:
    """What a store's manifest says of its task, in every writer's one format: ``task``, its ``unit`` and
    the TaskSpec whole (``task_spec``; None for a recording given no spec)."""
    entry = task_type(spec.task if spec is not None else task)
    return {"task": entry.name, "unit": entry.unit, "task_spec": spec.to_dict() if spec is not None else None}


# ----------------------------------------------------------------------------------------------
# what the registry's functions do for a spec


def infer_task(ds, *, task: str | None, label_column: str, choice_columns=None, tokens_column: str = "tokens",
               tags_column: str = "ner_tags", prompt_column: str | None = None) -> tuple[str, str]:
    """(task, why): the given one, else what the columns say (choices, words and tags, a list per label)."""
    if task:
        if task not in TASK_TYPES:
            raise DatacartoError(f"--task must be one of {', '.join(TASK_TYPES)}, got {task!r}")
        return task, "given"
    if choice_columns:
        return "multiple-choice", "--choice-columns given"
    if prompt_column:
        return "causal-lm", "--prompt-column given"
    if tokens_column in ds.column_names and tags_column in ds.column_names:
        return "token-classification", f"columns {tokens_column!r} and {tags_column!r}"
    if label_column in ds.column_names and ds.features[label_column].__class__.__name__ in ("List", "Sequence",
                                                                                             "LargeList"):
        return "multi-label", f"{label_column!r} holds a list per row"
    if label_column not in ds.column_names and {"prompt", "response"} <= set(ds.column_names):
        return "causal-lm", "columns 'prompt' and 'response', no label"
    return DEFAULT_TASK, "one label per row"


def check_repeats(task: str, *, folds=None, seeds=None) -> None:
    """Cross-fitting (folds) and seed repeats stratify and compare single labels: other tasks get one line."""
    if not task_type(task).repeats and (folds is not None or seeds):
        raise DatacartoError(f"--folds and --seeds train sequence classifiers only so far, not {task}")


def prepare_for_task(ds, spec: TaskSpec, *, num_labels: int | None = None, what: str = "data set", head=None,
                     warn_absent: bool = False):
    """``(dataset, resolved spec)``: ``ds`` checked for ``spec``'s task, its columns and classes resolved.

    A resolved spec (the training set's) forces the columns and classes of another split.
    ``head``: the model's classes (:func:`datacarto.models.classifier_head`); ``warn_absent``: say
    which classes have no example (the training set).
    """
    return spec.type.prepare(ds, spec, num_labels=num_labels, what=what, head=head, warn_absent=warn_absent)


def tokenize_task(ds, tokenizer, spec: TaskSpec, *, max_length: int = 128):
    """Tokenizer outputs and ``labels`` for the spec's task; the original columns stay (for records)."""
    return spec.type.tokenize(ds, tokenizer, spec, max_length=max_length)


def collator_for(task: str, tokenizer):
    """Hugging Face's own collator for the task (None: the Trainer's default padding collator)."""
    entry = task_type(task)
    return entry.collator(tokenizer) if entry.collator is not None else None
