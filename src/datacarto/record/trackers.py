"""The data map in experiment trackers: TensorBoard, MLflow and W&B, through the Trainer's own integrations.

When the Trainer reports to one of them (``report_to``), :class:`TrackerCallback` logs at each recorded
epoch the data map coloured by region (the figure ``datacarto map --png`` draws) and the share of the
examples in each region, and at the end of training the metrics table (what ``datacarto metrics --out``
writes) as an artifact. It writes through the writer or run that the Trainer's ``TensorBoardCallback``,
``MLflowCallback`` or ``WandbCallback`` opened, found on the Trainer's callback handler: no tracker
package is imported here. It sits before those callbacks, so it logs the table before they close their
runs. A tracker that fails is said once and left out; training goes on.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from transformers import TrainerCallback

from ..metrics import REGIONS
from .recorder import warn_once

TRACKERS = ("tensorboard", "mlflow", "wandb")
IMAGE = "datacarto/data_map"  # TensorBoard tag, MLflow image key, W&B key
SHARE = "datacarto/region_share/{}"  # one scalar per region: the share of the examples in it
TABLE = "datacarto_metrics.csv"
TEXT = "datacarto/regions"


def _integrations() -> dict:
    from transformers.integrations import MLflowCallback, TensorBoardCallback, WandbCallback

    return {"tensorboard": TensorBoardCallback, "mlflow": MLflowCallback, "wandb": WandbCallback}


def handler_of(callback, handler=None):
    """The Trainer's ``CallbackHandler`` holding ``callback``: ``handler``, else the one on the call stack.

    A ``TrainerCallback`` is handed no handler; the handler's ``call_event`` is a caller of its events.
    """
    if handler is not None:
        return handler
    from transformers.trainer_callback import CallbackHandler

    frame = sys._getframe(1)
    for _ in range(8):  # call_event -> on_train_begin -> install: a few frames up
        if frame is None:
            break
        owner = frame.f_locals.get("self")
        if isinstance(owner, CallbackHandler) and any(c is callback for c in owner.callbacks):
            return owner
        frame = frame.f_back
    return None


def install(recording, args, handler=None) -> TrackerCallback | None:
    """Put a :class:`TrackerCallback` for ``recording`` before the handler's tracker integrations (once).

    Returns it, or None when the Trainer reports to no tracker datacarto logs to.
    """
    report_to = getattr(args, "report_to", None) or []
    named = [t for t in ([report_to] if isinstance(report_to, str) else report_to) if t in TRACKERS]
    handler = handler_of(recording, handler)
    if handler is None:
        if named:
            warn_once(f"report_to {named}: the Trainer's callbacks were not found, so the data map is not logged "
                      "there (datacarto logs it when the Trainer calls the recording callback)")
        return None
    kinds = tuple(_integrations().values())
    places = [i for i, c in enumerate(handler.callbacks) if isinstance(c, kinds)]
    there = [c for c in handler.callbacks if isinstance(c, TrackerCallback) and c.recording is recording]
    if there or not places:
        return there[0] if there else None
    tracker = TrackerCallback(recording, handler)
    callbacks = list(handler.callbacks)
    callbacks.insert(places[0], tracker)
    handler.callbacks = callbacks  # a new list: the loop over the old one (the event under way) goes on as it was
    return tracker


def region_shares(metrics: pd.DataFrame) -> dict[str, float]:
    """The share of the examples in each region (of all of them)."""
    counts = metrics["region"].value_counts()
    return {r: float(counts.get(r, 0)) / max(len(metrics), 1) for r in REGIONS}


class TrackerCallback(TrainerCallback):
    """Logs the data map and region shares at each recorded epoch, and the metrics table at the end."""

    def __init__(self, recording, handler):
        self.recording = recording
        self.handler = handler
        self.logged = 0  # training snapshots logged

    def open_trackers(self) -> list[tuple[str, object]]:
        """(name, integration callback) of each tracker whose writer or run is open now."""
        found = []
        for callback in self.handler.callbacks:
            for name, kind in _integrations().items():
                if isinstance(callback, kind) and _is_open(name, callback):
                    found.append((name, callback))
        return found

    def _snapshots(self) -> int:
        from ..dynamics.epochs import list_epoch_files

        recorder = self.recording.recorder
        return 0 if recorder is None else len(list_epoch_files(recorder.directory))

    def on_epoch_end(self, args, state, control, **kwargs):
        recorded = self._snapshots() if state.is_world_process_zero else 0
        if recorded <= self.logged:
            return
        self.logged = recorded
        trackers = self.open_trackers()
        if trackers:
            _safely(trackers, "the data map", lambda: self._log_epoch(args, state, trackers))

    def _log_epoch(self, args, state, trackers) -> None:
        from ..dynamics.cache import get_metrics
        from ..maps.run_maps import write_run_maps

        run = self.recording.run_dir(args)
        with tempfile.TemporaryDirectory(prefix="datacarto-") as tmp, warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the learning check: said by the map's title
            png = Path(tmp) / "data_map.png"
            maps = write_run_maps(run, png=png, color_by="region", title=f"{run.resolve().name}, epoch {state.epoch:g}",
                                  dpi=100)
            image = _rgb(png)
            shares = region_shares(get_metrics(run))
        for name, callback in trackers:
            _safely([(name, callback)], "the data map",
                    lambda n=name, c=callback: _EPOCH[n](c, image, shares, state.global_step, maps.title))

    def on_train_end(self, args, state, control, **kwargs):
        if not state.is_world_process_zero or self._snapshots() == 0:
            return
        trackers = self.open_trackers()
        if trackers:
            _safely(trackers, "the metrics table", lambda: self._log_table(args, state, trackers))

    def _log_table(self, args, state, trackers) -> None:
        from .._io import write_frame
        from ..dynamics.cache import get_metrics

        with tempfile.TemporaryDirectory(prefix="datacarto-") as tmp, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            metrics = get_metrics(self.recording.run_dir(args))
            path = write_frame(metrics, Path(tmp) / TABLE)
            summary = _summary(metrics)
            for name, callback in trackers:
                _safely([(name, callback)], "the metrics table",
                        lambda n=name, c=callback: _TABLE[n](c, path, summary, state.global_step))


def _safely(trackers, what: str, log) -> None:
    try:
        log()
    except Exception as e:  # a tracker is a side channel: it never stops the training it watches
        names = ", ".join(n for n, _ in trackers)
        warn_once(f"could not log {what} to {names}: {type(e).__name__}: {e}")


def _rgb(png: Path) -> np.ndarray:
    """A PNG file as an (H, W, 3) uint8 array."""
    from matplotlib.image import imread

    image = imread(png)
    if image.dtype != np.uint8:
        image = np.round(image * 255).astype(np.uint8)
    return np.ascontiguousarray(image[..., :3])


def _summary(metrics: pd.DataFrame) -> str:
    """The region counts and shares as a Markdown table."""
    n = len(metrics)
    counts = metrics["region"].value_counts()
    rows = [f"| {r} | {int(counts.get(r, 0))} | {counts.get(r, 0) / max(n, 1):.1%} |" for r in REGIONS]
    return "\n".join([f"datacarto: {n} examples, metrics table `{TABLE}`", "", "| region | examples | share |",
                      "|---|---|---|", *rows])


def _is_open(name: str, callback) -> bool:
    if name == "tensorboard":
        return getattr(callback, "tb_writer", None) is not None
    if name == "mlflow":
        return bool(getattr(callback, "_initialized", False)) and callback._ml_flow.active_run() is not None
    wandb = getattr(callback, "_wandb", None)
    return bool(getattr(callback, "_initialized", False)) and wandb is not None and wandb.run is not None


# -- each tracker's calls


def _tensorboard_epoch(callback, image, shares, step, caption) -> None:
    writer = callback.tb_writer
    writer.add_image(IMAGE, image, step, dataformats="HWC")
    for region, share in shares.items():
        writer.add_scalar(SHARE.format(region), share, step)
    writer.flush()


def _tensorboard_table(callback, path, summary, step) -> None:  # TensorBoard keeps no files: beside its events
    writer = callback.tb_writer
    shutil.copyfile(path, Path(writer.get_logdir()) / TABLE)
    writer.add_text(TEXT, summary, step)
    writer.flush()


def _mlflow_epoch(callback, image, shares, step, caption) -> None:
    mlflow = callback._ml_flow
    mlflow.log_metrics({SHARE.format(r): s for r, s in shares.items()}, step=step)
    mlflow.log_image(image, key=IMAGE, step=step)


def _mlflow_table(callback, path, summary, step) -> None:
    callback._ml_flow.log_artifact(str(path), artifact_path="datacarto")


def _wandb_epoch(callback, image, shares, step, caption) -> None:
    wandb = callback._wandb
    wandb.run.log({IMAGE: wandb.Image(image, caption=caption), **{SHARE.format(r): s for r, s in shares.items()},
                   "train/global_step": step})  # the step WandbCallback's metrics are drawn against


def _wandb_table(callback, path, summary, step) -> None:
    wandb = callback._wandb
    artifact = wandb.Artifact(f"datacarto-metrics-{wandb.run.id}", type="datacarto-metrics", description=summary)
    artifact.add_file(str(path), name=TABLE)
    wandb.run.log_artifact(artifact)


_EPOCH = {"tensorboard": _tensorboard_epoch, "mlflow": _mlflow_epoch, "wandb": _wandb_epoch}
_TABLE = {"tensorboard": _tensorboard_table, "mlflow": _mlflow_table, "wandb": _wandb_table}
