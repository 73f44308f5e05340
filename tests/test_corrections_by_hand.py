"""A review queue edited by hand, as a spreadsheet or a pandas script saves it, applied by apply-corrections.

The queue ``datacarto label-errors`` writes is filled in outside datacarto: decisions typed in any case
with stray spaces, ``new_label`` as a class name (in any case) or an id (``2``, or ``2.0`` as pandas
writes a float column), rows left blank or deleted, a row cleared rather than deleted (a line of empty
cells), a byte-order mark and CRLF line ends (Excel's "CSV UTF-8"). Exactly the decided rows change.
"""

from __future__ import annotations

import csv
import errno
import io
import sys

import pandas as pd
import pytest

from conftest import cli_fails
from test_label_errors import NAMES, write_noisy_store


@pytest.fixture(scope="module")
def queued(tmp_path_factory):
    """A noisy store and its review queue (CSV) as label-errors writes it."""
    from datacarto.cli import main

    run = tmp_path_factory.mktemp("by-hand") / "run"
    write_noisy_store(run / "training_dynamics", dynamics="out-of-sample")
    assert main(["label-errors", str(run), "--out", str(run.parent / "q.csv")]) == 0
    with open(run.parent / "q.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) >= 8
    return run, rows


def _save(rows: list[dict], path, *, encoding="utf-8-sig", blank_rows=()):
    """Write ``rows`` as a spreadsheet saves CSV: BOM, CRLF, a line of empty cells at each of ``blank_rows``."""
    fields = list(rows[0])
    with open(path, "w", newline="", encoding=encoding) as f:
        w = csv.DictWriter(f, fieldnames=fields, lineterminator="\r\n")
        w.writeheader()
        for i, row in enumerate(rows):
            if i in blank_rows:
                w.writerow(dict.fromkeys(fields, ""))
            w.writerow(row)
    return path


def test_a_queue_filled_in_by_hand_changes_exactly_the_decided_rows(queued, tmp_path, capsys):
    from datacarto.cli import main
    from datacarto.dynamics.store import load_examples

    run, queue = queued
    rows = [dict(r) for r in queue]
    ids = [int(r["row_id"]) for r in rows]
    edits = [("Relabel", "contradiction", 2), ("RELABEL", "1", 1), ("relabel", "2.0", 2),
             ("relabel ", "Neutral", 1), ("Drop", "", None), (" keep", "", "given"), ("", "entailment", "given")]
    for row, (decision, new, _) in zip(rows, edits):
        row["decision"], row["new_label"] = decision, new
    deleted = rows.pop(len(edits))  # a row deleted: not reviewed
    path = _save(rows, tmp_path / "reviewed.csv", blank_rows=(2, len(rows) - 1))
    out = tmp_path / "fixed.jsonl"
    assert main(["apply-corrections", str(run), "--corrections", str(path), "--out", str(out)]) == 0
    assert "relabel 4, drop 1, keep 1" in capsys.readouterr().out
    fixed = pd.read_json(out, lines=True).set_index("row_id")
    records = load_examples(run)
    assert sorted(set(records.index) - set(fixed.index)) == [ids[4]]  # the dropped row only is gone
    expected = records["label"].drop(index=ids[4]).copy()
    for row_id, (_, _, label) in zip(ids, edits):
        if label not in (None, "given"):
            expected[row_id] = label
    assert fixed["label"].tolist() == expected.tolist()
    assert fixed["given_label"].tolist() == records["label"].drop(index=ids[4]).tolist()
    decided = fixed["decision"].dropna()
    assert decided.to_dict() == {ids[0]: "relabel", ids[1]: "relabel", ids[2]: "relabel", ids[3]: "relabel",
                                 ids[5]: "keep"}
    assert int(deleted["row_id"]) in fixed.index and pd.isna(fixed.loc[int(deleted["row_id"]), "decision"])


def test_a_queue_edited_with_pandas_is_read_as_written(queued, tmp_path, capsys):
    """``pd.read_csv`` then ``to_csv``: new_label is a float column (``2.0``), decision text, NaN elsewhere."""
    from datacarto.cli import main

    run, queue = queued
    frame = pd.read_csv(_save(queue, tmp_path / "q.csv", encoding="utf-8"))
    frame["decision"] = frame["decision"].astype(object)
    frame.loc[0, ["decision", "new_label"]] = ["relabel", 2]
    frame.loc[1, "decision"] = "drop"
    frame.to_csv(tmp_path / "edited.csv", index=False)
    assert "2.0" in (tmp_path / "edited.csv").read_text()
    assert main(["apply-corrections", str(run), "--corrections", str(tmp_path / "edited.csv"),
                 "--out", str(tmp_path / "fixed.csv")]) == 0
    fixed = pd.read_csv(tmp_path / "fixed.csv").set_index("row_id")
    assert fixed.loc[int(queue[0]["row_id"]), "label"] == 2 and int(queue[1]["row_id"]) not in fixed.index


@pytest.mark.parametrize("new_label, message", [
    ("2.5", "unknown label '2.5'"),
    ("3.0", "unknown label '3.0'"),
    ("neutrals", "unknown label 'neutrals'"),
])
def test_what_is_no_label_is_still_refused(queued, tmp_path, capsys, new_label, message):
    run, queue = queued
    rows = [dict(r) for r in queue]
    rows[0]["decision"], rows[0]["new_label"] = "relabel", new_label
    path = _save(rows, tmp_path / "c.csv")
    cli_fails(capsys, ["apply-corrections", str(run), "--corrections", str(path), "--out", str(tmp_path / "f.jsonl")],
              message)
    assert not (tmp_path / "f.jsonl").exists()


def test_class_names_in_another_case_are_the_class_only_when_one_class_matches():
    from datacarto.dynamics.corrections import _label_id
    from datacarto.errors import DatacartoError

    assert [_label_id(v, NAMES, "here") for v in ("Neutral", " CONTRADICTION ", 2.0, "0", "1.0")] == [1, 2, 2, 0, 1]
    assert [_label_id(v, ["Yes", "yes", "no"], "here") for v in ("Yes", "yes", "NO")] == [0, 1, 2]
    with pytest.raises(DatacartoError, match="unknown label 'YES'"):  # two classes match: neither is guessed
        _label_id("YES", ["Yes", "yes", "no"], "here")
    with pytest.raises(DatacartoError, match="unknown label True"):
        _label_id(True, NAMES, "here")


def test_a_queue_being_reviewed_is_never_written_over_unless_asked(queued, tmp_path, capsys):
    from datacarto.cli import main

    run, queue = queued
    reviewed = _save([{**queue[0], "decision": "drop"}, *queue[1:]], tmp_path / "q.csv")
    before = reviewed.read_bytes()
    cli_fails(capsys, ["label-errors", str(run), "--out", str(reviewed)], f"--out {reviewed} exists")
    assert reviewed.read_bytes() == before
    fixed = tmp_path / "fixed.jsonl"
    fixed.write_text("{}\n")
    argv = ["apply-corrections", str(run), "--corrections", str(reviewed), "--out", str(fixed)]
    cli_fails(capsys, argv, f"--out {fixed} exists")
    assert fixed.read_text() == "{}\n"
    assert main([*argv, "--overwrite"]) == 0 and len(fixed.read_text().splitlines()) == 149
    cli_fails(capsys, [*argv[:-1], str(reviewed), "--overwrite"], "is an input")  # never over its own input
    assert main(["label-errors", str(run), "--out", str(reviewed), "--overwrite"]) == 0
    assert reviewed.read_bytes() != before


class _ClosedPipe(io.StringIO):
    """A stdout whose reader went away (``datacarto label-errors ... | head``): every write fails."""

    def write(self, text):
        raise BrokenPipeError(errno.EPIPE, "Broken pipe")


def test_the_files_are_written_even_when_nobody_reads_the_summary(queued, tmp_path, monkeypatch, capsys):
    from datacarto.cli import main

    run, queue = queued
    monkeypatch.setattr(sys, "stdout", _ClosedPipe())
    main(["label-errors", str(run), "--out", str(tmp_path / "q.csv")])
    assert [r["row_id"] for r in csv.DictReader(open(tmp_path / "q.csv", encoding="utf-8"))] == \
        [r["row_id"] for r in queue]
    _save([{**queue[0], "decision": "drop"}, *queue[1:]], tmp_path / "c.csv")
    main(["apply-corrections", str(run), "--corrections", str(tmp_path / "c.csv"), "--out", str(tmp_path / "f.jsonl")])
    assert len((tmp_path / "f.jsonl").read_text().splitlines()) == 149
