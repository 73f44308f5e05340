"""What a stage declares it reads, the resume inputs derived from that, and the config as a stage sees it.

A :class:`Stage` names the upstream stages whose results it reads, the config keys it reads (dotted
for one key of a mapping: ``training_args.seed``) and the run-folder files whose content it reads
besides. The runner hashes exactly that (:func:`key_inputs`) into the stage's resume key, and runs
the stage with a :class:`ConfigView` that lets it read only the keys it declared: a key read but not
hashed (a stale result silently reused) raises :class:`UndeclaredRead` instead.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .config import DATA_KEYS
from .hashing import describe_data, describe_model

#: How a config key naming input files enters a key: by what identifies the files (path, size, mtime).
FILE_KEYS: dict[str, Callable[[Any], Any]] = {**dict.fromkeys(DATA_KEYS, describe_data), "model": describe_model}


class UndeclaredRead(RuntimeError):
    """A stage read a config key or an upstream stage it does not declare (a bug in the stage, not bad input)."""


@dataclass(frozen=True)
class Stage:
    """One stage: its name, what it reads, its body and the type of its summary.

    ``body(ctx)`` returns (outputs relative to the run folder, summary, content digest or None).
    ``files(layout)``: run-folder files whose content the key hashes too. ``per_unit``: upstream
    stages a unit of the stage stands in for with its own inputs (focus: one model per subset of
    ``select``): a unit's key is the stage's without them, plus the unit's own inputs.
    """

    name: str
    body: Callable[[Any], Any]
    summary: type
    reads: tuple[str, ...] = ()
    config: tuple[str, ...] = ()
    files: Callable[[Any], Iterable[Path]] | None = None
    per_unit: tuple[str, ...] = ()

    def __post_init__(self):
        if not set(self.per_unit) <= set(self.reads):
            raise ValueError(f"stage {self.name!r}: per_unit {self.per_unit} must be among its reads {self.reads}")


_ABSENT = object()


def config_value(config: Any, key: str) -> Any:
    """The value of a declared key as a key hashes it (``_ABSENT`` for a dotted key not set)."""
    top, _, sub = key.partition(".")
    value = getattr(config, top)
    if sub:
        return value.get(sub, _ABSENT) if isinstance(value, Mapping) else _ABSENT
    return FILE_KEYS[top](value) if top in FILE_KEYS else value


def key_inputs(stage: Stage, config: Any, digests: Mapping[str, str], layout: Any, *,
               without: Iterable[str] = ()) -> dict[str, Any]:
    """What ``stage``'s key hashes: its config keys' values, its upstream digests, its files' contents."""
    values = {k: config_value(config, k) for k in stage.config}
    inputs = {"config": {k: v for k, v in values.items() if v is not _ABSENT},
              "reads": {n: digests[n] for n in stage.reads if n not in set(without)}}
    if stage.files is not None:
        inputs["files"] = {layout.rel(p): _file_digest(p) for p in stage.files(layout)}
    return inputs


def _file_digest(path: Path) -> str | None:
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:24]
    except FileNotFoundError:
        return None


class ConfigView:
    """The config as stage ``stage`` sees it: the declared keys read through, any other raises.

    Methods of the config run on the view (so what they read is checked too); ``read`` collects the
    keys read. A dotted key (``training_args.seed``) gives a mapping that answers for that key only.
    """

    def __init__(self, config: Any, stage: str, keys: Iterable[str]):
        whole, parts = set(), {}
        for key in keys:
            top, _, sub = key.partition(".")
            if sub:
                parts.setdefault(top, set()).add(sub)
            else:
                whole.add(top)
        for name, value in (("_config", config), ("_stage", stage), ("_whole", whole), ("_parts", parts),
                            ("read", set())):
            object.__setattr__(self, name, value)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        if name in self._whole:
            self.read.add(name)
            return getattr(self._config, name)
        if name in self._parts:
            return _Part(self, name, getattr(self._config, name), self._parts[name])
        member = getattr(type(self._config), name, None)
        if callable(member):
            return member.__get__(self, type(self))
        raise UndeclaredRead(f"stage {self._stage!r} reads config key {name!r} but does not declare it")

    def __setattr__(self, name: str, value: Any) -> None:
        raise UndeclaredRead(f"stage {self._stage!r} sets config key {name!r}: a stage only reads the config")


class _Part:
    """One declared key of a config mapping (``training_args.seed``): ``get``, ``[]`` and ``in`` for it only."""

    def __init__(self, view: ConfigView, key: str, mapping: Mapping, subs: set[str]):
        self._view, self._key, self._mapping, self._subs = view, key, mapping, subs

    def _check(self, sub: Any) -> None:
        if sub not in self._subs:
            raise UndeclaredRead(f"stage {self._view._stage!r} reads {self._key}.{sub} but declares only "
                                 f"{', '.join(f'{self._key}.{s}' for s in sorted(self._subs))}")
        self._view.read.add(f"{self._key}.{sub}")

    def get(self, sub: str, default: Any = None) -> Any:
        self._check(sub)
        return self._mapping.get(sub, default)

    def __getitem__(self, sub: str) -> Any:
        self._check(sub)
        return self._mapping[sub]

    def __contains__(self, sub: str) -> bool:
        self._check(sub)
        return sub in self._mapping

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        raise UndeclaredRead(f"stage {self._view._stage!r} reads all of config key {self._key!r} but declares "
                             f"only {', '.join(f'{self._key}.{s}' for s in sorted(self._subs))}")
