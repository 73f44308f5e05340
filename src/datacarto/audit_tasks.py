"""The label-noise audit for the other task types: noise injected per unit, AUROC per unit.

Multiple choice flips the answer to another choice; multi-label adds or drops one (example, label)
decision; token classification changes a word's tag. Each is :func:`datacarto.noise.inject_label_noise`
on the flattened unit labels, so the rounding, seeding and "a flip never stays the same" rules are
the classification audit's; a regression's gold scores are moved far away instead
(:func:`datacarto.noise.inject_score_noise`). The scores are then audited per unit by
:func:`datacarto.audit.audit_frame`.

A causal LM (SFT) is audited per example: a share of the responses is swapped with other
examples' responses (:func:`corrupt_responses`), and the generative scores are asked to find them.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from .audit import AuditResult, audit_frame
from .errors import DatacartoError
from .metrics import score_directions
from .noise import check_score_names, inject_label_noise, inject_score_noise
from .tasks import TaskSpec, prepare_for_task, task_type

FLAGS = "noisy_units"  # per example: one bool per unit (the labels or words that were changed)
CORRUPTED = "corrupted"  # causal LM: the response is another example's


def corrupt_responses(responses: list, share: float, *, seed: int = 0) -> tuple[list, np.ndarray]:
    """(responses, a bool per row): ``round_half_up(share, N)`` rows get another row's response, seeded.

    The chosen rows pass their responses round in a shuffled cycle, so each gets one of theirs; a
    row whose new response happens to equal its own is not counted as corrupted.
    """
    from ._validation import check_fraction
    from .noise import n_flips

    check_fraction(share, "--noise", high_open=True)
    rng = np.random.default_rng(seed)
    n = len(responses)
    k = n_flips(share, n)
    if k == 1 and n > 1:
        k = 2  # one row alone cannot swap: its partner is corrupted too
    chosen = rng.permutation(n)[:k]
    out = list(responses)
    for a, b in zip(chosen, np.roll(chosen, -1)):
        out[a] = responses[b]
    return out, np.array([o != r for o, r in zip(out, responses)], dtype=bool)


def run_generative_audit(*, task: str, dataset, model: str, output_dir, noise: float = 0.1, seed: int = 0,
                         prompt_column: str = "prompt", response_column: str = "response", training_args=None,
                         dynamics_mode: str = "training_pass", max_length: int = 128, scores=None):
    """Swap a share of the responses, fine-tune the causal LM on it, audit the scores.

    ``task``: a generative task of the registry (:mod:`datacarto.tasks`).
    ``scores``: None (the scores the registry marks for the "responses" audit), or names of
    :data:`~datacarto.metrics.SCORES` (checked before anything trains).
    """
    from .data import load_table
    from .dynamics.cache import get_metrics

    check_score_names(scores)
    output_dir = Path(output_dir)
    ds = load_table(dataset)
    spec = TaskSpec(task=task, prompt_column=prompt_column, response_column=response_column)
    ds, spec = prepare_for_task(ds, spec, what="training set")
    if CORRUPTED in ds.column_names:
        raise DatacartoError(f"the data set already has a column {CORRUPTED!r}, which the audit writes")
    frame = ds.to_pandas()
    frame[response_column], frame[CORRUPTED] = corrupt_responses(frame[response_column].tolist(), noise, seed=seed)
    noisy_file, result = _train_on(frame, output_dir, model=model, task_spec=spec, training_args=training_args,
                                   dynamics_mode=dynamics_mode, max_length=max_length)
    if result is None:
        return None
    metrics = get_metrics(result.output_dir)
    if len(metrics) != len(frame):  # rows whose response max_length truncated away are not recorded
        raise DatacartoError("the audit needs every response recorded: raise --max-length so none is truncated away")
    truth = pd.Series(frame[CORRUPTED].to_numpy()[metrics.index.to_numpy()], index=metrics.index)
    config = {"task": spec.task, "model": str(model), "noise": float(noise), "seed": int(seed), "unit": spec.type.unit,
              "noise_kind": "swapped responses", "noisy_train": str(noisy_file)}
    chosen = score_directions("responses") if scores is None else scores
    return audit_frame(metrics, truth, result.output_dir, scores=chosen, config=config)


def inject_unit_noise(task: str, labels: list, noise: float, *, width: int, seed: int = 0):
    """(noisy labels per example, a bool per unit in (example, sub) order) for ``task``.

    A numeric task's gold scores are moved instead (:func:`datacarto.noise.inject_score_noise`).

    ``labels`` as the task's unit says: a class or choice id per example (unit "example"), lists
    of label ids (unit "label", ``width`` labels) or tag lists (unit "word", ``width`` tags).
    """
    entry = task_type(task)
    if entry.generative:
        raise DatacartoError(f"inject_unit_noise: no unit noise for task {task!r}")
    if entry.numeric:  # a gold score moved far away
        noisy, flipped = inject_score_noise(labels, noise, seed=seed)
        return noisy.tolist(), flipped
    if not entry.per_row:
        noisy, flipped = inject_label_noise(np.asarray(labels), noise, num_labels=width, seed=seed)
        return noisy.tolist(), flipped
    if entry.unit == "label":
        hot = np.zeros((len(labels), width), dtype=np.int64)
        for i, ids in enumerate(labels):
            hot[i, list(ids)] = 1
        noisy, flipped = inject_label_noise(hot.reshape(-1), noise, num_labels=2, seed=seed)
        noisy = noisy.reshape(hot.shape)
        return [np.flatnonzero(row).tolist() for row in noisy], flipped
    lengths = [len(t) for t in labels]  # a list of units' labels per example (words' tags)
    flat = np.concatenate([np.asarray(t, dtype=np.int64) for t in labels])
    noisy, flipped = inject_label_noise(flat, noise, num_labels=width, seed=seed)
    cuts = np.cumsum(lengths)[:-1]
    return [part.tolist() for part in np.split(noisy, cuts)], flipped


def run_task_audit(*, task: str, dataset, model: str, output_dir: str | os.PathLike, noise: float = 0.1,
                   seed: int = 0, text_columns=None, label_column: str = "label", label_names=None,
                   choice_columns=None, tokens_column: str = "tokens", tags_column: str = "ner_tags",
                   training_args=None, dynamics_mode: str = "training_pass", max_length: int = 128,
                   scores=None, generative: dict | None = None) -> AuditResult | None:
    """Inject unit noise into ``dataset``, train ``model`` on it with recording, audit the scores per unit.

    Writes ``noisy_train.jsonl`` (with a ``noisy_units`` column), the run, ``audit.json`` and
    ``roc.png`` under ``output_dir``. Returns None on the non-main ranks of a distributed run.
    A generative task: responses swapped instead (:func:`run_generative_audit`; ``generative``
    holds its ``prompt_column`` and ``response_column``).
    """
    from .data import load_table
    from .dynamics.cache import get_metrics
    from .models import classifier_head

    entry = task_type(task)
    if entry.generative:
        return run_generative_audit(task=task, dataset=dataset, model=model, output_dir=output_dir, noise=noise,
                                    seed=seed, training_args=training_args, dynamics_mode=dynamics_mode,
                                    max_length=max_length, scores=scores, **(generative or {}))
    check_score_names(scores)
    output_dir = Path(output_dir)
    ds = load_table(dataset)
    spec = TaskSpec.from_options(task, text_columns=text_columns, label_column=label_column, label_names=label_names,
                                 choice_columns=choice_columns, tokens_column=tokens_column, tags_column=tags_column)
    ds, spec = prepare_for_task(ds, spec, what="training set", head=classifier_head(model, task))
    if FLAGS in ds.column_names:
        raise DatacartoError(f"the data set already has a column {FLAGS!r}, which the audit writes")
    labels = ds.with_format("arrow")[spec.label_column].to_pylist()
    noisy, flipped = inject_unit_noise(task, labels, noise, width=spec.num_labels, seed=seed)
    frame = ds.to_pandas()
    frame[spec.label_column] = noisy
    frame[FLAGS] = _per_example(entry, flipped, labels, spec.num_labels)
    noisy_file, result = _train_on(frame, output_dir, model=model, task_spec=spec, training_args=training_args,
                                   dynamics_mode=dynamics_mode, max_length=max_length)
    if result is None:
        return None
    metrics = get_metrics(result.output_dir, level="unit" if entry.per_row else "example")
    truth = _unit_truth(entry, metrics, frame[FLAGS].tolist())
    config = {"task": task, "model": str(model), "noise": float(noise), "seed": int(seed), "unit": entry.unit,
              "noisy_train": str(noisy_file), "dataset": str(dataset) if isinstance(dataset, (str, os.PathLike)) else None}
    if scores is None:  # the task's audits' scores (a regression's adds squared_error)
        scores = {name: d for audit in entry.audits for name, d in score_directions(audit).items()}
    return audit_frame(metrics.drop(columns=["row_id", "sub_id"], errors="ignore"), truth, result.output_dir,
                       scores=scores, config=config)


def _train_on(frame: pd.DataFrame, output_dir: Path, **train_kwargs):
    """Write the noisy training set to ``output_dir`` and train on that file (so the manifest names it).

    Returns (the file, the TrainResult), the result None on the non-main ranks of a distributed run.
    """
    from ._io import write_frame
    from .train.baseline import train_baseline

    noisy_file = output_dir / "noisy_train.jsonl"
    output_dir.mkdir(parents=True, exist_ok=True)
    write_frame(frame, noisy_file, index=False)
    result = train_baseline(train=str(noisy_file), output_dir=output_dir, **train_kwargs)
    trainer = getattr(result, "trainer", None)
    if trainer is not None and not trainer.is_world_process_zero():
        return noisy_file, None
    return noisy_file, result


def _per_example(entry, flipped: np.ndarray, labels: list, width: int) -> list:
    """The unit flags regrouped by example (what the noisy file stores)."""
    if not entry.per_row:
        return [bool(f) for f in flipped]
    if entry.unit == "label":
        return flipped.reshape(len(labels), width).tolist()
    cuts = np.cumsum([len(t) for t in labels])[:-1]
    return [part.tolist() for part in np.split(flipped, cuts)]


def _unit_truth(entry, metrics: pd.DataFrame, flags: list) -> pd.Series:
    """Whether each recorded unit was changed, aligned with the unit metrics."""
    if not entry.per_row:
        return pd.Series([bool(flags[r]) for r in metrics.index], index=metrics.index)
    rows, subs = metrics["row_id"].to_numpy(), metrics["sub_id"].to_numpy()
    return pd.Series([bool(flags[r][s]) for r, s in zip(rows, subs)], index=metrics.index)
