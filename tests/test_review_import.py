"""Reviewed queues back from the annotation tools: Label Studio's JSON export and Argilla's records export.

The queue ``label-errors`` writes goes to the tool; the test annotates it as the tool would store it
(the export shapes of docs/label_errors.md, "Reviewed in Label Studio or Argilla") and
``apply-corrections`` must give the same data as the equivalent CSV of decisions.
"""

from __future__ import annotations

import json

import pandas as pd
import pytest

from conftest import cli_fails
from datacarto.cli import main
from test_label_errors import NAMES, write_noisy_store, write_noisy_unit_store


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    run = tmp_path_factory.mktemp("review") / "run"
    write_noisy_store(run / "training_dynamics", dynamics="out-of-sample")
    return run


def _queue(run, tmp_path, fmt: str) -> list[dict]:
    assert main(["label-errors", str(run), "--out", str(tmp_path / f"{fmt}.json"), "--format", fmt]) == 0
    return json.loads((tmp_path / f"{fmt}.json").read_text())


def _other(given: str, k: int = 1) -> str:
    return NAMES[(NAMES.index(given) + k) % len(NAMES)]


def _annotation(task_id: int, k: int, choice: str | None, *, cancelled=False, ground_truth=False) -> dict:
    """One annotation as Label Studio's JSON export holds it (labelstud.io/guide/export, "Label Studio JSON
    format of annotated tasks"); ``choice`` None: an annotation without a ``label`` result."""
    result = [] if choice is None else [
        {"id": f"r{task_id}-{k}", "from_name": "label", "to_name": "premise", "type": "choices", "origin": "manual",
         "value": {"choices": [choice]}}]
    return {"id": 1000 * task_id + k, "completed_by": k + 1, "result": result, "was_cancelled": cancelled,
            "ground_truth": ground_truth, "created_at": f"2025-01-0{k + 1}T10:00:00Z",
            "updated_at": f"2025-01-0{k + 1}T10:00:00Z", "lead_time": 4.2, "task": task_id, "project": 7,
            "result_count": len(result), "prediction": {}, "parent_prediction": None, "parent_annotation": None,
            "last_action": None, "draft_created_at": None, "import_id": None, "last_created_by": None}


def _label_studio_export(tasks: list[dict], answers: dict[int, list[dict]]) -> list[dict]:
    """The tasks as Label Studio exports them ("JSON"): ids, ``annotations`` (position -> list), drafts apart."""
    out = []
    for i, task in enumerate(tasks):
        annotations = [_annotation(i + 1, k, **a) for k, a in enumerate(answers.get(i, []))]
        predictions = [{**p, "id": i + 1, "created_ago": "2 hours", "task": i + 1, "project": 7}
                       for p in task["predictions"]]
        out.append({"id": i + 1, "data": task["data"], "annotations": annotations, "predictions": predictions,
                    "drafts": [], "meta": {}, "created_at": "2025-01-01T09:00:00Z",
                    "updated_at": "2025-01-02T09:00:00Z", "inner_id": i + 1, "total_annotations": len(annotations),
                    "cancelled_annotations": sum(a["was_cancelled"] for a in annotations), "total_predictions": 1,
                    "project": 7, "updated_by": None, "file_upload": "queue.json", "comment_authors": []})
    return out


def _argilla_export(records: list[dict], answers: dict[int, list[tuple]]) -> list[dict]:
    """The records as Argilla 2 exports them (``Record.to_dict``; ``to_json`` writes the list): responses per
    question, each {value, user_id, status} (a status None: left out, as ``to_dict`` of 2.x releases writes it)."""
    out = []
    for i, record in enumerate(records):
        responses = []
        for k, (value, status) in enumerate(answers.get(i, [])):
            responses.append({"value": value, "user_id": f"00000000-0000-0000-0000-00000000000{k}",
                              **({"status": status} if status else {})})
        done = any(r.get("status", "submitted") == "submitted" for r in responses)
        out.append({**record, "responses": {"label": responses} if responses else {},
                    "status": "completed" if done else "pending",
                    "_server_id": f"11111111-0000-0000-0000-{i:012d}"})
    return out


def _apply_both(run, tmp_path, export: list[dict], decisions: list[tuple],
                columns=("row_id", "decision", "new_label")) -> None:
    """apply-corrections of the tool's export and of the CSV of ``decisions`` (row_id, decision, new_label)
    write the same data."""
    (tmp_path / "export.json").write_text(json.dumps(export, indent=2))
    pd.DataFrame(decisions, columns=list(columns)).to_csv(tmp_path / "c.csv", index=False)
    assert main(["apply-corrections", str(run), "--corrections", str(tmp_path / "export.json"),
                 "--out", str(tmp_path / "from_tool.jsonl")]) == 0
    assert main(["apply-corrections", str(run), "--corrections", str(tmp_path / "c.csv"),
                 "--out", str(tmp_path / "from_csv.jsonl")]) == 0
    from_tool = pd.read_json(tmp_path / "from_tool.jsonl", lines=True)
    from_csv = pd.read_json(tmp_path / "from_csv.jsonl", lines=True)
    pd.testing.assert_frame_equal(from_tool, from_csv)
    relabelled = [d[0] for d in decisions if "relabel" in d]
    assert (from_tool.set_index("row_id").loc[relabelled, "decision"] == "relabel").all()


def test_a_label_studio_export_applies_as_the_same_decisions_in_csv(run, tmp_path, capsys):
    tasks = _queue(run, tmp_path, "label-studio")
    assert len(tasks) >= 9
    given = [t["data"]["given_label"] for t in tasks]
    ids = [t["data"]["row_id"] for t in tasks]
    answers = {
        0: [dict(choice=_other(given[0]))],                                   # relabel
        1: [dict(choice="drop")],                                             # drop
        2: [dict(choice=given[2])],                                           # keep
        3: [dict(choice=_other(given[3]), cancelled=True)],                   # skipped: not reviewed
        4: [dict(choice=_other(given[4], 2)), dict(choice=_other(given[4], 2))],  # two agree
        5: [dict(choice=_other(given[5])), dict(choice=given[5], ground_truth=True)],  # ground truth settles
        # 6: no annotation: not reviewed
        7: [dict(choice=None), dict(choice="Drop")],                          # no label result; drop, any case
        8: [dict(choice=_other(given[8], 2), cancelled=True), dict(choice=_other(given[8]))],
    }
    _apply_both(run, tmp_path, _label_studio_export(tasks, answers), [
        (ids[0], "relabel", _other(given[0])), (ids[1], "drop", ""), (ids[2], "keep", ""),
        (ids[4], "relabel", _other(given[4], 2)), (ids[5], "keep", ""), (ids[7], "drop", ""),
        (ids[8], "relabel", _other(given[8]))])
    assert "relabel 3, drop 2, keep 2, not reviewed" in capsys.readouterr().out


def test_an_argilla_export_applies_as_the_same_decisions_in_csv(run, tmp_path, capsys):
    records = _queue(run, tmp_path, "argilla")
    assert len(records) >= 9
    given = [r["metadata"]["given_label"] for r in records]
    ids = [r["metadata"]["row_id"] for r in records]
    answers = {
        0: [(_other(given[0]), "submitted")],
        1: [("drop", "submitted")],
        2: [(given[2], "submitted")],
        3: [(_other(given[3]), "draft")],                                      # not submitted: not reviewed
        4: [(_other(given[4]), "discarded")],
        5: [(_other(given[5], 2), "submitted"), (_other(given[5], 2), "submitted")],
        # 6: no response
        7: [(_other(given[7]), None)],                                         # no status: counted
        8: [(given[8], "submitted"), (_other(given[8]), "draft")],
    }
    _apply_both(run, tmp_path, _argilla_export(records, answers), [
        (ids[0], "relabel", _other(given[0])), (ids[1], "drop", ""), (ids[2], "keep", ""),
        (ids[5], "relabel", _other(given[5], 2)), (ids[7], "relabel", _other(given[7])), (ids[8], "keep", "")])
    assert "relabel 3, drop 1, keep 2, not reviewed" in capsys.readouterr().out


@pytest.mark.parametrize("fmt", ["label-studio", "argilla"])
def test_annotators_who_disagree_are_refused_naming_the_row(run, tmp_path, capsys, fmt):
    rows = _queue(run, tmp_path, fmt)
    if fmt == "label-studio":
        given, row_id = rows[3]["data"]["given_label"], rows[3]["data"]["row_id"]
        export = _label_studio_export(rows, {3: [dict(choice=given), dict(choice=_other(given))]})
    else:
        given, row_id = rows[3]["metadata"]["given_label"], rows[3]["metadata"]["row_id"]
        export = _argilla_export(rows, {3: [(given, "submitted"), (_other(given), "submitted")]})
    (tmp_path / "export.json").write_text(json.dumps(export))
    line = cli_fails(capsys, ["apply-corrections", str(run), "--corrections", str(tmp_path / "export.json"),
                              "--out", str(tmp_path / "fixed.jsonl")], f"row_id {row_id}")
    assert "annotators disagree" in line and given in line and _other(given) in line
    assert not (tmp_path / "fixed.jsonl").exists()


def test_a_json_list_of_corrections_rows_reads_as_the_jsonl(run, tmp_path):
    from datacarto.dynamics.corrections import apply_corrections

    rows = [{"row_id": 3, "decision": "relabel", "new_label": "neutral"}, {"row_id": 5, "decision": "drop"}]
    (tmp_path / "c.json").write_text(json.dumps(rows))
    (tmp_path / "c.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    pd.testing.assert_frame_equal(apply_corrections(run, tmp_path / "c.json")[0],
                                  apply_corrections(run, tmp_path / "c.jsonl")[0])


def test_multi_label_units_come_back_by_row_and_sub_id(tmp_path):
    run = tmp_path / "run"
    write_noisy_unit_store(run, "multi-label")
    tasks = _queue(run, tmp_path, "label-studio")
    assert len(tasks) >= 3 and {t["data"]["given_label"] for t in tasks} <= {"no", "yes"}
    data = [t["data"] for t in tasks]
    flip = {"no": "yes", "yes": "no"}
    answers = {0: [dict(choice=flip[data[0]["given_label"]])], 1: [dict(choice=data[1]["given_label"])],
               2: [dict(choice="drop")]}
    _apply_both(run, tmp_path, _label_studio_export(tasks, answers), [
        (data[0]["row_id"], data[0]["sub_id"], "relabel", flip[data[0]["given_label"]]),
        (data[1]["row_id"], data[1]["sub_id"], "keep", ""), (data[2]["row_id"], data[2]["sub_id"], "drop", "")],
        columns=("row_id", "sub_id", "decision", "new_label"))
