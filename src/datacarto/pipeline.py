"""The whole datacarto workflow in one call: ``run_pipeline(PipelineConfig(...))``.

Stages, in order (each prints ``[i/9] name ...``)::

    data      load and validate train/validation/test; prepared copies in data/*.parquet
    baseline  fine-tune the model on all training data, recording dynamics (train, validation, test)
    metrics   per-example metrics and regions (train; validation regions from its eval dynamics)
    maps      data map PNG and the interactive HTML map
    select    one focused subset per recipe, plus a random control of the same size and label mix
    focus     fine-tune one model per subset (focused and control)
    ensemble  baseline + each focused (and each control) model, weights tuned on validation
    evaluate  accuracy on test overall and on validation overall and per region, for every model
    report    report.html and report.md

Resume: each stage writes ``stages/<name>.json`` with the hash of its inputs (the config keys it
reads and the digests of the stages it reads from). A later run skips a stage whose hash is
unchanged and whose outputs are all present, and redoes it otherwise; a redone stage gets a new
digest, so everything downstream of it is redone too. Focused models are cached one by one, so
changing one recipe retrains only that recipe's models. See docs/pipeline.md.
"""

from __future__ import annotations

import dataclasses
import hashlib
import inspect
import json
import os
import re
import shutil
import time
import uuid
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ._io import write_json_atomic
from .errors import DatacartoError

STAGES = ("data", "baseline", "metrics", "maps", "select", "focus", "ensemble", "evaluate", "report")

DEFAULT_RECIPES = (
    {"name": "ambiguous-33", "region": "ambiguous", "fraction": 0.33},
    {"name": "hard-10", "region": "hard-to-learn", "fraction": 0.10},
)
FOCUS_INITS = ("baseline", "pretrained")
COMBINES = ("logits", "probs")
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
SPLITS = ("train", "validation", "test")
# focused/control models are not checkpointed unless asked: they are small and retrained in seconds
FOCUS_DEFAULTS = {"save_strategy": "no"}


# ----------------------------------------------------------------------------------------------
# configuration


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
    ensemble_combine: str = "logits"
    ensemble_tune: bool = True
    map_color_by: str = "correctness"
    noise_column: str | None = None
    title: str = "datacarto report"
    seed: int = 0

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
        if not self.model:
            raise DatacartoError("config key 'model' is required (a hub name or a local model folder)")
        if self.dataset is None:
            raise DatacartoError("config key 'dataset' is required (the training data)")
        if self.validation is None:
            raise DatacartoError("config key 'validation' is required: ensemble weights and per-region "
                                 "accuracy are measured on it")
        if not self.output_dir:
            raise DatacartoError("config key 'output_dir' is required")
        self.text_columns = _str_list(self.text_columns, "text_columns")
        self.class_names = _str_list(self.class_names, "class_names")
        for key in ("max_length", "seed"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or (key == "max_length" and value < 1):
                raise DatacartoError(f"config key {key!r} must be {'a positive' if key == 'max_length' else 'an'} "
                                     f"integer, got {value!r}")
        for key in ("control", "ensemble_tune"):
            if not isinstance(getattr(self, key), bool):
                raise DatacartoError(f"config key {key!r} must be true or false, got {getattr(self, key)!r}")
        _choice(self.dynamics_mode, ("training_pass", "epoch_end"), "dynamics_mode")
        _choice(self.focus_init, FOCUS_INITS, "focus_init")
        _choice(self.ensemble_combine, COMBINES, "ensemble_combine")
        _choice(self.map_color_by, ("correctness", "label", "region"), "map_color_by")
        self.training_args = check_training_args(self.training_args, "training_args")
        self.focus_training_args = check_training_args(self.focus_training_args, "focus_training_args")
        for key in ("training_args", "focus_training_args"):
            if getattr(self, key).get("load_best_model_at_end"):
                raise DatacartoError(f"{key}: load_best_model_at_end is not supported by the pipeline (the "
                                     "recorded dynamics and predictions must come from the final model)")
        self.recipes = check_recipes(self.recipes)
        return self

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict of the config (in-memory data sets are described, not dumped)."""
        out = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            out[f.name] = _describe_data(value) if f.name in ("dataset", "validation", "test") else value
        return json.loads(json.dumps(out, default=str))


def _str_list(value, key: str) -> list[str] | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = [v.strip() for v in value.split(",") if v.strip()]
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) and v for v in value):
        raise DatacartoError(f"config key {key!r} must be a list of names, got {value!r}")
    return list(value) or None


def _choice(value, choices, key: str) -> None:
    if value not in choices:
        raise DatacartoError(f"config key {key!r} must be one of {', '.join(choices)}, got {value!r}")


def training_arg_names() -> set[str]:
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
    # 3 and 3.0 are the same setting (YAML vs. a command-line flag): one form, so resume hashes agree
    return {k: int(v) if isinstance(v, float) and v.is_integer() else v for k, v in values.items()}


def _select_params() -> set[str]:
    from .selection import select

    return {n for n, p in inspect.signature(select).parameters.items() if p.kind is p.KEYWORD_ONLY} - {"seed"}


def check_recipes(recipes) -> list[dict[str, Any]]:
    """Validate focus recipes: unique file-safe names and ``select()`` arguments only."""
    if isinstance(recipes, dict):
        recipes = [recipes]
    if not isinstance(recipes, (list, tuple)):
        raise DatacartoError(f"config key 'recipes' must be a list of mappings, got {recipes!r}")
    allowed = _select_params()
    names, out = set(), []
    for i, recipe in enumerate(recipes):
        if not isinstance(recipe, dict):
            raise DatacartoError(f"recipe {i + 1} must be a mapping like {{name: ambiguous-33, region: ambiguous, "
                                 f"fraction: 0.33}}, got {recipe!r}")
        name = recipe.get("name")
        if not isinstance(name, str) or not _NAME_RE.match(name):
            raise DatacartoError(f"recipe {i + 1} needs a 'name' of letters, digits, '.', '_' or '-', got {name!r}")
        if name in names:
            raise DatacartoError(f"recipe name {name!r} is used twice")
        names.add(name)
        unknown = sorted(set(recipe) - allowed - {"name"})
        if unknown:
            raise DatacartoError(f"recipe {name!r}: unknown key(s) {', '.join(unknown)} "
                                 f"(known: name, {', '.join(sorted(allowed))})")
        if len(recipe) == 1:
            raise DatacartoError(f"recipe {name!r} selects everything: give a region, metric, fraction or bound")
        out.append(dict(recipe))
    return out


# ----------------------------------------------------------------------------------------------
# hashing and stage records


def digest(obj: Any) -> str:
    """A short stable hash of a JSON-able object."""
    text = json.dumps(obj, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def _file_stat(path: Path) -> list:
    st = path.stat()
    return [path.name, int(st.st_size), int(st.st_mtime_ns)]


def _describe_data(value) -> Any:
    """What identifies a data input: resolved path, size and mtime for files; the name for hub data."""
    if value is None:
        return None
    if isinstance(value, (str, os.PathLike)):
        path = Path(value)
        if path.is_file():
            return {"path": str(path.resolve()), "stat": _file_stat(path)}
        if path.is_dir():
            return {"path": str(path.resolve()),
                    "stat": [_file_stat(p) for p in sorted(path.rglob("*")) if p.is_file()]}
        return {"name": str(value)}
    if hasattr(value, "column_names") and hasattr(value, "to_pandas"):
        return {"in_memory": len(value), "content": frame_digest(value.to_pandas())}
    raise DatacartoError(f"data must be a file, a folder, a hub name or a datasets.Dataset, got {type(value).__name__}")


def _describe_model(model: str) -> Any:
    path = Path(model)
    if path.is_dir():
        files = [p for p in sorted(path.iterdir()) if p.is_file() and p.suffix in (".json", ".safetensors", ".bin", ".txt")]
        return {"path": str(path.resolve()), "stat": [_file_stat(p) for p in files]}
    return {"name": model}


def frame_digest(frame: pd.DataFrame) -> str:
    """Content hash of a DataFrame (values, column names and index)."""
    h = hashlib.sha256()
    h.update(json.dumps([str(c) for c in frame.columns]).encode())
    if len(frame):
        h.update(pd.util.hash_pandas_object(frame.astype(str), index=True).to_numpy().tobytes())
    return h.hexdigest()[:24]


def ids_digest(ids: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(ids, dtype=np.int64).tobytes()).hexdigest()[:24]


@dataclass
class StageRecord:
    """One stage's resume record: ``stages/<name>.json``."""

    name: str
    key: str
    digest: str
    seconds: float
    finished_at: float
    outputs: list[str]
    summary: dict[str, Any]
    inputs: dict[str, Any] = field(default_factory=dict)
    ran: bool = True  # this run executed it (False: reused from an earlier run)

    def to_json(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out.pop("ran")
        return out

    @classmethod
    def read(cls, path: Path) -> StageRecord | None:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            return cls(**{k: data[k] for k in ("name", "key", "digest", "seconds", "finished_at", "outputs",
                                                "summary")}, inputs=data.get("inputs", {}), ran=False)
        except (OSError, ValueError, KeyError, TypeError):
            return None  # missing or unreadable: the stage runs


class _Runner:
    """Runs stages in order, skipping those whose inputs are unchanged and outputs present."""

    def __init__(self, output_dir: Path, *, force: set[str], log: Callable[[str], None]):
        self.output_dir = output_dir
        self.force = force
        self.log = log
        self.records: dict[str, StageRecord] = {}

    def path(self, name: str) -> Path:
        return self.output_dir / "stages" / f"{name}.json"

    def run(self, name: str, inputs: dict[str, Any], fn: Callable[[], tuple[list[str], dict, str | None]]) -> StageRecord:
        index = STAGES.index(name) + 1
        key = digest({"stage": name, **inputs})
        old = StageRecord.read(self.path(name))
        if (old is not None and old.key == key and name not in self.force
                and all((self.output_dir / o).exists() for o in old.outputs)):
            self.log(f"[{index}/{len(STAGES)}] {name}: up to date (ran in {_fmt_seconds(old.seconds)}), skipped")
            self.records[name] = old
            return old
        reason = "forced" if name in self.force else "first run" if old is None else \
            "inputs changed" if old.key != key else "outputs missing"
        self.log(f"[{index}/{len(STAGES)}] {name} ... ({reason})")
        # no record while the stage runs: if it fails half-way, its half-written outputs are never reused
        self.path(name).unlink(missing_ok=True)
        start = time.perf_counter()
        outputs, summary, content = fn()
        seconds = time.perf_counter() - start
        record = StageRecord(name=name, key=key, digest=content or digest([key, uuid.uuid4().hex]),
                             seconds=round(seconds, 3), finished_at=time.time(), outputs=list(outputs),
                             summary=summary, inputs=inputs, ran=True)
        write_json_atomic(self.path(name), record.to_json())
        self.records[name] = record
        self.log(f"      {name} done in {_fmt_seconds(seconds)}")
        return record


def _fmt_seconds(s: float) -> str:
    return f"{s:.1f} s" if s < 120 else f"{s / 60:.1f} min"


# ----------------------------------------------------------------------------------------------
# results


@dataclass
class PipelineResult:
    """What a pipeline run produced; every path lies under ``output_dir``."""

    output_dir: Path
    config: PipelineConfig
    stages: dict[str, StageRecord]
    accuracy: pd.DataFrame
    report_html: Path
    report_md: Path
    baseline_dir: Path
    models: dict[str, Path]
    subsets: dict[str, dict[str, Any]]
    ensembles: dict[str, dict[str, Any]]
    seconds: float = 0.0

    @property
    def ran(self) -> list[str]:
        """Stages this run executed (the others were up to date)."""
        return [n for n, r in self.stages.items() if r.ran]

    @property
    def skipped(self) -> list[str]:
        return [n for n, r in self.stages.items() if not r.ran]


# ----------------------------------------------------------------------------------------------
# data helpers


def _load_prepared(path: Path):
    """A prepared split saved by the data stage, in memory (no datasets cache files)."""
    import datasets
    import pyarrow.parquet as pq

    return datasets.Dataset(pq.read_table(path))


def _save_prepared(ds, path: Path) -> None:
    from ._io import write_table_atomic

    table = ds.with_format("arrow")[:]
    # keep the datasets features (ClassLabel names) in the file's metadata
    meta = dict(table.schema.metadata or {})
    meta[b"huggingface"] = json.dumps({"info": {"features": ds.features.to_dict()}}).encode()
    write_table_atomic(path, table.replace_schema_metadata(meta))


def _spec(summary: dict[str, Any]):
    from .data import LabelSpec

    return LabelSpec(text_columns=list(summary["text_columns"]), label_column=summary["label_column"],
                     label_names=list(summary["label_names"]))


def _gold(ds, spec) -> np.ndarray:
    return np.asarray(ds[spec.label_column], dtype=np.int64)


def _predict(trainer, ds, spec, *, max_length: int, record_split: str | None = None) -> np.ndarray:
    """Logits of ``trainer.model`` on ``ds`` (rows in order); records ``record_split`` dynamics if named."""
    from .data import tokenize

    tok = tokenize(ds, trainer.processing_class, spec, max_length=max_length)
    recording = getattr(trainer, "record_eval_dynamics", False)
    if hasattr(trainer, "record_eval_dynamics"):
        trainer.record_eval_dynamics = bool(record_split) and recording
    try:
        out = trainer.predict(tok, metric_key_prefix=record_split or "test")
    finally:
        if hasattr(trainer, "record_eval_dynamics"):
            trainer.record_eval_dynamics = recording
    logits = out.predictions[0] if isinstance(out.predictions, tuple) else out.predictions
    return np.asarray(logits, dtype=np.float32)


def _save_predictions(path: Path, **arrays: np.ndarray | None) -> None:
    from ._io import atomic_write

    present = {k: v for k, v in arrays.items() if v is not None}

    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:
            np.savez(f, **present)

    atomic_write(path, write)


def load_predictions(path: Path) -> dict[str, np.ndarray]:
    with np.load(path) as data:
        return {k: data[k] for k in data.files}


# ----------------------------------------------------------------------------------------------
# the stages


class _Pipeline:
    def __init__(self, config: PipelineConfig, *, force: set[str], log: Callable[[str], None], progress: bool):
        self.config = config
        self.out = Path(config.output_dir)
        self.runner = _Runner(self.out, force=force, log=log)
        self.log = log
        self.progress = progress

    # -- helpers
    def rec(self, name: str) -> StageRecord:
        return self.runner.records[name]

    def split(self, name: str):
        return _load_prepared(self.out / "data" / f"{name}.parquet")

    @property
    def spec(self):
        return _spec(self.rec("data").summary)

    def training_args(self, focus: bool = False) -> dict[str, Any]:
        args = {"seed": self.config.seed}
        if focus:
            args.update(FOCUS_DEFAULTS)
        args.update(self.config.training_args)
        if focus:
            args.update(self.config.focus_training_args)
        return args

    def bar(self, iterable: Iterable, desc: str, total: int | None = None):
        from tqdm.auto import tqdm

        return tqdm(iterable, desc=desc, total=total, disable=not self.progress, leave=False)

    # -- 1 data
    def data(self) -> StageRecord:
        c = self.config
        inputs = {"dataset": _describe_data(c.dataset), "validation": _describe_data(c.validation),
                  "test": _describe_data(c.test), "text_columns": c.text_columns, "label_column": c.label_column,
                  "class_names": c.class_names}

        def run():
            from .train.baseline import load_split

            train, spec = load_split(c.dataset, split="train", text_columns=c.text_columns,
                                     label_column=c.label_column, label_names=c.class_names)
            splits = {"train": train}
            splits["validation"], _ = load_split(c.validation, split="validation", spec=spec, what="validation set")
            if c.test is not None:
                splits["test"], _ = load_split(c.test, split="test", spec=spec, what="test set")
            outputs, rows, digests = [], {}, {}
            for name, ds in splits.items():
                path = self.out / "data" / f"{name}.parquet"
                _save_prepared(ds, path)
                outputs.append(str(path.relative_to(self.out)))
                rows[name] = len(ds)
                digests[name] = frame_digest(ds.to_pandas())
            summary = {"rows": rows, "digests": digests, "text_columns": spec.text_columns,
                       "label_column": spec.label_column, "label_names": spec.label_names,
                       "columns": train.column_names}
            return outputs, summary, digest([digests, summary["label_names"], summary["text_columns"]])

        return self.runner.run("data", inputs, run)

    # -- 2 baseline
    def baseline(self) -> StageRecord:
        c = self.config
        directory = self.out / "baseline"
        inputs = {"data": self.rec("data").digest, "model": _describe_model(c.model),
                  "training_args": self.training_args(), "dynamics_mode": c.dynamics_mode,
                  "max_length": c.max_length}

        def run():
            from .train.baseline import train_baseline

            spec = self.spec
            started = self.out / "stages" / "baseline.started.json"
            key = digest(inputs)
            resume = None
            if started.is_file() and json.loads(started.read_text()).get("key") == key and any(
                    directory.glob("checkpoint-*")):
                resume = True  # an interrupted run with the same inputs: continue from its last checkpoint
                self.log("      resuming the interrupted baseline from its last checkpoint")
            elif directory.exists():
                shutil.rmtree(directory)
            write_json_atomic(started, {"key": key})
            args = self.training_args()
            if str(args.get("eval_strategy", "epoch")) not in ("epoch", "steps"):
                warnings.warn("the pipeline evaluates the baseline every epoch (validation dynamics give "
                              "the validation regions): eval_strategy set to 'epoch'", stacklevel=2)
            if str(args.get("eval_strategy", "epoch")) != "steps":
                args["eval_strategy"] = "epoch"
            val = self.split("validation")
            has_test = (self.out / "data" / "test.parquet").is_file() and "test" in self.rec("data").summary["rows"]
            test = self.split("test") if has_test else None
            _seed_everything(args.get("seed", c.seed))  # the new classifier head is drawn before the Trainer seeds
            # with a test set, the baseline predicts it at each epoch end: test dynamics give test regions
            result = train_baseline(
                model=c.model, train=self.split("train"), validation=val, text_columns=spec.text_columns,
                label_column=spec.label_column, label_names=spec.label_names, output_dir=directory,
                training_args=args, dynamics_mode=c.dynamics_mode, max_length=c.max_length,
                resume_from_checkpoint=resume, test=test)
            val_logits = None
            if resume is None and str(args.get("eval_strategy")) == "epoch":
                val_logits = _final_eval_logits(directory, "validation", len(val), args)
            if val_logits is None:
                val_logits = _predict(result.trainer, val, spec, max_length=c.max_length)
            test_logits = None
            if test is not None:
                test_logits = _final_eval_logits(directory, "test", len(test), args) if resume is None else None
                if test_logits is None:
                    test_logits = _predict(result.trainer, test, spec, max_length=c.max_length, record_split="test")
            pred = self.out / "predictions" / "baseline.npz"
            _save_predictions(pred, validation=val_logits, test=test_logits)
            started.unlink(missing_ok=True)
            summary = {"output_dir": "baseline", "model_dir": "baseline/model",
                       "train_metrics": {k: float(v) for k, v in result.metrics.items()
                                         if isinstance(v, (int, float))}}
            return ["baseline/model", "baseline/training_dynamics", str(pred.relative_to(self.out))], summary, None

        return self.runner.run("baseline", inputs, run)

    # -- 3 metrics
    def metrics(self) -> StageRecord:
        inputs = {"baseline": self.rec("baseline").digest}

        def run():
            from ._io import write_frame
            from .metrics import get_metrics

            base = self.out / "baseline"
            m = get_metrics(base)
            write_frame(m, self.out / "metrics" / "train.parquet")
            outputs = ["metrics/train.parquet"]
            summary = {"regions": _counts(m["region"]), "attrs": _jsonable(dict(m.attrs)), "n": int(len(m))}
            for split in ("validation", "test"):
                regions = _split_regions(base, split)
                if regions is not None:
                    write_frame(regions.to_frame("region"), self.out / "metrics" / f"{split}_regions.parquet")
                    outputs.append(f"metrics/{split}_regions.parquet")
                    summary[f"{split}_regions"] = _counts(regions)
            return outputs, summary, frame_digest(m)

        return self.runner.run("metrics", inputs, run)

    # -- 4 maps
    def maps(self) -> StageRecord:
        c = self.config
        inputs = {"metrics": self.rec("metrics").digest, "color_by": c.map_color_by, "title": c.title}

        def run():
            from .dynamics.store import load_dynamics, load_examples
            from .maps.interactive import gold_probabilities, interactive_map
            from .maps.static import plot_data_map, save_figure

            m = self.train_metrics()
            names = self.spec.label_names
            fig = plot_data_map(m, color_by=c.map_color_by, label_names=names, title=c.title)
            save_figure(fig, self.out / "maps" / "data_map.png", dpi=110)
            fig = plot_data_map(m, color_by="region", label_names=names, title=c.title)
            save_figure(fig, self.out / "maps" / "data_map_regions.png", dpi=110)
            dyn = load_dynamics(self.out / "baseline")
            if not np.array_equal(dyn.ids, m.index.to_numpy()):
                raise DatacartoError("the metrics and the recorded dynamics cover different examples")
            interactive_map(m, load_examples(self.out / "baseline"), gold_probs=gold_probabilities(dyn.logits, dyn.gold),
                            label_names=names, path=self.out / "maps" / "data_map.html", color_by=c.map_color_by,
                            title=f"{c.title}: data map")
            return ["maps/data_map.png", "maps/data_map_regions.png", "maps/data_map.html"], {}, None

        return self.runner.run("maps", inputs, run)

    def train_metrics(self) -> pd.DataFrame:
        m = pd.read_parquet(self.out / "metrics" / "train.parquet").set_index("row_id")
        from .metrics import REGIONS

        m["region"] = pd.Categorical(m["region"].astype(object), categories=list(REGIONS))
        m.attrs.update(self.rec("metrics").summary.get("attrs", {}))
        return m

    # -- 5 select
    def select(self) -> StageRecord:
        c = self.config
        inputs = {"metrics": self.rec("metrics").digest, "recipes": c.recipes, "control": c.control, "seed": c.seed}

        def run():
            from .selection import export_subset, focused_dataset, random_control, select

            m = self.train_metrics()
            base = self.out / "baseline"
            subsets, outputs = {}, []
            for recipe in self.bar(c.recipes, "selecting"):
                name = recipe["name"]
                params = {k: v for k, v in recipe.items() if k != "name"}
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", UserWarning)
                    ids = select(m, seed=c.seed, **params)
                if ids.size == 0:
                    raise DatacartoError(f"recipe {name!r} selects no example: loosen its criteria")
                entry = {"recipe": recipe, "n": int(ids.size), "digest": ids_digest(ids),
                         "path": f"subsets/{name}.jsonl", "regions": _counts(m.loc[ids, "region"]),
                         "labels": _label_counts(m.loc[ids, "gold"], self.spec.label_names)}
                export_subset(focused_dataset(base, ids), self.out / entry["path"])
                outputs.append(entry["path"])
                if c.control:
                    ctrl = random_control(ids, m, match_labels=True, seed=c.seed)
                    entry["control"] = {"n": int(ctrl.size), "digest": ids_digest(ctrl),
                                        "path": f"subsets/{name}.control.jsonl",
                                        "regions": _counts(m.loc[ctrl, "region"]),
                                        "labels": _label_counts(m.loc[ctrl, "gold"], self.spec.label_names)}
                    export_subset(focused_dataset(base, ctrl), self.out / entry["control"]["path"])
                    outputs.append(entry["control"]["path"])
                subsets[name] = entry
            return outputs, {"subsets": subsets}, digest(subsets)

        return self.runner.run("select", inputs, run)

    # -- 6 focus
    def units(self) -> list[tuple[str, str, str, str]]:
        """(model name, kind, recipe, subset digest) of every focused and control model."""
        out = []
        subsets = self.rec("select").summary["subsets"]
        for name in (r["name"] for r in self.config.recipes):  # config order (stored records sort their keys)
            entry = subsets[name]
            out.append((f"focused/{name}", "focused", name, entry["digest"]))
            if "control" in entry:
                out.append((f"control/{name}", "control", name, entry["control"]["digest"]))
        return out

    def focus(self) -> StageRecord:
        c = self.config
        data = self.rec("data")
        source = self.rec("baseline").digest if c.focus_init == "baseline" else _describe_model(c.model)
        common = {"init": c.focus_init, "source": source, "training_args": self.training_args(focus=True),
                  "max_length": c.max_length, "data": data.digest}
        inputs = {"select": self.rec("select").digest, **common}

        def run():
            units = self.units()
            done, outputs = {}, []
            for model_name, kind, recipe, subset_digest in units:
                done[model_name] = self._focus_unit(model_name, kind, recipe, {**common, "subset": subset_digest})
                outputs += [f"models/{model_name}/model", f"predictions/{model_name}.npz"]
            return outputs, {"models": done}, digest({k: v["token"] for k, v in done.items()})

        return self.runner.run("focus", inputs, run)

    def _focus_unit(self, model_name: str, kind: str, recipe: str, unit_inputs: dict) -> dict[str, Any]:
        c = self.config
        key = digest(unit_inputs)
        record_path = self.out / "stages" / "focus" / f"{model_name.replace('/', '__')}.json"
        directory = self.out / "models" / model_name
        pred = self.out / "predictions" / f"{model_name}.npz"
        try:
            old = json.loads(record_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            old = None
        if old and old.get("key") == key and directory.is_dir() and pred.is_file() and "focus" not in self.runner.force:
            self.log(f"      {model_name}: up to date, reused")
            return {"token": old["token"], "seconds": old["seconds"], "n": old["n"], "ran": False}
        entry = self.rec("select").summary["subsets"][recipe]
        path = self.out / (entry["path"] if kind == "focused" else entry["control"]["path"])
        n = entry["n"] if kind == "focused" else entry["control"]["n"]
        self.log(f"      {model_name}: training on {n} examples (init: {c.focus_init})")
        record_path.unlink(missing_ok=True)
        if directory.exists():
            shutil.rmtree(directory)
        start = time.perf_counter()
        spec = self.spec
        from .train.focused import train_focused

        _seed_everything(self.training_args(focus=True).get("seed", c.seed))
        result = train_focused(self.out / "baseline", path, init=c.focus_init,
                               model=c.model if c.focus_init == "pretrained" else None, output_dir=directory,
                               training_args=self.training_args(focus=True), label_column="label",
                               max_length=c.max_length)
        val_logits = _predict(result.trainer, self.split("validation"), spec, max_length=c.max_length)
        test_logits = None
        if (self.out / "data" / "test.parquet").is_file() and "test" in self.rec("data").summary["rows"]:
            test_logits = _predict(result.trainer, self.split("test"), spec, max_length=c.max_length)
        _save_predictions(pred, validation=val_logits, test=test_logits)
        seconds = round(time.perf_counter() - start, 3)
        record = {"key": key, "token": uuid.uuid4().hex[:16], "seconds": seconds, "n": n, "inputs": unit_inputs}
        write_json_atomic(record_path, record)
        return {"token": record["token"], "seconds": seconds, "n": n, "ran": True}

    # -- 7 ensemble
    def ensemble(self) -> StageRecord:
        c = self.config
        inputs = {"baseline": self.rec("baseline").digest, "focus": self.rec("focus").digest,
                  "data": self.rec("data").digest, "combine": c.ensemble_combine, "tune": c.ensemble_tune}

        def run():
            gold = _gold(self.split("validation"), self.spec)
            preds = {name: load_predictions(self.out / "predictions" / f"{name}.npz") for name in self.model_names()}
            plans = self.ensemble_plans()
            from .train.ensemble import combine_logits, tune_weights

            ensembles, outputs = {}, []
            for name, members in self.bar(plans.items(), "ensembles", total=len(plans)):
                val = np.stack([preds[m]["validation"] for m in members])
                info = {}
                if c.ensemble_tune:  # weights chosen on validation only; test never seen here
                    weights, info = tune_weights(val, gold, combine=c.ensemble_combine)
                else:
                    weights = np.full(len(members), 1.0 / len(members))
                arrays = {"validation": combine_logits(val, weights, c.ensemble_combine)}
                if all("test" in preds[m] for m in members):
                    arrays["test"] = combine_logits(np.stack([preds[m]["test"] for m in members]), weights,
                                                    c.ensemble_combine)
                path = self.out / "predictions" / f"{name}.npz"
                _save_predictions(path, **arrays)
                outputs.append(str(path.relative_to(self.out)))
                ensembles[name] = {"members": members, "weights": [float(w) for w in weights],
                                   "combine": c.ensemble_combine, "tuned": c.ensemble_tune,
                                   "tuning": _jsonable({k: info[k] for k in ("method", "objective", "accuracy",
                                                                             "log_loss") if k in info})}
            write_json_atomic(self.out / "ensembles.json", ensembles)
            outputs.append("ensembles.json")
            return outputs, {"ensembles": ensembles}, None

        return self.runner.run("ensemble", inputs, run)

    def ensemble_plans(self) -> dict[str, list[str]]:
        """Ensemble name -> member model names: baseline + each focused / control model, + all focused."""
        plans = {}
        for model_name, kind, recipe, _ in self.units():
            prefix = "ensemble" if kind == "focused" else "ensemble-control"
            plans[f"{prefix}/{recipe}"] = ["baseline", model_name]
        focused = [u[0] for u in self.units() if u[1] == "focused"]
        if len(focused) > 1:
            plans["ensemble/all"] = ["baseline", *focused]
        return plans

    def model_names(self) -> list[str]:
        return ["baseline", *[u[0] for u in self.units()]]

    def all_prediction_names(self) -> list[str]:
        return [*self.model_names(), *self.ensemble_plans()]

    def split_regions(self, split: str) -> np.ndarray | None:
        """Regions of the validation or test examples as the metrics stage wrote them (None: not recorded)."""
        path = self.out / "metrics" / f"{split}_regions.parquet"
        if not path.is_file():
            return None
        return pd.read_parquet(path).set_index("row_id")["region"].to_numpy(dtype=object)

    # -- 8 evaluate
    def evaluate(self) -> StageRecord:
        inputs = {"ensemble": self.rec("ensemble").digest, "focus": self.rec("focus").digest,
                  "baseline": self.rec("baseline").digest, "metrics": self.rec("metrics").digest}

        def run():
            spec = self.spec
            names = self.all_prediction_names()
            preds = {n: load_predictions(self.out / "predictions" / f"{n}.npz") for n in names}
            val_gold = _gold(self.split("validation"), spec)
            regions = self.split_regions("validation")
            test_gold = test_regions = None
            if all("test" in p for p in preds.values()) and (self.out / "data" / "test.parquet").is_file():
                test_gold = _gold(self.split("test"), spec)
                test_regions = self.split_regions("test")
                if test_regions is not None and len(test_regions) != len(test_gold):
                    test_regions = None
            table = accuracy_table({n: p["validation"] for n, p in preds.items()}, val_gold, regions,
                                   test={n: p["test"] for n, p in preds.items()} if test_gold is not None else None,
                                   test_gold=test_gold, test_regions=test_regions)
            from ._io import write_frame

            write_frame(table, self.out / "evaluation" / "accuracy.csv", index=True)
            return ["evaluation/accuracy.csv"], {"accuracy": _jsonable(table.reset_index().to_dict("records"))}, None

        return self.runner.run("evaluate", inputs, run)

    # -- 9 report
    def report(self) -> StageRecord:
        c = self.config
        upstream = {n: self.rec(n).digest for n in STAGES[:-1]}
        config = {k: v for k, v in c.to_dict().items() if k != "output_dir"}  # a moved run stays up to date
        inputs = {"upstream": upstream, "config": config,
                  # when each stage last ran: the report shows their times, so any stage that ran redoes it
                  # (seconds alone can repeat to the millisecond)
                  "ran": {n: [self.rec(n).seconds, self.rec(n).finished_at] for n in STAGES[:-1]}}

        def run():
            from .report import write_report

            html_path, md_path = write_report(self.out, title=c.title, noise_column=c.noise_column)
            return [html_path.name, md_path.name], {}, None

        return self.runner.run("report", inputs, run)


def _seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch, so a model's freshly initialised layers are the same every run."""
    from transformers import set_seed

    set_seed(int(seed))


def _final_eval_logits(run_dir: Path, split: str, n: int, args: dict) -> np.ndarray | None:
    """The final model's logits on ``split``, as recorded at the last epoch end (None: predict again).

    With one evaluation (or test prediction) per epoch and no best-model reloading, the last
    recorded epoch *is* the final model on that set, so predicting it again would only repeat that pass.
    """
    from .dynamics.store import load_dynamics

    try:
        dyn = load_dynamics(run_dir, split)
    except DatacartoError:
        return None
    from .train.baseline import TRAINING_DEFAULTS

    epochs = float(args.get("num_train_epochs", TRAINING_DEFAULTS["num_train_epochs"]))
    if dyn.n_examples != n or not np.array_equal(dyn.ids, np.arange(n)) or dyn.epochs[-1] != int(np.ceil(epochs)) - 1:
        return None
    return np.ascontiguousarray(dyn.logits[:, -1, :], dtype=np.float32)


def _split_regions(baseline_dir: Path, split: str) -> pd.Series | None:
    """Regions of a validation or test set from the baseline's dynamics on it (None if unrecorded)."""
    from .dynamics.store import dynamics_dir, list_epoch_files
    from .evaluation import eval_regions

    if not list_epoch_files(dynamics_dir(baseline_dir, split)):
        return None
    with warnings.catch_warnings():  # one epoch: regions are degenerate, and the report says how many
        warnings.simplefilter("ignore", UserWarning)
        regions = eval_regions(baseline_dir, split=split)
    regions = pd.Series(np.asarray(regions, dtype=object), index=np.arange(len(regions)), name="region")
    regions.index.name = "row_id"
    return regions


def accuracy_table(validation: dict[str, np.ndarray], gold: np.ndarray, regions=None, *,
                   test: dict[str, np.ndarray] | None = None, test_gold: np.ndarray | None = None,
                   test_regions=None) -> pd.DataFrame:
    """One row per model: test and validation accuracy and macro-F1, overall and per region.

    Columns ``test_accuracy``, ``test_macro_f1``, ``validation_accuracy``, ``validation_macro_f1``,
    and for each region ``validation_<region>_accuracy`` and ``validation_<region>_n`` (from
    :func:`datacarto.evaluation.evaluate_by_region`), and ``test_<region>_accuracy`` and
    ``test_<region>_n`` with ``test_regions``. Test columns are NaN without a test set.
    """
    from .evaluation import evaluate_by_region
    from .metrics import REGIONS

    val = evaluate_by_region(validation, gold, regions)
    table = pd.DataFrame(index=val.index)
    t = None
    if test is not None and test_gold is not None:
        t = evaluate_by_region(test, test_gold, test_regions)
        table["test_accuracy"] = t["overall_accuracy"]
        table["test_macro_f1"] = t["overall_macro_f1"]
    else:
        table["test_accuracy"] = np.nan
        table["test_macro_f1"] = np.nan
    table["validation_accuracy"] = val["overall_accuracy"]
    table["validation_macro_f1"] = val["overall_macro_f1"]
    if regions is not None:
        for region in REGIONS:
            table[f"validation_{region}_accuracy"] = val[f"{region}_accuracy"]
            table[f"validation_{region}_n"] = val[f"{region}_n"]
    if t is not None and test_regions is not None:
        for region in REGIONS:
            table[f"test_{region}_accuracy"] = t[f"{region}_accuracy"]
            table[f"test_{region}_n"] = t[f"{region}_n"]
    table.index.name = "model"
    return table


def _counts(series) -> dict[str, int]:
    from .metrics import REGIONS

    values = pd.Series(np.asarray(series, dtype=object))
    counts = values.value_counts()
    return {r: int(counts.get(r, 0)) for r in REGIONS}


def _label_counts(gold, names: list[str]) -> dict[str, int]:
    counts = np.bincount(np.asarray(gold, dtype=np.int64), minlength=len(names))
    return {names[i]: int(counts[i]) for i in range(len(names))}


def _jsonable(obj):
    return json.loads(json.dumps(obj, default=lambda o: o.item() if hasattr(o, "item") else str(o),
                                 allow_nan=True))


# ----------------------------------------------------------------------------------------------
# entry point


def run_pipeline(config: PipelineConfig | dict, *, force: Iterable[str] | bool | None = None, quiet: bool = False,
                 progress: bool = True) -> PipelineResult:
    """Run every stage of the pipeline (skipping those up to date) and write the report.

    ``force``: stage names to redo even if up to date (True: all). ``quiet``: no stage headers.
    ``progress``: tqdm bars for the pipeline's own loops (the Trainer's bars follow its
    ``disable_tqdm`` argument).
    """
    if isinstance(config, dict):
        config = PipelineConfig.from_dict(config)
    else:
        config.validate()
    if force is True:
        force = set(STAGES)
    force = set(force or ())
    unknown = sorted(force - set(STAGES))
    if unknown:
        raise DatacartoError(f"unknown stage(s) to force: {', '.join(unknown)} (stages: {', '.join(STAGES)})")
    # a forced stage redoes everything downstream (its digest changes): nothing else is needed
    out = Path(config.output_dir)
    out.mkdir(parents=True, exist_ok=True)

    def log(msg: str) -> None:
        if not quiet:
            print(msg, flush=True)

    start = time.perf_counter()
    p = _Pipeline(config, force=force, log=log, progress=progress and not quiet)
    write_json_atomic(out / "config.json", config.to_dict())
    for name in STAGES:
        getattr(p, name)()
    seconds = time.perf_counter() - start
    ran = [n for n in STAGES if p.rec(n).ran]
    log(f"done in {_fmt_seconds(seconds)} ({len(ran)} of {len(STAGES)} stages ran); report: {out / 'report.html'}")
    stored = p.rec("select").summary["subsets"]
    subsets = {r["name"]: stored[r["name"]] for r in config.recipes}
    models = {"baseline": out / "baseline" / "model"}
    models.update({name: out / "models" / name / "model" for name in p.model_names()[1:]})
    return PipelineResult(
        output_dir=out, config=config, stages=dict(p.runner.records),
        accuracy=pd.read_csv(out / "evaluation" / "accuracy.csv").set_index("model"),
        report_html=out / "report.html", report_md=out / "report.md", baseline_dir=out / "baseline",
        models=models, subsets=subsets, seconds=seconds,
        ensembles={n: p.rec("ensemble").summary["ensembles"][n] for n in p.ensemble_plans()},
    )


__all__ = ["PipelineConfig", "PipelineResult", "StageRecord", "run_pipeline", "STAGES", "DEFAULT_RECIPES",
           "accuracy_table", "load_predictions"]
