"""The checks of a pipeline request that need its training data, before anything is written or any model loads.

``PipelineConfig.validate`` checks every key on its own (seeds, recipes, a given task's options);
:func:`check_request` then reads the training set once and checks what depends on it: the task it
implies and that task's options, the folds against the class counts, and the chat template rendered
on the first row, and that cleaning recipes have one label per example to correct. The data stage
reuses the prepared training split it returns.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..errors import DatacartoError
from .config import PipelineConfig, cleaning_recipes


@dataclass
class CheckedRequest:
    """The prepared training split, its TaskSpec and why the task is what it is."""

    train: Any
    spec: Any
    why: str


def check_request(config: PipelineConfig) -> CheckedRequest:
    """Load and prepare the training set and check the request against it (DatacartoError: one line)."""
    from .._validation import check_folds
    from ..tasks import check_repeats

    c = config
    checked = prepare_request(config)
    check_repeats(checked.spec.task, folds=c.folds, seeds=c.seeds)
    if c.folds is not None:
        check_folds(c.folds, checked.train[checked.spec.label_column], label_names=checked.spec.label_names,
                    name="config key 'folds'")
    cleaning = cleaning_recipes(c.recipes)
    if cleaning and not checked.spec.type.single_label:
        raise DatacartoError(f"recipe {cleaning[0]['name']!r}: cleaning recipes (action drop or relabel) retrain "
                             f"on corrected example labels, which a {checked.spec.task} run does not have; use "
                             "datacarto label-errors and apply-corrections on its units")
    return checked


def prepare_request(config: PipelineConfig) -> CheckedRequest:
    """The training split prepared for the task given or inferred, its TaskSpec, and the chat template checked.

    What the data stage makes of the config (:func:`check_request` adds the checks of ``folds`` and
    ``seeds`` against it).
    """
    from ..data import load_table
    from ..models import load_tokenizer
    from ..task_data import check_chat_template
    from ..tasks import TaskSpec, infer_task
    from ..train.baseline import load_split

    c = config
    table = load_table(c.dataset, "train")
    task, why = infer_task(table, task=c.task, label_column=c.label_column, choice_columns=c.choice_columns,
                           tokens_column=c.tokens_column, tags_column=c.tags_column, prompt_column=c.prompt_column)
    spec = TaskSpec.from_options(task, text_columns=c.text_columns, label_column=c.label_column,
                                 label_names=c.class_names, **c.task_options())
    train, spec = load_split(table, spec, split="train", model=c.model)
    if spec.chat_template:
        check_chat_template(load_tokenizer(c.model), spec, train)
    return CheckedRequest(train=train, spec=spec, why=why)
