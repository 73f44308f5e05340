"""What every stage receives: the config, the run layout, the runner's records; and the run's data I/O.

A stage's body is a function ``body(ctx) -> (outputs, summary, content digest)`` run by
:meth:`Context.run` through the runner, with a context that sees only what the stage declares (its
config keys and upstream records). The helpers here read and write what the stages hand each other:
prepared splits (``data/*.parquet``), predictions (``predictions/*.npz``) and the metrics table;
and predict with a trained model.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .._io import atomic_write, write_table_atomic
from ..metrics import REGIONS
from .config import PipelineConfig
from .declare import ConfigView, Stage, UndeclaredRead
from .layout import RunLayout
from .runner import Runner, StageRecord

# focused/control models are not checkpointed unless asked: they are small and retrained in seconds
FOCUS_DEFAULTS = {"save_strategy": "no"}


class Context:
    """The state a stage reads: config, layout, earlier stage records, logging and progress bars."""

    def __init__(self, config: PipelineConfig, *, force: set[str], log: Callable[[str], None], progress: bool,
                 checked=None):
        self.config = config
        self.checked = checked  # the request checked against the training data (pipeline.request.CheckedRequest)
        self.layout = RunLayout(config.output_dir)
        self.runner = Runner(self.layout, force=force, log=log)
        self.log = log
        self.progress = progress
        self.stage: Stage | None = None  # in a stage's body: that stage (what it may read)
        self.key: str | None = None  # in a stage's body: its resume key
        self.derived: dict = {}  # values worked out once per run, shared by every stage's view (a shallow copy)

    def run(self, stage: Stage) -> StageRecord:
        """Run (or skip) ``stage`` through the runner; its body sees this context as the stage declares it."""
        return self.runner.run(stage, self.config, lambda view, key: self._seen_by(stage, view, key))

    def _seen_by(self, stage: Stage, view: ConfigView, key: str) -> Context:
        ctx = copy.copy(self)
        ctx.config, ctx.stage, ctx.key = view, stage, key
        return ctx

    def rec(self, name: str) -> StageRecord:
        """The record of stage ``name`` (run or reused earlier in this run); in a body, a stage it declares."""
        if self.stage is not None and name not in self.stage.reads:
            raise UndeclaredRead(f"stage {self.stage.name!r} reads stage {name!r} but does not declare it")
        return self.runner.records[name]

    def split(self, name: str):
        """A prepared split written by the data stage, as a ``datasets.Dataset``."""
        return load_prepared(self.layout.data_split(name))

    @property
    def max_length(self) -> int:
        """The config's ``max_length`` capped at the model's positions: derived, and warned about, once per run
        (every model of a run starts from the same model, so none of them warns again; the stages' views of
        this context share the value)."""
        from ..models import capped_max_length

        key = ("max_length", self.config.model, self.config.max_length)  # read through this stage's view
        if key not in self.derived:
            self.derived[key] = capped_max_length(self.config.model, self.config.max_length)
        return self.derived[key]

    def has_test(self) -> bool:
        return self.layout.data_split("test").is_file() and "test" in self.rec("data").summary.rows

    @property
    def task(self) -> str:
        """The task type the data stage resolved (its TaskSpec's)."""
        return self.spec.task

    @property
    def spec(self):
        """The TaskSpec (task, text and label columns, label names, task columns) the data stage resolved."""
        return self.rec("data").summary.spec

    def gold(self, split: str) -> np.ndarray:
        """The gold label of every unit of ``split`` (an example, a label, a word), as the baseline predicted it."""
        path = self.layout.unit_gold
        if path.is_file():
            with np.load(path) as data:
                if split in data.files:
                    return data[split]
        return np.asarray(self.split(split)[self.spec.label_column], dtype=np.int64)  # a run from before

    def training_args(self, focus: bool = False) -> dict[str, Any]:
        """The baseline's TrainingArguments fields, or (``focus``) the focused and control models'."""
        args = {"seed": self.config.seed}
        if focus:
            args.update(FOCUS_DEFAULTS)
        args.update(self.config.training_args)
        if focus:
            args.update(self.config.focus_training_args)
        return args

    def bar(self, iterable: Iterable, desc: str, total: int | None = None):
        from tqdm.auto import tqdm

        # disable=None: no bar when stderr is not a terminal (a CI log gets no carriage returns)
        return tqdm(iterable, desc=desc, total=total, disable=None if self.progress else True, leave=False)

    def map_dir(self) -> Path:
        """The run whose training dynamics the map, regions and selection use: cross-fitted with ``folds``
        and ``dynamics: out-of-sample``, else the baseline (row ids are the same in both)."""
        c = self.config
        return self.layout.crossfit_dir if c.folds and c.dynamics == "out-of-sample" else self.layout.baseline_dir

    def seed_runs(self) -> list[Path]:
        """With ``seeds``: one run per seed, the map's own run for the seed it was trained with."""
        own = self.config.training_args.get("seed", self.config.seed)
        return [self.map_dir() if s == own else self.layout.seed_dir(s) for s in self.config.seeds or []]

    def train_metrics(self) -> pd.DataFrame:
        """The metrics table the metrics stage wrote (regions categorical, thresholds in ``attrs``)."""
        m = pd.read_parquet(self.layout.train_metrics).set_index("row_id")
        m["region"] = pd.Categorical(m["region"].astype(object), categories=list(REGIONS))
        m.attrs.update(self.rec("metrics").summary.attrs)
        return m

    def read_split_regions(self, split: str) -> np.ndarray | None:
        """Regions of the validation or test examples as the metrics stage wrote them (None: not recorded)."""
        path = self.layout.split_regions(split)
        if not path.is_file():
            return None
        return pd.read_parquet(path).set_index("row_id")["region"].to_numpy(dtype=object)


# ----------------------------------------------------------------------------------------------
# prepared splits and predictions


def load_prepared(path: Path):
    """A prepared split saved by the data stage, in memory (no datasets cache files)."""
    import datasets
    import pyarrow.parquet as pq

    return datasets.Dataset(pq.read_table(path))


def save_prepared(ds, path: Path) -> None:
    """Write a ``datasets.Dataset`` as Parquet, its features (ClassLabel names) in the file's metadata."""
    table = ds.with_format("arrow")[:]
    meta = dict(table.schema.metadata or {})
    meta[b"huggingface"] = json.dumps({"info": {"features": ds.features.to_dict()}}).encode()
    write_table_atomic(path, table.replace_schema_metadata(meta))


def save_predictions(path: Path, **arrays: np.ndarray | None) -> None:
    """Write the given logits (``validation=``, ``test=``; None left out) as one ``.npz``, atomically."""
    present = {k: v for k, v in arrays.items() if v is not None}

    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:
            np.savez(f, **present)

    atomic_write(path, write)


def load_predictions(path: Path) -> dict[str, np.ndarray]:
    """The arrays of a predictions file: split name -> (n, C) logits."""
    with np.load(path) as data:
        return {k: data[k] for k in data.files}


def predict(trainer, ds, spec, *, max_length: int) -> tuple[np.ndarray, np.ndarray]:
    """(gold, logits) of every unit of ``ds`` (in unit order) with ``trainer.model``; nothing is recorded.

    ``max_length``: the run's cap (:attr:`Context.max_length`, capped there once per run), taken as it is."""
    from ..record.predict import predict_split
    from ..tasks import tokenize_task

    return predict_split(trainer, tokenize_task(ds, trainer.processing_class, spec, max_length=max_length),
                         task=spec.task)


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch, so a model's freshly initialised layers are the same every run."""
    from transformers import set_seed

    set_seed(int(seed))


# ----------------------------------------------------------------------------------------------
# summaries


def region_counts(series) -> dict[str, int]:
    """Examples per region, every region named (0 when empty)."""
    counts = pd.Series(np.asarray(series, dtype=object)).value_counts()
    return {r: int(counts.get(r, 0)) for r in REGIONS}


def label_counts(gold, names: list[str]) -> dict[str, int]:
    """Examples per label name."""
    counts = np.bincount(np.asarray(gold, dtype=np.int64), minlength=len(names))
    return {names[i]: int(counts[i]) for i in range(len(names))}

