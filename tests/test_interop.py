"""allenai/cartography import and export: all or nothing, row ids 0..N-1, one line per bad input."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import cli_fails
from datacarto.cli import main
from datacarto.dynamics.interop import export_allenai, import_allenai
from datacarto.dynamics.store import load_dynamics, load_examples
from datacarto.errors import DatacartoError

SRC = str(Path(__file__).resolve().parents[1] / "src")


def write_paper(folder, guids, gold, logits, *, seed=0, lines=None):
    """allenai files: epoch e of example i is logits[i, e]; each epoch's lines in another order."""
    rng = np.random.default_rng(seed)
    td = Path(folder) / "training_dynamics"
    td.mkdir(parents=True, exist_ok=True)
    for e in range(logits.shape[1]):
        order = rng.permutation(len(guids))
        text = "".join(json.dumps({"guid": guids[i], f"logits_epoch_{e}": logits[i, e].tolist(),
                                   "gold": int(gold[i])}) + "\n" for i in order.tolist())
        (td / f"dynamics_epoch_{e}.jsonl").write_text(text if lines is None else lines.get(e, text))
    return td


def example(n=8, e=3, c=3, seed=0, guids=None):
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(n, e, c)).astype(np.float32)
    gold = rng.integers(0, c, size=n)
    return (guids if guids is not None else list(range(n))), gold, logits


def snapshot(folder) -> dict[str, bytes]:
    folder = Path(folder)
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()} \
        if folder.exists() else {}


@pytest.mark.parametrize("guids", [
    [10 ** 11 + 7 * k * k for k in range(8)],  # sparse 12-digit integers
    [f"snli-{k}" for k in (5, 3, 11, 0, 7, 2, 9, 1)],  # strings
])
def test_row_ids_are_ranks_of_the_sorted_guids_and_guids_are_kept(tmp_path, guids):
    ids, gold, logits = example(guids=guids)
    write_paper(tmp_path / "paper", ids, gold, logits)
    import_allenai(tmp_path / "paper", tmp_path / "run")
    dyn = load_dynamics(tmp_path / "run")
    np.testing.assert_array_equal(dyn.ids, np.arange(8))
    order = sorted(range(8), key=lambda i: guids[i])
    np.testing.assert_array_equal(dyn.logits, logits[order])
    np.testing.assert_array_equal(dyn.gold, gold[order])
    examples = load_examples(tmp_path / "run")
    assert examples["guid"].tolist() == sorted(guids)
    assert dyn.manifest["n_examples"] == 8 and dyn.manifest["mode"] == "imported"
    # and back: the original guids, exactly
    export_allenai(tmp_path / "run", tmp_path / "back")
    back = [json.loads(x) for x in (tmp_path / "back/training_dynamics/dynamics_epoch_2.jsonl").read_text().splitlines()]
    assert [b["guid"] for b in back] == sorted(guids)
    np.testing.assert_allclose([b["logits_epoch_2"] for b in back], logits[order, 2], atol=1e-6)


def test_a_failure_at_epoch_1_leaves_nothing_and_a_retry_works(tmp_path, capsys):
    ids, gold, logits = example()
    td = write_paper(tmp_path / "paper", ids, gold, logits)
    good = (td / "dynamics_epoch_1.jsonl").read_text()
    (td / "dynamics_epoch_1.jsonl").write_text(good + '{"guid": 99, "gold": 0, "logits_epoch_1": [1, 2\n')
    cli_fails(capsys, ["import-allenai", str(tmp_path / "paper"), str(tmp_path / "run")],
              "dynamics_epoch_1.jsonl, line 9: not valid JSON")
    assert not (tmp_path / "run").exists()  # not even an empty folder
    (td / "dynamics_epoch_1.jsonl").write_text(good)
    assert main(["import-allenai", str(tmp_path / "paper"), str(tmp_path / "run")]) == 0
    assert load_dynamics(tmp_path / "run").n_epochs == 3
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == ["training_dynamics"]  # no lock, no partial


def test_a_failure_in_an_existing_folder_keeps_its_files(tmp_path, capsys):
    ids, gold, logits = example()
    td = write_paper(tmp_path / "paper", ids, gold, logits)
    (td / "dynamics_epoch_2.jsonl").write_text('{"guid": 1, "gold": "1", "logits_epoch_2": [0, 1, 2]}\n')
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "notes.txt").write_text("mine")
    cli_fails(capsys, ["import-allenai", str(tmp_path / "paper"), str(tmp_path / "run")],
              "dynamics_epoch_2.jsonl, line 1: gold label must be an integer class index, got '1'")
    assert snapshot(tmp_path / "run") == {"notes.txt": b"mine"}


@pytest.mark.parametrize("line, message", [
    ("not json", "line 2: not valid JSON"),
    ('{"guid": 100, "gold": 0}', "line 2: missing fields ['logits_epoch_0']"),
    ('{"guid": 100, "gold": "entailment", "logits_epoch_0": [0, 1, 2]}', "line 2: gold label must be an integer"),
    ('{"guid": 100, "gold": 1.5, "logits_epoch_0": [0, 1, 2]}', "line 2: gold label must be an integer"),
    ('{"guid": 100, "gold": true, "logits_epoch_0": [0, 1, 2]}', "line 2: gold label must be an integer"),
    ('{"guid": 100, "gold": 0, "logits_epoch_0": [0, 1]}', "line 2: 2 logits, earlier lines have 3"),
    ('{"guid": 100, "gold": 0, "logits_epoch_0": [0, "x", 1]}', "line 2: logits_epoch_0 must be a non-empty list"),
    ('{"guid": 100, "gold": 0, "logits_epoch_0": []}', "line 2: logits_epoch_0 must be a non-empty list"),
    ('{"guid": "100", "gold": 0, "logits_epoch_0": [0, 1, 2]}', "line 2: guid '100': guids mix numbers"),
    ('{"guid": [1], "gold": 0, "logits_epoch_0": [0, 1, 2]}', "line 2: guid must be an integer or a string"),
    ("[1, 2, 3]", "line 2: expected a JSON object, got list"),
    ('{"guid": 99999999999999999999, "gold": 0, "logits_epoch_0": [0, 1, 2]}', "line 2: guid 99999999999999999999 does"),
    ('{"guid": 100, "gold": 99999999999999999999, "logits_epoch_0": [0, 1, 2]}', "line 2: gold label must be"),
    ('{"guid": 0, "gold": 0, "logits_epoch_0": [0, 1, 2]}', "duplicate guid 0"),
    ('{"guid": 100, "gold": 7, "logits_epoch_0": [0, 1, 2]}', "gold label 7 of guid 100 outside [0, 3)"),
])
def test_malformed_lines_are_named_by_file_and_line(tmp_path, capsys, line, message):
    first = '{"guid": 0, "gold": 0, "logits_epoch_0": [0.5, 1, 2]}\n'
    write_paper(tmp_path / "paper", [0], np.array([0]), np.zeros((1, 1, 3)), lines={0: first + line + "\n"})
    cli_fails(capsys, ["import-allenai", str(tmp_path / "paper"), str(tmp_path / "run")], message)
    assert not (tmp_path / "run").exists()


def test_non_utf8_line_is_named(tmp_path, capsys):
    td = write_paper(tmp_path / "paper", [0], np.array([0]), np.zeros((1, 1, 3)))
    (td / "dynamics_epoch_0.jsonl").write_bytes(b'{"guid": 0, "gold": 0, "logits_epoch_0": [0, 1, 2]}\n'
                                                b'{"guid": "\xff", "gold": 0, "logits_epoch_0": [0, 1, 2]}\n')
    cli_fails(capsys, ["import-allenai", str(tmp_path / "paper"), str(tmp_path / "run")], "line 2: not UTF-8 text")


def test_epochs_whose_gold_labels_differ_are_refused(tmp_path, capsys):
    ids, gold, logits = example()
    td = write_paper(tmp_path / "paper", ids, gold, logits)
    rows = [json.loads(x) for x in (td / "dynamics_epoch_1.jsonl").read_text().splitlines()]
    changed = next(r for r in rows if r["guid"] == 5)
    changed["gold"] = (changed["gold"] + 1) % 3
    (td / "dynamics_epoch_1.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    cli_fails(capsys, ["import-allenai", str(tmp_path / "paper"), str(tmp_path / "run")],
              f"gold label of guid 5 is {changed['gold']}, in dynamics_epoch_0.jsonl it is {gold[5]}")
    assert not (tmp_path / "run").exists()


def test_epochs_over_other_guids_are_refused(tmp_path, capsys):
    ids, gold, logits = example()
    td = write_paper(tmp_path / "paper", ids, gold, logits)
    text = (td / "dynamics_epoch_2.jsonl").read_text().replace('"guid": 3,', '"guid": 33,')
    (td / "dynamics_epoch_2.jsonl").write_text(text)
    cli_fails(capsys, ["import-allenai", str(tmp_path / "paper"), str(tmp_path / "run")],
              "covers different examples than")


def test_nan_logits_written_by_python_json_are_read(tmp_path):
    lines = {0: '{"guid": 0, "gold": 0, "logits_epoch_0": [NaN, 1.0]}\n{"guid": 1, "gold": 1, "logits_epoch_0": [0, 1]}\n'}
    write_paper(tmp_path / "paper", [0, 1], np.array([0, 1]), np.zeros((2, 1, 2)), lines=lines)
    with pytest.warns(UserWarning, match="NaN logits"):
        import_allenai(tmp_path / "paper", tmp_path / "run")
    dyn = load_dynamics(tmp_path / "run")
    assert np.isnan(dyn.logits[0, 0, 0]) and dyn.logits[1, 0, 1] == 1.0


def test_label_names_must_match_the_classes(tmp_path, capsys):
    ids, gold, logits = example()
    write_paper(tmp_path / "paper", ids, gold, logits)
    cli_fails(capsys, ["import-allenai", str(tmp_path / "paper"), str(tmp_path / "run"), "--label-names", "a,b"],
              "2 label names given, the logits have 3 classes")
    cli_fails(capsys, ["import-allenai", str(tmp_path / "paper"), str(tmp_path / "run"), "--label-names", "a,b,a"],
              "duplicate label names")
    assert not (tmp_path / "run").exists()


def test_export_refuses_to_replace_an_export_unless_overwrite(tmp_path, capsys):
    ids, gold, logits = example(e=3)
    write_paper(tmp_path / "paper3", ids, gold, logits)
    import_allenai(tmp_path / "paper3", tmp_path / "run3")
    write_paper(tmp_path / "paper2", ids, gold, logits[:, :2])
    import_allenai(tmp_path / "paper2", tmp_path / "run2")
    assert main(["export-allenai", str(tmp_path / "run3"), str(tmp_path / "out")]) == 0
    before = snapshot(tmp_path / "out")
    cli_fails(capsys, ["export-allenai", str(tmp_path / "run2"), str(tmp_path / "out")], "pass --overwrite")
    assert snapshot(tmp_path / "out") == before
    assert main(["export-allenai", str(tmp_path / "run2"), str(tmp_path / "out"), "--overwrite"]) == 0
    # replaced as a whole: the third epoch of the old export is gone, nothing mixes
    assert sorted(snapshot(tmp_path / "out")) == ["training_dynamics/dynamics_epoch_0.jsonl",
                                                 "training_dynamics/dynamics_epoch_1.jsonl"]
    # a datacarto store is never replaced, even with --overwrite
    before = snapshot(tmp_path / "run3")
    cli_fails(capsys, ["export-allenai", str(tmp_path / "run2"), str(tmp_path / "run3"), "--overwrite"],
              "holds a datacarto store")
    assert snapshot(tmp_path / "run3") == before


def test_export_refuses_out_of_range_gold_labels(tmp_path, capsys):
    from datacarto.dynamics.store import DynamicsWriter, dynamics_dir

    writer = DynamicsWriter(dynamics_dir(tmp_path / "run"))
    writer.write_epoch(0, np.arange(3), np.array([0, 1, 3]), np.zeros((3, 2), dtype=np.float32))
    cli_fails(capsys, ["export-allenai", str(tmp_path / "run"), str(tmp_path / "out")],
              "gold label 3 of row 2 outside [0, 2)")
    assert not (tmp_path / "out" / "training_dynamics").exists()


def test_import_into_a_locked_folder_is_refused(tmp_path, capsys):
    from datacarto._io import run_lock

    ids, gold, logits = example()
    write_paper(tmp_path / "paper", ids, gold, logits)
    helper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (tmp_path / "run").mkdir()
        (tmp_path / "run" / ".datacarto.lock").write_text(f"{helper.pid}\n")  # a live holder
        cli_fails(capsys, ["import-allenai", str(tmp_path / "paper"), str(tmp_path / "run")],
                  f"is in use by process {helper.pid}")
        assert not (tmp_path / "run" / "training_dynamics").exists()
    finally:
        helper.kill()
        helper.wait()
    with run_lock(tmp_path / "run"):  # the holder is gone: a stale lock is taken over
        pass
    assert main(["import-allenai", str(tmp_path / "paper"), str(tmp_path / "run")]) == 0


KILLED_IMPORT = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from datacarto.dynamics import store
    real = store.DynamicsWriter.write_epoch
    def slow(self, index, *a, **k):
        out = real(self, index, *a, **k)
        if index == 1:
            Path(sys.argv[3]).write_text("epoch 1 written")
            time.sleep(60)
        return out
    store.DynamicsWriter.write_epoch = slow
    from datacarto.dynamics.interop import import_allenai
    import_allenai(sys.argv[1], sys.argv[2])
""")


def test_kill_9_during_import_leaves_no_partial_run_and_a_retry_works(tmp_path):
    ids, gold, logits = example(n=50, e=4)
    write_paper(tmp_path / "paper", ids, gold, logits)
    marker = tmp_path / "marker"
    env = {**os.environ, "PYTHONPATH": SRC}
    proc = subprocess.Popen([sys.executable, "-c", KILLED_IMPORT, str(tmp_path / "paper"), str(tmp_path / "run"),
                             str(marker)], env=env)
    try:
        deadline = time.monotonic() + 120
        while not marker.exists():
            assert proc.poll() is None, "the import ended before it was killed"
            assert time.monotonic() < deadline
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait()
    assert not (tmp_path / "run" / "training_dynamics").exists()  # two epochs were written, none is visible
    with pytest.raises(DatacartoError, match="no training dynamics found"):
        load_dynamics(tmp_path / "run")
    import_allenai(tmp_path / "paper", tmp_path / "run")  # the stale lock and the partial folder go
    assert load_dynamics(tmp_path / "run").n_epochs == 4
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == ["training_dynamics"]


def test_an_imported_run_names_its_task_as_recording_does(tmp_path, tiny_model, toy_jsonl):
    """The manifest of an import holds the TaskSpec (and task, unit) a recorded classifier's holds: one
    format for every reader (an import has no text columns, a recorded NLI run has two)."""
    from conftest import training_args
    from datacarto.dynamics.store import dynamics_dir, read_manifest
    from datacarto.tasks import TaskSpec
    from datacarto.train.baseline import train_baseline

    names = ["entailment", "neutral", "contradiction"]
    train_baseline(model=tiny_model, train=str(toy_jsonl), text_columns=["premise", "hypothesis"], label_names=names,
                   output_dir=tmp_path / "recorded", training_args=training_args(tmp_path / "recorded",
                                                                                  num_train_epochs=1),
                   save_model=False)
    recorded = read_manifest(dynamics_dir(tmp_path / "recorded"))
    ids, gold, logits = example()
    write_paper(tmp_path / "paper", ids, gold, logits)
    import_allenai(tmp_path / "paper", tmp_path / "run", label_names=names)
    imported = read_manifest(dynamics_dir(tmp_path / "run"))
    assert imported["task_spec"] == {**recorded["task_spec"], "text_columns": []}
    assert (imported["task"], imported["unit"]) == (recorded["task"], recorded["unit"])
    assert TaskSpec.from_manifest(imported) == TaskSpec.from_dict(imported["task_spec"])
