"""The one resume mechanism of the pipeline: stage records, and unit records inside a stage.

A stage runs through :meth:`Runner.run` with the hash of its inputs (the config keys it reads and
the digests of the stages it reads from). It is skipped when ``stages/<name>.json`` holds the same
key and every output it lists exists; otherwise its record is deleted, the stage runs, and a new
record is written only when it finishes (a stage that fails half-way is never reused). A stage
made of independent units (one model per subset) runs each through :meth:`Runner.run_unit`, the
same rule one level down (``stages/<stage>/<unit>.json``), so a changed recipe retrains only its
own models. See docs/pipeline.md.
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
from .hashing import digest
from .layout import STAGES, RunLayout, read_json

#: What a stage's body returns: (outputs relative to the run folder, summary, content digest or None).
StageOutput = tuple[list[str], dict[str, Any], "str | None"]


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
        """The record in ``path``; None when it is missing or unreadable (the stage then runs)."""
        data = read_json(path)
        try:
            return cls(**{k: data[k] for k in ("name", "key", "digest", "seconds", "finished_at", "outputs",
                                                "summary")}, inputs=data.get("inputs", {}), ran=False)
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

    def _outputs_exist(self, outputs: list[str]) -> bool:
        return all((self.layout.root / o).exists() for o in outputs)

    def run(self, name: str, inputs: dict[str, Any], body: Callable[[], StageOutput]) -> StageRecord:
        """Stage ``name``: its old record if up to date, else ``body()``'s result, recorded."""
        head = f"[{STAGES.index(name) + 1}/{len(STAGES)}] {name}"
        key = digest({"stage": name, **inputs})
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
        outputs, summary, content = body()
        seconds = time.perf_counter() - start
        record = StageRecord(name=name, key=key, digest=content or digest([key, uuid.uuid4().hex]),
                             seconds=round(seconds, 3), finished_at=time.time(), outputs=list(outputs),
                             summary=summary, inputs=inputs, ran=True)
        write_json_atomic(path, record.to_json())
        self.records[name] = record
        self.log(f"      {name} done in {fmt_seconds(seconds)}")
        return record

    def run_unit(self, stage: str, unit: str, inputs: dict[str, Any], outputs: list[str],
                 body: Callable[[], dict[str, Any]]) -> UnitRecord:
        """Unit ``unit`` of ``stage``: reused when its inputs and ``outputs`` are unchanged, else ``body()``.

        ``body`` returns the unit's summary. Forcing the stage forces every unit of it.
        """
        key = digest(inputs)
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
