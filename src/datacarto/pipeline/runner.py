"""The one resume mechanism of the pipeline: stage records, and unit records inside a stage.

A stage runs through :meth:`Runner.run` with a key derived from its declaration
(:class:`~.declare.Stage`: the values of the config keys it reads, the digests of the stages it
reads from and the contents of the files it declares). It is skipped when ``stages/<name>.json``
holds the same key and every output it lists exists; otherwise its record is deleted, the stage
runs (seeing only the config keys it declared), and a new record is written only when it finishes
(a stage that fails half-way is never reused). A stage made of independent units (one model per
subset) runs each through :meth:`Runner.run_unit`, the same rule one level down
(``stages/<stage>/<unit>.json``), so a changed recipe retrains only its own models. See docs/pipeline.md.
"""

from __future__ import annotations

import dataclasses
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._io import write_json_atomic
from .._validation import fmt_seconds
from .declare import ConfigView, Stage, key_inputs
from .hashing import digest
from .layout import STAGES, RunLayout, read_json
from .summaries import read_summary, summary_json

#: What a stage's body returns: (outputs relative to the run folder, typed summary, content digest or None).
StageOutput = tuple[list[str], Any, "str | None"]
#: The format of stage records this version writes (1: keys written by hand in each stage; 2: declared).
RECORD_FORMAT = 2


@dataclass
class StageRecord:
    """One stage's resume record: ``stages/<name>.json`` (``summary``: the stage's summary dataclass)."""

    name: str
    key: str
    digest: str
    seconds: float
    finished_at: float
    outputs: list[str]
    summary: Any
    inputs: dict[str, Any] = field(default_factory=dict)
    ran: bool = True  # this run executed it (False: reused from an earlier run)
    format: int = RECORD_FORMAT

    def to_json(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "ran"}
        return {**out, "summary": summary_json(self.summary)}

    @classmethod
    def read(cls, path: Path) -> StageRecord | None:
        """The record in ``path``; None when it is missing or unreadable (the stage then runs)."""
        data = read_json(path)
        try:
            fields = {k: data[k] for k in ("name", "key", "digest", "seconds", "finished_at", "outputs")}
            return cls(**fields, summary=read_summary(data["name"], data["summary"]), inputs=data.get("inputs", {}),
                       ran=False, format=data.get("format", 1))
        except (KeyError, TypeError):
            return None


@dataclass
class UnitRecord:
    """One unit of a stage (e.g. one focused model): ``stages/<stage>/<unit>.json``."""

    key: str
    token: str  # new every time the unit runs: what downstream digests depend on
    seconds: float
    summary: dict[str, Any]
    ran: bool = True


class Runner:
    """Runs stages and units, skipping those whose inputs are unchanged and whose outputs exist."""

    def __init__(self, layout: RunLayout, *, force: set[str], log: Callable[[str], None]):
        self.layout = layout
        self.force = force
        self.log = log
        self.records: dict[str, StageRecord] = {}
        self.config_read: dict[str, set[str]] = {}  # the config keys each stage that ran read
        self._unit_inputs: dict[str, dict[str, Any]] = {}

    def _outputs_exist(self, outputs: list[str]) -> bool:
        return all((self.layout.root / o).exists() for o in outputs)

    def run(self, stage: Stage, config: Any,
            enter: Callable[[ConfigView, str], Any] = lambda view, key: view) -> StageRecord:
        """``stage``: its old record if up to date, else its body's result, recorded.

        The body is called with ``enter(view, key)``: what the stage receives, built from the config as
        the stage sees it and its key (by default the view itself).
        """
        name = stage.name
        head = f"[{STAGES.index(name) + 1}/{len(STAGES)}] {name}"
        digests = {n: self.records[n].digest for n in stage.reads}
        inputs = key_inputs(stage, config, digests, self.layout)
        key = digest({"stage": name, **inputs})
        if stage.per_unit:
            self._unit_inputs[name] = key_inputs(stage, config, digests, self.layout, without=stage.per_unit)
        path = self.layout.stage_record(name)
        old = StageRecord.read(path)
        if old is not None and old.key == key and name not in self.force and self._outputs_exist(old.outputs):
            self.log(f"{head}: up to date (ran in {fmt_seconds(old.seconds)}), skipped")
            self.records[name] = old
            return old
        reason = "forced" if name in self.force else "first run" if old is None else \
            "inputs changed" if old.key != key else "outputs missing"
        self.log(f"{head} ... ({reason})")
        path.unlink(missing_ok=True)  # no record while the stage runs
        start = time.perf_counter()
        view = ConfigView(config, name, stage.config)
        outputs, summary, content = stage.body(enter(view, key))
        seconds = time.perf_counter() - start
        if not isinstance(summary, stage.summary):
            raise TypeError(f"stage {name!r} returned a {type(summary).__name__}, not its {stage.summary.__name__}")
        # a content digest covers the summary too: later stages read both
        result = digest([content, summary_json(summary)]) if content is not None else digest([key, uuid.uuid4().hex])
        record = StageRecord(name=name, key=key, digest=result, seconds=round(seconds, 3), finished_at=time.time(),
                             outputs=list(outputs), summary=summary, inputs=inputs, ran=True)
        write_json_atomic(path, record.to_json())
        self.records[name] = record
        self.config_read[name] = set(view.read)
        self.log(f"      {name} done in {fmt_seconds(seconds)}")
        return record

    def run_unit(self, stage: str, unit: str, inputs: dict[str, Any], outputs: list[str],
                 body: Callable[[], dict[str, Any]]) -> UnitRecord:
        """Unit ``unit`` of ``stage``: reused when its inputs and ``outputs`` are unchanged, else ``body()``.

        The unit's key hashes the stage's declared inputs but its ``per_unit`` stages, and ``inputs``
        (what the unit takes from those). ``body`` returns the unit's summary. Forcing the stage
        forces every unit of it.
        """
        key = digest({**self._unit_inputs.get(stage, {}), "unit": inputs})
        path = self.layout.unit_record(stage, unit)
        old = read_json(path)
        if (isinstance(old, dict) and old.get("key") == key and stage not in self.force
                and self._outputs_exist(outputs) and {"token", "seconds", "summary"} <= set(old)):
            self.log(f"      {unit}: up to date, reused")
            return UnitRecord(key=key, token=old["token"], seconds=old["seconds"], summary=old["summary"], ran=False)
        path.unlink(missing_ok=True)
        start = time.perf_counter()
        summary = body()
        record = UnitRecord(key=key, token=uuid.uuid4().hex[:16], seconds=round(time.perf_counter() - start, 3),
                            summary=summary)
        write_json_atomic(path, {"key": key, "token": record.token, "seconds": record.seconds,
                                 "summary": summary, "inputs": inputs})
        return record
