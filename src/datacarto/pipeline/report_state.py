"""What the report reads from a run folder: :class:`RunState` (config, stage records, metrics, examples).

Stage summaries are read through :func:`~.summaries.read_summary`, as the pipeline reads them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd

from ..errors import DatacartoError
from .layout import RunLayout, read_json
from .summaries import read_summary

#: record text longer than this is folded in the report's tables (the full text is in the data files)
FOLD_AT = 300


def fold(text: Any, limit: int = FOLD_AT) -> Any:
    """``text`` cut to ``limit`` characters with a marker of what was left out (other values unchanged)."""
    if not isinstance(text, str) or len(text) <= limit:
        return text
    return f"{text[:limit]}… (+{len(text) - limit:,} chars)"


@dataclass
class RunState:
    """What the report reads from a run folder."""

    layout: RunLayout
    config: dict[str, Any]
    stages: dict[str, dict]
    metrics: pd.DataFrame
    examples: pd.DataFrame | None  # the recorded training examples, in the metrics' row order

    def summary(self, stage: str) -> Any:
        """The typed summary of ``stage`` (its defaults when the stage has no record)."""
        return read_summary(stage, self.stages.get(stage, {}).get("summary"))

    @property
    def label_names(self) -> list[str]:
        return self.summary("data").label_names

    @property
    def spec(self):
        """The run's TaskSpec, as the data stage resolved it."""
        return self.summary("data").spec

    @property
    def task(self) -> str:
        return self.spec.task

    @property
    def task_type(self):
        """The run's task type (its registry entry, :mod:`datacarto.tasks`)."""
        return self.spec.type

    @property
    def recipe_order(self) -> list[str]:
        return [r.get("name") for r in self.config.get("recipes") or [] if isinstance(r, dict)]


def read_train_metrics(layout: RunLayout) -> pd.DataFrame:
    """The metrics table of a run's training data (``metrics/train.parquet``), indexed by row id."""
    if not layout.train_metrics.is_file():
        raise DatacartoError(f"{layout.train_metrics} not found: run the pipeline's metrics stage first")
    return pd.read_parquet(layout.train_metrics).set_index("row_id")


def read_run(layout: RunLayout) -> RunState:
    """The report's view of the run folder ``layout``."""
    from ..dynamics.store import load_examples

    metrics = read_train_metrics(layout)
    examples = load_examples(layout.baseline_dir)
    if examples is not None:
        examples = examples.reindex(metrics.index)
    run = RunState(layout=layout, config=read_json(layout.config_json, {}), stages=layout.stage_records(),
                   metrics=metrics, examples=examples)
    metrics.attrs.update(run.summary("metrics").attrs)  # thresholds, verdicts
    return run
