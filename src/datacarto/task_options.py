"""Which options belong to which task: one check for ``datacarto train``, ``datacarto run`` and ``train_baseline``.

``choice_columns`` is multiple choice's, ``tokens_column`` and ``tags_column`` token classification's,
``prompt_column``, ``response_column`` and ``chat_template`` the causal LM's. An option set away from
its default for another task would be ignored without a word; it is refused instead.
"""

from __future__ import annotations

from typing import Any

from .errors import DatacartoError

#: option -> (the task it belongs to, its default: the value that says "not given")
TASK_OPTIONS: dict[str, tuple[str, Any]] = {
    "choice_columns": ("multiple-choice", None),
    "tokens_column": ("token-classification", "tokens"),
    "tags_column": ("token-classification", "ner_tags"),
    "prompt_column": ("causal-lm", None),
    "response_column": ("causal-lm", None),
    "chat_template": ("causal-lm", False),
}


def _given(name: str, value: Any) -> bool:
    return value not in (None, [], (), "", False) and value != TASK_OPTIONS[name][1]


def check_task_options(task: str, **options: Any) -> None:
    """DatacartoError when an option of another task is given (``options``: keys of :data:`TASK_OPTIONS`)."""
    for name, value in options.items():
        owner = TASK_OPTIONS[name][0]
        if owner != task and _given(name, value):
            raise DatacartoError(f"{name} is an option of {owner}, not of {task}: drop it (or choose task {owner})")


def task_arguments(task: str, **options: Any) -> dict[str, Any]:
    """``task`` and those of ``options`` that belong to it: the task arguments ``train_baseline`` takes."""
    return {"task": task, **{k: v for k, v in options.items() if TASK_OPTIONS[k][0] == task}}
