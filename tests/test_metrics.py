"""Per-example metrics, regions, the metrics cache and ``datacarto metrics`` (pure NumPy, fast)."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import warnings

import numpy as np
import pandas as pd
import pytest

from datacarto import metrics as M
from datacarto.cli import main as cli_main
from datacarto.dynamics.cache import get_metrics
from datacarto.dynamics.store import DynamicsWriter, dynamics_dir, list_epoch_files
from datacarto.errors import DatacartoError
from datacarto.metrics import REGIONS, assign_regions, compute_metrics

FLOAT_COLUMNS = ["confidence", "variability", "variability_ci", "correctness", "threshold_closeness", "aum",
                 "aleatoric", "el2n", "el2n_mean", "entropy", "last_prob", "last_loss", "self_confidence"]
INT_COLUMNS = ["gold", "correct_count", "forgetfulness", "last_pred", "n_epochs_used"]


# ----------------------------------------------------------------------------------------------
# reference: a plain per-example loop, written from the papers' formulas


def reference_metrics(gold, logits, el2n_epoch=0):
    """One dict per example; epochs with a non-finite logit are skipped, as documented."""
    rows = []
    for i in range(logits.shape[0]):
        g = int(gold[i])
        p_gold, correct, margins, el2ns, dists, used = [], [], [], [], [], []
        last = None
        for t in range(logits.shape[1]):
            z = logits[i, t].astype(np.float64)
            if not np.all(np.isfinite(z)):
                continue
            ex = np.exp(z - z.max())
            p = ex / ex.sum()
            pred = int(np.argmax(z))  # ties: first index
            used.append(t)
            p_gold.append(p[g])
            correct.append(pred == g)
            margins.append(z[g] - max(z[j] for j in range(len(z)) if j != g))  # AUM margin
            el2ns.append(math.sqrt(sum((p[j] - (j == g)) ** 2 for j in range(len(z)))))
            dists.append(p)
            last = (pred, p[pred], -math.log(p[g]))
        n = len(p_gold)
        if n == 0:
            rows.append({"n_epochs_used": 0})
            continue
        conf = sum(p_gold) / n
        var = sum((x - conf) ** 2 for x in p_gold) / n  # population variance (np.var)
        # Toneva et al.: count learned (correct at the previous epoch) -> forgotten transitions.
        learnt, forgotten = False, 0
        for ok in correct:
            if learnt and not ok:
                forgotten += 1
            learnt = ok
        mean_dist = [sum(d[j] for d in dists) / n for j in range(logits.shape[2])]
        rows.append({
            "gold": g,
            "confidence": conf,
            "variability": math.sqrt(var),
            "variability_ci": math.sqrt(var + var * var / (n - 1)) if n > 1 else 0.0,
            "correctness": sum(correct) / n,
            "correct_count": sum(correct),
            "forgetfulness": forgotten if any(correct) else n,
            "never_learned": not any(correct),
            "threshold_closeness": conf * (1 - conf),
            "aum": sum(margins) / n,
            "aleatoric": sum(x * (1 - x) for x in p_gold) / n,
            "el2n": el2ns[used.index(el2n_epoch % logits.shape[1])] if el2n_epoch % logits.shape[1] in used
            else math.nan,
            "el2n_mean": sum(el2ns) / n,
            "entropy": -sum(q * math.log(q) for q in mean_dist if q > 0),
            "last_pred": last[0],
            "last_prob": last[1],
            "last_loss": last[2],
            "self_confidence": mean_dist[g],
            "n_epochs_used": n,
        })
    return rows


def random_dynamics(n, e, c, *, seed=0, nan_rate=0.0, dtype=np.float32):
    """Integer-valued logits in a small range, so argmax ties are frequent."""
    rng = np.random.default_rng(seed)
    logits = rng.integers(-3, 4, size=(n, e, c)).astype(dtype)
    logits += (rng.random((n, e, c)) < 0.3) * rng.normal(size=(n, e, c)).astype(dtype)
    gold = rng.integers(0, c, size=n)
    if nan_rate:
        bad = rng.random((n, e)) < nan_rate
        logits[bad, rng.integers(0, c)] = np.nan
        logits[rng.random((n, e)) < nan_rate / 4, 0] = np.inf
        logits[:3] = np.nan  # three examples with no usable epoch
    ids = rng.permutation(n * 3)[:n].astype(np.int64)
    return ids, gold, logits


def assert_matches_reference(df, gold, logits, *, atol=1e-6, el2n_epoch=0):
    ref = reference_metrics(gold, logits, el2n_epoch=el2n_epoch)
    assert list(df.columns) == list(M.COLUMNS)
    for i, row in enumerate(ref):
        got = df.iloc[i]
        if row["n_epochs_used"] == 0:
            assert got["n_epochs_used"] == 0 and bool(got["never_learned"]) and got["last_pred"] == -1
            assert all(math.isnan(got[k]) for k in FLOAT_COLUMNS), got
            continue
        for k in INT_COLUMNS:
            assert got[k] == row[k], (i, k, got[k], row[k])
        assert bool(got["never_learned"]) == row["never_learned"]
        for k in FLOAT_COLUMNS:
            if math.isnan(row[k]):
                assert math.isnan(got[k]), (i, k)
            else:
                assert abs(got[k] - row[k]) <= atol + 1e-6 * abs(row[k]), (i, k, got[k], row[k])


# ----------------------------------------------------------------------------------------------
# parity with the reference loop


@pytest.mark.parametrize("e,c", [(5, 3), (4, 2), (1, 3), (3, 20)])
def test_parity_with_per_example_loop(e, c):
    ids, gold, logits = random_dynamics(400, e, c, seed=e * 100 + c)
    ties = (logits == logits.max(axis=2, keepdims=True)).sum(axis=2) > 1
    assert ties.mean() > 0.05  # the data exercises the first-index tie rule
    df = compute_metrics((ids, gold, logits))
    assert df.index.name == "row_id" and np.array_equal(df.index.to_numpy(), ids)
    assert_matches_reference(df, gold, logits)
    assert (df["forgetfulness"][df["never_learned"]] == e).all()
    if e >= 2:
        assert (df["forgetfulness"][~df["never_learned"]] <= e // 2).all()


@pytest.mark.parametrize("c", [3, 20])
def test_parity_with_nan_epochs(c):
    ids, gold, logits = random_dynamics(400, 5, c, seed=7 + c, nan_rate=0.15)
    with pytest.warns(UserWarning) as record:
        df = compute_metrics((ids, gold, logits))
    messages = [str(w.message) for w in record]
    bad = ~np.isfinite(logits).all(axis=2)
    assert any(f"{int(bad.sum())} example-epochs ({int(bad.any(axis=1).sum())} examples)" in m for m in messages)
    assert any("3 examples have no epoch with finite logits" in m for m in messages)
    assert np.array_equal(df["n_epochs_used"].to_numpy(), (~bad).sum(axis=1))
    assert_matches_reference(df, gold, logits)


def test_parity_float64_logits_and_el2n_epoch():
    ids, gold, logits = random_dynamics(300, 4, 3, seed=3, dtype=np.float64)
    logits *= 7.3  # larger logits: float64 math keeps logit-scale metrics exact
    df = compute_metrics((ids, gold, logits), el2n_epoch=-1)
    assert_matches_reference(df, gold, logits, atol=1e-12, el2n_epoch=-1)


def test_chunking_gives_the_same_table(monkeypatch):
    ids, gold, logits = random_dynamics(500, 5, 3, seed=11, nan_rate=0.1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        whole = compute_metrics((ids, gold, logits))
        monkeypatch.setattr(M, "_CHUNK_LOGITS", 7 * 15)  # 7 examples per chunk, ragged last chunk
        chunked = compute_metrics((ids, gold, logits))
    pd.testing.assert_frame_equal(whole, chunked)


def test_dynamics_object_and_tuple_agree(tmp_path):
    ids, gold, logits = random_dynamics(60, 3, 3, seed=5)
    writer = DynamicsWriter(dynamics_dir(tmp_path))
    for t in range(3):
        writer.write_epoch(t, ids, gold, logits[:, t])
    from datacarto.dynamics.store import load_dynamics

    dyn = load_dynamics(tmp_path)
    order = np.argsort(ids)
    expected = compute_metrics((ids[order], gold[order], logits[order]))
    pd.testing.assert_frame_equal(compute_metrics(dyn), expected)


def test_extreme_logits_stay_finite():
    # p(gold) underflows to 0 in float32; the loss must still be the exact -log p (here 1e4).
    # The last two rows' logits sum past float32's range: still finite, still used.
    logits = np.array([[[0.0, 1e4, -1e4]], [[3e38, -3e38, 0.0]], [[3e38, 3e38, 0.0]], [[3e38, 3e38, 0.0]]],
                      dtype=np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        df = compute_metrics((np.arange(4), np.array([0, 0, 0, 1]), logits))
    assert np.isfinite(df[FLOAT_COLUMNS].to_numpy()).all() and (df["n_epochs_used"] == 1).all()
    assert df["last_loss"].iloc[0] == pytest.approx(1e4)
    assert df["confidence"].tolist() == [0.0, 1.0, 0.5, 0.5]
    assert df["correct_count"].tolist() == [0, 1, 1, 0]  # a tie goes to the first index
    assert df["aum"].iloc[0] == pytest.approx(-1e4) and df["aum"].iloc[1] == pytest.approx(3e38)  # vs 0, the largest other
    assert df["aum"].iloc[2] == 0.0 and df["aum"].iloc[3] == 0.0


# ----------------------------------------------------------------------------------------------
# golden values: a hand-written allenai/cartography run, imported


GOLDEN = {
    # guid: (gold, [logits per epoch]) with binary logits chosen so that p(class 1) is a round number:
    # [0, 0] -> 0.5, [0, ln 3] -> 0.75, [ln 3, 0] -> 0.25, [0, ln 9] -> 0.9.
    10: (1, [[0.0, 0.0], [0.0, math.log(3)], [math.log(3), 0.0]]),
    20: (0, [[0.0, math.log(3)], [0.0, math.log(3)], [0.0, math.log(3)]]),
    30: (1, [[0.0, math.log(3)], [math.log(3), 0.0], [0.0, math.log(9)]]),
}
LN2, LN3, LN4 = math.log(2), math.log(3), math.log(4)
EXPECTED = {
    # guid 10, gold 1: p(gold) = .5, .75, .25; epoch 0 is a tie [0, 0] -> argmax 0 -> wrong.
    # correct F, T, F -> one learned->forgotten transition.
    # var = (0 + .25^2 + .25^2) / 3 = .0416667; ci: var + var^2 / 2 = .0425347.
    # margins 0, ln3, -ln3 -> aum 0. p(1-p): .25, .1875, .1875 -> .2083333.
    # el2n: sqrt(2 (1 - p)^2) = sqrt(2) (1 - p): .7071068, .3535534, 1.0606602 -> mean .7071068.
    # mean distribution [.5, .5] -> entropy ln 2. last epoch: pred 0 with p .75, loss -ln .25 = ln 4.
    10: dict(confidence=0.5, variability=math.sqrt(0.125 / 3),
             variability_ci=math.sqrt(0.125 / 3 + (0.125 / 3) ** 2 / 2), correctness=1 / 3, correct_count=1,
             forgetfulness=1, never_learned=False, threshold_closeness=0.25, aum=0.0,
             aleatoric=0.625 / 3, el2n=math.sqrt(0.5), el2n_mean=math.sqrt(0.5), entropy=LN2,
             last_pred=0, last_prob=0.75, last_loss=LN4, self_confidence=0.5, n_epochs_used=3),
    # guid 20, gold 0: p(gold) = .25 every epoch, never right: forgetfulness = E = 3 (paper: 1000).
    # margin -ln 3; el2n sqrt(2) * .75 = 1.0606602; entropy of [.25, .75] = .25 ln 4 + .75 ln(4/3)
    # = .5623351; last: pred 1, p .75, loss ln 4.
    20: dict(confidence=0.25, variability=0.0, variability_ci=0.0, correctness=0.0, correct_count=0,
             forgetfulness=3, never_learned=True, threshold_closeness=0.1875, aum=-LN3, aleatoric=0.1875,
             el2n=math.sqrt(2) * 0.75, el2n_mean=math.sqrt(2) * 0.75,
             entropy=0.25 * LN4 + 0.75 * math.log(4 / 3), last_pred=1, last_prob=0.75, last_loss=LN4,
             self_confidence=0.25, n_epochs_used=3),
    # guid 30, gold 1: p(gold) = .75, .25, .9; correct T, F, T -> forgotten once.
    # confidence 1.9 / 3 = .6333333; var = (.1166667^2 + .3833333^2 + .2666667^2) / 3 = .0772222.
    # margins ln3, -ln3, ln9 -> 2 ln3 / 3 = .7324082. p(1-p): .1875, .1875, .09 -> .155.
    # el2n: sqrt(2) * (.25, .75, .1) -> first .3535534, mean sqrt(2) * 1.1 / 3 = .5185450.
    # mean distribution [.3666667, .6333333] -> entropy .6571577. last: pred 1, p .9, loss -ln .9.
    30: dict(confidence=1.9 / 3,
             variability=math.sqrt(((0.75 - 1.9 / 3) ** 2 + (0.25 - 1.9 / 3) ** 2 + (0.9 - 1.9 / 3) ** 2) / 3),
             variability_ci=math.sqrt(0.0772222 + 0.0772222 ** 2 / 2), correctness=2 / 3, correct_count=2,
             forgetfulness=1, never_learned=False, threshold_closeness=(1.9 / 3) * (1 - 1.9 / 3),
             aum=2 * LN3 / 3, aleatoric=0.155, el2n=math.sqrt(2) * 0.25, el2n_mean=math.sqrt(2) * 1.1 / 3,
             entropy=-(1.1 / 3 * math.log(1.1 / 3) + 1.9 / 3 * math.log(1.9 / 3)), last_pred=1,
             last_prob=0.9, last_loss=-math.log(0.9), self_confidence=1.9 / 3, n_epochs_used=3),
}


def write_allenai_run(folder):
    """The paper's on-disk format: one dynamics_epoch_N.jsonl per epoch under training_dynamics/."""
    td = folder / "training_dynamics"
    td.mkdir(parents=True)
    for epoch in range(3):
        with open(td / f"dynamics_epoch_{epoch}.jsonl", "w") as f:
            for guid, (gold, logits) in GOLDEN.items():
                f.write(json.dumps({"guid": guid, f"logits_epoch_{epoch}": logits[epoch], "gold": gold}) + "\n")


def test_golden_values_from_allenai_format(tmp_path):
    from datacarto.dynamics.interop import import_allenai

    write_allenai_run(tmp_path / "paper")
    import_allenai(tmp_path / "paper", tmp_path / "run")
    df = get_metrics(tmp_path / "run")
    assert df.index.tolist() == [0, 1, 2]  # row ids: ranks of the guids; the guids are kept
    from datacarto.dynamics.store import load_examples

    df.index = load_examples(tmp_path / "run")["guid"].reindex(df.index).to_numpy()
    assert df.index.tolist() == [10, 20, 30]
    assert df["gold"].tolist() == [1, 0, 1]
    for guid, expected in EXPECTED.items():
        for k, v in expected.items():
            assert df.loc[guid, k] == pytest.approx(v, abs=1e-6), (guid, k)
    assert df["variability"].max() < 0.3 and (df["region"].notna()).all()


# ----------------------------------------------------------------------------------------------
# regions


def table(confidence, variability):
    return pd.DataFrame({"confidence": confidence, "variability": variability},
                        index=pd.Index(np.arange(100, 100 + len(confidence)), name="row_id"))


def test_quantile_regions_follow_the_rule():
    rng = np.random.default_rng(0)
    m = table(rng.random(3000), rng.random(3000) * 0.5)
    region = assign_regions(m)
    assert region.name == "region" and region.index.equals(m.index)
    assert list(region.cat.categories) == list(REGIONS)
    assert region.notna().all()  # exactly one region each
    var, conf = m["variability"].to_numpy(), m["confidence"].to_numpy()
    v_star = np.quantile(var, 0.67)
    amb = (region == "ambiguous").to_numpy()
    assert np.array_equal(amb, var > v_star)
    rest = ~amb
    c_star = np.quantile(conf[rest], 0.33)
    assert np.array_equal((region == "hard-to-learn").to_numpy(), rest & (conf <= c_star))
    assert np.array_equal((region == "easy-to-learn").to_numpy(), rest & (conf > c_star))
    share = region.value_counts(normalize=True)
    assert share["ambiguous"] == pytest.approx(0.33, abs=0.01)
    assert share["hard-to-learn"] == pytest.approx(0.67 * 0.33, abs=0.01)
    assert region.attrs["variability_threshold"] == pytest.approx(v_star)
    assert region.attrs["confidence_threshold"] == pytest.approx(c_star)
    # the map's reading: hard = low confidence, easy = high confidence, both less variable
    assert conf[region == "hard-to-learn"].max() < conf[region == "easy-to-learn"].min()
    assert var[rest].max() < var[amb].min()


def test_quantile_regions_with_tied_variability():
    # One epoch: every variability is 0. Nothing is ambiguous (strict '>'), confidence splits.
    m = table(np.linspace(0, 1, 10), np.zeros(10))
    region = assign_regions(m)
    assert (region != "ambiguous").all()
    assert region.tolist() == ["hard-to-learn"] * 3 + ["easy-to-learn"] * 7


def test_threshold_regions_fixed_rule():
    m = table([0.9, 0.9, 0.5, 0.49, 0.1, 0.99], [0.2, 0.19, 0.0, 0.1, 0.05, 0.35])
    region = assign_regions(m, "threshold")
    assert region.tolist() == ["ambiguous", "easy-to-learn", "easy-to-learn", "hard-to-learn",
                               "hard-to-learn", "ambiguous"]
    custom = assign_regions(m, "threshold", variability_threshold=0.3, confidence_threshold=0.95)
    assert custom.tolist() == ["hard-to-learn"] * 5 + ["ambiguous"]
    assert custom.attrs["variability_threshold"] == 0.3 and custom.attrs["confidence_threshold"] == 0.95


def test_regions_leave_rows_without_metrics_unassigned():
    m = table([0.9, np.nan, 0.2, 0.5], [0.1, np.nan, 0.05, 0.4])
    for method in ("quantile", "threshold"):
        region = assign_regions(m, method)
        assert region.isna().tolist() == [False, True, False, False]


@pytest.mark.parametrize("kwargs,match", [
    (dict(method="kmeans"), "region method must be one of quantile, threshold"),
    (dict(ambiguous_quantile=1.0), "ambiguous_quantile"),
    (dict(hard_confidence_quantile=0), "hard_confidence_quantile"),
    (dict(variability_threshold=0.2), "method='threshold'"),
    (dict(method="threshold", confidence_threshold=float("nan")), "finite"),
])
def test_region_bad_arguments(kwargs, match):
    with pytest.raises(DatacartoError, match=match):
        assign_regions(table([0.5, 0.6], [0.1, 0.2]), **kwargs)


def test_regions_need_the_columns():
    with pytest.raises(DatacartoError, match="'variability' column"):
        assign_regions(pd.DataFrame({"confidence": [0.5]}))


# ----------------------------------------------------------------------------------------------
# bad input, burn_out, NaN handling


@pytest.mark.parametrize("make,match", [
    (lambda ids, g, lg: (ids, g, lg[:, 0]), r"shape \(examples, epochs, classes\).*logits\[:, None, :\]"),
    (lambda ids, g, lg: (ids, g[:-1], lg), r"gold must have shape \(8,\)"),
    (lambda ids, g, lg: (ids[:-1], g, lg), r"ids must have shape \(8,\)"),
    (lambda ids, g, lg: (ids, np.where(np.arange(8) == 2, 3, g), lg), r"1 gold labels lie outside 0\.\.2"),
    (lambda ids, g, lg: (ids, np.where(np.arange(8) == 2, -1, g), lg), "outside 0..2"),
    (lambda ids, g, lg: (ids, g + 0.5, lg), "whole numbers"),
    (lambda ids, g, lg: (ids, g, lg[:, :0]), "no epochs"),
    (lambda ids, g, lg: (ids[:0], g[:0], lg[:0]), "no examples"),
    (lambda ids, g, lg: (ids, g * 0, lg[:, :, :1]), "at least 2 classes"),
    (lambda ids, g, lg: (np.zeros(8, dtype=int), g, lg), "ids must be unique, 7 are repeated"),
    (lambda ids, g, lg: {"logits": lg}, "expects a Dynamics or a tuple"),
])
def test_bad_input(make, match):
    ids, gold, logits = random_dynamics(8, 3, 3)
    with pytest.raises(DatacartoError, match=match):
        compute_metrics(make(ids, gold, logits))


@pytest.mark.parametrize("kwargs,match", [
    (dict(burn_out=0), "burn_out must be between 1 and 3"),
    (dict(burn_out=4), "burn_out must be between 1 and 3"),
    (dict(burn_out=1.5), "whole number"),
    (dict(el2n_epoch=3), r"el2n_epoch must be an epoch index in -3\.\.2"),
    (dict(burn_out=2, el2n_epoch=2), r"-2\.\.1"),
])
def test_bad_burn_out_and_el2n_epoch(kwargs, match):
    with pytest.raises(DatacartoError, match=match):
        compute_metrics(random_dynamics(8, 3, 3), **kwargs)


def test_burn_out_uses_only_the_first_epochs():
    ids, gold, logits = random_dynamics(200, 5, 3, seed=2)
    burnt = compute_metrics((ids, gold, logits), burn_out=2)
    pd.testing.assert_frame_equal(burnt, compute_metrics((ids, gold, logits[:, :2].copy())))
    assert (burnt["n_epochs_used"] == 2).all()
    assert not np.allclose(burnt["confidence"], compute_metrics((ids, gold, logits))["confidence"])


def test_nan_epoch_is_left_out_per_example():
    logits = np.array([[[2.0, 0.0], [np.nan, 1.0], [0.0, 3.0]],
                       [[0.0, 1.0], [0.0, 2.0], [np.nan, np.nan]]], dtype=np.float32)
    with pytest.warns(UserWarning, match=r"2 example-epochs \(2 examples\)"):
        df = compute_metrics((np.array([5, 6]), np.array([0, 1]), logits), el2n_epoch=1)
    first = df.loc[5]
    p0, p2 = 1 / (1 + math.exp(-2)), 1 / (1 + math.exp(3))  # p(gold=0) at epochs 0 and 2
    assert first["n_epochs_used"] == 2 and first["confidence"] == pytest.approx((p0 + p2) / 2)
    assert first["forgetfulness"] == 1  # right at epoch 0, wrong at epoch 2 (epoch 1 skipped)
    assert math.isnan(first["el2n"])  # el2n_epoch=1 is unusable for this example
    second = df.loc[6]  # last usable epoch is epoch 1: [0, 2]
    assert second["last_pred"] == 1 and second["last_prob"] == pytest.approx(1 / (1 + math.exp(-2)))
    assert second["last_loss"] == pytest.approx(math.log(1 + math.exp(-2)))


# ----------------------------------------------------------------------------------------------
# get_metrics cache


def write_run(folder, n=50, epochs=3, seed=0):
    ids, gold, logits = random_dynamics(n, epochs, 3, seed=seed)
    writer = DynamicsWriter(dynamics_dir(folder))
    for t in range(epochs):
        writer.write_epoch(t, ids, gold, logits[:, t])
    return ids, gold, logits


class Counter:
    def __init__(self):
        self.calls = 0
        self.real = M.compute_metrics

    def __call__(self, *args, **kwargs):
        self.calls += 1
        return self.real(*args, **kwargs)


def test_get_metrics_caches_and_recomputes_on_change(tmp_path, monkeypatch):
    ids, gold, logits = write_run(tmp_path)
    counter = Counter()
    monkeypatch.setattr(M, "compute_metrics", counter)
    first = get_metrics(tmp_path)
    folder = dynamics_dir(tmp_path)
    assert (folder / "metrics.parquet").is_file() and (folder / "metrics.json").is_file()
    assert list(first.columns) == [*M.COLUMNS, "region"] and first["region"].notna().all()
    order = np.argsort(ids)
    expected = counter.real((ids[order], gold[order], logits[order]))
    pd.testing.assert_frame_equal(first.drop(columns="region"), expected)

    again = get_metrics(tmp_path)
    assert counter.calls == 1  # cache hit
    pd.testing.assert_frame_equal(again, first)
    assert isinstance(again["region"].dtype, pd.CategoricalDtype)
    assert again.attrs["variability_threshold"] == first.attrs["variability_threshold"]

    path = list_epoch_files(folder)[1]
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
    get_metrics(tmp_path)
    assert counter.calls == 2  # mtime changed

    get_metrics(tmp_path, burn_out=2)
    assert counter.calls == 3
    assert (get_metrics(tmp_path, burn_out=2)["n_epochs_used"] == 2).all()
    assert counter.calls == 3

    new_ids, new_gold, new_logits = ids, gold, logits[:, 0] + 1
    DynamicsWriter(folder).write_epoch(3, new_ids, new_gold, new_logits)
    assert (get_metrics(tmp_path)["n_epochs_used"] == 4).all()
    assert counter.calls == 4


def test_get_metrics_ignores_a_broken_cache(tmp_path, monkeypatch):
    write_run(tmp_path)
    first = get_metrics(tmp_path)
    (dynamics_dir(tmp_path) / "metrics.parquet").write_bytes(b"not parquet")
    counter = Counter()
    monkeypatch.setattr(M, "compute_metrics", counter)
    pd.testing.assert_frame_equal(get_metrics(tmp_path), first)
    assert counter.calls == 1


def test_get_metrics_eval_split_and_missing_dynamics(tmp_path):
    ids, gold, logits = random_dynamics(20, 2, 3)
    writer = DynamicsWriter(dynamics_dir(tmp_path, "validation"))
    for t in range(2):
        writer.write_epoch(t, ids, gold, logits[:, t])
    assert len(get_metrics(tmp_path, split="validation")) == 20
    assert (dynamics_dir(tmp_path, "validation") / "metrics.parquet").is_file()
    with pytest.raises(DatacartoError, match="no training dynamics found"):
        get_metrics(tmp_path)


# ----------------------------------------------------------------------------------------------
# CLI


@pytest.mark.parametrize("suffix", [".parquet", ".csv", ".jsonl"])
def test_cli_writes_the_table(tmp_path, capsys, suffix):
    write_run(tmp_path / "run", n=40)
    out = tmp_path / f"m{suffix}"
    assert cli_main(["metrics", str(tmp_path / "run"), "--out", str(out), "--burn-out", "2"]) == 0
    stdout = capsys.readouterr().out
    assert "40 examples, 2 epochs (of 3 recorded)" in stdout and "ambiguous" in stdout
    assert "mean confidence" in stdout
    expected = get_metrics(tmp_path / "run", burn_out=2)
    frame = {".parquet": pd.read_parquet, ".csv": pd.read_csv,
             ".jsonl": lambda p: pd.read_json(p, lines=True)}[suffix](out)
    assert frame["row_id"].tolist() == expected.index.tolist()
    assert frame["region"].astype(str).tolist() == expected["region"].astype(str).tolist()
    # (.jsonl keeps 10 decimals: the default of pandas' to_json)
    np.testing.assert_allclose(frame["confidence"], expected["confidence"], rtol=0, atol=1e-9)
    n_amb = int((expected["region"] == "ambiguous").sum())
    assert f"ambiguous {n_amb} " in stdout


@pytest.mark.parametrize("args,match", [
    (["{run}", "--burn-out", "7"], "burn_out must be between 1 and 3"),
    (["{missing}"], "not found"),
    (["{run}", "--out", "{tmp}/m.xlsx"], "unsupported output format"),
    (["{empty}"], "no training dynamics found"),
])
def test_cli_errors_are_one_line(tmp_path, capsys, args, match):
    write_run(tmp_path / "run", n=10)
    (tmp_path / "empty").mkdir()
    argv = [a.format(run=tmp_path / "run", missing=tmp_path / "nope", tmp=tmp_path, empty=tmp_path / "empty")
            for a in args]
    assert cli_main(["metrics", *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("datacarto: error: ") and match in err and err.count("\n") == 1
    assert not (tmp_path / "m.xlsx").exists()


# ----------------------------------------------------------------------------------------------
# import hygiene


def test_metrics_imports_neither_torch_nor_transformers():
    code = ("import sys, datacarto.metrics, datacarto.commands.metrics; "
            "print(sorted(m for m in ('torch', 'transformers') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
