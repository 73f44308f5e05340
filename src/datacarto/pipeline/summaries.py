"""Typed stage summaries: one dataclass per stage, written into ``stages/<name>.json`` and read back.

A stage's body returns its summary as the dataclass :data:`SUMMARIES` names for it; the runner writes
it with :func:`summary_json`, and everything that reads a summary again (later stages, the report,
``PipelineResult``) gets it through :func:`read_summary`. Every field has a default, so records of
earlier runs that lack a field still read (the report of an old run folder).
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from dataclasses import dataclass, field
from typing import Any

from ..tasks import DEFAULT_TASK, TaskSpec


@dataclass
class DataSummary:
    """The prepared splits and the TaskSpec the data stage resolved."""

    rows: dict[str, int] = field(default_factory=dict)  # split -> rows
    digests: dict[str, str] = field(default_factory=dict)  # split -> content hash of the prepared rows
    text_columns: list[str] = field(default_factory=list)
    label_column: str = "label"
    label_names: list[str] = field(default_factory=list)
    columns: list[str] = field(default_factory=list)  # of the prepared training split
    task: str = DEFAULT_TASK  # runs from before tasks: sequence classification
    task_spec: dict[str, Any] = field(default_factory=dict)  # the TaskSpec whole (TaskSpec.to_dict)
    task_columns: dict[str, Any] = field(default_factory=dict)  # runs from before task_spec: the task columns

    @property
    def spec(self):
        """The TaskSpec the data stage resolved (rebuilt from the other fields for runs from before ``task_spec``)."""
        return TaskSpec.from_manifest(dataclasses.asdict(self))


@dataclass
class BaselineSummary:
    output_dir: str = "baseline"
    model_dir: str = "baseline/model"
    train_metrics: dict[str, float] = field(default_factory=dict)
    units: dict[str, int] = field(default_factory=dict)  # split -> predicted units
    repeats: list[str] = field(default_factory=list)  # the cross-fitted and seed runs


@dataclass
class CrossfitSummary:
    folds: int = 0
    map: str = "out-of-sample"  # the dynamics the map uses
    other_regions: dict[str, int] = field(default_factory=dict)  # regions with the other dynamics
    same_region_share: float = float("nan")


@dataclass
class MetricsSummary:
    n: int = 0
    regions: dict[str, int] = field(default_factory=dict)
    attrs: dict[str, Any] = field(default_factory=dict)  # the region thresholds and verdicts of the table
    validation_regions: dict[str, int] | None = None
    test_regions: dict[str, int] | None = None
    by_label: list[dict[str, Any]] | None = None  # multi-label, token classification
    crossfit: CrossfitSummary | None = None  # with ``folds``
    seed_stability: dict[str, Any] | None = None  # with ``seeds``: ``dynamics.stability.stability_summary``


@dataclass
class SubsetPart:
    """A subset written by the select stage: focused, or its random control."""

    n: int = 0
    digest: str = ""  # hash of its row ids
    path: str = ""  # relative to the run folder
    regions: dict[str, int] = field(default_factory=dict)
    labels: dict[str, int] = field(default_factory=dict)


@dataclass
class Subset(SubsetPart):
    """One recipe's subset, with its control."""

    recipe: dict[str, Any] = field(default_factory=dict)
    control: SubsetPart | None = None


@dataclass
class SelectSummary:
    subsets: dict[str, Subset] = field(default_factory=dict)  # recipe name -> subset
    order: list[str] = field(default_factory=list)  # recipe names in config order (stored records sort keys)

    def in_order(self, fallback: list[str] = ()) -> dict[str, Subset]:
        """The subsets in config order (``fallback``: that order, for records from before ``order``)."""
        names = [n for n in (self.order or fallback) if n in self.subsets]
        return {n: self.subsets[n] for n in [*names, *sorted(set(self.subsets) - set(names))]}


@dataclass
class FocusModel:
    token: str = ""  # new whenever the model is trained
    seconds: float = 0.0
    n: int = 0  # training examples
    ran: bool = False  # trained by the run that wrote the record (else reused)


@dataclass
class FocusSummary:
    models: dict[str, FocusModel] = field(default_factory=dict)


@dataclass
class Ensemble:
    members: list[str] = field(default_factory=list)
    weights: list[float] = field(default_factory=list)
    combine: str = "logits"
    tuned: bool = False
    tuning: dict[str, Any] = field(default_factory=dict)


@dataclass
class EnsembleSummary:
    ensembles: dict[str, Ensemble] = field(default_factory=dict)


@dataclass
class EvaluateSummary:
    accuracy: list[dict[str, Any]] = field(default_factory=list)  # the rows of evaluation/accuracy.csv


@dataclass
class CleanControl:
    """A cleaning recipe's random-drop control: as many random rows, with the same labels, dropped."""

    model: str = ""
    data: str = ""  # relative to the run folder
    n_train: int = 0
    dropped: int = 0


@dataclass
class CleanRecipe:
    """One cleaning recipe's flags, corrected data and model (``model`` None: nothing flagged)."""

    action: str = ""
    score: str = ""
    flagged: int = 0
    model: str | None = None
    corrections: str = ""  # relative to the run folder
    data: str = ""
    n_train: int = 0
    relabelled: int = 0
    dropped: int = 0
    control: CleanControl | None = None


@dataclass
class CleanModel(FocusModel):
    """A retrained model of the clean stage (``same_as``: the model with the same rows, whose predictions it copies)."""

    same_as: str | None = None


@dataclass
class CleanSummary:
    """The clean stage: the label-error estimate, each cleaning recipe and each retrained model.

    ``order``: the cleaning recipes in config order (empty without one); ``refused``: why no estimate.
    ``review``: what the map shows of the estimate (flags file, fingerprint, note, level; empty: nothing).
    """

    order: list[str] = field(default_factory=list)
    refused: str | None = None
    source: dict[str, Any] = field(default_factory=dict)  # run, split, dynamics, epochs, n_epochs, method, warning
    estimate: dict[str, Any] = field(default_factory=dict)  # total, n, per_class: {label: {n, estimated_errors}}
    review: dict[str, Any] = field(default_factory=dict)  # flags, fingerprint, note, level (maps.review.Review)
    recipes: dict[str, CleanRecipe] = field(default_factory=dict)
    models: dict[str, CleanModel] = field(default_factory=dict)

    def in_order(self) -> dict[str, CleanRecipe]:
        """The recipes in config order."""
        return {n: self.recipes[n] for n in self.order if n in self.recipes}

    def model_names(self) -> list[str]:
        """The retrained models with predictions, in config order (each cleaned model, then its control)."""
        return [m for e in self.in_order().values() if e.model
                for m in (e.model, *([e.control.model] if e.control is not None else []))]


@dataclass
class NoSummary:
    """A stage whose files say it all (maps, report)."""


#: Stage name -> its summary type.
SUMMARIES: dict[str, type] = {
    "data": DataSummary, "baseline": BaselineSummary, "metrics": MetricsSummary, "maps": NoSummary,
    "select": SelectSummary, "focus": FocusSummary, "clean": CleanSummary, "ensemble": EnsembleSummary,
    "evaluate": EvaluateSummary,
    "report": NoSummary,
}


def read_summary(stage: str, data: Any) -> Any:
    """The typed summary of ``stage`` from its JSON (unknown fields dropped, missing ones defaulted)."""
    return _build(SUMMARIES[stage], data if isinstance(data, dict) else {})


def summary_json(summary: Any) -> dict[str, Any]:
    """A summary as the JSON a stage record holds."""
    return jsonable(dataclasses.asdict(summary))


def jsonable(obj):
    """``obj`` with NumPy scalars as Python numbers (NaN kept), ready for a stage summary."""
    return json.loads(json.dumps(obj, default=lambda o: o.item() if hasattr(o, "item") else str(o),
                                 allow_nan=True))


def _build(hint: Any, value: Any) -> Any:
    """``value`` (parsed JSON) as ``hint`` says: dataclasses (also inside dicts and optionals) rebuilt."""
    if dataclasses.is_dataclass(hint) and isinstance(hint, type):
        if not isinstance(value, dict):
            return hint()
        hints = typing.get_type_hints(hint)
        return hint(**{f.name: _build(hints[f.name], value[f.name])
                       for f in dataclasses.fields(hint) if f.name in value})
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType) and type(None) in args:
        inner = [a for a in args if a is not type(None)]
        return None if value is None else _build(inner[0], value)
    if origin is dict and isinstance(value, dict) and dataclasses.is_dataclass(args[1]):
        return {k: _build(args[1], v) for k, v in value.items()}
    return value
