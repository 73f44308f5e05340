"""Focused subsets: bounds, regions, fractions, both ends, label strata, random control, export."""

from __future__ import annotations

import json
import math
import warnings

import numpy as np
import pandas as pd
import pytest

from datacarto.dynamics.subsets import export_subset, focused_dataset
from datacarto.errors import DatacartoError
from datacarto.selection import REGIONS, random_control, select


def half_up(x: float) -> int:
    return math.floor(x + 0.5 + 1e-9)


def make_metrics(n: int = 200, seed: int = 1, label_shares=(0.5, 0.3, 0.2)) -> pd.DataFrame:
    """A metrics table with the documented columns, random values and a region column."""
    rng = np.random.default_rng(seed)
    counts = [int(round(s * n)) for s in label_shares]
    counts[0] += n - sum(counts)
    gold = rng.permutation(np.repeat(np.arange(len(counts)), counts))
    confidence = rng.uniform(0, 1, n).round(3)  # rounded: ties and exact bound values occur
    variability = rng.uniform(0, 0.5, n).round(3)
    correctness = rng.integers(0, 6, n) / 5
    region = np.where(variability > 0.3, "ambiguous", np.where(confidence >= 0.5, "easy-to-learn", "hard-to-learn"))
    frame = pd.DataFrame(
        {
            "gold": gold,
            "confidence": confidence,
            "variability": variability,
            "correctness": correctness,
            "correct_count": (correctness * 5).astype(int),
            "aum": rng.normal(0, 2, n),
            "el2n": rng.uniform(0, 1.4, n),
            "forgetfulness": rng.integers(0, 4, n),
            "region": region,
        },
        index=pd.Index(np.arange(n, dtype=np.int64) + 1000, name="row_id"),  # ids are not positions
    )
    return frame


@pytest.fixture
def m() -> pd.DataFrame:
    return make_metrics()


# ----------------------------------------------------------------------------------------------
# fractions ranked by a metric


@pytest.mark.parametrize("fraction", [0.01, 0.1, 0.25, 0.33, 0.5, 0.999, 1.0])
def test_fraction_takes_exact_count_of_the_hardest(m, fraction):
    ids = select(m, metric="variability", fraction=fraction)
    assert ids.dtype == np.int64
    assert len(ids) == half_up(fraction * len(m))
    assert len(set(ids.tolist())) == len(ids)
    chosen = m.loc[ids, "variability"]
    rest = m.drop(index=ids)["variability"]
    if len(rest):
        assert chosen.min() >= rest.max()  # high variability = "hardest"
    assert chosen.is_monotonic_decreasing  # rank order


def test_low_is_hard_for_confidence_and_easiest_reverses(m):
    hard = select(m, metric="confidence", fraction=0.2)
    easy = select(m, metric="confidence", fraction=0.2, order="easiest")
    assert len(hard) == len(easy) == 40
    rest_hard = m.drop(index=hard)["confidence"]
    assert m.loc[hard, "confidence"].max() <= rest_hard.min()
    rest_easy = m.drop(index=easy)["confidence"]
    assert m.loc[easy, "confidence"].min() >= rest_easy.max()


def test_half_rounds_up():
    frame = make_metrics(n=10)
    assert len(select(frame, metric="aum", fraction=0.25)) == 3  # 2.5 -> 3
    assert len(select(frame, metric="aum", fraction=0.35)) == 4  # 3.5 -> 4
    assert len(select(frame, metric="aum", fraction=0.15)) == 2  # 1.5 -> 2 (Python round: 2)
    assert len(select(frame, metric="aum", fraction=0.45)) == 5  # 4.5 -> 5 (Python round: 4)


def test_ties_break_by_row_id():
    frame = make_metrics(n=20)
    frame["variability"] = 0.25  # all tied
    ids = select(frame, metric="variability", fraction=0.3)
    assert ids.tolist() == sorted(frame.index)[:6]
    ids = select(frame, metric="variability", fraction=0.3, order="easiest")
    assert ids.tolist() == sorted(frame.index)[:6]


def test_fraction_is_of_the_filtered_pool(m):
    pool = m[(m.confidence >= 0.2) & (m.confidence <= 0.8)]
    ids = select(m, min_confidence=0.2, max_confidence=0.8, metric="el2n", fraction=0.4)
    assert len(ids) == half_up(0.4 * len(pool))
    assert set(ids) <= set(pool.index)
    rest = pool.drop(index=ids)["el2n"]
    assert m.loc[ids, "el2n"].min() >= rest.max()


def test_nan_metric_values_are_never_ranked(m):
    m = m.copy()
    m.loc[m.index[:10], "variability"] = np.nan
    ids = select(m, metric="variability", fraction=1.0)
    assert len(ids) == len(m) - 10
    assert not set(ids) & set(m.index[:10])


# ----------------------------------------------------------------------------------------------
# bounds and regions


def test_bounds_are_inclusive(m):
    lo, hi = m["confidence"].iloc[3], m["confidence"].iloc[7]
    lo, hi = min(lo, hi), max(lo, hi)
    ids = select(m, min_confidence=lo, max_confidence=hi)
    assert m.index[3] in ids and m.index[7] in ids  # the rows that define the bounds are in
    expected = m.index[(m.confidence >= lo) & (m.confidence <= hi)]
    assert ids.tolist() == sorted(expected)
    ids = select(m, min_confidence=lo, max_confidence=hi, max_correctness=0.6)
    expected = m.index[(m.confidence >= lo) & (m.confidence <= hi) & (m.correctness <= 0.6)]
    assert ids.tolist() == sorted(expected)


def test_correctness_bound_keeps_values_equal_to_it(m):
    ids = select(m, min_correctness=0.4, max_correctness=0.4)
    assert len(ids) == int((m.correctness == 0.4).sum()) > 0
    ids = select(m, min_variability=0.1, max_variability=0.2)
    assert ids.tolist() == sorted(m.index[(m.variability >= 0.1) & (m.variability <= 0.2)])


def test_region_filter_one_or_many(m):
    ids = select(m, region="hard-to-learn")
    assert ids.tolist() == sorted(m.index[m.region == "hard-to-learn"])
    ids = select(m, region=["ambiguous", "Hard_to_learn"])
    assert ids.tolist() == sorted(m.index[m.region.isin(["ambiguous", "hard-to-learn"])])


def test_region_fraction_is_of_the_whole_data_ranked_by_region_metric(m):
    amb = m[m.region == "ambiguous"]
    ids = select(m, region="ambiguous", fraction=0.1)
    assert len(ids) == half_up(0.1 * len(m)) < len(amb)
    assert set(ids) <= set(amb.index)
    assert m.loc[ids, "variability"].min() >= amb.drop(index=ids)["variability"].max()

    easy = m[m.region == "easy-to-learn"]
    ids = select(m, region="easy-to-learn", fraction=0.05)
    assert len(ids) == 10
    assert m.loc[ids, "confidence"].min() >= easy.drop(index=ids)["confidence"].max()

    hard = m[m.region == "hard-to-learn"]
    ids = select(m, region="hard-to-learn", fraction=0.05)
    assert m.loc[ids, "confidence"].max() <= hard.drop(index=ids)["confidence"].min()


def test_region_fraction_is_capped_at_the_region_size(m):
    amb = m[m.region == "ambiguous"]
    assert half_up(0.9 * len(m)) > len(amb)
    ids = select(m, region="ambiguous", fraction=0.9)
    assert sorted(ids) == sorted(amb.index)


# ----------------------------------------------------------------------------------------------
# both ends and label strata


def test_both_ends_exact_shares_from_the_two_ends(m):
    ids = select(m, metric="variability", fraction=0.3, both_ends=0.7)
    k = half_up(0.3 * len(m))
    n_hard = half_up(0.7 * k)
    assert len(ids) == k == 60 and n_hard == 42
    ranked = m.sort_values("variability", ascending=False, kind="stable")["variability"]
    hard, easy = ids[:n_hard], ids[n_hard:]
    assert len(easy) == k - n_hard
    # the hard share is the top of the ranking, the easy share the bottom, with no overlap
    assert m.loc[hard, "variability"].min() >= ranked.iloc[n_hard]
    assert m.loc[easy, "variability"].max() <= ranked.iloc[len(m) - (k - n_hard) - 1]
    assert not set(hard) & set(easy)


def test_both_ends_rounding_and_extremes():
    frame = make_metrics(n=10)
    ids = select(frame, metric="confidence", fraction=0.5, both_ends=0.5)  # k=5: 3 hard + 2 easy
    conf = frame["confidence"].sort_values(kind="stable")
    assert sorted(ids[:3]) == sorted(conf.index[:3])
    assert sorted(ids[3:]) == sorted(conf.index[-2:])
    all_hard = select(frame, metric="confidence", fraction=0.5, both_ends=1.0)
    assert all_hard.tolist() == select(frame, metric="confidence", fraction=0.5).tolist()
    all_easy = select(frame, metric="confidence", fraction=0.5, both_ends=0.0)
    assert sorted(all_easy) == sorted(conf.index[-5:])


def test_stratify_by_label_exact_per_label_counts(m):
    # labels 100 / 60 / 40; k = 66 -> exact shares 33, 19.8, 13.2 -> 33, 20, 13
    ids = select(m, metric="confidence", fraction=0.33, stratify_by_label=True)
    assert len(ids) == 66
    counts = m.loc[ids, "gold"].value_counts().to_dict()
    assert counts == {0: 33, 1: 20, 2: 13}
    for _, group in m.groupby("gold"):
        chosen = group.loc[group.index.isin(ids), "confidence"]
        assert chosen.max() <= group.loc[~group.index.isin(ids), "confidence"].min()


def test_stratify_largest_remainder_breaks_even_shares():
    frame = make_metrics(n=100, label_shares=(0.5, 0.3, 0.2))
    # k = 33: exact 16.5, 9.9, 6.6 -> floors 16, 9, 6 (31); remainders .9 and .6 get the 2 left
    ids = select(frame, metric="variability", fraction=0.33, stratify_by_label=True)
    assert frame.loc[ids, "gold"].value_counts().to_dict() == {0: 16, 1: 10, 2: 7}


def test_stratify_with_both_ends_within_each_label(m):
    ids = select(m, metric="variability", fraction=0.2, both_ends=0.5, stratify_by_label=True)
    assert m.loc[ids, "gold"].value_counts().to_dict() == {0: 20, 1: 12, 2: 8}
    group = m[m.gold == 2].sort_values("variability", ascending=False)
    chosen = set(ids) & set(group.index)
    assert chosen == set(group.index[:4]) | set(group.index[-4:])


def test_fraction_without_metric_or_region_is_seeded_random(m):
    a = select(m, max_confidence=0.7, fraction=0.5, seed=3)
    b = select(m, max_confidence=0.7, fraction=0.5, seed=3)
    c = select(m, max_confidence=0.7, fraction=0.5, seed=4)
    pool = m.index[m.confidence <= 0.7]
    assert len(a) == half_up(0.5 * len(pool))
    assert a.tolist() == b.tolist() and a.tolist() != c.tolist()
    assert set(a) <= set(pool)


# ----------------------------------------------------------------------------------------------
# random control


def test_random_control_matches_size_and_label_mix(m):
    ids = select(m, metric="variability", fraction=0.25)
    control = random_control(ids, m, seed=7)
    assert len(control) == len(ids)
    assert (m.loc[control, "gold"].value_counts().sort_index()
            == m.loc[ids, "gold"].value_counts().sort_index()).all()
    assert set(m.loc[control, "gold"]) == set(m.loc[ids, "gold"])
    assert control.tolist() == random_control(ids, m, seed=7).tolist()
    assert control.tolist() != random_control(ids, m, seed=8).tolist()
    disjoint = random_control(ids, m, seed=7, exclude=ids)
    assert len(disjoint) == len(ids) and not set(disjoint) & set(ids)


def test_random_control_of_a_count(m):
    control = random_control(50, m, seed=1)
    assert len(control) == len(set(control)) == 50
    assert m.loc[control, "gold"].value_counts().to_dict() == {0: 25, 1: 15, 2: 10}
    free = random_control(50, m, match_labels=False, seed=1)
    assert len(free) == 50 and set(free) <= set(m.index)


def test_random_control_errors(m):
    with pytest.raises(DatacartoError, match="not in the metrics table"):
        random_control([1, 2, 3], m)
    with pytest.raises(DatacartoError, match="label 2"):
        label2 = m.index[m.gold == 2]
        random_control(label2, m, exclude=label2[:5])
    with pytest.raises(DatacartoError):
        random_control(-1, m)


# ----------------------------------------------------------------------------------------------
# validation and empty selections


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(metric="variability", fraction=0.0), "fraction must be in"),
        (dict(metric="variability", fraction=1.5), "fraction must be in"),
        (dict(min_confidence=0.8, max_confidence=0.2), "greater than max_confidence"),
        (dict(metric="loudness", fraction=0.1), "valid metrics: confidence"),
        (dict(region="tricky"), "valid regions: easy-to-learn, ambiguous, hard-to-learn"),
        (dict(metric="variability", fraction=0.3, both_ends=1.2), "both_ends must be in"),
        (dict(metric="variability", both_ends=0.5), "both_ends needs a metric and a fraction"),
        (dict(fraction=0.3, both_ends=0.5), "both_ends needs a metric and a fraction"),
        (dict(region=["ambiguous", "hard-to-learn"], fraction=0.3), "needs a metric"),
        (dict(metric="variability", fraction=0.3, order="middle"), "order must be one of"),
        (dict(fraction=0.3, order="easiest"), "order needs a metric"),
        (dict(metric="aum", stratify_by_label=True), "stratify_by_label needs a fraction"),
        (dict(method="kmeans", fraction=0.3), "method must be one of rules, trajectory-clusters"),
        (dict(method="trajectory-clusters"), "method trajectory-clusters needs a fraction"),
        (dict(method="trajectory-clusters", fraction=0.3, metric="aum", order="easiest"),
         "method trajectory-clusters does not rank: metric, order are for method rules"),
        (dict(method="trajectory-clusters", fraction=0.3, stratify_by_label=True),
         "does not rank: stratify_by_label is for method rules"),
        (dict(method="trajectory-clusters", fraction=0.3, clusters=0), "clusters must be a positive integer"),
        (dict(method="trajectory-clusters", fraction=0.3, clusters=2.5), "clusters must be a positive integer"),
        (dict(region="ambiguous", fraction=0.3, clusters=3), "clusters is for method trajectory-clusters"),
        (dict(method="trajectory-clusters", fraction=0.3), "needs the loss trajectories"),
    ],
)
def test_validation_errors(m, kwargs, message):
    with pytest.raises(DatacartoError, match=message):
        select(m, **kwargs)


def trajectories_of(m: pd.DataFrame, seed: int = 0) -> pd.DataFrame:
    """Loss trajectories (4 epochs) by row id: three groups that k-means separates."""
    rng = np.random.default_rng(seed)
    level = np.asarray(m["confidence"].to_numpy() * 3).round()
    values = level[:, None] + 0.01 * rng.standard_normal((len(m), 4))
    return pd.DataFrame(values, index=m.index)


@pytest.mark.parametrize("criteria", [dict(region="hard-to-learn"), dict(max_confidence=0.6, min_variability=0.1),
                                      dict(region=["ambiguous", "easy-to-learn"], min_correctness=0.4)])
def test_trajectory_clusters_sample_the_pool_that_region_and_bounds_leave(m, criteria):
    """S2L honours region and bounds: the clusters are of the pool, and fraction x pool size ids come back."""
    traj = trajectories_of(m)
    ids = select(m, method="trajectory-clusters", fraction=0.4, clusters=3, trajectories=traj, seed=2, **criteria)
    pool = select(m, **criteria)
    assert len(ids) == half_up(0.4 * len(pool)) and set(ids) <= set(pool)
    assert ids.tolist() == sorted(ids.tolist())
    np.testing.assert_array_equal(ids, select(m, method="trajectory-clusters", fraction=0.4, clusters=3,
                                              trajectories=traj, seed=2, **criteria))  # seeded
    from datacarto.trajectory import trajectory_clusters

    shown = traj.loc[np.sort(pool)]  # the same as clustering the pool's trajectories alone
    np.testing.assert_array_equal(ids, trajectory_clusters(shown.to_numpy(), shown.index.to_numpy(), fraction=0.4,
                                                           clusters=3, seed=2))


def test_trajectory_clusters_pool_errors_and_empty_pool(m):
    traj = trajectories_of(m)
    n_hard = int((m["region"] == "hard-to-learn").sum())
    with pytest.raises(DatacartoError, match=f"clusters={n_hard + 1} is more than the {n_hard} examples"):
        select(m, method="trajectory-clusters", fraction=0.5, clusters=n_hard + 1, region="hard-to-learn",
               trajectories=traj)
    with pytest.raises(DatacartoError, match="5 row ids of the metrics table have no loss trajectory"):
        select(m, method="trajectory-clusters", fraction=0.5, trajectories=traj.iloc[5:])
    with pytest.warns(UserWarning, match="empty selection"):
        ids = select(m, method="trajectory-clusters", fraction=0.5, min_confidence=2.0, trajectories=traj)
    assert ids.size == 0


def test_missing_column_is_named(m):
    with pytest.raises(DatacartoError, match="self_confidence"):
        select(m, metric="self_confidence", fraction=0.1)
    with pytest.raises(DatacartoError, match="region"):
        select(m.drop(columns="region"), region="ambiguous")


def test_empty_selection_warns_with_the_bounds(m):
    with pytest.warns(UserWarning, match=r"empty selection.*min_confidence=2\.0"):
        ids = select(m, min_confidence=2.0)
    assert ids.dtype == np.int64 and ids.size == 0
    with pytest.warns(UserWarning, match="empty selection"):
        assert select(make_metrics(n=10), metric="aum", fraction=0.04).size == 0  # 0.4 -> 0


def test_regions_match_metrics_module():
    metrics = pytest.importorskip("datacarto.metrics")
    assert tuple(metrics.REGIONS) == REGIONS


# ----------------------------------------------------------------------------------------------
# focused datasets and export


def make_run(tmp_path, n: int = 12):
    from datacarto.dynamics.store import DynamicsWriter, dynamics_dir

    frame = pd.DataFrame(
        {
            "premise": [f"premise {i}, with \"quotes\" and ünïcode" for i in range(n)],
            "hypothesis": [f"hypothesis {i}" for i in range(n)],
            "label": [f"name{i % 3}" for i in range(n)],  # original column; the store keeps int gold
            "source_id": np.arange(n, dtype=np.int64) * 7,
            "score": np.linspace(0.125, 3.5, n),
            "flag": [i % 2 == 0 for i in range(n)],
        }
    )
    run = tmp_path / "run"
    labels = np.arange(n) % 3
    DynamicsWriter(dynamics_dir(run)).write_examples(
        np.arange(n), np.arange(n, dtype=np.uint64) + 99, labels, frame
    )
    return run, frame, labels


def test_focused_dataset_from_run_keeps_columns_and_order(tmp_path):
    run, frame, labels = make_run(tmp_path)
    ids = np.array([7, 2, 11, 0])
    ds = focused_dataset(run, ids)
    assert ds["row_id"] == ids.tolist()
    assert "fingerprint" not in ds.column_names
    assert set(ds.column_names) == {"premise", "hypothesis", "label", "source_id", "score", "flag", "row_id"}
    assert ds["label"] == labels[ids].tolist()
    for col in ("premise", "hypothesis", "source_id", "score", "flag"):
        assert ds[col] == frame[col].iloc[ids].tolist()
    with pytest.raises(DatacartoError, match="not in the run's examples"):
        focused_dataset(run, [3, 12])


@pytest.mark.parametrize("suffix", ["jsonl", "csv", "parquet"])
def test_export_round_trip_keeps_every_column_and_value(tmp_path, suffix):
    run, frame, labels = make_run(tmp_path)
    ids = np.array([5, 1, 8])
    path = export_subset(focused_dataset(run, ids), tmp_path / f"subset.{suffix}")
    if suffix == "jsonl":
        back = pd.DataFrame([json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()])
    elif suffix == "csv":
        back = pd.read_csv(path)
    else:
        back = pd.read_parquet(path)
    expected = frame.iloc[ids].reset_index(drop=True).assign(label=labels[ids], row_id=ids)
    assert set(back.columns) == set(expected.columns)
    for col in expected.columns:
        assert back[col].tolist() == expected[col].tolist(), col
    assert not list(tmp_path.glob(".*.tmp"))  # atomic write left no temporary file


def test_export_refuses_to_overwrite_with_empty(tmp_path):
    run, _, _ = make_run(tmp_path)
    out = tmp_path / "subset.jsonl"
    export_subset(focused_dataset(run, [1, 2]), out)
    before = out.read_bytes()
    with pytest.raises(DatacartoError, match="refusing to overwrite"):
        export_subset(focused_dataset(run, []), out)
    assert out.read_bytes() == before
    with pytest.raises(DatacartoError, match="unsupported output format"):
        export_subset(focused_dataset(run, [1]), tmp_path / "subset.xlsx")


def test_focused_dataset_from_a_dataset():
    import datasets

    ds = datasets.Dataset.from_dict({"text": list("abcdef"), "label": [0, 1, 0, 1, 0, 1]})
    sub = focused_dataset(ds, [4, 0])
    assert sub["text"] == ["e", "a"] and sub["row_id"] == [4, 0] and sub["label"] == [0, 0]
    with pytest.raises(DatacartoError, match="outside the data set"):
        focused_dataset(ds, [6])
    labelled = ds.cast_column("label", datasets.ClassLabel(names=["no", "yes"]))
    assert focused_dataset(labelled, [1]).features["label"] == labelled.features["label"]
    with_ids = ds.add_column("row_id", [10, 11, 12, 13, 14, 15])
    with pytest.raises(DatacartoError, match="row_id column disagrees"):
        focused_dataset(with_ids, [1])


def test_focused_dataset_errors(tmp_path):
    with pytest.raises(DatacartoError, match="not found"):
        focused_dataset(tmp_path / "nope", [0])
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatacartoError, match="recorded no examples"):
        focused_dataset(tmp_path / "empty", [0])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(DatacartoError):
            focused_dataset(object(), [0])


# ----------------------------------------------------------------------------------------------
# command line


LABEL_NAMES = ["entailment", "neutral", "contradiction"]


def make_recorded_run(tmp_path, n: int = 60, epochs: int = 4, name: str = "run"):
    """A run dir with random logits for a few epochs, examples with text columns and label names."""
    from datacarto.dynamics.store import DynamicsWriter, dynamics_dir

    rng = np.random.default_rng(0)
    gold = np.arange(n) % 3
    writer = DynamicsWriter(dynamics_dir(tmp_path / name))
    for e in range(epochs):
        logits = rng.normal(0, 1, (n, 3)).astype(np.float32)
        logits[np.arange(n), gold] += rng.uniform(-1, 3, n) * e  # learned at different speeds
        writer.write_epoch(e, np.arange(n), gold, logits, epoch=float(e + 1))
    texts = pd.DataFrame({"premise": [f"p{i}" for i in range(n)], "hypothesis": [f"h{i}" for i in range(n)],
                          "genre": [["fiction", "news"][i % 2] for i in range(n)]})
    writer.write_examples(np.arange(n), np.arange(n, dtype=np.uint64), gold, texts)
    writer.update_manifest(label_names=LABEL_NAMES)
    return tmp_path / name, texts, gold


def read_jsonl(path) -> pd.DataFrame:
    return pd.DataFrame([json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()])


def test_cli_writes_selection_and_control(tmp_path, capsys):
    pytest.importorskip("datacarto.metrics")
    from datacarto.cli import main
    from datacarto.dynamics.cache import get_metrics

    run, texts, gold = make_recorded_run(tmp_path)
    out, ctrl = tmp_path / "amb.jsonl", tmp_path / "ctrl.csv"
    rc = main(["select", str(run), "--out", str(out), "--region", "ambiguous", "--fraction", "0.2",
               "--control-out", str(ctrl), "--seed", "3"])
    printed = capsys.readouterr().out
    assert rc == 0
    metrics = get_metrics(run)
    expected = select(metrics, region="ambiguous", fraction=0.2)
    got = read_jsonl(out)
    assert got["row_id"].tolist() == expected.tolist()
    assert set(got.columns) == {"premise", "hypothesis", "genre", "label", "row_id"}
    assert got["premise"].tolist() == texts["premise"].iloc[expected].tolist()
    assert got["label"].tolist() == gold[expected].tolist()
    assert f"{len(expected)} of 60" in printed
    amb = int((metrics.loc[expected, "region"] == "ambiguous").sum())
    assert f"ambiguous {amb}" in printed
    for i, name in enumerate(LABEL_NAMES):
        assert f"{name} {int((gold[expected] == i).sum())}" in printed
    control = pd.read_csv(ctrl)
    assert control["row_id"].tolist() == random_control(expected, metrics, seed=3).tolist()
    assert sorted(control["label"]) == sorted(gold[expected])


def test_cli_random_control_and_both_ends(tmp_path, capsys):
    pytest.importorskip("datacarto.metrics")
    from datacarto.cli import main
    from datacarto.dynamics.cache import get_metrics

    run, _, _ = make_recorded_run(tmp_path)
    out = tmp_path / "mix.parquet"
    args = ["select", str(run), "--out", str(out), "--metric", "variability", "--fraction", "0.5",
            "--both-ends", "0.7", "--stratify-by-label"]
    assert main(args) == 0
    expected = select(get_metrics(run), metric="variability", fraction=0.5, both_ends=0.7, stratify_by_label=True)
    assert pd.read_parquet(out)["row_id"].tolist() == expected.tolist()
    assert main(args + ["--random-control", "--control-disjoint"]) == 0
    control = pd.read_parquet(out)["row_id"]
    assert len(control) == len(expected) and not set(control) & set(expected)
    assert "random control" in capsys.readouterr().out


def test_cli_empty_selection_keeps_the_old_file(tmp_path, capsys):
    pytest.importorskip("datacarto.metrics")
    from datacarto.cli import main

    run, _, _ = make_recorded_run(tmp_path)
    out = tmp_path / "subset.jsonl"
    out.write_text("old\n", encoding="utf-8")
    rc = main(["select", str(run), "--out", str(out), "--min-confidence", "0.99", "--max-correctness", "0"])
    err = capsys.readouterr().err
    assert rc == 1
    assert "min_confidence=0.99" in err and "max_correctness=0.0" in err
    assert out.read_text(encoding="utf-8") == "old\n"


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--fraction", "1.5", "--metric", "aum"], "fraction must be in"),
        (["--region", "tricky"], "valid regions"),
        (["--random-control", "--control-out", "x.csv"], "not both"),
    ],
)
def test_cli_user_errors_exit_2(tmp_path, capsys, extra, message):
    pytest.importorskip("datacarto.metrics")
    from datacarto.cli import main

    run, _, _ = make_recorded_run(tmp_path)
    assert main(["select", str(run), "--out", str(tmp_path / "s.jsonl"), *extra]) == 2
    err = capsys.readouterr().err
    assert err.startswith("datacarto: error:") and message in err
    assert not (tmp_path / "s.jsonl").exists()


def cli_selection(run, recipe: dict, out, capsys):
    """``datacarto select`` with a recipe's criteria as flags: the row ids written, or the error line's message."""
    from datacarto.cli import main

    argv = ["select", str(run), "--out", str(out)]
    for key, value in recipe.items():
        flag = "--" + key.replace("_", "-")
        argv += [flag] if value is True else [] if key == "name" else [flag, str(value)]
    code = main(argv)
    err = capsys.readouterr().err.strip().splitlines()
    if code == 2:
        assert len(err) == 1 and not out.exists(), err
        return err[0].removeprefix("datacarto: error: ")
    assert code == 0, err
    return read_jsonl(out)["row_id"].to_numpy()


def pipeline_selection(root, recipe: dict):
    """The select stage of ``datacarto run`` (``root/baseline`` is the run): the row ids written, or the error."""
    from datacarto.dynamics.cache import get_metrics
    from datacarto.pipeline.config import PipelineConfig
    from datacarto.pipeline.context import Context
    from datacarto.pipeline.runner import StageRecord
    from datacarto.pipeline.stages import select_stage
    from datacarto.pipeline.summaries import DataSummary, MetricsSummary

    try:
        config = PipelineConfig(model="m", dataset="d.jsonl", validation="v.jsonl", output_dir=str(root),
                                recipes=[recipe], control=False).validate()
    except DatacartoError as e:
        return str(e)
    ctx = Context(config, force=set(), log=lambda line: None, progress=False)
    ctx.layout.train_metrics.parent.mkdir(parents=True, exist_ok=True)
    get_metrics(ctx.layout.baseline_dir).reset_index().to_parquet(ctx.layout.train_metrics)
    data = DataSummary(text_columns=["premise", "hypothesis"], label_names=LABEL_NAMES)
    for name, part in (("data", data), ("metrics", MetricsSummary())):
        ctx.runner.records[name] = StageRecord(name, name, name, 0.0, 0.0, [], part)
    try:
        select_stage(ctx)
    except DatacartoError as e:
        return str(e)
    return read_jsonl(ctx.layout.subset(recipe["name"]))["row_id"].to_numpy()


S2L = {"name": "s2l", "method": "trajectory-clusters"}


@pytest.mark.parametrize("recipe, honoured", [
    ({**S2L, "fraction": 0.5, "clusters": 2, "region": "easy-to-learn"}, dict(region="easy-to-learn")),
    ({**S2L, "fraction": 0.4, "clusters": 3, "max_confidence": 0.6, "min_variability": 0.05},
     dict(max_confidence=0.6, min_variability=0.05)),
    ({**S2L, "fraction": 0.5, "metric": "aum"}, None),
    ({**S2L, "fraction": 0.5, "clusters": 60, "region": "easy-to-learn"}, None),  # refused on the data
    ({**S2L, "fraction": 0.5, "stratify_by_label": True}, None),
    ({**S2L, "clusters": 3}, None),
    ({"name": "amb", "region": "ambiguous", "fraction": 0.3, "clusters": 3}, None),
])
def test_select_command_and_pipeline_recipe_follow_one_rule(tmp_path, capsys, recipe, honoured):
    """The same criteria give the same ids, or the same refusal, in ``datacarto select`` and a ``run`` recipe."""
    from datacarto.dynamics.cache import get_metrics

    run, _, _ = make_recorded_run(tmp_path / "out", name="baseline")
    cli = cli_selection(run, recipe, tmp_path / "s.jsonl", capsys)
    piped = pipeline_selection(tmp_path / "out", recipe)
    if honoured is None:  # refused by both, with one message
        assert isinstance(cli, str) and piped == f"recipe {recipe['name']!r}: {cli}"
        return
    assert not isinstance(cli, str) and not isinstance(piped, str), (cli, piped)
    np.testing.assert_array_equal(cli, piped)
    metrics = get_metrics(run)
    pool = select(metrics, **honoured)
    assert set(cli) <= set(pool) and len(cli) == half_up(recipe["fraction"] * len(pool)) > 0


def test_cli_run_without_dynamics(tmp_path, capsys):
    pytest.importorskip("datacarto.metrics")
    from datacarto.cli import main

    (tmp_path / "empty").mkdir()
    assert main(["select", str(tmp_path / "empty"), "--out", str(tmp_path / "s.jsonl")]) == 2
    assert "no training dynamics" in capsys.readouterr().err


def test_get_focused_sets_seed_api(tmp_path):
    pytest.importorskip("datacarto.metrics")
    import datasets

    from datacarto.dynamics.cache import get_metrics
    from datacarto.dynamics.subsets import get_focused_sets

    run, texts, gold = make_recorded_run(tmp_path)
    metrics = get_metrics(run)
    hi = float(metrics["confidence"].median())
    sets = get_focused_sets(run, max_confidence=hi, min_correctness=0.25)
    keep = metrics.index[(metrics.confidence <= hi) & (metrics.correctness >= 0.25)]
    assert 0 < len(keep) < len(metrics)
    assert set(sets) == {"premise", "hypothesis", "genre", "label"}
    assert sets["premise"] == texts["premise"].iloc[keep].tolist()
    assert sets["label"] == gold[keep].tolist()
    assert len(datasets.Dataset.from_dict(sets)) == len(keep)


def test_package_level_select_is_the_function_whatever_was_imported_before():
    """A submodule named like the function would shadow it once imported (``datacarto.select``)."""
    import subprocess
    import sys

    code = ("import datacarto.pipeline, datacarto.selection\n"
            "from datacarto import select, random_control\n"
            "assert callable(select) and select.__name__ == 'select', select\n"
            "assert callable(random_control)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
