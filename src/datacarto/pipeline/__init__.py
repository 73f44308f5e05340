"""The whole datacarto workflow in one call: ``run_pipeline(PipelineConfig(...))``.

Stages, in order (each prints ``[i/10] name ...``)::

    data      load and validate train/validation/test; prepared copies in data/*.parquet
    baseline  fine-tune the model on all training data, recording dynamics (train, validation, test)
    metrics   per-example metrics and regions (train; validation regions from its eval dynamics)
    maps      data map PNG and the interactive HTML map
    select    one focused subset per recipe, plus a random control of the same size and label mix
    focus     fine-tune one model per subset (focused and control)
    clean     with cleaning recipes: drop or relabel the flagged labels, retrain from the pretrained
              model beside a random-drop control (pipeline.cleaning)
    ensemble  baseline + each focused (and each control) model, weights tuned on validation
    evaluate  accuracy on test overall and on validation overall and per region, for every model
    report    report.html and report.md

Modules: :mod:`.config` (PipelineConfig and its checks), :mod:`.layout` (RunLayout: every path of
the run folder, and STAGES), :mod:`.runner` (the one resume mechanism: stage and unit records),
:mod:`.declare` (what a stage declares it reads, from which the runner derives its resume key),
:mod:`.stages`, :mod:`.models` and :mod:`.cleaning` (the stages, declared in ``stages.PIPELINE``), :mod:`.summaries`
(the typed stage summaries), :mod:`.report` (reads a run folder through a RunLayout; of the
pipeline it imports only the layout and the summaries). See docs/pipeline.md and docs/architecture.md.
"""

from __future__ import annotations

from ..evaluation import accuracy_table
from .config import (
    COMBINES,
    DEFAULT_RECIPES,
    FOCUS_INITS,
    PipelineConfig,
    check_recipes,
    check_training_args,
    training_arg_names,
)
from .context import load_predictions
from .hashing import digest, frame_digest, ids_digest
from .layout import SPLITS, STAGES, RunLayout
from .run import PipelineResult, run_pipeline
from .runner import StageRecord

__all__ = ["COMBINES", "DEFAULT_RECIPES", "FOCUS_INITS", "SPLITS", "STAGES", "PipelineConfig", "PipelineResult",
           "RunLayout", "StageRecord", "accuracy_table", "check_recipes", "check_training_args", "digest",
           "frame_digest", "ids_digest", "load_predictions", "run_pipeline", "training_arg_names"]
