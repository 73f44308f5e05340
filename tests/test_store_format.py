"""Store format 2 (units once, epochs as logit blocks), streaming reads, and format-1 runs still loading."""

from __future__ import annotations

import importlib.util
import json
import shutil
import tracemalloc
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from datacarto.dynamics import epochs as epochs_module
from datacarto.dynamics.cache import get_metrics
from datacarto.dynamics.generative import load_token_stats
from datacarto.dynamics.store import (
    DynamicsWriter,
    dynamics_dir,
    load_dynamics,
    load_epoch_columns,
    open_dynamics,
)
from datacarto.errors import DatacartoError
from datacarto.metrics import compute_metrics

FORMAT1 = Path(__file__).parent / "data" / "format1"


def _format1_arrays() -> dict[str, np.ndarray]:
    spec = importlib.util.spec_from_file_location("make_format1_run", FORMAT1 / "make_run.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.arrays()


def _synthetic(n, e=5, c=3, seed=0):
    """Logits like a fine-tune's: noise plus a gold logit that grows over epochs."""
    rng = np.random.default_rng(seed)
    gold = rng.integers(0, c, size=n)
    logits = rng.normal(size=(n, e, c)).astype(np.float32)
    logits[np.arange(n), :, gold] += np.linspace(0.5, 3.0, e, dtype=np.float32) - rng.normal(size=(n, 1))
    return gold, logits


def _write(folder, gold, logits, *, shuffle=True, seed=1, **per_epoch):
    rng = np.random.default_rng(seed)
    writer = DynamicsWriter(folder)
    n = len(gold)
    for j in range(logits.shape[1]):
        order = rng.permutation(n) if shuffle else np.arange(n)
        extra = {k: v(j)[order] for k, v in per_epoch.items()}
        filled = extra.pop("filled", None)
        writer.write_epoch(j, order, gold[order], logits[order, j], epoch=j + 1.0, filled=filled,
                           extra=extra or None)
    return writer


def test_units_written_once_and_epochs_hold_only_their_columns(tmp_path):
    gold, logits = _synthetic(50, e=3)
    _write(tmp_path, gold, logits)
    units = pq.read_table(tmp_path / "units.parquet").to_pandas()
    assert list(units.columns) == ["row_id", "gold"]
    np.testing.assert_array_equal(units["row_id"], np.arange(50))  # sorted, whatever the order given
    np.testing.assert_array_equal(units["gold"], gold)
    for j in range(3):
        table = pq.read_table(tmp_path / f"epoch_{j:03d}.parquet")
        assert table.column_names == ["logits"]
        np.testing.assert_array_equal(np.stack(table.column("logits").to_numpy(zero_copy_only=False)), logits[:, j])
    assert json.loads((tmp_path / "manifest.json").read_text())["format_version"] == 2
    dyn = load_dynamics(tmp_path)
    np.testing.assert_array_equal(dyn.ids, np.arange(50))
    np.testing.assert_array_equal(dyn.gold, gold)
    np.testing.assert_array_equal(dyn.logits, logits)  # exact


def test_at_most_13_bytes_per_example_epoch_at_three_classes(tmp_path):
    n, e = 20_000, 5
    gold, logits = _synthetic(n, e=e)
    _write(tmp_path, gold, logits, shuffle=False)
    stored = sum(p.stat().st_size for p in tmp_path.glob("*.parquet") if p.name != "examples.parquet")
    assert stored / (n * e) <= 13, stored / (n * e)
    np.testing.assert_array_equal(load_dynamics(tmp_path).logits, logits)


def test_filled_and_causal_lm_columns_follow_their_rows(tmp_path):
    gold, logits = _synthetic(40, e=2, c=2)
    stats = np.random.default_rng(3).uniform(0, 3, size=(3, 40, 2)).astype(np.float32)
    filled = np.zeros((40, 2), bool)
    filled[[5, 17], 1] = True
    _write(tmp_path, gold, logits, nll=lambda j: stats[0, :, j], token_accuracy=lambda j: stats[1, :, j],
           n_tokens=lambda j: stats[2, :, j], filled=lambda j: filled[:, j])
    assert pq.read_schema(tmp_path / "epoch_001.parquet").names == ["logits", "nll", "token_accuracy", "n_tokens",
                                                                     "filled"]
    frame = load_epoch_columns(tmp_path, 1)
    np.testing.assert_array_equal(frame.index, np.arange(40))
    np.testing.assert_array_equal(frame["filled"], filled[:, 1])
    np.testing.assert_array_equal(frame["nll"], stats[0, :, 1])
    np.testing.assert_array_equal(frame["gold"], gold)
    ids, loaded = load_token_stats(tmp_path)
    np.testing.assert_array_equal(ids, np.arange(40))
    for k, name in enumerate(("nll", "token_accuracy", "n_tokens")):
        np.testing.assert_array_equal(loaded[name], stats[k])


def test_units_of_examples_keep_their_sub_ids(tmp_path):
    rng = np.random.default_rng(0)
    rows, subs = np.repeat(np.arange(6), 3), np.tile(np.arange(3), 6)
    gold = rng.integers(0, 2, rows.size)
    logits = rng.normal(size=(rows.size, 2, 2)).astype(np.float32)
    writer = DynamicsWriter(tmp_path)
    for j in range(2):
        back = np.arange(rows.size)[::-1]
        writer.write_epoch(j, rows[back], gold[back], logits[back, j], sub_ids=subs[back])
    assert pq.read_schema(tmp_path / "units.parquet").names == ["row_id", "gold", "sub_id"]
    dyn = load_dynamics(tmp_path)
    assert dyn.unit_level
    np.testing.assert_array_equal(dyn.row_ids, rows)
    np.testing.assert_array_equal(dyn.sub_ids, subs)
    np.testing.assert_array_equal(dyn.logits, logits)
    assert list(load_epoch_columns(tmp_path, 0)["sub_id"]) == subs.tolist()


def test_an_epoch_over_other_units_keeps_its_keys_and_is_refused(tmp_path):
    gold, logits = _synthetic(7, e=2)
    writer = _write(tmp_path, gold, logits)
    writer.write_epoch(2, np.arange(6), gold[:6], logits[:6, 0])
    assert {"row_id", "gold"} <= set(pq.read_schema(tmp_path / "epoch_002.parquet").names)
    with pytest.raises(DatacartoError, match="epochs must cover the same examples"):
        load_dynamics(tmp_path)
    with pytest.raises(DatacartoError, match="epochs must cover the same examples"):
        open_dynamics(tmp_path)  # checked when opened, before any logits are read


def test_a_broken_units_file_is_one_clear_error(tmp_path):
    gold, logits = _synthetic(7, e=2)
    _write(tmp_path, gold, logits)
    pq.write_table(pq.read_table(tmp_path / "units.parquet").slice(0, 5), tmp_path / "units.parquet")
    with pytest.raises(DatacartoError, match="holds 7 rows and .*units.parquet 5"):
        load_dynamics(tmp_path)
    (tmp_path / "units.parquet").unlink()
    with pytest.raises(DatacartoError, match="holds logits only and its units file .* is missing"):
        load_dynamics(tmp_path)


def test_a_newer_format_is_refused_in_one_line(tmp_path):
    gold, logits = _synthetic(7, e=1)
    writer = _write(tmp_path, gold, logits)
    writer.update_manifest(format_version=3)
    with pytest.raises(DatacartoError, match="format_version 3: written by a newer datacarto"):
        load_dynamics(tmp_path)


# ----------------------------------------------------------------------------------------------
# metrics streamed by blocks of rows


def test_streamed_metrics_equal_the_in_memory_ones(tmp_path, monkeypatch):
    gold, logits = _synthetic(5_003, e=4)
    logits[11, 2] = np.nan
    _write(tmp_path, gold, logits)
    monkeypatch.setattr(epochs_module, "BLOCK_LOGITS", 3_000)  # many blocks, none aligned with the chunks
    opened = open_dynamics(tmp_path)
    assert isinstance(opened.logits, epochs_module.StoredLogits)
    with pytest.warns(UserWarning, match="NaN or infinite"):
        streamed = compute_metrics(opened, burn_out=3)
    with pytest.warns(UserWarning, match="NaN or infinite"):
        whole = compute_metrics((np.arange(5_003), gold, logits), burn_out=3)
    pd.testing.assert_frame_equal(streamed, whole)


def test_streamed_metrics_never_hold_the_logits_array(tmp_path, monkeypatch):
    n, e = 200_000, 5
    gold, logits = _synthetic(n, e=e)
    _write(tmp_path, gold, logits, shuffle=False)
    monkeypatch.setattr(epochs_module, "BLOCK_LOGITS", 1 << 16)
    expected = compute_metrics((np.arange(n), gold, logits))
    result_bytes = int(expected.memory_usage(index=True).sum())
    del logits
    dyn = open_dynamics(tmp_path)
    tracemalloc.start()
    got = compute_metrics(dyn)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    pd.testing.assert_frame_equal(got, expected)
    assert peak - result_bytes < n * e * 3 * 4 / 4, (peak, result_bytes)  # far below the (N, E, C) float32 array


def test_get_metrics_streams_a_stored_run_and_keys_its_cache_on_units(tmp_path):
    gold, logits = _synthetic(300, e=3)
    _write(tmp_path, gold, logits)
    first = get_metrics(tmp_path)
    pd.testing.assert_frame_equal(first.drop(columns="region"), compute_metrics((np.arange(300), gold, logits)))
    key = json.loads((tmp_path / "metrics.json").read_text())["key"]
    assert "units.parquet" in [f[0] for f in key["files"]]


# ----------------------------------------------------------------------------------------------
# format 1: a run written by the writer before format 2 (tests/data/format1, checked in)


@pytest.fixture()
def format1_run(tmp_path):
    run = tmp_path / "run"
    shutil.copytree(FORMAT1 / "run", run)  # a copy: get_metrics writes its cache beside the dynamics
    return run


def test_format1_run_loads_as_before(format1_run):
    a = _format1_arrays()
    folder = dynamics_dir(format1_run)
    assert not (folder / "units.parquet").exists()
    assert json.loads((folder / "manifest.json").read_text())["format_version"] == 1
    assert {"row_id", "gold", "logits"} <= set(pq.read_schema(folder / "epoch_000.parquet").names)
    dyn = load_dynamics(format1_run)
    np.testing.assert_array_equal(dyn.ids, np.arange(7))
    np.testing.assert_array_equal(dyn.gold, a["gold"])
    np.testing.assert_array_equal(dyn.logits, a["logits"])  # NaN where recorded as NaN
    filled = load_epoch_columns(format1_run, 1)["filled"]
    assert filled[filled].index.tolist() == [1, 4]
    with pytest.warns(UserWarning, match="NaN or infinite"):
        streamed = compute_metrics(open_dynamics(format1_run))  # rows stored shuffled: read in key order
    with pytest.warns(UserWarning, match="NaN or infinite"):
        pd.testing.assert_frame_equal(streamed, compute_metrics((np.arange(7), a["gold"], a["logits"])))
    with pytest.warns(UserWarning):
        assert len(get_metrics(format1_run)) == 7


def test_format1_units_and_causal_lm_splits_load(format1_run):
    a = _format1_arrays()
    units = load_dynamics(format1_run, "units")
    assert units.unit_level
    np.testing.assert_array_equal(units.row_ids, np.repeat(np.arange(7), 2))
    np.testing.assert_array_equal(units.sub_ids, np.tile(np.arange(2), 7))
    np.testing.assert_array_equal(units.gold, a["unit_gold"])
    np.testing.assert_array_equal(units.logits, a["unit_logits"])
    ids, stats = load_token_stats(format1_run, "lm")
    np.testing.assert_array_equal(ids, np.arange(7))
    for k, name in enumerate(("nll", "token_accuracy", "n_tokens")):
        np.testing.assert_array_equal(stats[name], a["lm_stats"][k])
    np.testing.assert_array_equal(load_dynamics(format1_run, "lm").logits, a["lm_logits"])


def test_a_resumed_format1_run_keeps_writing_format1(format1_run):
    a = _format1_arrays()
    folder = dynamics_dir(format1_run)
    DynamicsWriter(folder).write_epoch(3, np.arange(7), a["gold"], a["logits"][:, 0])
    assert not (folder / "units.parquet").exists()
    assert {"row_id", "gold"} <= set(pq.read_schema(folder / "epoch_003.parquet").names)
    assert json.loads((folder / "manifest.json").read_text())["format_version"] == 1
    dyn = load_dynamics(format1_run)
    assert dyn.epochs == [0, 1, 2, 3]
    np.testing.assert_array_equal(dyn.logits[:, 3], a["logits"][:, 0])
