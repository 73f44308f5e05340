"""One recorder for every split and both modes: buffer, checks, writing, resumable state.

The callbacks decide *when* a snapshot is taken; everything about *what* is written (which rows,
checked against which data set, at which index) is decided here, once.
"""

from __future__ import annotations

import contextlib
import contextvars
import shutil
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..dynamics.store import (
    DynamicsWriter,
    dataset_fingerprint,
    example_fingerprints,
    list_epoch_files,
    package_versions,
)
from ..errors import DatacartoError
from .distributed import gather_arrays, is_main

#: ``fill(missing_row_ids) -> (ids, gold, logits)``: eval-mode logits for rows a pass did not see.
Fill = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray, np.ndarray]]

#: How each entry point starts a new store over recorded epochs, and resumes the old one (None: it cannot).
#: "trainer": CartographyTrainer, a CartographyMixin class, train_baseline, train_crossfit;
#: "callback": CartographyCallback with a plain Trainer; "cli": ``datacarto train``; "focus": ``datacarto focus``.
STORE_OPTIONS = {
    "trainer": ("overwrite_dynamics=True", "trainer.train(resume_from_checkpoint=...)"),
    "callback": ("CartographyCallback(overwrite=True)", "trainer.train(resume_from_checkpoint=...)"),
    "cli": ("--overwrite_output_dir", "--resume_from_checkpoint"),
    "focus": (None, None),
}
_ENTRY: contextvars.ContextVar[str | None] = contextvars.ContextVar("datacarto_entry", default=None)


@contextlib.contextmanager
def entry_point(name: str):
    """Within the block, refusals to mix runs name ``name``'s options (a CLI command sets its own)."""
    if name not in STORE_OPTIONS:
        raise ValueError(f"unknown entry point {name!r}")
    token = _ENTRY.set(name)
    try:
        yield
    finally:
        _ENTRY.reset(token)


def mixing_refused(directory, holds: str, entry: str = "trainer", *, resumable: bool = False) -> str:
    """The one message that refuses a new run into ``directory`` (holding ``holds``), in the caller's terms.

    ``entry``: the recorder's own kind ("trainer" or "callback"), unless a CLI command set its own.
    ``resumable``: the same data set, so resuming is a way out too.
    """
    new, resume = STORE_OPTIONS[_ENTRY.get() or entry]
    ways = [f"resume the run ({resume})"] if resumable and resume else []
    ways.append(f"start a new store ({new})" if new else "use another output folder")
    if new and not ways[0].startswith("resume"):
        ways.insert(0, "use another output folder")
    return f"{directory} already holds {holds}: {' or '.join(ways)}, so two runs are never mixed"


class EpochBuffer:
    """Preallocated (N, C) logits for one epoch, indexed by row id: O(N x C), no appends.

    Writing a row twice keeps the last value, which also drops the distributed sampler's
    padding duplicates.
    """

    def __init__(self, n_examples: int, num_labels: int | None = None):
        self.logits = None if num_labels is None else np.full((n_examples, num_labels), np.nan, dtype=np.float32)
        self.gold = np.full(n_examples, -1, dtype=np.int64)
        self.seen = np.zeros(n_examples, dtype=bool)

    def add(self, row_ids: np.ndarray, gold: np.ndarray, logits: np.ndarray) -> None:
        if self.logits is None:  # classes known at the first batch (choices, tags, label pairs)
            self.logits = np.full((len(self.seen), logits.shape[1]), np.nan, dtype=np.float32)
        self.logits[row_ids] = logits
        self.gold[row_ids] = gold
        self.seen[row_ids] = True

    def reset(self) -> None:
        if self.logits is not None:
            self.logits.fill(np.nan)
        self.gold.fill(-1)
        self.seen.fill(False)

    @property
    def count(self) -> int:
        return int(self.seen.sum())

    def take(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        idx = np.flatnonzero(self.seen)
        if self.logits is None:
            return idx, self.gold[idx], np.empty((0, 0), np.float32)
        return idx, self.gold[idx], self.logits[idx]

    def state_dict(self) -> dict[str, np.ndarray]:
        """The rows seen so far (what a checkpoint must keep to finish this epoch on resume)."""
        ids, gold, logits = self.take()
        return {"ids": ids, "gold": gold, "logits": logits}

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        self.reset()
        if len(state["ids"]):
            self.add(state["ids"], state["gold"], state["logits"])


class SplitRecorder:
    """Writes one split's examples, manifest and snapshots (rank 0), for any mode.

    Parameters
    ----------
    directory : path
        The split's folder (``training_dynamics/`` or ``training_dynamics/eval/<split>/``).
    mode : str
        ``"training_pass"`` or ``"epoch_end"``, stored in the manifest.
    meta : dict
        Manifest fields (model, dataset, split, ...); None values are left out.
    """

    def __init__(self, directory: str | Path, *, mode: str, meta: dict[str, Any], extra_columns: tuple = ()):
        self.writer = DynamicsWriter(directory)
        self.extra_columns = tuple(extra_columns)  # the last len(extra_columns) logit columns are these
        self.mode = mode
        self.meta = meta
        self.units = None  # Units of a task with several per row (stored with a sub_id)
        self.expected_gold: np.ndarray | None = None  # each unit's label in the data handed to the Trainer

    @property
    def directory(self) -> Path:
        return self.writer.directory

    @property
    def has_examples(self) -> bool:
        return (self.directory / "examples.parquet").is_file()

    # -- the start of a recording
    def check_folder(self, fingerprint: str, *, resume: bool, overwrite: bool, entry: str = "trainer") -> None:
        """Refuse to mix runs: a new run into a folder holding recorded epochs needs overwrite or resume.

        ``entry``: whose options the refusal names (:data:`STORE_OPTIONS`)."""
        epochs = list_epoch_files(self.directory)
        if not epochs or overwrite:
            return
        dataset = self.meta.get("dataset")
        self.writer.check_fingerprint(fingerprint, dataset=dataset, refusal=lambda holds: mixing_refused(
            self.directory, holds, entry))
        if not resume:
            raise DatacartoError(mixing_refused(self.directory, f"{len(epochs)} recorded epoch(s) of this data set",
                                                entry, resumable=True))

    def begin(self, examples: pd.DataFrame, labels, label_names: list[str] | None,
              text_columns: list[str], *, resume_from: int | None = None, overwrite: bool = False,
              extra: dict[str, Any] | None = None, units=None, entry: str = "trainer") -> None:
        """Check the data set against the folder, then write examples and manifest (rank 0).

        ``resume_from``: the first snapshot index this run writes; later snapshots of an earlier
        run are removed. None: a new run, which starts an empty store. ``units``: the task's units
        when a row holds several (their ids are what :meth:`write` receives).
        """
        self.units = units
        if not is_main():
            return
        cols = [c for c in text_columns if c in examples.columns]
        fp_frame = examples[cols].assign(__label=labels) if cols else pd.DataFrame({"__label": labels})
        fps = example_fingerprints(fp_frame)
        fingerprint = dataset_fingerprint(fps)
        self.check_folder(fingerprint, resume=resume_from is not None, overwrite=overwrite, entry=entry)
        if resume_from is None and self.directory.exists():
            _remove_tree(self.directory)
        elif resume_from is not None:
            self.drop_snapshots(lambda index, snap: index >= resume_from)
        self.writer.write_examples(np.arange(len(labels)), fps, labels, examples)
        if units is not None:
            extra = {**(extra or {}), "n_units": units.n}
        manifest = {"mode": self.mode, "n_examples": int(len(labels)), "dataset_fingerprint": fingerprint,
                    "text_columns": cols, "versions": package_versions(), **(extra or {})}
        if label_names:
            manifest["label_names"] = list(label_names)
            manifest["num_labels"] = len(label_names)
        manifest.update({k: v for k, v in self.meta.items() if v is not None})
        self.writer.update_manifest(**manifest)

    def drop_snapshots(self, stale: Callable[[int, dict], bool]) -> list[int]:
        """Remove the snapshots (files and manifest entries) for which ``stale(index, entry)`` holds."""
        snapshots = self.writer.manifest.get("snapshots", {})
        files = list_epoch_files(self.directory)
        gone = sorted(i for i in set(files) | {int(k) for k in snapshots} if stale(i, snapshots.get(str(i), {})))
        if not gone:
            return []
        for index in gone:
            if index in files:
                files[index].unlink()
            snapshots.pop(str(index), None)
        self.writer.update_manifest(snapshots=snapshots, epochs=sorted(int(k) for k in snapshots))
        return gone

    # -- snapshots
    def next_eval_index(self, global_step: int) -> int:
        """Evaluations are numbered in order: the count of earlier snapshots (by global step)."""
        snapshots = self.writer.manifest.get("snapshots", {}) if is_main() else {}
        return sum(1 for s in snapshots.values() if (s.get("global_step") or 0) < global_step)

    def write(self, index: int, ids: np.ndarray, gold: np.ndarray, logits: np.ndarray, *,
              epoch: float | None, global_step: int | None, n_expected: int | None = None,
              fill: Fill | None = None, gathered: bool = False) -> bool:
        """Gather every rank's rows and write snapshot ``index`` (rank 0); True if written.

        ``gathered``: the arrays already hold every rank's rows (then only rank 0 needs to call).
        With ``n_expected``, rows 0..n_expected-1 must all be present: rows the pass did not see
        (``dataloader_drop_last``, a sampler that skips rows) are predicted by ``fill`` and
        marked in the file's ``filled`` column; without ``fill`` an incomplete snapshot is an error.
        """
        if not gathered:  # a collective: every rank calls write, or (gathered=True) none gathers here
            ids, gold, logits = gather_arrays(ids, gold, logits)
        ids, first = np.unique(ids, return_index=True)  # distributed padding: one row per id
        gold, logits = gold[first], logits[first]
        filled = None
        if n_expected is not None and len(ids) < n_expected:
            missing = np.setdiff1d(np.arange(n_expected), ids)
            if fill is None:
                raise DatacartoError(f"snapshot {index}: {len(missing)} of {n_expected} rows were not seen")
            f_ids, f_gold, f_logits = gather_arrays(*fill(missing))
            keep = np.isin(f_ids, missing)  # a row's prediction holds all its units; keep the missing ones
            f_ids, first = np.unique(f_ids[keep], return_index=True)
            f_gold, f_logits = f_gold[keep][first], f_logits[keep][first]
            if logits.size == 0:
                logits = logits.reshape(0, f_logits.shape[1])
            order = np.argsort(np.concatenate([ids, f_ids]), kind="stable")
            filled = np.concatenate([np.zeros(len(ids), bool), np.ones(len(f_ids), bool)])[order]
            ids = np.concatenate([ids, f_ids])[order]
            gold = np.concatenate([gold, f_gold])[order]
            logits = np.concatenate([logits, f_logits.astype(logits.dtype)])[order]
        self.check_gold(index, ids, gold)
        if not is_main():
            return False
        extra = None
        if self.extra_columns:
            k = logits.shape[1] - len(self.extra_columns)
            extra = {name: logits[:, k + j] for j, name in enumerate(self.extra_columns)}
            logits = logits[:, :k]
        if self.units is None:
            self.writer.write_epoch(index, ids, gold, logits, epoch=epoch, global_step=global_step, filled=filled,
                                    extra=extra)
        else:
            self.writer.write_epoch(index, self.units.row[ids], gold, logits, epoch=epoch, global_step=global_step,
                                    filled=filled, sub_ids=self.units.sub[ids], extra=extra)
        return True


    def expect(self, gold: np.ndarray) -> None:
        """The label of every unit (unit id order) in the data handed to the Trainer, checked at each write."""
        self.expected_gold = np.asarray(gold, dtype=np.int64)

    def check_gold(self, index: int, ids: np.ndarray, gold: np.ndarray) -> None:
        """The write-time invariant: the gold stored for a unit is that unit's label in the data.

        A prediction stored under another row's id (a loader's order taken for the data's) would
        break it; the run stops before the snapshot is written. Checked on every rank alike.
        """
        if self.expected_gold is None:
            return
        n = len(self.expected_gold)
        outside = (ids < 0) | (ids >= n)
        bad = int(outside.sum()) + int((self.expected_gold[ids[~outside]] != np.asarray(gold)[~outside]).sum())
        if bad:
            split = self.meta.get("split") or self.directory.name
            raise DatacartoError(
                f"the {split} split's snapshot {index}: the gold stored for {bad} of {len(ids)} "
                f"{self.meta.get('unit') or 'example'}s differs from their label in the data: predictions are not "
                "keyed by their rows; nothing of this snapshot was written")


def _remove_tree(directory: Path) -> None:
    """Remove an old store: renamed away first, so a crash never leaves half of it."""
    trash = directory.with_name(f".{directory.name}.old")
    if trash.exists():
        shutil.rmtree(trash)
    directory.rename(trash)
    shutil.rmtree(trash)


def warn_once(message: str) -> None:
    """A warning from rank 0 only (every rank would repeat it)."""
    if is_main():
        warnings.warn(message, stacklevel=3)
