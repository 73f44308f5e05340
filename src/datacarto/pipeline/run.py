"""``run_pipeline``: every stage in order through one runner, and the ``PipelineResult`` it returns."""

from __future__ import annotations

import os
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from .._io import run_lock, write_json_atomic
from .._validation import fmt_seconds
from ..errors import DatacartoError
from .config import DATA_KEYS, PipelineConfig, cleaning_recipes
from .context import Context
from .layout import STAGES, RunLayout
from .models import ensemble_plans, model_names
from .request import check_request
from .runner import RECORD_FORMAT, StageRecord
from .stages import PIPELINE
from .summaries import CleanSummary, Ensemble, Subset


@dataclass
class PipelineResult:
    """What a pipeline run produced; every path lies under ``output_dir``.

    ``models``: the saved model folders by name: the baseline's, and the focused and control
    models' only with ``save_focused_models`` (their predictions are under ``predictions/`` always).
    ``stages``: every stage's record, its ``summary`` typed (``pipeline.summaries``); ``subsets`` and
    ``ensembles`` are those of the select and ensemble stages' summaries, in config order.
    """

    output_dir: Path
    config: PipelineConfig
    stages: dict[str, StageRecord]
    accuracy: pd.DataFrame
    report_html: Path
    report_md: Path
    baseline_dir: Path
    models: dict[str, Path]
    subsets: dict[str, Subset]
    ensembles: dict[str, Ensemble]
    seconds: float = 0.0
    cleaning: CleanSummary | None = None  # the clean stage's summary (None without a cleaning recipe)

    @property
    def ran(self) -> list[str]:
        """Stages this run executed (the others were up to date)."""
        return [n for n, r in self.stages.items() if r.ran]

    @property
    def skipped(self) -> list[str]:
        """Stages reused from an earlier run."""
        return [n for n, r in self.stages.items() if not r.ran]


def _forced(force: Iterable[str] | bool | None) -> set[str]:
    if force is True:
        return set(STAGES)
    force = set(force or ())
    unknown = sorted(force - set(STAGES))
    if unknown:
        raise DatacartoError(f"unknown stage(s) to force: {', '.join(unknown)} (stages: {', '.join(STAGES)})")
    return force  # a forced stage redoes everything downstream (its digest changes): nothing else is needed


def _check_record_format(layout: RunLayout, forced: set[str]) -> None:
    """Refuse (one line) a run folder whose stage records are keyed another way, unless those stages are forced."""
    old = [name for name, record in layout.stage_records().items()
           if record.get("format", 1) != RECORD_FORMAT and name not in forced]
    if old:
        redo = "all" if set(old) | forced == set(STAGES) else ",".join(old)
        raise DatacartoError(f"{layout.root}: the records of stage(s) {', '.join(old)} were written by another "
                             f"datacarto version, whose resume keys this one cannot check: rerun with --force {redo}")


def _check_local_inputs(config: PipelineConfig) -> None:
    """The local model folder and data files, checked before the run folder is written to: a bad one leaves nothing."""
    from ..data import DATA_SUFFIXES, load_table
    from ..models import check_model_path

    check_model_path(config.model)
    for key in DATA_KEYS:
        value = getattr(config, key)
        if isinstance(value, (str, os.PathLike)) and (Path(value).suffix.lower() in DATA_SUFFIXES
                                                      or Path(value).is_dir()):
            load_table(value)  # datasets keeps the table it built: the data stage reads it again at no cost


def run_pipeline(config: PipelineConfig | dict, *, force: Iterable[str] | bool | None = None, quiet: bool = False,
                 progress: bool = True) -> PipelineResult:
    """Run every stage of the pipeline (skipping those up to date) and write the report.

    Parameters
    ----------
    config : PipelineConfig or dict
        The run's options (a dict is validated with :meth:`PipelineConfig.from_dict`).
    force : iterable of str or bool, optional
        Stage names to redo even if up to date (True: all).
    quiet : bool, default False
        No stage headers.
    progress : bool, default True
        tqdm bars for the pipeline's own loops (the Trainer's bars follow its ``disable_tqdm``).

    Returns
    -------
    PipelineResult
    """
    config = PipelineConfig.from_dict(config) if isinstance(config, dict) else config.validate()
    forced = _forced(force)
    _check_local_inputs(config)  # the model folder and data files: a bad one leaves nothing
    checked = check_request(config)  # the training data against the request: before anything is written

    def log(msg: str) -> None:
        if not quiet:
            print(msg, flush=True)

    start = time.perf_counter()
    ctx = Context(config, force=forced, log=log, progress=progress and not quiet, checked=checked)
    layout = ctx.layout
    with run_lock(layout.root, what="another datacarto run"):  # two runs into one folder: the second is refused
        _check_record_format(layout, forced)
        write_json_atomic(layout.config_json, config.to_dict())
        for stage in PIPELINE:
            ctx.run(stage)
    seconds = time.perf_counter() - start
    ran = [n for n in STAGES if ctx.rec(n).ran]
    log(f"done in {fmt_seconds(seconds)} ({len(ran)} of {len(STAGES)} stages ran); report: {layout.report_html}")
    names = [*model_names(ctx), *ctx.rec("clean").summary.model_names()]
    models = {name: layout.model_dir(name) / "model" for name in names}
    models = {name: path for name, path in models.items() if path.is_dir()}  # focused, cleaned: save_focused_models
    return PipelineResult(
        output_dir=layout.root, config=config, stages=dict(ctx.runner.records),
        accuracy=pd.read_csv(layout.accuracy_csv).set_index("model"),
        report_html=layout.report_html, report_md=layout.report_md, baseline_dir=layout.baseline_dir,
        models=models, subsets=ctx.rec("select").summary.in_order(), seconds=seconds,
        ensembles={n: ctx.rec("ensemble").summary.ensembles[n] for n in ensemble_plans(ctx)},
        cleaning=ctx.rec("clean").summary if cleaning_recipes(config.recipes) else None,
    )
