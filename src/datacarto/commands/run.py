"""``datacarto run``: the whole pipeline (baseline, metrics, maps, subsets, focused models, ensembles, report).

Options come from a YAML file (``--config run.yaml``, keys = ``PipelineConfig`` field names, see
examples/run.yaml) and from flags, which override the file. Every ``TrainingArguments`` flag
(``--learning_rate``, ``--num_train_epochs``, ...) sets the baseline's training arguments, over the
file's ``training_args``; ``--output-dir`` and ``--seed`` set the pipeline's own keys.
"""

from __future__ import annotations

import argparse
import dataclasses
import enum
from dataclasses import field
from pathlib import Path
from typing import Any

from ..errors import DatacartoError, not_utf8

#: Flag help of each PipelineConfig key that is also a flag (the config's default is appended).
#: ``output_dir``, ``seed`` and ``training_args`` come from the TrainingArguments flags instead.
CONFIG_FLAG_HELP = {
    "model": "hub name or local folder of the pretrained model",
    "dataset": "training data: local .jsonl/.csv/.parquet or a hub name (NAME or NAME:SPLIT)",
    "validation": "validation data (tunes ensembles, per-region accuracy)",
    "test": "test data (overall accuracy)",
    "text_columns": "comma-separated text columns",
    "label_column": "label column",
    "class_names": "comma-separated label names 0..C-1",
    "max_length": "tokenizer truncation length",
    "dynamics_mode": "how the baseline records training dynamics",
    "recipes": "focus recipes: 'NAME:key=value,key=value;NAME2:...' (keys of datacarto select, e.g. "
               "'ambiguous-33:region=ambiguous,fraction=0.33'; or cleaning recipes, 'drop-flagged:action=drop', "
               "action drop or relabel) or a JSON/YAML list",
    "focus_init": "what focused models start from",
    "focus_training_args": "TrainingArguments overrides for focused and control models, as a JSON/YAML mapping",
    "control": "train a random control per recipe",
    "save_focused_models": "keep the weights of every focused and control model under models/ (off: their "
                           "predictions, metrics and dynamics are kept, which is what the report needs)",
    "ensemble_combine": "what the ensembles average",
    "ensemble_tune": "tune ensemble weights on validation",
    "map_color_by": "hue of the data map",
    "noise_column": "boolean column marking known-wrong labels (default is_flipped if present): adds the "
                    "label-noise section to the report",
    "title": "report title",
    "folds": "cross-fit: K fold models record out-of-sample dynamics (K more trainings on (K-1)/K of the data)",
    "dynamics": "with folds: which dynamics the map, regions and subsets use",
    "seeds": "comma-separated seeds (at least 2): one run per seed; the report shows seed stability",
    "task": "the task type (default: inferred from the training data's columns, and printed)",
    "choice_columns": "multiple choice: comma-separated choice columns (--text-columns is the context)",
    "tokens_column": "token classification: the words column",
    "tags_column": "token classification: one tag id per word",
    "prompt_column": "causal-lm: the prompt column (not predicted); without it --text-columns is plain LM text",
    "response_column": "causal-lm: the response column (predicted)",
    "chat_template": "causal-lm: prompt and response as the user and assistant turns of the tokenizer's chat "
                     "template",
}
#: PipelineConfig keys set through TrainingArguments flags (--output-dir, --seed, --learning_rate, ...).
_FROM_TRAINING_ARGS = ("output_dir", "seed", "training_args")
#: RunArguments that are not PipelineConfig keys
_CLI_ONLY = ("config", "force", "quiet")


def _flag_type(annotation: str):
    """A config key's flag type: ints and bools as they are, everything else as text (parsed later)."""
    return {"int": int | None, "bool": bool | None}.get(annotation, str | None)


def _run_arguments():
    """``RunArguments``: one optional flag per PipelineConfig key (each overrides the YAML key of the
    same name), plus ``--config``, ``--force`` and ``--quiet``. Derived from the config's fields."""
    from ..pipeline import PipelineConfig
    from ..pipeline.config import COLOR_MODES, COMBINES, DYNAMICS_CHOICES, DYNAMICS_MODES, FOCUS_INITS
    from ..tasks import task_names

    choices = {"dynamics_mode": DYNAMICS_MODES, "focus_init": FOCUS_INITS, "ensemble_combine": COMBINES,
               "map_color_by": COLOR_MODES, "dynamics": DYNAMICS_CHOICES, "task": task_names()}
    config_fields = [f for f in dataclasses.fields(PipelineConfig) if f.name not in _FROM_TRAINING_ARGS]
    missing = {f.name for f in config_fields} ^ set(CONFIG_FLAG_HELP)
    assert not missing, f"CONFIG_FLAG_HELP and PipelineConfig disagree on {sorted(missing)}"
    specs = [("config", str | None, field(default=None, metadata={
        "help": "YAML file of pipeline options (keys as below)"}))]
    for f in config_fields:
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        shown = "" if default in (None, [], {}) or f.name == "recipes" else f" (default {_plain_default(default)})"
        one_of = f": one of {', '.join(choices[f.name])}" if f.name in choices else ""
        specs.append((f.name, _flag_type(str(f.type)), field(default=None, metadata={
            "help": CONFIG_FLAG_HELP[f.name] + one_of + shown})))
    specs += [("force", str | None, field(default=None, metadata={
                   "help": "comma-separated stages to redo even if up to date, or 'all'"})),
              ("quiet", bool, field(default=False, metadata={"help": "no stage headers"}))]
    return dataclasses.make_dataclass("RunArguments", specs)


def _ints(text: str, flag: str) -> list[int]:
    try:
        return [int(v) for v in str(text).replace(",", " ").split()]
    except ValueError as e:
        raise DatacartoError(f"{flag} takes integers (comma-separated), got {text!r}") from e


def _plain_default(value) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def read_yaml(path: str | Path) -> dict[str, Any]:
    """The mapping in a YAML config file; DatacartoError when missing, unreadable or not a mapping."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise DatacartoError(f"config file not found: {path}")
    try:
        values = yaml.safe_load(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as e:
        raise not_utf8(path, e) from e
    except yaml.YAMLError as e:
        raise DatacartoError(f"cannot parse {path}: {_one_line(e)}") from e
    if values is None:
        return {}
    if not isinstance(values, dict):
        raise DatacartoError(f"{path} must hold a mapping of config keys, got {type(values).__name__}")
    return values


def _yaml_value(text: str, what: str):
    import yaml

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise DatacartoError(f"cannot parse {what} {text!r}: {_one_line(e)}") from e


def parse_recipes(text: str) -> list[dict[str, Any]]:
    """``'a:region=ambiguous,fraction=0.33;b:metric=confidence,fraction=0.1'`` or a JSON/YAML list."""
    text = text.strip()
    if text.startswith(("[", "{", "-")):
        value = _yaml_value(text, "--recipes")
        return value if isinstance(value, list) else [value]
    recipes = []
    for part in filter(None, (p.strip() for p in text.split(";"))):
        name, sep, rest = part.partition(":")
        if not sep:
            raise DatacartoError(f"recipe {part!r} must read NAME:key=value,key=value")
        recipe: dict[str, Any] = {"name": name.strip()}
        for item in filter(None, (i.strip() for i in rest.split(","))):
            key, eq, value = item.partition("=")
            if not eq:
                raise DatacartoError(f"recipe {name!r}: {item!r} must read key=value")
            recipe[key.strip()] = _yaml_value(value.strip(), f"recipe {name!r} value")
        recipes.append(recipe)
    if not recipes:
        raise DatacartoError("--recipes is empty")
    return recipes


def _plain(value):
    """A TrainingArguments value as a plain JSON-able value (enums by their value)."""
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _config_path(argv: list[str]) -> str | None:
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--config")
    known, _ = pre.parse_known_args(argv)
    return known.config


def build_config(argv: list[str]):
    """(PipelineConfig, force, quiet) from the command line and the YAML file it names."""
    from ..pipeline import PipelineConfig, training_arg_names
    from .train import explicit_flags, parse_with_training_args

    config_path = _config_path(argv)
    values = read_yaml(config_path) if config_path else {}
    known = {f.name for f in dataclasses.fields(PipelineConfig)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise DatacartoError(f"unknown config key(s) in {config_path}: {', '.join(unknown)} "
                             f"(known: {', '.join(sorted(known))})")
    argv = list(argv)
    given = explicit_flags(argv)
    wants_help = any(a in ("-h", "--help") for a in argv)
    if "output_dir" not in given and not wants_help:
        if not values.get("output_dir"):
            raise DatacartoError("no output directory: pass --output-dir or set output_dir in the config file")
        argv += ["--output_dir", str(values["output_dir"])]
    try:
        run_args, targs = parse_with_training_args(argv, _run_arguments(), prog="datacarto run")
    except ValueError as e:  # HfArgumentParser: "Some specified arguments are not used ...: [...]"
        if "not used" not in str(e):
            raise
        unused = [a for a in argv if a.startswith("-") and a.split("=")[0] not in ("-h", "--help")
                  and a in str(e)]
        raise DatacartoError(f"unknown option(s): {', '.join(unused) or _one_line(e)} "
                             "(see datacarto run --help)") from e

    for f in dataclasses.fields(run_args):
        value = getattr(run_args, f.name)
        if f.name in _CLI_ONLY or value is None:
            continue
        if f.name in ("text_columns", "class_names", "choice_columns"):
            value = [v.strip() for v in value.split(",") if v.strip()]
        elif f.name == "recipes":
            value = parse_recipes(value)
        elif f.name == "focus_training_args":
            value = _yaml_value(value, "--focus-training-args")
        elif f.name in ("folds", "seeds"):
            value = _ints(value, f"--{f.name}")
            value = value[0] if f.name == "folds" and len(value) == 1 else value
        values[f.name] = value
    values["output_dir"] = str(targs.output_dir)
    if "seed" in given:
        values["seed"] = int(targs.seed)
    flags = sorted(given & (training_arg_names() - {"output_dir", "seed"}))
    if flags:
        base = values.get("training_args") or {}
        if not isinstance(base, dict):
            raise DatacartoError(f"config key 'training_args' must be a mapping, got {base!r}")
        values["training_args"] = {**base, **{name: _plain(getattr(targs, name)) for name in flags}}
    force = None
    if run_args.force:
        force = True if run_args.force.strip() == "all" else [s.strip() for s in run_args.force.split(",") if s.strip()]
    return PipelineConfig.from_dict(values), force, run_args.quiet


def main(argv: list[str]) -> int:
    from ..pipeline import run_pipeline

    config, force, quiet = build_config(argv)
    result = run_pipeline(config, force=force, quiet=quiet)
    print(f"report: {result.report_html}")
    print(f"        {result.report_md}")
    return 0

