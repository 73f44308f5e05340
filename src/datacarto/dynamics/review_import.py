"""Reviewed queues back from Label Studio and Argilla: their JSON exports as a corrections frame.

``apply-corrections`` reads a ``.json`` file by its content: a list of Label Studio tasks (its
"JSON" export: ``data``, ``annotations``), of Argilla 2 records (``Record.to_dict``: ``fields``,
``metadata``, ``responses``) or of corrections rows. Each task or record becomes one corrections
row (its ids, given label and texts from ``data`` / ``metadata`` + ``fields``) and the checks of
:mod:`datacarto.dynamics.corrections` follow, as for a CSV. The answer of the ``label`` question:
the given label -> ``keep``; another label -> ``relabel`` to it; ``drop`` -> ``drop``; none (no
annotation, or only cancelled ones; only draft or discarded responses) -> not reviewed. Annotators
who disagree are refused, naming the row, unless one Label Studio annotation is the ground truth.
docs/label_errors.md, "Reviewed in Label Studio or Argilla".
"""

from __future__ import annotations

import pandas as pd

from ..errors import DatacartoError
from .review import ID_COLUMNS, QUESTION

#: the answer that drops a row (a ``<Choice value="drop"/>``, a label of the Argilla question)
DROP = "drop"
LABEL_STUDIO, ARGILLA, ROWS = "Label Studio", "Argilla", "corrections"
#: Argilla response statuses that count as an answer (a response without one: Argilla 2's ``to_dict``)
SUBMITTED = ("submitted", None)


def export_kind(items: list, path) -> str:
    """Which list ``items`` is: Label Studio tasks, Argilla records or corrections rows (refused: none)."""
    def kind(item) -> str | None:
        if not isinstance(item, dict):
            return None
        if isinstance(item.get("data"), dict):
            if not isinstance(item.get("annotations"), list):
                raise DatacartoError(f"{path}: a Label Studio task without annotations: give Label Studio's JSON "
                                     "export of the reviewed tasks, not the queue label-errors wrote")
            return LABEL_STUDIO
        if isinstance(item.get("fields"), dict) and isinstance(item.get("responses") or {}, dict):
            return ARGILLA
        return ROWS if "row_id" in item else None

    kinds = [kind(item) for item in items]
    for number, k in enumerate(kinds, 1):
        if k is None or k != kinds[0]:
            raise DatacartoError(f"{path}: item {number} is neither a Label Studio task (data, annotations: its "
                                 "JSON export), an Argilla record (fields, responses) nor a corrections row "
                                 "(row_id, decision) like the items before it")
    return kinds[0]


def tool_export_frame(items: list, path) -> pd.DataFrame:
    """The corrections frame of a parsed ``.json`` list (see the module): one row per task or record."""
    kind = export_kind(items, path) if items else ROWS
    if kind == ROWS:
        return pd.DataFrame(items)
    read = _label_studio_row if kind == LABEL_STUDIO else _argilla_row
    return pd.DataFrame([read(item, number, path) for number, item in enumerate(items, 1)])


def _label_studio_row(task: dict, number: int, path) -> dict:
    """A task's corrections row: the answer of its annotations that were not cancelled."""
    values = dict(task["data"])
    where = _where(values, f"{path}, task {task.get('id', number)}", "data")
    answers = []
    for annotation in task.get("annotations") or []:
        if not isinstance(annotation, dict) or annotation.get("was_cancelled"):
            continue  # skipped in the tool: no answer
        choice = _choice(annotation.get("result"), where)
        if choice is not None:
            answers.append((choice, bool(annotation.get("ground_truth"))))
    truth = [choice for choice, ground_truth in answers if ground_truth]
    return _row(values, _settle([choice for choice, _ in answers], truth, where))


def _choice(result, where: str) -> str | None:
    """The one choice of the ``label`` control in an annotation's ``result`` (None: it has none)."""
    picked = [r for r in result or [] if isinstance(r, dict) and r.get("from_name") == QUESTION
              and r.get("type") == "choices"]
    choices = [c for r in picked for c in (r.get("value") or {}).get("choices") or []]
    if len(choices) > 1:
        raise DatacartoError(f"{where}: an annotation chooses {len(choices)} labels {choices}: one label (or "
                             f"{DROP}) per row")
    return str(choices[0]).strip() if choices else None


def _argilla_row(record: dict, number: int, path) -> dict:
    """A record's corrections row: the answer of its submitted responses to the ``label`` question."""
    values = {**(record.get("fields") or {}), **(record.get("metadata") or {})}
    where = _where(values, f"{path}, record {record.get('id') or number}", "metadata")
    answers = []
    for response in (record.get("responses") or {}).get(QUESTION) or []:
        if not isinstance(response, dict) or response.get("status") not in SUBMITTED:
            continue  # a draft or a discarded record: no answer
        value = response.get("value")
        if isinstance(value, list):  # a multi-label question's answer
            if len(value) != 1:
                raise DatacartoError(f"{where}: a response chooses {len(value)} labels {value}: one label (or "
                                     f"{DROP}) per row")
            value = value[0]
        if value is not None and str(value).strip():
            answers.append(str(value).strip())
    return _row(values, _settle(answers, [], where))


def _where(values: dict, where: str, holder: str) -> str:
    if "row_id" not in values:
        raise DatacartoError(f"{where} has no row_id in its {holder}: not a row of a datacarto label-errors queue")
    return f"{where} (row_id {values['row_id']}" + (f", sub_id {values['sub_id']})" if "sub_id" in values else ")")


def _settle(answers: list[str], ground_truth: list[str], where: str) -> str | None:
    """The row's answer: the one every annotator gave, else the one ground-truth annotation's; refused else."""
    distinct = list(dict.fromkeys(answers))
    if len(distinct) <= 1:
        return distinct[0] if distinct else None
    if len(set(ground_truth)) == 1:
        return ground_truth[0]
    counts = ", ".join(f"{a!r} by {answers.count(a)}" for a in distinct)
    raise DatacartoError(f"{where}: annotators disagree ({counts}): settle it in the tool (Label Studio: mark "
                         "one annotation ground truth) and export again")


def _row(values: dict, answer: str | None) -> dict:
    """The corrections row of a task's or record's ids, texts and answer."""
    row = {k: v for k, v in values.items() if k not in ("decision", "new_label")}
    given = values.get("given_label")
    if answer is None:
        decision, new = "", ""
    elif answer.casefold() == DROP:
        decision, new = "drop", ""
    elif given is not None and answer == str(given).strip():
        decision, new = "keep", ""
    else:
        decision, new = "relabel", answer
    return {**{c: row.pop(c) for c in ID_COLUMNS if c in row}, **row, "decision": decision, "new_label": new}
