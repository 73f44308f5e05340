"""``apply-corrections``: a run's records with reviewed labels, provenance kept, other data refused.

A corrections file (CSV, JSONL or a JSON list; the queue ``datacarto label-errors`` writes is one;
Label Studio's and Argilla's exports of the reviewed queue are read as such: review_import.py) has a
``row_id``, for unit tasks a ``sub_id`` (the label of a multi-label example, the word of a tagged
sentence), a ``decision`` (``relabel``, ``drop``, ``keep``; empty: not reviewed, left as it is) and,
for ``relabel``, a ``new_label`` (a class name or id; ``yes``/``no`` for a multi-label unit). It is
refused when it belongs to other data: a ``dataset_fingerprint`` other than the run's, a row id the
run does not hold, a text column or a ``given_label`` that differs from the run's record.
The result is the run's records (``examples.parquet``: every original column and ``row_id``),
dropped rows left out, with the corrected ``label`` and ``given_label``, ``new_label``,
``decision``. docs/label_errors.md.
"""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import numpy as np
import pandas as pd

from .._io import check_output_file, refuse_existing
from ..errors import DatacartoError, not_utf8
from ..tasks import TaskSpec, TaskType
from .label_errors import DECISION_NAMES, run_fingerprint, text_columns
from .store import EXAMPLES, dynamics_dir, list_epoch_files, load_examples, no_dynamics, read_manifest
from .subsets import SUBSET_SUFFIXES, export_subset

DECISIONS = ("relabel", "drop", "keep")


def read_corrections(path: str | os.PathLike) -> pd.DataFrame:
    """The corrections file as strings and JSON values (CSV cells stay text: ids are parsed later)."""
    path = Path(path)
    if not path.is_file():
        raise DatacartoError(f"corrections file not found: {path}")
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".jsonl", ".json"):
        raise DatacartoError(f"unsupported corrections file {path}: use .csv, .jsonl or .json (a Label Studio "
                             "or Argilla export)")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise not_utf8(path, e) from None
    if suffix == ".csv":
        try:
            frame = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False)
        except pd.errors.EmptyDataError:
            raise DatacartoError(f"corrections file {path} is empty") from None
        except pd.errors.ParserError as e:
            raise DatacartoError(f"{path}: unreadable CSV ({' '.join(str(e).split())})") from None
        frame = frame[frame.apply(lambda col: col.str.strip() != "").any(axis=1)].reset_index(drop=True)  # cleared rows
    elif suffix == ".json":
        frame = _json_frame(text, path)
    else:
        rows = []
        for number, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except ValueError as e:
                raise DatacartoError(f"{path}, line {number}: not valid JSON ({e})") from None
            if not isinstance(row, dict):
                raise DatacartoError(f"{path}, line {number}: expected one JSON object per line")
            rows.append(row)
        frame = pd.DataFrame(rows)
    if frame.empty:
        raise DatacartoError(f"corrections file {path} is empty")
    missing = [c for c in ("row_id", "decision") if c not in frame.columns]
    if missing:
        raise DatacartoError(f"corrections file {path} has no column(s) {missing}: it needs row_id and decision "
                             "(and new_label for relabel)")
    return frame


def _json_frame(text: str, path: Path) -> pd.DataFrame:
    """A ``.json`` file: a Label Studio or Argilla export, or a list of corrections rows, by its content."""
    from .review_import import tool_export_frame

    try:
        items = json.loads(text)
    except ValueError as e:
        raise DatacartoError(f"{path}: not valid JSON ({e})") from None
    if not isinstance(items, list):
        raise DatacartoError(f"{path}: expected a JSON list (a Label Studio or Argilla export, or corrections "
                             f"rows), found {'an object' if isinstance(items, dict) else repr(items)[:40]}")
    return tool_export_frame(items, path)


def _integer(value) -> int | None:
    """``value`` as an integer when it is written as one: an int, a whole float or such text (``2``, ``2.0``,
    as pandas writes a float column); else None (a bool is no integer)."""
    value = value.item() if isinstance(value, np.generic) else value
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value) if value.is_integer() else None
    whole, dot, zeros = str(value).strip().partition(".")
    if whole.lstrip("-").isdigit() and (not dot or (zeros and set(zeros) == {"0"})):
        return int(whole)
    return None


def _ints(values: pd.Series, name: str, path) -> np.ndarray:
    out = []
    for i, v in enumerate(values.tolist()):
        number = _integer(v)
        if number is None:
            raise DatacartoError(f"{path}, row {i + 1}: {name} {v!r} is not an integer")
        out.append(number)
    return np.asarray(out, dtype=np.int64)


def _label_id(value, names: list[str], where: str) -> int:
    """A class name (exact, or in another case when one class alone matches) or id as an id in 0..C-1."""
    value = value.item() if isinstance(value, np.generic) else value
    text = "" if value is None or (isinstance(value, float) and np.isnan(value)) else str(value).strip()
    if text in names:
        return names.index(text)
    folded = [i for i, name in enumerate(names) if name.casefold() == text.casefold()]
    if len(folded) == 1:
        return folded[0]
    number = _integer(value)
    if number is not None and 0 <= number < len(names):
        return number
    if text == "":
        raise DatacartoError(f"{where}: relabel needs a new_label")
    raise DatacartoError(f"{where}: unknown label {value!r}; labels are {', '.join(names)} (or ids 0..{len(names) - 1})")


def _decisions(frame: pd.DataFrame, path) -> list[str | None]:
    out = []
    for i, v in enumerate(frame["decision"].tolist()):
        text = "" if v is None or (isinstance(v, float) and np.isnan(v)) else str(v).strip().lower()
        if text and text not in DECISIONS:
            raise DatacartoError(f"{path}, row {i + 1}: unknown decision {v!r}: use relabel, drop or keep "
                                 "(empty: not reviewed)")
        out.append(text or None)
    return out


def _check_same_data(frame: pd.DataFrame, examples: pd.DataFrame, rows: np.ndarray, run_dir, split, path) -> None:
    """Refuse a corrections file of other data: fingerprint, row ids, texts."""
    if "dataset_fingerprint" in frame.columns:
        theirs = {str(v) for v in frame["dataset_fingerprint"].tolist() if v is not None and str(v) not in ("", "nan")}
        ours = run_fingerprint(run_dir, split)
        if theirs - {ours}:
            raise DatacartoError(f"{path} is a corrections file of other data: its dataset fingerprint "
                                 f"{sorted(theirs - {ours})[0]} is not the run's ({ours})")
    unknown = rows[~np.isin(rows, examples.index.to_numpy())]
    if unknown.size:
        raise DatacartoError(f"{path}: {unknown.size} row ids are not in the run's {len(examples)} records "
                             f"(e.g. {unknown[:3].tolist()}): a corrections file of other data?")
    for col in text_columns(run_dir, split):
        if col not in frame.columns:
            continue
        theirs = frame[col].astype(str).to_numpy()
        ours = examples[col].reindex(rows).astype(str).to_numpy()
        bad = np.flatnonzero(theirs != ours)
        if bad.size:
            raise DatacartoError(f"{path}: the {col!r} text of row_id {int(rows[bad[0]])} differs from the run's "
                                 f"record ({bad.size} rows differ): a corrections file of other data?")


def _parse(frame: pd.DataFrame, examples: pd.DataFrame, run_dir, split: str, path) -> pd.DataFrame:
    """(row_id, sub_id, decision, new label id) per reviewed row, every check done."""
    manifest = read_manifest(dynamics_dir(run_dir, split))
    entry = TaskSpec.from_manifest(manifest).type
    units = entry.per_row  # several units per example: each named by row_id and sub_id
    rows = _ints(frame["row_id"], "row_id", path)
    _check_same_data(frame, examples, rows, run_dir, split, path)
    if units and "sub_id" not in frame.columns:
        raise DatacartoError(f"{path} has no sub_id column: a {entry.name} run's corrections name each unit by "
                             "row_id and sub_id")
    subs = _ints(frame["sub_id"], "sub_id", path) if units else np.zeros(len(rows), dtype=np.int64)
    if units and "unit" in frame.columns:
        _check_units(frame["unit"], examples, rows, subs, entry, manifest, path)
    keys = pd.MultiIndex.from_arrays([rows, subs])
    if keys.duplicated().any():
        row, sub = keys[keys.duplicated()][0]
        raise DatacartoError(f"{path}: row_id {row}{f', sub_id {sub}' if units else ''} "
                             "appears twice")
    decisions = _decisions(frame, path)
    names = list(DECISION_NAMES) if entry.unit == "label" else \
        list(manifest.get("label_names") or range(int(manifest.get("num_labels") or 0)))
    names = [str(n) for n in names]
    given = _given(examples, rows, subs, entry)
    new = np.full(len(rows), -1, dtype=np.int64)
    for i, d in enumerate(decisions):
        where = f"{path}, row {i + 1} (row_id {rows[i]})"
        if "given_label" in frame.columns and given[i] is not None:
            stated = frame["given_label"].iloc[i]
            if str(stated).strip() not in ("", "nan", "None") and _label_id(stated, names, where) != given[i]:
                raise DatacartoError(f"{where}: given_label {stated!r} is not the run's label {names[given[i]]!r}: "
                                     "a corrections file of other data?")
        if d == "relabel":
            new[i] = _label_id(frame["new_label"].iloc[i] if "new_label" in frame.columns else None, names, where)
    return pd.DataFrame({"row_id": rows, "sub_id": subs, "decision": decisions, "new": new})


def _check_units(stated: pd.Series, examples: pd.DataFrame, rows, subs, entry: TaskType, manifest: dict,
                 path) -> None:
    """A unit named by the file (a label's name, a word) must be the run's unit of that row and sub id."""
    if entry.unit == "label":
        names = [str(n) for n in manifest.get("label_names") or []]
        ours = [names[s] if 0 <= s < len(names) else None for s in subs]
    else:
        from ..units import words_column

        column = words_column(examples)
        if column is None:
            return
        words = examples[column].reindex(rows).to_list()
        ours = [str(w[s]) if s < len(w) else None for w, s in zip(words, subs)]
    for i, (theirs, mine) in enumerate(zip(stated.astype(str).tolist(), ours)):
        if mine is not None and theirs not in ("", "nan", "None") and theirs != mine:
            raise DatacartoError(f"{path}, row {i + 1}: unit {theirs!r} of row_id {rows[i]}, sub_id {subs[i]} is "
                                 f"{mine!r} in the run's records: a corrections file of other data?")


def _given(examples: pd.DataFrame, rows, subs, entry: TaskType) -> list[int | None]:
    """Each unit's label in the run's records (None where it cannot be read)."""
    labels = examples["label"].reindex(rows).to_list()
    if entry.unit == "label":
        return [int(s in set(np.asarray(v).tolist())) for v, s in zip(labels, subs)]
    if entry.unit == "word":
        return [None] * len(rows)  # the records' tags are those of the recorded words: checked by the texts
    return [int(v) for v in labels]


def _label_columns(examples: pd.DataFrame, spec: TaskSpec) -> list[str]:
    """``label`` and the data's own label column when the records hold it as the same ids."""
    tags = spec.label_column if spec.type.label_option else None  # a label column the task's option names
    same = [c for c in examples.columns if c not in ("label", "fingerprint")
            and examples[c].map(repr).equals(examples["label"].map(repr))]
    return ["label", *([tags] if tags and tags in examples.columns and tags not in same else []), *same]


def apply_corrections(run_dir: str | os.PathLike, corrections, *, split: str = "train") -> tuple[pd.DataFrame, dict]:
    """(the corrected records, counts): ``corrections`` is a path or a DataFrame like :func:`read_corrections`'.

    An example with several reviewed units takes every relabel; one ``drop`` drops the whole example.
    """
    path = corrections if isinstance(corrections, (str, os.PathLike)) else "the corrections"
    frame = read_corrections(corrections) if isinstance(corrections, (str, os.PathLike)) else corrections
    examples = load_examples(run_dir, split)
    if examples is None and not list_epoch_files(dynamics_dir(run_dir, split)):
        raise no_dynamics(dynamics_dir(run_dir, split))  # not a run: said as every reader of a run says it
    if examples is None:
        raise DatacartoError(f"{dynamics_dir(run_dir, split) / EXAMPLES} not found: the run recorded no examples")
    manifest = read_manifest(dynamics_dir(run_dir, split))
    spec = TaskSpec.from_manifest(manifest)
    entry = spec.type
    parsed = _parse(frame, examples, run_dir, split, path)
    out = examples.drop(columns=["fingerprint", *(["fold"] if manifest.get("crossfit") else [])])
    columns = _label_columns(out, spec)
    position = {row: i for i, row in enumerate(out.index.to_numpy())}
    values = {col: out[col].tolist() for col in columns}
    decision: list[str | None] = [None] * len(out)
    rank = {None: 0, "keep": 1, "relabel": 2, "drop": 3}  # an example's decision: the strongest of its units'
    recorded = _RecordedWords(run_dir, split) if entry.unit == "word" else None
    for row, sub, d, new in parsed.itertuples(index=False):
        i, d = position[row], d if isinstance(d, str) else None
        if d == "relabel":
            for col in columns:
                at = recorded.position(row, sub) if recorded is not None and col == "label" else sub
                values[col][i] = _relabel(values[col][i], entry, sub, at, new, row)
        decision[i] = max(decision[i], d, key=rank.get)
    original = out["label"].copy()
    for col in columns:
        out[col] = pd.Series(values[col], index=out.index, dtype=out[col].dtype if not entry.per_row else object)
    dropped = np.array([d == "drop" for d in decision])
    out = out.assign(given_label=original, new_label=out["label"], decision=decision)[~dropped].reset_index()
    counts = {d: int((parsed["decision"] == d).sum()) for d in DECISIONS}
    counts.update(unreviewed=int(parsed["decision"].isna().sum()), rows=len(out), dropped_rows=int(dropped.sum()),
                  label_columns=columns)
    return out, counts


def _relabel(value, entry: TaskType, sub: int, at: int | None, new: int, row: int):
    """``value`` (a label, a list of label ids, a list of tags) with unit ``sub`` (tag position ``at``) set to ``new``."""
    if entry.unit == "label":
        ids = set(np.asarray(value).tolist())
        ids = ids | {sub} if new == 1 else ids - {sub}
        return sorted(int(i) for i in ids)
    if entry.unit == "word":
        tags = list(np.asarray(value).tolist())
        if at is None or at >= len(tags):
            raise DatacartoError(f"row_id {row}: word {sub} has no tag in the records to correct")
        tags[at] = int(new)
        return tags
    return int(new)


class _RecordedWords:
    """Where word ``sub`` of an example sits in the records' ``label`` (the tags of the recorded words only)."""

    def __init__(self, run_dir, split: str):
        from .store import load_dynamics

        dyn = load_dynamics(run_dir, split)
        self.rows, self.subs = dyn.row_ids, dyn.sub_ids  # sorted by (row_id, sub_id)

    def position(self, row: int, sub: int) -> int | None:
        words = self.subs[self.rows == row]
        hit = np.flatnonzero(words == sub)
        return int(hit[0]) if hit.size else None


def check_corrected_output(out: str | os.PathLike, *, corrections, run_dir, split: str = "train",
                           overwrite: bool = True) -> Path:
    """Refuse an output file that is an input (the corrections file, the run's data file or its records),
    or, unless ``overwrite``, one that exists."""
    out = check_output_file(out, SUBSET_SUFFIXES)
    target = out.resolve()
    inputs = [Path(corrections).resolve()]
    dataset = read_manifest(dynamics_dir(run_dir, split)).get("dataset")
    if dataset:
        inputs.append(Path(dataset).resolve())
    if target in inputs or dynamics_dir(run_dir, split).resolve() in target.parents:
        raise DatacartoError(f"--out {out} is an input (the corrections file, the run's data file or its "
                             "records): write the corrected data to a new file")
    if not overwrite:
        refuse_existing(out)
    return out


def write_corrected(frame: pd.DataFrame, out: str | os.PathLike) -> Path:
    """Write the corrected records by extension (.jsonl, .csv, .parquet), atomically."""
    return export_subset(frame, out)
