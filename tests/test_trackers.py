"""The data map in experiment trackers, read back from what each tracker stored.

TensorBoard's event files (EventAccumulator), MLflow's local file store (MlflowClient) and an
offline W&B run's file: one image and the region shares per recorded epoch, the metrics table at
the end. Each tracker's test is skipped only when its package is missing (the test extra has them).
"""

from __future__ import annotations

import struct
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from datasets import Dataset
from transformers import AutoModelForSequenceClassification, AutoTokenizer, Trainer

from conftest import training_args
from datacarto import CartographyCallback, CartographyTrainer, get_metrics
from datacarto.data import prepare_labels, tokenize
from datacarto.metrics import REGIONS
from datacarto.record import trackers

SHARES = [trackers.SHARE.format(r) for r in REGIONS]


def _train(tmp_path, model_dir, rows, report_to, *, callback: bool = False, epochs: int = 2) -> Trainer:
    tok = AutoTokenizer.from_pretrained(model_dir)
    raw, spec = prepare_labels(Dataset.from_list(rows), text_columns=["premise", "hypothesis"])
    data = tokenize(raw, tok, spec)
    model = AutoModelForSequenceClassification.from_pretrained(model_dir)
    args = training_args(tmp_path / "run", report_to=report_to, num_train_epochs=epochs, logging_strategy="epoch")
    if callback:  # a plain Trainer: the recording callback finds the Trainer's callbacks itself
        trainer = Trainer(model=model, args=args, train_dataset=data, processing_class=tok,
                          callbacks=[CartographyCallback(dataset=raw)])
    else:
        trainer = CartographyTrainer(model=model, args=args, train_dataset=data, processing_class=tok)
    trainer.train()
    return trainer


def _epoch_steps(trainer) -> list[int]:
    return sorted({h["step"] for h in trainer.state.log_history if "loss" in h})


def _metrics(run: Path) -> pd.DataFrame:
    with warnings.catch_warnings():  # a tiny model after 2 epochs: "barely learned", said elsewhere
        warnings.simplefilter("ignore")
        return get_metrics(run)


def _final_shares(run: Path) -> list[float]:
    metrics = _metrics(run)
    return [float((metrics["region"] == r).mean()) for r in REGIONS]


def _png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


def _tensorboard(run: Path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    folders = {p.parent for p in run.rglob("events.out.tfevents.*")}
    assert len(folders) == 1, folders
    events = EventAccumulator(str(folders.pop()), size_guidance={"images": 0, "scalars": 0, "tensors": 0})
    events.Reload()
    return events


def _check_tensorboard(trainer, run: Path) -> None:
    events = _tensorboard(run)
    steps = _epoch_steps(trainer)
    images = events.Images(trackers.IMAGE)
    assert [i.step for i in images] == steps  # one data map per recorded epoch
    assert all(_png_size(i.encoded_image_string) == (1200, 800) for i in images)
    for tag in SHARES:
        assert [s.step for s in events.Scalars(tag)] == steps
    for step in range(len(steps)):
        assert sum(events.Scalars(tag)[step].value for tag in SHARES) == pytest.approx(1.0)
    assert [events.Scalars(tag)[-1].value for tag in SHARES] == pytest.approx(_final_shares(run))
    folder = Path(events.path)
    table = pd.read_csv(folder / trackers.TABLE)  # the final metrics table, beside the event files
    assert len(table) == len(_metrics(run)) and {"row_id", "confidence", "region"} <= set(table.columns)
    text = events.Tensors(f"{trackers.TEXT}/text_summary")[0].tensor_proto.string_val[0].decode()
    assert "| ambiguous |" in text and trackers.TABLE in text


def test_tensorboard_and_mlflow_through_the_trainers_integrations(tmp_path, tiny_model, toy_rows, monkeypatch):
    pytest.importorskip("tensorboard")
    mlflow = pytest.importorskip("mlflow")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", (tmp_path / "mlruns").as_uri())
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # MLflow 3's local file store
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", "datacarto-test")
    trainer = _train(tmp_path, tiny_model, toy_rows, ["tensorboard", "mlflow"])
    run = tmp_path / "run"
    _check_tensorboard(trainer, run)

    client = mlflow.MlflowClient()
    experiment = client.get_experiment_by_name("datacarto-test")
    (logged,) = client.search_runs([experiment.experiment_id])
    steps = _epoch_steps(trainer)
    for tag, share in zip(SHARES, _final_shares(run)):
        history = client.get_metric_history(logged.info.run_id, tag)
        assert sorted(m.step for m in history) == steps
        assert max(history, key=lambda m: m.step).value == pytest.approx(share)
    images = [a.path for a in client.list_artifacts(logged.info.run_id, "images") if a.path.endswith(".png")]
    assert sorted(int(p.split("+step+")[1].split("+")[0]) for p in images) == steps
    png = Path(client.download_artifacts(logged.info.run_id, images[0], str(tmp_path / "down")))
    assert _png_size(png.read_bytes()) == (1200, 800)
    csv = client.download_artifacts(logged.info.run_id, f"datacarto/{trackers.TABLE}", str(tmp_path / "down"))
    table = pd.read_csv(csv)
    metrics = _metrics(run)
    assert table["row_id"].tolist() == metrics.index.tolist()
    assert table["region"].tolist() == metrics["region"].tolist()


def test_a_plain_trainer_with_the_callback_logs_to_tensorboard(tmp_path, tiny_model, toy_rows):
    pytest.importorskip("tensorboard")
    trainer = _train(tmp_path, tiny_model, toy_rows, ["tensorboard"], callback=True)
    _check_tensorboard(trainer, tmp_path / "run")
    kinds = [type(c).__name__ for c in trainer.callback_handler.callbacks]
    assert kinds.index("TrackerCallback") < kinds.index("TensorBoardCallback")  # logs the table before it closes


def test_no_tracker_named_installs_nothing(tmp_path, tiny_model, toy_rows):
    trainer = _train(tmp_path, tiny_model, toy_rows, "none", epochs=1)
    assert not any(isinstance(c, trackers.TrackerCallback) for c in trainer.callback_handler.callbacks)
    assert not list((tmp_path / "run").rglob("events.out.tfevents.*"))


def test_a_failing_tracker_is_said_once_and_training_goes_on(tmp_path, tiny_model, toy_rows, monkeypatch):
    pytest.importorskip("tensorboard")

    def broken(*args):
        raise OSError("disk full")

    monkeypatch.setitem(trackers._EPOCH, "tensorboard", broken)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        trainer = _train(tmp_path, tiny_model, toy_rows, ["tensorboard"])
    said = [str(w.message) for w in caught if "could not log" in str(w.message)]
    assert said and set(said) == {"could not log the data map to tensorboard: OSError: disk full"}
    assert trainer.state.epoch == 2 and _metrics(tmp_path / "run").shape[0] == len(toy_rows)
    events = _tensorboard(tmp_path / "run")
    assert trackers.IMAGE not in events.Tags()["images"]
    assert (Path(events.path) / trackers.TABLE).is_file()  # the table at the end is still logged


def _wandb_records(path: Path) -> list:
    """The records of an offline W&B run file (a LevelDB-style log of protobuf records)."""
    from wandb.proto import wandb_internal_pb2

    data, pos, records, pieces = path.read_bytes(), 7, [], b""  # 7 bytes of file header
    while pos + 7 <= len(data):
        if 32768 - pos % 32768 < 7:  # a block's tail too short for a header is padding
            pos += 32768 - pos % 32768
            continue
        _, length, kind = struct.unpack("<IHB", data[pos:pos + 7])
        if kind == 0 and length == 0:
            break
        pieces += data[pos + 7:pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):  # a whole record, or a record's last piece
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pieces)
            records.append(record)
            pieces = b""
    return records


def test_wandb_offline(tmp_path, tiny_model, toy_rows, monkeypatch):
    wandb = pytest.importorskip("wandb")
    for name in ("WANDB_DIR", "WANDB_DATA_DIR", "WANDB_CACHE_DIR", "WANDB_CONFIG_DIR"):
        (tmp_path / name).mkdir()
        monkeypatch.setenv(name, str(tmp_path / name))
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("WANDB_PROJECT", "datacarto-test")
    try:
        trainer = _train(tmp_path, tiny_model, toy_rows, ["wandb"])
    finally:
        wandb.finish()
        wandb.teardown()  # stops the W&B service, which writes out the offline run file
    (run_file,) = (tmp_path / "WANDB_DIR").glob("wandb/offline-run-*/run-*.wandb")
    records = _wandb_records(run_file)
    rows = [{i.key or "/".join(i.nested_key): i.value_json for i in r.history.item}
            for r in records if r.WhichOneof("record_type") == "history"]
    logged = [r for r in rows if SHARES[0] in r]
    assert [int(r["train/global_step"]) for r in logged] == _epoch_steps(trainer)
    assert [float(logged[-1][tag]) for tag in SHARES] == pytest.approx(_final_shares(tmp_path / "run"))
    for row in logged:
        image = run_file.parent / "files" / row[f"{trackers.IMAGE}/path"].strip('"')
        assert _png_size(image.read_bytes()) == (1200, 800)
    (artifact,) = [r.artifact for r in records if r.WhichOneof("record_type") == "artifact"]
    assert artifact.type == "datacarto-metrics" and [c.path for c in artifact.manifest.contents] == [trackers.TABLE]


def test_region_shares_count_every_example():
    metrics = pd.DataFrame({"region": ["ambiguous", "ambiguous", "easy-to-learn", None]})
    assert trackers.region_shares(metrics) == {"easy-to-learn": 0.25, "ambiguous": 0.5, "hard-to-learn": 0.0}
    assert np.isclose(sum(trackers.region_shares(metrics.iloc[:3]).values()), 1.0)


def test_a_tracker_named_without_the_trainers_callbacks_is_said(recwarn):
    from types import SimpleNamespace

    assert trackers.install(object(), SimpleNamespace(report_to=["tensorboard", "none"])) is None
    assert [str(w.message).split(":")[0] for w in recwarn] == ["report_to ['tensorboard']"]
    assert trackers.install(object(), SimpleNamespace(report_to="none")) is None and len(recwarn) == 1
