"""Label errors of a recorded run: which probabilities, when a run cannot support an estimate, units.

``run_label_errors(run)`` reads a run's dynamics, refuses what cannot support an estimate (a causal
LM, a model that barely learned, in-sample dynamics of one epoch, in-sample dynamics where
out-of-sample ones are asked for), turns the logits into one distribution per unit and calls the
pure :func:`datacarto.label_errors.find_label_errors`. ``review_queue`` adds each flagged row's
texts and the run's data-set fingerprint (what ``apply-corrections`` checks). docs/label_errors.md.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from .._validation import check_choice
from ..errors import DatacartoError
from ..label_errors import (
    DEFAULT_SCORE,
    LabelErrors,
    agreeing_errors,
    find_label_errors,
    probabilities_from_logits,
)
from ..learning_check import barely_learned, compressed_confidences
from ..metrics import assign_regions, compute_metrics
from ..tasks import TaskSpec
from .store import (
    CROSSFIT_OTHER_SPLIT,
    EXAMPLES,
    dataset_fingerprint,
    dynamics_dir,
    load_dynamics,
    load_examples,
    read_manifest,
)

#: ``method=``: "agreement" flags the rows that confident learning flags on a cross-fitted run's
#: out-of-sample store *and* on its in-sample store (the fold models' own training rows), and on every
#: ``agree_with`` store; "auto" is the agreement where a cross-fitted run has both stores, else the
#: store's own kind (its manifest); "out-of-sample" refuses an in-sample store and uses it alone;
#: "in-sample" applies the in-sample rule to any store.
METHODS = ("auto", "agreement", "out-of-sample", "in-sample")
#: which epochs' probabilities each kind of dynamics uses, chosen by measurement (docs/label_errors.md)
EPOCHS_BY_DYNAMICS = {"out-of-sample": "mean", "in-sample": "mean"}
#: in-sample, a model that predicts at least this share of the given labels at its last epoch may have
#: memorised wrong ones: the estimate is then a lower bound (a warning says so)
FITS_LABELS = 0.98
#: the two classes of a multi-label unit (an (example, label) decision)
DECISION_NAMES = ("no", "yes")
#: columns of the review queue after the flagged rows' own and the texts
QUEUE_COLUMNS = ("decision", "new_label", "dataset_fingerprint")


def dynamics_kind(manifest: dict) -> str:
    """``out-of-sample`` for a cross-fitted run's out-of-sample store, else ``in-sample``."""
    return "out-of-sample" if manifest.get("dynamics") == "out-of-sample" else "in-sample"


def run_fingerprint(run_dir: str | os.PathLike, split: str = "train") -> str:
    """The data-set fingerprint of a run's records (the manifest's, else computed from examples.parquet)."""
    manifest = read_manifest(dynamics_dir(run_dir, split))
    if manifest.get("dataset_fingerprint"):
        return str(manifest["dataset_fingerprint"])
    examples = load_examples(run_dir, split)
    if examples is None or "fingerprint" not in examples.columns:
        raise DatacartoError(f"{dynamics_dir(run_dir, split) / EXAMPLES} not found: the run recorded no examples")
    return dataset_fingerprint(examples["fingerprint"].to_numpy())


def _check_run(run_dir, split: str, method: str) -> tuple[dict, str]:
    """(manifest, the kind of dynamics the estimate treats the store as); refusals that need no logits."""
    check_choice(method, METHODS, "method")
    if not Path(run_dir).exists():
        raise DatacartoError(f"run directory {run_dir} not found")
    manifest = read_manifest(dynamics_dir(run_dir, split))
    entry = TaskSpec.from_manifest(manifest).type
    if entry.generative:
        raise DatacartoError(f"{run_dir} is a causal-LM run: its responses have no labels to be wrong, "
                             "so label-errors does not apply (see docs/generative.md for its scores)")
    if entry.numeric:
        raise DatacartoError(f"{run_dir} is a regression run: its gold values are numbers, not classes a count of "
                             "wrong labels applies to; rank them by squared_error (datacarto select --metric "
                             "squared_error, docs/tasks.md)")
    kind = dynamics_kind(manifest)
    if method in ("out-of-sample", "agreement") and kind != "out-of-sample":
        raise DatacartoError(f"method {method} needs out-of-sample dynamics, but the {split!r} store of {run_dir} "
                             "is in-sample: train with --folds K (a run cross-fitted with --dynamics in-sample "
                             "keeps them as --split oos), or use --method auto")
    return manifest, "in-sample" if method == "in-sample" else kind


def _check_learned(dyn, split: str) -> None:
    """Refuse dynamics of a model that barely learned (the rule of :mod:`datacarto.learning_check`)."""
    metrics = compute_metrics(dyn)
    metrics["region"] = assign_regions(metrics)
    what = "training set" if split == "train" else f"{split} set"
    verdict = barely_learned(metrics, what=what)
    if verdict:
        raise DatacartoError(f"cannot estimate label errors: {verdict}: its probabilities say little about which "
                             "labels are wrong; train longer, or with a higher learning rate")
    compressed = compressed_confidences(metrics, what=what)
    if compressed:  # near-uniform probabilities pass every class's threshold: the count would be most of the data
        raise DatacartoError(f"cannot estimate label errors: {compressed.split(': the model')[0]}: near-uniform "
                             "probabilities cannot tell a wrong label from a hard one; train longer, or with a "
                             "higher learning rate")


def run_label_errors(run_dir: str | os.PathLike, *, split: str = "train", method: str = "auto",
                     score: str = DEFAULT_SCORE, epochs: str | None = None, agree_with=()) -> LabelErrors:
    """Estimate and flag the wrong labels of a recorded run (one label per unit).

    Parameters
    ----------
    run_dir : path
        A training output folder (or its ``training_dynamics``).
    split : str
        The store to read: ``train`` (a cross-fitted run's main store is out-of-sample), ``oos``,
        ``insample``...
    method : {"auto", "agreement", "out-of-sample", "in-sample"}
        See :data:`METHODS`.
    score : {"self_confidence", "normalized_margin"}
        The label-quality score that ranks the rows.
    epochs : {"mean", "last"}, optional
        Which epochs' probabilities to use; default :data:`EPOCHS_BY_DYNAMICS` of the dynamics.
    agree_with : list of (path, split)
        More in-sample stores of the same rows (the pipeline's baseline) whose flags must agree too
        (methods auto and agreement).

    Returns
    -------
    LabelErrors
        Its ``flagged`` table has ``row_id`` (the example) and, for units, ``sub_id`` and ``unit``
        (the label or the word); ``info`` says which dynamics, epochs and stores were used.
    """
    manifest, kind = _check_run(run_dir, split, method)
    found, dyn = _store_errors(run_dir, split, kind, manifest, score=score, epochs=epochs)
    partners = [*_insample_partner(run_dir, split, kind, method),
                *(agree_with if method in ("auto", "agreement") else ())]
    others = []
    for path, other_split in partners:
        try:
            other, other_dyn = _store_errors(path, other_split, "in-sample",
                                             read_manifest(dynamics_dir(path, other_split)), score=score, epochs=epochs)
        except DatacartoError:
            if method == "agreement":
                raise
            continue
        if not _rows_of(other_dyn).equals(_rows_of(dyn)):
            raise DatacartoError(f"the stores to agree hold different rows: {path} ({other_split}) and "
                                 f"{run_dir} ({split})")
        others.append(other)
    if method == "agreement" and not others:
        raise DatacartoError(f"method agreement needs the in-sample store of the cross-fitted run {run_dir} "
                             "(recorded by datacarto train --folds K): none was found")
    if others:
        stores = [found, *others]
        found = agreeing_errors(found, *others)
        found.info["method"] = "agreement of confident learning on " + ", ".join(
            f"{o.info['dynamics']} {o.info['split']!r}"
            + (f" of {Path(o.info['run']).name}" if o.info["run"] != found.info["run"] else "") + f" ({o.total})"
            for o in stores)
        found.info["stores"] = [{k: o.info[k] for k in ("run", "split", "dynamics")} | {"estimate": o.total}
                                for o in stores]
    if dyn.unit_level:
        found.flagged = found.flagged.drop(columns=["group"], errors="ignore")
    return found


def _rows_of(dyn) -> pd.Index:
    """The rows (units: (row_id, sub_id)) a store holds, sorted: what two stores to agree must share."""
    if dyn.unit_level:
        return pd.MultiIndex.from_arrays([dyn.row_ids, dyn.sub_ids]).sort_values()
    return pd.Index(np.sort(np.asarray(dyn.ids)))


def describe_method(info: dict) -> str:
    """How an estimate was made, in words: "confident learning on out-of-sample dynamics", or the agreement
    of several stores with each one's own count (the CLI, the map's note and the report say it so)."""
    how = info.get("method") or "confident learning"
    return f"confident learning on {info.get('dynamics')} dynamics" if how == "confident learning" else how


def _insample_partner(run_dir, split: str, kind: str, method: str) -> list[tuple]:
    """The cross-fitted run's in-sample store beside its out-of-sample one, where it has one."""
    if kind != "out-of-sample" or method not in ("auto", "agreement"):
        return []
    if split == "train":  # the main store is out-of-sample: the in-sample one is the other split
        other = CROSSFIT_OTHER_SPLIT["out-of-sample"]
    elif split == CROSSFIT_OTHER_SPLIT["in-sample"]:  # the other split of a run whose main store is in-sample
        other = "train"
    else:
        return []
    try:
        manifest = read_manifest(dynamics_dir(run_dir, other))
    except DatacartoError:
        return []
    return [(run_dir, other)] if dynamics_kind(manifest) == "in-sample" else []


def _store_errors(run_dir, split: str, kind: str, manifest: dict, *, score: str, epochs: str | None):
    """(confident learning on one store, its dynamics treated as ``kind``; the store): the refusals first.

    A unit-level store's flagged rows carry ``row_id``, ``sub_id``, ``unit`` and still ``group`` (a label's)."""
    dyn = load_dynamics(run_dir, split)
    if kind == "in-sample" and dyn.n_epochs < 2:
        raise DatacartoError(f"the {split!r} store of {run_dir} holds one epoch of in-sample dynamics: a model "
                             "that trained on each label predicts it, so one epoch cannot support an estimate; "
                             "train for 2 or more epochs, or cross-fit (--folds K)")
    _check_learned(dyn, split)
    rule = epochs or EPOCHS_BY_DYNAMICS[kind]
    probs = probabilities_from_logits(dyn.logits, epochs=rule)
    entry = TaskSpec.from_manifest(manifest).type
    names = dyn.label_names
    if entry.unit == "label":  # each unit a yes/no decision on one label
        found = find_label_errors(dyn.gold, probs, score=score, ids=dyn.ids, class_names=list(DECISION_NAMES),
                                  groups=dyn.sub_ids, group_names=names)
    else:
        found = find_label_errors(dyn.gold, probs, score=score, ids=dyn.ids, class_names=names)
    if dyn.unit_level:  # units keyed by (row_id, sub_id), their label kept as ``group`` until the end
        found.flagged = _unit_rows(found.flagged, dyn, run_dir, split, entry.unit)
    found.info = {"run": str(run_dir), "split": split, "dynamics": kind, "epochs": rule, "n_epochs": dyn.n_epochs,
                  "task": entry.name, "unit": manifest.get("unit", entry.unit),
                  "method": "confident learning", "warning": _memorised(dyn) if kind == "in-sample" else None}
    return found, dyn


def _memorised(dyn) -> str | None:
    """A warning when in-sample dynamics fit nearly every given label at the last epoch (a lower bound)."""
    last = dyn.logits[:, -1, :]
    ok = np.isfinite(last).all(axis=1)
    fit = float(np.mean(np.argmax(last[ok], axis=1) == dyn.gold[ok])) if ok.any() else 0.0
    if fit < FITS_LABELS:
        return None
    return (f"in-sample dynamics: the model predicts {fit:.1%} of the given labels at its last epoch, so it may "
            "have memorised wrong ones and the estimate is a lower bound; cross-fit (--folds K) for "
            "out-of-sample dynamics")


def _unit_rows(flagged: pd.DataFrame, dyn, run_dir, split: str, kind: str) -> pd.DataFrame:
    """Unit ids -> ``row_id``, ``sub_id`` and ``unit`` (the label's name or the word)."""
    units = flagged["row_id"].to_numpy()
    out = flagged.drop(columns=["row_id"])
    out.insert(0, "row_id", dyn.row_ids[units])
    out.insert(1, "sub_id", dyn.sub_ids[units])
    if kind == "label":  # the task's unit (datacarto.tasks): a label's yes/no decision, else a word
        unit = flagged["group"].to_numpy()
    else:
        from ..units import words_column

        examples = load_examples(run_dir, split)
        column = words_column(examples) if examples is not None else None
        words = examples[column].reindex(out["row_id"]).to_list() if column else [None] * len(out)
        unit = [str(w[s]) if w is not None and s < len(w) else "" for w, s in zip(words, out["sub_id"])]
    out.insert(2, "unit", unit)
    return out


def text_columns(run_dir, split: str = "train") -> list[str]:
    """The columns a reviewer reads: the manifest's text columns (and choices), else the string columns."""
    manifest = read_manifest(dynamics_dir(run_dir, split))
    examples = load_examples(run_dir, split)
    if examples is None:
        return []
    spec = TaskSpec.from_manifest(manifest)
    named = [*(manifest.get("text_columns") or []), *spec.choice_columns]
    def is_text(c):
        return examples[c].map(lambda v: isinstance(v, str)).all()

    cols = [c for c in dict.fromkeys(named) if c in examples.columns and is_text(c)]
    if cols or spec.type.unit == "word":  # a tagged sentence's words are no text column
        return cols
    return [c for c in examples.columns if c not in ("fingerprint", "label", "fold") and is_text(c)]


def review_queue(run_dir: str | os.PathLike, found: LabelErrors, *, split: str = "train") -> pd.DataFrame:
    """The flagged rows with the texts a reviewer reads, an empty ``decision`` and ``new_label``, and the
    run's ``dataset_fingerprint`` (the corrections file of ``apply-corrections``)."""
    queue = found.flagged.copy()
    examples = load_examples(run_dir, split)
    if examples is None:
        raise DatacartoError(f"{dynamics_dir(run_dir, split) / EXAMPLES} not found: the run recorded no examples")
    if "sub_id" in queue.columns and found.info.get("unit") == "word":
        words = examples[_words(examples)].reindex(queue["row_id"]).to_list()
        queue["sentence"] = [" ".join(f"[{w}]" if i == s else str(w) for i, w in enumerate(ws))
                             for ws, s in zip(words, queue["sub_id"])]
    for col in text_columns(run_dir, split):
        if col not in queue.columns:
            queue[col] = examples[col].reindex(queue["row_id"]).to_numpy()
    queue["decision"] = ""
    queue["new_label"] = ""
    queue["dataset_fingerprint"] = run_fingerprint(run_dir, split)
    return queue


def _words(examples: pd.DataFrame) -> str:
    from ..units import words_column

    column = words_column(examples)
    if column is None:
        raise DatacartoError("the recorded examples hold no list of words to show the tagged word in")
    return column
