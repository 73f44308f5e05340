"""One score registry (``metrics.SCORES``): a score added in one place reaches every reader.

A toy score is registered here and nowhere else; the metrics table, its cache, the per-example
table of a unit task, selection, the label-noise audit and the interactive map all pick it up.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from datacarto import metrics as M
from datacarto.dynamics.cache import get_metrics
from datacarto.dynamics.store import DynamicsWriter, dynamics_dir
from datacarto.errors import DatacartoError
from datacarto.maps.interactive import decode_payload, interactive_map
from datacarto.metrics import SCORES, Score, compute_metrics, metric_columns, register_score
from datacarto.noise import audit_scores
from datacarto.selection import select
from datacarto.units import aggregate_units

TOY = "toy_margin"


def toy_margin(logits, gold, columns):
    """Last epoch's gold logit minus the mean logit (low = the model holds the gold label low)."""
    last = logits[:, -1, :].astype(np.float64)
    return np.take_along_axis(last, gold[:, None], axis=1)[:, 0] - last.mean(axis=1)


def expected(gold, logits):
    """The same score, one example at a time."""
    return np.array([float(z[-1, g]) - float(np.mean(z[-1].astype(np.float64))) for g, z in zip(gold, logits)])


@pytest.fixture
def toy():
    score = register_score(Score(TOY, "low", "unit", "last gold logit above the mean logit", map=True,
                                 compute=toy_margin))
    yield score
    SCORES.pop(TOY, None)


def noisy_dynamics(n=300, epochs=4, classes=3, seed=0):
    """Dynamics in which a tenth of the gold labels are wrong: the model keeps their logit low."""
    rng = np.random.default_rng(seed)
    gold = rng.integers(0, classes, n)
    logits = rng.normal(size=(n, epochs, classes)).astype(np.float32)
    flipped = np.zeros(n, dtype=bool)
    flipped[rng.choice(n, n // 10, replace=False)] = True
    logits[np.arange(n), :, gold] += np.where(flipped, -2.0, 2.0)[:, None] * np.linspace(0.5, 1.5, epochs)
    return np.arange(n, dtype=np.int64) * 3 + 7, gold, logits, flipped


def test_a_registered_score_is_a_column_of_the_metrics(toy, monkeypatch):
    ids, gold, logits, _ = noisy_dynamics()
    monkeypatch.setattr(M, "_CHUNK_LOGITS", 7 * 4 * 3)  # 7 examples per chunk: the score runs per chunk
    table = compute_metrics((ids, gold, logits))
    assert list(table.columns) == list(metric_columns()) == [*M.COLUMNS, TOY]
    np.testing.assert_allclose(table[TOY].to_numpy(), expected(gold, logits), rtol=1e-6, atol=1e-6)
    monkeypatch.undo()
    SCORES.pop(TOY)
    assert TOY not in compute_metrics((ids, gold, logits)).columns  # gone with its entry
    SCORES[TOY] = toy


def test_selection_ranks_by_it_in_its_direction(toy):
    ids, gold, logits, _ = noisy_dynamics()
    table = compute_metrics((ids, gold, logits))
    values = expected(gold, logits)
    hardest = select(table, metric=TOY, fraction=0.1)  # direction "low": the lowest first
    assert hardest.tolist() == ids[np.lexsort((ids, values))][:30].tolist()
    easiest = select(table, metric=TOY, fraction=0.1, order="easiest")
    assert easiest.tolist() == ids[np.lexsort((ids, -values))][:30].tolist()


def test_the_audit_scores_it_by_default(toy):
    ids, gold, logits, flipped = noisy_dynamics()
    table = compute_metrics((ids, gold, logits))
    result = audit_scores(table, flipped).set_index("score")
    assert result.loc[TOY, "direction"] == "low"
    assert result.loc[TOY, "auroc"] > 0.9  # flipped labels have a low gold logit
    assert set(result.index) == {n for n, s in SCORES.items() if "labels" in s.audits}


def test_the_map_shows_it(toy):
    ids, gold, logits, _ = noisy_dynamics(n=60)
    table = compute_metrics((ids, gold, logits))
    table["region"] = M.assign_regions(table)
    meta, arrays, _ = decode_payload(interactive_map(table))
    assert [s["name"] for s in meta["scores"]] == ["forgetfulness", "aum", "el2n", TOY]
    span = np.ptp(table[TOY])
    np.testing.assert_allclose(arrays[TOY], table[TOY], atol=span / 65534 / 2 + 1e-9)


def test_the_cache_and_the_unit_tables_carry_it(toy, tmp_path):
    ids, gold, logits, _ = noisy_dynamics(n=40, epochs=3)
    writer = DynamicsWriter(dynamics_dir(tmp_path))
    for t in range(3):
        writer.write_epoch(t, ids, gold, logits[:, t])
    cached = get_metrics(tmp_path)
    np.testing.assert_allclose(cached[TOY].to_numpy(), expected(gold, logits), rtol=1e-6, atol=1e-6)
    SCORES.pop(TOY)
    assert TOY not in get_metrics(tmp_path).columns  # a cache written with another registry is recomputed
    SCORES[TOY] = toy
    assert TOY in get_metrics(tmp_path).columns
    units = compute_metrics((np.arange(40), gold, logits))
    units["region"] = M.assign_regions(units)
    examples = aggregate_units(units, np.repeat(np.arange(20), 2), np.tile([0, 1], 20))
    means = pd.Series(expected(gold, logits)).groupby(np.repeat(np.arange(20), 2)).mean()
    np.testing.assert_allclose(examples[TOY].to_numpy(), means.to_numpy(), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("make, match", [
    (lambda: Score("x", "up", "unit", "doc"), "direction of score 'x' must be one of high, low"),
    (lambda: Score("x", "low", "token", "doc"), "level of score 'x' must be one of unit, example"),
    (lambda: Score("x", "low", "unit", "doc", audits=("flips",)), "audit of score 'x' must be one of"),
    (lambda: Score("x", "low", "example", "doc", compute=toy_margin), "computed from the logits"),
    (lambda: register_score(Score("aum", "low", "unit", "doc")), "score 'aum' exists already"),
    (lambda: register_score(Score("gold", "low", "unit", "doc")), "score 'gold' exists already"),
])
def test_a_bad_score_is_refused_in_one_line(make, match):
    with pytest.raises(DatacartoError, match=match):
        make()


def test_every_reader_takes_the_directions_from_the_registry():
    """The old per-module tables are gone: the registry is the only place a direction is written."""
    import datacarto.audit_tasks as audit_tasks
    import datacarto.maps.interactive as interactive
    import datacarto.noise as noise
    import datacarto.pipeline.report as report
    import datacarto.selection as selection

    gone = {selection: "HARDEST_FIRST", noise: "SCORE_DIRECTIONS", audit_tasks: "GENERATIVE_SCORES",
            interactive: "TABLE_SCORES", report: "_REGION_ORDER"}
    assert not [name for module, name in gone.items() if hasattr(module, name)]
    assert M.score_directions("responses") == {"confidence": "low", "variability": "high", "correctness": "low",
                                               "aum": "low", "last_loss": "high", "nll": "high"}
