"""``PipelineConfig``: everything ``run_pipeline`` reads, validated; the recipe and TrainingArguments checks."""

from __future__ import annotations

import dataclasses
import json
import re
from dataclasses import dataclass, field
from typing import Any

from .._validation import check_choice, check_folds, check_seed, check_seeds
from ..ensemble_weights import COMBINES
from ..errors import DatacartoError
from ..maps import COLOR_MODES
from ..tasks import check_task_options, option_owners, task_names
from ..train.crossfit import DYNAMICS_CHOICES
from ..train.focused import INITS as FOCUS_INITS
from .hashing import describe_data

DEFAULT_RECIPES = (
    {"name": "ambiguous-33", "region": "ambiguous", "fraction": 0.33},
    {"name": "hard-10", "region": "hard-to-learn", "fraction": 0.10},
)
#: The recording modes of datacarto.record (not imported from there: it imports torch).
DYNAMICS_MODES = ("training_pass", "epoch_end")
_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")  # used with fullmatch: "$" would accept a trailing newline
#: The data inputs: described (path, size, mtime) rather than dumped in config.json and the hashes.
DATA_KEYS = ("dataset", "validation", "test")
#: ``action`` of a cleaning recipe: what happens to the rows the label-error estimate flags before the
#: model is trained again (the apply-corrections decisions that change the data)
CLEAN_ACTIONS = ("drop", "relabel")
#: the keys of a cleaning recipe (``score``: the label-quality score that ranks the flagged rows)
CLEAN_KEYS = ("name", "action", "score")

__all__ = ["CLEAN_ACTIONS", "COMBINES", "COLOR_MODES", "DATA_KEYS", "DEFAULT_RECIPES", "DYNAMICS_CHOICES", "DYNAMICS_MODES", "FOCUS_INITS",
           "PipelineConfig", "check_recipes", "check_training_args", "cleaning_recipes", "selection_recipes",
           "training_arg_names"]


@dataclass
class PipelineConfig:
    """Everything ``run_pipeline`` needs; YAML keys of ``datacarto run --config`` are these field names.

    ``dataset``/``validation``/``test``: a local .jsonl/.csv/.parquet file, a saved data set folder,
    a hub name (``NAME:SPLIT``) or a ``datasets.Dataset``. ``recipes``: a list of
    ``{"name": ..., **select() arguments}``. ``training_args``: TrainingArguments fields for the
    baseline; ``focus_training_args`` overrides them for focused and control models.
    """

    model: str | None = None
    dataset: Any = None
    validation: Any = None
    test: Any = None
    output_dir: str = "datacarto_run"
    text_columns: list[str] | None = None
    label_column: str = "label"
    class_names: list[str] | None = None
    max_length: int = 128
    training_args: dict[str, Any] = field(default_factory=dict)
    focus_training_args: dict[str, Any] = field(default_factory=dict)
    dynamics_mode: str = "training_pass"
    recipes: list[dict[str, Any]] = field(default_factory=lambda: [dict(r) for r in DEFAULT_RECIPES])
    focus_init: str = "baseline"
    control: bool = True
    save_focused_models: bool = False
    ensemble_combine: str = "logits"
    ensemble_tune: bool = True
    map_color_by: str = "correctness"
    noise_column: str | None = None
    title: str = "datacarto report"
    seed: int = 0
    folds: int | None = None
    dynamics: str = "out-of-sample"
    seeds: list[int] | None = None
    task: str | None = None
    choice_columns: list[str] | None = None
    tokens_column: str = "tokens"
    tags_column: str = "ner_tags"
    prompt_column: str | None = None
    response_column: str | None = None
    chat_template: bool = False

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> PipelineConfig:
        """A validated config from a mapping (e.g. parsed YAML); unknown keys raise DatacartoError."""
        if not isinstance(values, dict):
            raise DatacartoError(f"the config must be a mapping of keys to values, got {type(values).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise DatacartoError(f"unknown config key(s): {', '.join(unknown)} (known: {', '.join(sorted(known))})")
        config = cls(**values)
        config.validate()
        return config

    def validate(self) -> PipelineConfig:
        """Check types and values; raise DatacartoError naming the bad key. Returns self."""
        self._check_required()
        self.text_columns = _str_list(self.text_columns, "text_columns")
        self.class_names = _str_list(self.class_names, "class_names")
        self.choice_columns = _str_list(self.choice_columns, "choice_columns")
        if self.task is not None:  # an inferred task is checked with the data (pipeline.request)
            check_choice(self.task, task_names(), "config key 'task'")
            check_task_options(self.task, **self.task_options())
        for key in ("tokens_column", "tags_column", "prompt_column", "response_column"):
            value = getattr(self, key)
            if value is not None and (not isinstance(value, str) or not value):
                raise DatacartoError(f"config key {key!r} must be a column name, got {value!r}")
        if self.class_names and len(set(self.class_names)) != len(self.class_names):
            raise DatacartoError(f"config key 'class_names' has duplicate names: {self.class_names}")
        if isinstance(self.max_length, bool) or not isinstance(self.max_length, int) or self.max_length < 1:
            raise DatacartoError(f"config key 'max_length' must be a positive integer, got {self.max_length!r}")
        check_seed(self.seed, "config key 'seed'")
        for key in ("control", "ensemble_tune", "chat_template", "save_focused_models"):
            if not isinstance(getattr(self, key), bool):
                raise DatacartoError(f"config key {key!r} must be true or false, got {getattr(self, key)!r}")
        for key, choices in (("dynamics_mode", DYNAMICS_MODES), ("focus_init", FOCUS_INITS),
                             ("ensemble_combine", COMBINES), ("map_color_by", COLOR_MODES)):
            check_choice(getattr(self, key), choices, f"config key {key!r}")
        for key in ("training_args", "focus_training_args"):
            setattr(self, key, check_training_args(getattr(self, key), key))
            if getattr(self, key).get("load_best_model_at_end"):
                raise DatacartoError(f"{key}: load_best_model_at_end is not supported by the pipeline (the "
                                     "recorded dynamics and predictions must come from the final model)")
        self.recipes = check_recipes(self.recipes)
        self._check_repeats()
        self._check_cleaning()
        return self

    def _check_cleaning(self) -> None:
        """Cleaning recipes need a label-error estimate: in-sample dynamics of one epoch cannot give one."""
        epochs = self.training_args.get("num_train_epochs")
        cleaning = cleaning_recipes(self.recipes)
        if cleaning and not self.folds and isinstance(epochs, (int, float)) and epochs < 2:
            raise DatacartoError(f"recipe {cleaning[0]['name']!r} (action {cleaning[0]['action']}) needs a "
                                 f"label-error estimate, and in-sample dynamics of {epochs:g} epoch cannot support "
                                 "one: train 2 or more epochs, or cross-fit (folds: K)")

    def _check_repeats(self) -> None:
        """``folds`` (cross-fitting; against the class counts in pipeline.request), ``dynamics`` and ``seeds``."""
        if self.folds is not None:
            check_folds(self.folds, name="config key 'folds'")
        check_choice(self.dynamics, DYNAMICS_CHOICES, "config key 'dynamics'")
        if self.seeds is not None:
            self.seeds = check_seeds(self.seeds, "config key 'seeds'")

    def task_options(self) -> dict[str, Any]:
        """The task options (``choice_columns``, ``tokens_column``, ...) as this config sets them."""
        return {name: getattr(self, name) for name in option_owners()}

    def _check_required(self) -> None:
        if not self.model:
            raise DatacartoError("config key 'model' is required (a hub name or a local model folder)")
        if self.dataset is None:
            raise DatacartoError("config key 'dataset' is required (the training data)")
        if self.validation is None:
            raise DatacartoError("config key 'validation' is required: ensemble weights and per-region "
                                 "accuracy are measured on it")
        if not self.output_dir:
            raise DatacartoError("config key 'output_dir' is required")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict of the config (in-memory data sets are described, not dumped)."""
        out = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            out[f.name] = describe_data(value) if f.name in DATA_KEYS else value
        return json.loads(json.dumps(out, default=str))


def _str_list(value, key: str) -> list[str] | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = [v.strip() for v in value.split(",") if v.strip()]
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) and v for v in value):
        raise DatacartoError(f"config key {key!r} must be a list of names, got {value!r}")
    return list(value) or None


def training_arg_names() -> set[str]:
    """Names of the ``transformers.TrainingArguments`` fields a user may set."""
    from transformers import TrainingArguments

    return {f.name for f in dataclasses.fields(TrainingArguments) if f.init}


def check_training_args(values, key: str = "training_args") -> dict[str, Any]:
    """A plain JSON-able dict of TrainingArguments fields; unknown names raise DatacartoError."""
    if values is None:
        return {}
    if not isinstance(values, dict):
        raise DatacartoError(f"config key {key!r} must be a mapping of TrainingArguments fields, got {values!r}")
    unknown = sorted(set(values) - training_arg_names())
    if unknown:
        raise DatacartoError(f"unknown TrainingArguments field(s) in {key}: {', '.join(unknown)}")
    if "output_dir" in values:
        raise DatacartoError(f"{key} must not set output_dir: the pipeline places every model under output_dir")
    try:
        json.dumps(values)
    except TypeError as e:
        raise DatacartoError(f"{key} values must be plain numbers, strings, lists or mappings: {e}") from e
    _check_field_types(values, key)
    if "seed" in values:
        check_seed(values["seed"], f"{key}.seed")
    # 3 and 3.0 are the same setting (YAML vs. a command-line flag): one form, so resume hashes agree
    return {k: int(v) if isinstance(v, float) and v.is_integer() else v for k, v in values.items()}


def _check_field_types(values: dict[str, Any], key: str) -> None:
    """Numbers and booleans where TrainingArguments declares them (``num_train_epochs: three`` is refused)."""
    import dataclasses

    from transformers import TrainingArguments

    types = {f.name: _declared(f.type) for f in dataclasses.fields(TrainingArguments)}
    for name, value in values.items():
        declared = types.get(name)
        if declared in (int, float) and (isinstance(value, bool) or not isinstance(value, (int, float))):
            raise DatacartoError(f"{key}.{name} must be a number, got {value!r}")
        if declared is bool and not isinstance(value, bool):
            raise DatacartoError(f"{key}.{name} must be true or false, got {value!r}")


def _declared(annotation):
    """The plain type of a field annotation (``float``, ``int``, ``bool``), or None for anything else."""
    import typing

    if isinstance(annotation, type):
        return annotation
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    return args[0] if len(args) == 1 and isinstance(args[0], type) else None


def check_recipes(recipes) -> list[dict[str, Any]]:
    """Validate focus recipes: unique file-safe names and ``select()`` criteria, checked by ``check_criteria``.

    The criteria pass the same check as ``datacarto select``'s flags (one rule, one message each).
    """
    from ..selection import CRITERIA, check_criteria

    if isinstance(recipes, dict):
        recipes = [recipes]
    if not isinstance(recipes, (list, tuple)):
        raise DatacartoError(f"config key 'recipes' must be a list of mappings, got {recipes!r}")
    names, out = set(), []
    for i, recipe in enumerate(recipes):
        if not isinstance(recipe, dict):
            raise DatacartoError(f"recipe {i + 1} must be a mapping like {{name: ambiguous-33, region: ambiguous, "
                                 f"fraction: 0.33}}, got {recipe!r}")
        name = recipe.get("name")
        if not isinstance(name, str) or not _NAME_RE.fullmatch(name):
            raise DatacartoError(f"recipe {i + 1} needs a 'name' of letters, digits, '.', '_' or '-', got {name!r}")
        if name in names:
            raise DatacartoError(f"recipe name {name!r} is used twice")
        names.add(name)
        if "action" in recipe:
            out.append(_check_cleaning_recipe(name, recipe))
            continue
        unknown = sorted(set(recipe) - set(CRITERIA) - {"name"})
        if unknown:
            raise DatacartoError(f"recipe {name!r}: unknown key(s) {', '.join(unknown)} "
                                 f"(known: name, {', '.join(sorted(CRITERIA))}; or action, score)")
        if len(recipe) == 1:
            raise DatacartoError(f"recipe {name!r} selects everything: give a region, metric, fraction or bound")
        try:
            check_criteria(**{k: v for k, v in recipe.items() if k != "name"})
        except DatacartoError as e:
            raise DatacartoError(f"recipe {name!r}: {e}") from None
        out.append(dict(recipe))
    return out


def _check_cleaning_recipe(name: str, recipe: dict) -> dict[str, Any]:
    """A cleaning recipe: ``{name, action: drop | relabel, score?}`` (docs/pipeline.md, "Cleaning recipes")."""
    from ..label_errors import SCORES

    unknown = sorted(set(recipe) - set(CLEAN_KEYS))
    if unknown:
        raise DatacartoError(f"recipe {name!r}: unknown key(s) {', '.join(unknown)} for a cleaning recipe "
                             f"(known: {', '.join(CLEAN_KEYS)})")
    check_choice(recipe["action"], CLEAN_ACTIONS, f"recipe {name!r}: action")
    if "score" in recipe:
        check_choice(recipe["score"], SCORES, f"recipe {name!r}: score")
    return dict(recipe)


def cleaning_recipes(recipes) -> list[dict[str, Any]]:
    """The recipes with an ``action`` (drop or relabel the flagged rows, then retrain), in config order."""
    return [r for r in recipes or [] if isinstance(r, dict) and "action" in r]


def selection_recipes(recipes) -> list[dict[str, Any]]:
    """The recipes that select a subset for a focused model (every one without an ``action``)."""
    return [r for r in recipes or [] if isinstance(r, dict) and "action" not in r]
