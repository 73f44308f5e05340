"""``RunLayout``: every path of a pipeline run folder, in one place, and the stage order ``STAGES``.

The stages write these paths and the report and ``datacarto demo`` read them; nobody else spells
a run-folder path. The layout knows nothing of how the files are made (no stage, no runner)::

    config.json                      the resolved config
    stages/<stage>.json              each stage's resume record
    stages/<stage>/<unit>.json       per-unit records inside a stage (one per focused/control model)
    stages/baseline.started.json     an interrupted baseline's key (resume from its checkpoint)
    data/<split>.parquet             the prepared train/validation/test splits
    baseline/                        the baseline run: model/, training_dynamics/, checkpoints
    crossfit/                        with ``folds``: the cross-fitted run (training_dynamics/ out-of-sample,
                                     eval/insample/, folds/fold_<k>/)
    seeds/seed_<S>/                  with ``seeds``: one more run per seed (recording only)
    metrics/train.parquet            per-example metrics and regions of the training data
    metrics/<split>_regions.parquet  regions of the validation and test examples
    metrics/seed_stability.parquet   with ``seeds``: region per seed, majority, stable
    maps/data_map.png, maps/data_map_regions.png, maps/data_map.html
    subsets/<recipe>.jsonl, subsets/<recipe>.control.jsonl
    models/<kind>/<recipe>/          focused and control models (model/ inside), cleaned/ and random-drop/ models
    cleaning/label_errors.parquet    the clean stage's flagged rows, most suspect first (the map's review)
    cleaning/<recipe>.corrections.csv  a cleaning recipe's flagged rows with its decision (apply-corrections' input)
    cleaning/<recipe>.jsonl, cleaning/<recipe>.control.jsonl  the corrected training data and its random-drop control
    predictions/<model>.npz          validation (and test) logits of every model and ensemble, per unit
    predictions/gold.npz             the gold label of each of those units (an example, a label, a word)
    ensembles.json                   members, weights and tuning of every ensemble
    evaluation/accuracy.csv          accuracy per model, overall and per region
    report.html, report.md
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

STAGES = ("data", "baseline", "metrics", "select", "focus", "clean", "maps", "ensemble", "evaluate", "report")
SPLITS = ("train", "validation", "test")


@dataclass(frozen=True)
class RunLayout:
    """The paths of one pipeline run folder ``root`` (nothing is created or read by building one)."""

    root: Path

    def __init__(self, root: str | os.PathLike):
        object.__setattr__(self, "root", Path(root))

    def rel(self, path: Path) -> str:
        """``path`` relative to the run folder, as stage records list their outputs."""
        return str(Path(path).relative_to(self.root))

    # -- records
    @property
    def config_json(self) -> Path:
        return self.root / "config.json"

    def stage_record(self, stage: str) -> Path:
        return self.root / "stages" / f"{stage}.json"

    def unit_record(self, stage: str, unit: str) -> Path:
        """The record of one unit of work inside a stage (``/`` in its name becomes ``__``)."""
        return self.root / "stages" / stage / f"{unit.replace('/', '__')}.json"

    @property
    def baseline_started(self) -> Path:
        return self.root / "stages" / "baseline.started.json"

    # -- data and the baseline
    def data_split(self, split: str) -> Path:
        return self.root / "data" / f"{split}.parquet"

    @property
    def baseline_dir(self) -> Path:
        return self.root / "baseline"

    @property
    def baseline_model(self) -> Path:
        return self.baseline_dir / "model"

    @property
    def baseline_dynamics(self) -> Path:
        return self.baseline_dir / "training_dynamics"

    @property
    def crossfit_dir(self) -> Path:
        return self.root / "crossfit"

    def seed_dir(self, seed: int) -> Path:
        return self.root / "seeds" / f"seed_{seed}"

    # -- metrics and maps
    @property
    def seed_stability(self) -> Path:
        return self.root / "metrics" / "seed_stability.parquet"

    @property
    def train_metrics(self) -> Path:
        return self.root / "metrics" / "train.parquet"

    def split_regions(self, split: str) -> Path:
        return self.root / "metrics" / f"{split}_regions.parquet"

    @property
    def data_map_png(self) -> Path:
        return self.root / "maps" / "data_map.png"

    @property
    def data_map_regions_png(self) -> Path:
        return self.root / "maps" / "data_map_regions.png"

    @property
    def data_map_html(self) -> Path:
        return self.root / "maps" / "data_map.html"

    # -- subsets, models, predictions
    def subset(self, recipe: str, *, control: bool = False) -> Path:
        return self.root / "subsets" / f"{recipe}{'.control' if control else ''}.jsonl"

    @property
    def label_error_flags(self) -> Path:
        """The clean stage's label-error estimate: its flagged rows, most suspect first (the map shows them)."""
        return self.root / "cleaning" / "label_errors.parquet"

    def cleaning_corrections(self, recipe: str) -> Path:
        """A cleaning recipe's flagged rows, its decision and the suggested labels (a corrections file)."""
        return self.root / "cleaning" / f"{recipe}.corrections.csv"

    def cleaning_data(self, recipe: str, *, control: bool = False) -> Path:
        """The training data a cleaning recipe (or its random-drop control) retrains on."""
        return self.root / "cleaning" / f"{recipe}{'.control' if control else ''}.jsonl"

    def model_dir(self, model_name: str) -> Path:
        """Where a model's run goes: ``baseline/`` for the baseline, ``models/<name>/`` otherwise."""
        return self.baseline_dir if model_name == "baseline" else self.root / "models" / model_name

    def predictions(self, model_name: str) -> Path:
        return self.root / "predictions" / f"{model_name}.npz"

    @property
    def unit_gold(self) -> Path:
        """Gold of every predicted unit, per split (what each ``predictions`` row is scored against)."""
        return self.root / "predictions" / "gold.npz"

    # -- results
    @property
    def ensembles_json(self) -> Path:
        return self.root / "ensembles.json"

    @property
    def accuracy_csv(self) -> Path:
        return self.root / "evaluation" / "accuracy.csv"

    @property
    def report_html(self) -> Path:
        return self.root / "report.html"

    @property
    def report_md(self) -> Path:
        return self.root / "report.md"

    # -- reading what is there
    def is_run(self) -> bool:
        """True when ``root`` is a pipeline run folder (its config and the data stage's record are there)."""
        return self.config_json.is_file() and self.stage_record(STAGES[0]).is_file()

    def stage_records(self) -> dict[str, dict]:
        """The stage records present, in stage order (stage name -> the record's JSON)."""
        records = {}
        for name in STAGES:
            record = read_json(self.stage_record(name))
            if record is not None:
                records[name] = record
        return records


def read_json(path: str | os.PathLike, default: Any = None) -> Any:
    """The JSON in ``path``, or ``default`` when it is missing or unreadable."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return default
