"""Old import path of the run report: see :mod:`datacarto.pipeline.report`."""

from __future__ import annotations

from .pipeline.report import (
    REGION_HELP,
    RunState,
    noise_summary,
    pct,
    read_run,
    read_train_metrics,
    write_report,
)

__all__ = ["REGION_HELP", "RunState", "noise_summary", "pct", "read_run", "read_train_metrics", "write_report"]
