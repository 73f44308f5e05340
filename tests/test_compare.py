"""compare_runs / transition_matrix: regions of the same examples in several runs, and the CLI's checks."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from datacarto.errors import DatacartoError
from datacarto.metrics import REGIONS

LABELS = ["a", "b", "c"]


def write_run(folder, seed, *, n=90, fingerprint="same", ids=None):
    from datacarto.dynamics.store import DynamicsWriter, dynamics_dir

    rng = np.random.default_rng(seed)
    ids = np.arange(n, dtype=np.int64) * 2 if ids is None else ids
    gold = np.random.default_rng(0).integers(0, 3, len(ids))
    writer = DynamicsWriter(dynamics_dir(folder))
    writer.update_manifest(label_names=LABELS, **({} if fingerprint is None else {"dataset_fingerprint": fingerprint}))
    for t in range(3):
        logits = rng.normal(0, 1, (len(ids), 3)).astype(np.float32)
        logits[np.arange(len(ids)), gold] += rng.normal(1, 2, len(ids)).astype(np.float32)
        writer.write_epoch(t, ids, gold, logits)
    return folder


def test_compare_runs_regions_majority_and_stability(tmp_path):
    from datacarto import compare_runs, get_metrics, transition_matrix

    runs = [write_run(tmp_path / "x" / "run", 1), write_run(tmp_path / "y" / "run", 2), write_run(tmp_path / "z", 3)]
    table = compare_runs(runs)
    assert list(table.columns) == ["run", "run-2", "z", "majority", "stable"]
    assert table.index.name == "row_id"
    regions = [get_metrics(r)["region"].astype(str) for r in runs]
    for col, reg in zip(["run", "run-2", "z"], regions):
        assert table[col].tolist() == reg.loc[table.index].tolist()
    values = np.column_stack([r.to_numpy() for r in regions])
    assert table["stable"].tolist() == [len(set(row)) == 1 for row in values]
    for row, majority in zip(values, table["majority"]):
        counts = {r: list(row).count(r) for r in row}
        top = max(counts.values())
        assert majority == next(r for r in row if counts[r] == top)  # a tie goes to the earliest run
    assert table["stable"].dtype == bool and 0 < table["stable"].mean() < 1

    m = transition_matrix(table["run"], table["z"])
    assert list(m.index) == list(REGIONS) and list(m.columns) == list(REGIONS)
    assert m.index.name == "run" and m.columns.name == "z"
    expected = pd.crosstab(regions[0], regions[2]).reindex(index=list(REGIONS), columns=list(REGIONS), fill_value=0)
    np.testing.assert_array_equal(m.to_numpy(), expected.to_numpy())
    assert int(m.to_numpy().trace()) == int((values[:, 0] == values[:, 2]).sum())


def test_compare_runs_refuses_other_data(tmp_path):
    from datacarto import compare_runs

    a = write_run(tmp_path / "a", 1)
    b = write_run(tmp_path / "b", 2, fingerprint="other")
    with pytest.raises(DatacartoError, match="different data"):
        compare_runs([a, b])
    c = write_run(tmp_path / "c", 2, ids=np.arange(90, dtype=np.int64) * 3)
    with pytest.raises(DatacartoError, match="do not hold the same examples"):
        compare_runs([a, c])
    with pytest.raises(DatacartoError, match="not found"):
        compare_runs([a, tmp_path / "missing"])
    with pytest.raises(DatacartoError, match="list of run folders"):
        compare_runs(str(a))


def test_cli_compare_error_is_one_line(tmp_path, capsys):
    from datacarto.cli import main

    a = write_run(tmp_path / "a", 1)
    b = write_run(tmp_path / "b", 2, fingerprint="other")
    assert main(["map", str(a), "--compare", str(b), "--html", str(tmp_path / "c.html")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("datacarto: error: the runs were trained on different data")
    assert not (tmp_path / "c.html").exists()


def test_cli_compare_writes_the_page_and_says_the_share(tmp_path, capsys):
    from datacarto import compare_runs
    from datacarto.cli import main
    from datacarto.maps.interactive import decode_payload

    a, b = write_run(tmp_path / "a", 1), write_run(tmp_path / "b", 2)
    assert main(["map", str(a), "--compare", str(b)]) == 0
    out = capsys.readouterr().out
    table = compare_runs([a, b])
    assert f"{table['stable'].mean():.1%} of 90 examples keep their region in all 2 runs (a, b)" in out
    meta, arrays, _ = decode_payload((a / "compare.html").read_text(encoding="utf-8"))
    assert meta["compare"]["runs"] == ["a", "b"]
    for k, col in enumerate(["a", "b"]):
        names = [REGIONS[c] for c in arrays[f"compare:{k}"]]
        assert names == table[col].tolist()


def write_examples(run, texts):
    """The run's recorded rows (row_id, premise) as the recorder writes them; no fingerprint is needed here."""
    from datacarto.dynamics.store import DynamicsWriter, dynamics_dir, load_dynamics

    dyn = load_dynamics(run)
    DynamicsWriter(dynamics_dir(run)).write_examples(dyn.ids, np.zeros(len(dyn.ids), np.uint64), dyn.gold,
                                                     pd.DataFrame({"premise": texts}))
    return run


def test_a_run_without_a_fingerprint_is_compared_only_if_its_rows_match(tmp_path):
    """No dataset_fingerprint is no proof of the same data: the recorded row texts must match."""
    from datacarto import compare_runs
    from datacarto.dynamics.stability import seed_regions

    same = [f"row {i}" for i in range(90)]
    a = write_examples(write_run(tmp_path / "a", 1), same)
    other = write_examples(write_run(tmp_path / "other", 2, fingerprint=None), [f"other {i}" for i in range(90)])
    bare = write_run(tmp_path / "bare", 2, fingerprint=None)  # no fingerprint and no recorded rows
    twin = write_examples(write_run(tmp_path / "twin", 3, fingerprint=None), same)
    for runs in ([a, other], [other, a]):
        with pytest.raises(DatacartoError, match="has no dataset_fingerprint .* rows differ from"):
            compare_runs(runs)
        with pytest.raises(DatacartoError, match="has no dataset_fingerprint"):
            seed_regions(runs)
    with pytest.raises(DatacartoError, match="bare.*has no dataset_fingerprint and no recorded examples"):
        compare_runs([a, bare])
    table = compare_runs([a, twin])  # the same rows: compared
    assert list(table.columns) == ["a", "twin", "majority", "stable"] and len(table) == 90


def test_cli_compare_refuses_a_run_without_fingerprint_in_one_line(tmp_path, capsys):
    from datacarto.cli import main

    a = write_examples(write_run(tmp_path / "a", 1), [f"row {i}" for i in range(90)])
    b = write_examples(write_run(tmp_path / "b", 2, fingerprint=None), [f"other {i}" for i in range(90)])
    assert main(["map", str(a), "--compare", str(b), "--html", str(tmp_path / "c.html")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "has no dataset_fingerprint" in err[0], err
    assert not (tmp_path / "c.html").exists()
