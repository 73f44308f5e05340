"""``run_pipeline`` end to end with a tiny offline BERT: every artifact, the report, resume; the run CLI."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest

from datacarto.cli import main as cli_main
from datacarto.demo_data import LABEL_NAMES, write_demo_dataset
from datacarto.errors import DatacartoError
from datacarto.pipeline import STAGES, PipelineConfig, load_predictions, run_pipeline
from datacarto.pipeline.report import pct

# not in alphabetical order: results keep the config's order although stored records sort their keys
RECIPES = [{"name": "hard", "region": "hard-to-learn", "fraction": 0.2},
           {"name": "amb", "region": "ambiguous", "fraction": 0.33}]
FRACTION = {r["name"]: r["fraction"] for r in RECIPES}
TRAINING = {"num_train_epochs": 3, "per_device_train_batch_size": 16, "per_device_eval_batch_size": 64,
            "learning_rate": 5e-3, "use_cpu": True, "disable_tqdm": True, "save_strategy": "no",
            "logging_strategy": "no", "report_to": "none",
            # a length-grouped sampler, which transformers also applies to evaluation and prediction: every
            # stored prediction (validation, test, focused models, ensembles) must still be keyed by its row
            "train_sampling_strategy": "group_by_length"}
MARK = "<em>&"  # record text that must come out escaped in the HTML report




@pytest.fixture(scope="module")
def data_files(tmp_path_factory):
    """Small generated NLI splits as jsonl, every premise carrying markup, plus a tiny model of their words."""
    from datacarto.testing import make_tiny_model_dir

    root = tmp_path_factory.mktemp("pipeline_data")
    paths = write_demo_dataset(root / "raw", n_train=60, n_validation=30, n_test=30, seed=0)
    texts = []
    for split, path in paths.items():
        rows = [json.loads(line) for line in path.read_text().splitlines()]
        for r in rows:
            r["premise"] = f"{MARK} {r['premise']}"
            texts.append(r["premise"] + " " + r["hypothesis"])
        (root / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    model = make_tiny_model_dir(root / "tiny", texts, dropout=0.1)
    return {"train": root / "train.jsonl", "validation": root / "validation.jsonl", "test": root / "test.jsonl",
            "model": model}


def make_config(data_files, output_dir, **overrides) -> PipelineConfig:
    values = dict(model=data_files["model"], dataset=str(data_files["train"]),
                  validation=str(data_files["validation"]), test=str(data_files["test"]),
                  output_dir=str(output_dir), text_columns=["premise", "hypothesis"], class_names=list(LABEL_NAMES),
                  max_length=48, training_args=dict(TRAINING), focus_training_args={"num_train_epochs": 1},
                  recipes=[dict(r) for r in RECIPES], title="pipeline test")
    values.update(overrides)
    return PipelineConfig(**values)


@pytest.fixture(scope="module")
def first_run(data_files, tmp_path_factory):
    out = tmp_path_factory.mktemp("pipeline") / "run"
    result = run_pipeline(make_config(data_files, out), quiet=True)
    return result


def gold_of(path) -> np.ndarray:
    return np.array([json.loads(line)["label"] for line in path.read_text().splitlines()])


# ----------------------------------------------------------------------------------------------
# artifacts


def test_every_stage_ran_and_recorded(first_run):
    out = first_run.output_dir
    assert first_run.ran == list(STAGES) and first_run.skipped == []
    for name in STAGES:
        record = json.loads((out / "stages" / f"{name}.json").read_text())
        assert record["name"] == name and record["seconds"] >= 0 and record["key"] and record["digest"]
        assert all((out / o).exists() for o in record["outputs"])
    config = json.loads((out / "config.json").read_text())
    assert config["recipes"] == RECIPES and config["training_args"]["num_train_epochs"] == 3


def test_dynamics_and_metrics(first_run):
    from datacarto.dynamics.store import load_dynamics, load_examples
    from datacarto.metrics import REGIONS

    base = first_run.baseline_dir
    dyn = load_dynamics(base)
    assert dyn.logits.shape == (60, 3, 3) and dyn.label_names == LABEL_NAMES
    assert load_dynamics(base, "validation").logits.shape == (30, 3, 3)  # validation every epoch
    assert load_dynamics(base, "test").logits.shape == (30, 3, 3)  # test predicted at every epoch end
    examples = load_examples(base)
    assert {"premise", "hypothesis", "is_flipped", "is_ambiguous", "original_label"} <= set(examples.columns)

    m = pd.read_parquet(first_run.output_dir / "metrics" / "train.parquet").set_index("row_id")
    assert len(m) == 60 and set(m["region"]) == set(REGIONS)
    assert np.array_equal(m["gold"].to_numpy(), dyn.gold)
    counts = m["region"].value_counts().to_dict()
    assert first_run.stages["metrics"].summary.regions == {r: counts[r] for r in REGIONS}
    for split in ("validation", "test"):
        regions = pd.read_parquet(first_run.output_dir / "metrics" / f"{split}_regions.parquet")
        assert len(regions) == 30 and set(regions["region"]) <= set(REGIONS)
        assert getattr(first_run.stages["metrics"].summary, f"{split}_regions") == {
            r: int((regions["region"] == r).sum()) for r in REGIONS}


def test_baseline_validation_logits_are_the_final_models(first_run, data_files):
    """The baseline's validation predictions reuse its last evaluation: check them against a fresh pass."""
    from datacarto.dynamics.store import load_dynamics
    from datacarto.train.ensemble import Ensemble

    stored = load_predictions(first_run.output_dir / "predictions" / "baseline.npz")["validation"]
    last_eval = load_dynamics(first_run.baseline_dir, "validation").logits[:, -1, :]
    np.testing.assert_array_equal(stored, last_eval)
    stored_test = load_predictions(first_run.output_dir / "predictions" / "baseline.npz")["test"]
    np.testing.assert_array_equal(stored_test, load_dynamics(first_run.baseline_dir, "test").logits[:, -1, :])
    fresh_test = Ensemble([first_run.models["baseline"]], text_columns=["premise", "hypothesis"],
                                 max_length=48, args={"use_cpu": True}).member_logits(
        str(data_files["test"]), split="test")[0]
    np.testing.assert_allclose(stored_test, fresh_test, rtol=1e-4, atol=1e-4)
    fresh = Ensemble([first_run.models["baseline"]], text_columns=["premise", "hypothesis"], max_length=48,
                            args={"use_cpu": True}).member_logits(str(data_files["validation"]), split="validation")[0]
    np.testing.assert_allclose(stored, fresh, rtol=1e-4, atol=1e-4)


def test_maps(first_run):
    maps = first_run.output_dir / "maps"
    for name in ("data_map.png", "data_map_regions.png"):
        assert (maps / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    page = (maps / "data_map.html").read_text()
    assert page.lstrip().lower().startswith("<!doctype html") and "plotly" in page.lower()


def test_subsets_and_controls(first_run):
    out = first_run.output_dir
    m = pd.read_parquet(out / "metrics" / "train.parquet").set_index("row_id")
    for recipe, region in (("amb", "ambiguous"), ("hard", "hard-to-learn")):
        entry = first_run.subsets[recipe]
        focused = pd.read_json(out / entry.path, lines=True)
        control = pd.read_json(out / entry.control.path, lines=True)
        assert len(focused) == entry.n == len(control) == entry.control.n > 0
        assert (m.loc[focused["row_id"], "region"] == region).all()
        # paper's region mode: round(fraction x N), capped at the region
        n_region = int((m["region"] == region).sum())
        assert entry.n == min(int(np.floor(FRACTION[recipe] * 60 + 0.5)), n_region)
        # the control matches the label mix of the focused subset
        assert sorted(focused["label"]) == sorted(control["label"])
        assert {"premise", "hypothesis", "is_flipped"} <= set(focused.columns)


def test_focused_and_control_models_with_predictions(first_run, data_files):
    out = first_run.output_dir
    val_gold = gold_of(data_files["validation"])
    names = ["baseline", "focused/hard", "control/hard", "focused/amb", "control/amb"]
    # weights: the baseline's only, unless save_focused_models (the report needs predictions and metrics)
    assert list(first_run.models) == ["baseline"]
    assert any(first_run.models["baseline"].glob("*.safetensors"))
    assert [p.relative_to(out).parts[0] for p in out.rglob("*.safetensors")] == ["baseline"]
    for name in names:
        pred = load_predictions(out / "predictions" / f"{name}.npz")
        assert pred["validation"].shape == (30, 3) and pred["test"].shape == (30, 3)
        assert first_run.accuracy.loc[name, "validation_accuracy"] == pytest.approx(
            (pred["validation"].argmax(1) == val_gold).mean())
    focus = json.loads((out / "models" / "focused" / "amb" / "focus.json").read_text())
    assert focus["init"] == "baseline" and focus["n_examples"] == first_run.subsets["amb"].n


def test_ensembles(first_run):
    from datacarto.ensemble_weights import combine_logits

    out = first_run.output_dir
    ens = json.loads((out / "ensembles.json").read_text())
    assert set(ens) == {"ensemble/amb", "ensemble/hard", "ensemble-control/amb", "ensemble-control/hard",
                        "ensemble/all"}
    assert ens["ensemble/all"]["members"] == ["baseline", "focused/hard", "focused/amb"]
    assert ens["ensemble-control/amb"]["members"] == ["baseline", "control/amb"]
    for name, e in ens.items():
        assert sum(e["weights"]) == pytest.approx(1.0) and e["tuned"] and e["combine"] == "logits"
        members = [load_predictions(out / "predictions" / f"{m}.npz") for m in e["members"]]
        got = load_predictions(out / "predictions" / f"{name}.npz")
        for split in ("validation", "test"):
            want = combine_logits(np.stack([p[split] for p in members]), e["weights"], "logits")
            np.testing.assert_allclose(got[split], want, rtol=1e-5, atol=1e-5)


def test_accuracy_table_matches_predictions(first_run, data_files):
    out = first_run.output_dir
    acc = first_run.accuracy
    test_gold, val_gold = gold_of(data_files["test"]), gold_of(data_files["validation"])
    regions = {split: pd.read_parquet(out / "metrics" / f"{split}_regions.parquet")["region"].to_numpy(dtype=object)
               for split in ("validation", "test")}
    gold = {"validation": val_gold, "test": test_gold}
    assert len(acc) == 10
    checked = 0
    for name, row in acc.iterrows():
        pred = load_predictions(out / "predictions" / f"{name}.npz")
        assert row["test_accuracy"] == pytest.approx((pred["test"].argmax(1) == test_gold).mean())
        assert row["validation_accuracy"] == pytest.approx((pred["validation"].argmax(1) == val_gold).mean())
        for split in ("validation", "test"):
            for region in ("easy-to-learn", "ambiguous", "hard-to-learn"):
                mask = regions[split] == region
                assert row[f"{split}_{region}_n"] == mask.sum()
                if mask.any():
                    checked += 1
                    assert row[f"{split}_{region}_accuracy"] == pytest.approx(
                        (pred[split].argmax(1)[mask] == gold[split][mask]).mean())
    assert checked >= 2 * len(acc)


def test_report(first_run, data_files):
    out = first_run.output_dir
    md = (out / "report.md").read_text()
    page = (out / "report.html").read_text()
    for heading in ("# pipeline test", "## Data map", "## Regions", "### Examples: easy-to-learn",
                    "### Examples: ambiguous", "### Examples: hard-to-learn", "## Label noise", "## Focused subsets",
                    "## Accuracy", "## Time per stage", "## Configuration", "## Package versions"):
        assert heading + "\n" in md, heading
        assert f">{heading.lstrip('# ')}</h" in page, heading
    assert "![data map" in md and "(maps/data_map.png)" in md and "(maps/data_map.html)" in md
    assert 'src="data:image/png;base64,' in page and 'href="maps/data_map.html"' in page

    # region table = metrics
    m = pd.read_parquet(out / "metrics" / "train.parquet").set_index("row_id")
    for region, n in m["region"].value_counts().items():
        assert f"| {region} | {n} | {pct(n / 60)} |" in md
    # accuracy rows = the result's table, formatted
    regions = ("easy-to-learn", "ambiguous", "hard-to-learn")
    for name, row in first_run.accuracy.iterrows():
        cells = [name, pct(row["test_accuracy"]), *[pct(row[f"test_{r}_accuracy"]) for r in regions],
                 pct(row["validation_accuracy"]), *[pct(row[f"validation_{r}_accuracy"]) for r in regions]]
        line = "| " + " | ".join(cells) + " |"
        assert line in md, line
    for split in ("test", "validation"):
        for r in regions:
            assert f"{split}: {r} (n={int(first_run.accuracy[f'{split}_{r}_n'].iloc[0])})" in md
    # config order of the recipes everywhere
    assert md.index("| hard | focused |") < md.index("| amb | focused |")
    assert md.index("| focused/hard |") < md.index("| focused/amb |")
    # label noise numbers
    from datacarto.audit import audit_scores

    train = pd.read_json(data_files["train"], lines=True)
    flipped = train["is_flipped"].to_numpy()
    in_hard = int((flipped & (m["region"].to_numpy() == "hard-to-learn")).sum())
    assert f"{flipped.sum()} of 60 training labels are known to be wrong" in md
    assert f"{in_hard} of them" in md
    auroc = audit_scores(m, pd.Series(flipped, index=m.index), scores=["confidence"])["auroc"].iloc[0]
    assert f"AUROC of low confidence for finding them: {auroc:.3f}" in md
    # five examples per region, with their text; record text escaped in the HTML
    assert md.count("&lt;em&gt;&amp;") >= 5 and "<em>" not in md  # entities: a Markdown renderer shows them literally
    assert "&lt;em&gt;&amp;" in page and "<em>" not in page and "<script" not in page.lower()
    # time per stage, config and versions
    for name in STAGES[:-1]:
        assert f"| {name} | " in md
    assert '"recipes"' in md and '"ambiguous"' in md
    assert "| torch |" in md and "| transformers |" in md


# ----------------------------------------------------------------------------------------------
# resume


def test_resume_skips_everything_then_redoes_only_what_a_recipe_change_touches(first_run, data_files, tmp_path):
    out = tmp_path / "copy"
    shutil.copytree(first_run.output_dir, out)  # a copied run folder is still up to date
    records = {n: (out / "stages" / f"{n}.json").read_bytes() for n in STAGES}
    units = {n: (out / "stages" / "focus" / f"{n.replace('/', '__')}.json").read_text()
             for n in ("focused/amb", "control/amb", "focused/hard", "control/hard")}

    again = run_pipeline(make_config(data_files, out), quiet=True)
    assert again.ran == [] and again.skipped == list(STAGES)
    assert list(again.subsets) == ["hard", "amb"] and list(again.models) == list(first_run.models)
    assert list(again.ensembles) == list(first_run.ensembles) == [
        "ensemble/hard", "ensemble-control/hard", "ensemble/amb", "ensemble-control/amb", "ensemble/all"]
    assert {n: (out / "stages" / f"{n}.json").read_bytes() for n in STAGES} == records
    pd.testing.assert_frame_equal(again.accuracy, first_run.accuracy)

    recipes = [{**RECIPES[0], "fraction": 0.3}, dict(RECIPES[1])]
    changed = run_pipeline(make_config(data_files, out, recipes=recipes), quiet=True)
    # clean reads the recipes too: without a cleaning recipe it does nothing, and its digest holds
    assert changed.ran == ["select", "focus", "clean", "ensemble", "evaluate", "report"]
    assert changed.skipped == ["data", "baseline", "metrics", "maps"]
    assert changed.stages["clean"].digest == first_run.stages["clean"].digest
    for name in ("data", "baseline", "metrics", "maps"):
        assert (out / "stages" / f"{name}.json").read_bytes() == records[name]
    # only the changed recipe's models were retrained
    models = changed.stages["focus"].summary.models
    assert {n: m.ran for n, m in models.items()} == {"focused/amb": False, "control/amb": False,
                                                         "focused/hard": True, "control/hard": True}
    for name in ("focused/amb", "control/amb"):
        assert (out / "stages" / "focus" / f"{name.replace('/', '__')}.json").read_text() == units[name]
    assert changed.subsets["hard"].n >= first_run.subsets["hard"].n
    assert changed.accuracy.loc["focused/amb", "test_accuracy"] == first_run.accuracy.loc["focused/amb",
                                                                                         "test_accuracy"]
    assert "fraction=0.3, region=hard-to-learn" in (out / "report.md").read_text()

    forced = run_pipeline(make_config(data_files, out, recipes=recipes), force=["report"], quiet=True)
    assert forced.ran == ["report"]

    # a stage that fails leaves no record; redone with the same result, nothing downstream retrains
    with pytest.raises(DatacartoError, match="selects no example"):
        run_pipeline(make_config(data_files, out, recipes=[{"name": "none", "region": "ambiguous",
                                                             "max_confidence": -1.0}]), quiet=True)
    assert not (out / "stages" / "select.json").exists()
    redone = run_pipeline(make_config(data_files, out, recipes=recipes), quiet=True)
    assert redone.ran == ["select", "report"]


# ----------------------------------------------------------------------------------------------
# config validation and the CLI


def test_config_validation_errors(data_files, tmp_path):
    base = make_config(data_files, tmp_path / "x").to_dict()
    base.update(dataset=str(data_files["train"]), validation=str(data_files["validation"]),
                test=str(data_files["test"]))
    bad = [
        ({"epochs": 3}, "unknown config key(s): epochs"),
        ({"training_args": {"learning_rat": 0.1}}, "learning_rat"),
        ({"recipes": [{"name": "a", "regoin": "ambiguous"}]}, "regoin"),
        ({"recipes": [{"name": "a", "region": "ambiguous"}, {"name": "a", "fraction": 0.1}]}, "used twice"),
        ({"recipes": [{"name": "a/b", "region": "ambiguous"}]}, "name"),
        ({"focus_init": "scratch"}, "focus_init"),
        ({"validation": None}, "validation"),
        ({"model": None}, "model"),
        ({"training_args": {"load_best_model_at_end": True}}, "load_best_model_at_end"),
        ({"control": "yes"}, "control"),
    ]
    for change, needle in bad:
        with pytest.raises(DatacartoError) as info:
            PipelineConfig.from_dict({**base, **change})
        assert needle in str(info.value), (change, str(info.value))


def write_yaml(path, values) -> str:
    import yaml

    path.write_text(yaml.safe_dump(values))
    return str(path)


@pytest.mark.parametrize("change, extra, needle", [
    ({"epochs": 3, "lr": 1}, [], "unknown config key(s) in"),
    ({"training_args": {"num_epochs": 2}}, [], "unknown TrainingArguments field(s) in training_args: num_epochs"),
    ({"recipes": [{"name": "amb", "regoin": "ambiguous"}]}, [], "recipe 'amb': unknown key(s) regoin"),
    ({}, ["--focus-init", "scratch"], "focus_init"),
    ({}, ["--recipes", "amb-region=ambiguous"], "NAME:key=value"),
    ({}, ["--no-such-flag", "1"], "unknown option(s): --no-such-flag"),
    ({"output_dir": None}, [], "no output directory"),
])
def test_cli_config_errors_are_one_line(data_files, tmp_path, capsys, change, extra, needle):
    values = {"model": data_files["model"], "dataset": str(data_files["train"]),
              "validation": str(data_files["validation"]), "output_dir": str(tmp_path / "out"), **change}
    values = {k: v for k, v in values.items() if v is not None}
    code = cli_main(["run", "--config", write_yaml(tmp_path / "run.yaml", values), *extra])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("datacarto: error: ") and needle in err, err
    assert not (tmp_path / "out" / "stages").exists()


def test_cli_help(capsys):
    with pytest.raises(SystemExit) as info:
        cli_main(["run", "--help"])
    assert info.value.code == 0
    printed = capsys.readouterr().out
    for flag in ("--config", "--recipes", "--focus_init", "--learning_rate", "--output_dir", "--force"):
        assert flag in printed


def test_cli_missing_config_file(tmp_path, capsys):
    assert cli_main(["run", "--config", str(tmp_path / "nope.yaml")]) == 2
    assert "config file not found" in capsys.readouterr().err


def test_cli_flags_override_yaml(data_files, tmp_path):
    from datacarto.commands.run import build_config

    path = write_yaml(tmp_path / "run.yaml", {
        "model": "yaml-model", "dataset": str(data_files["train"]), "validation": str(data_files["validation"]),
        "output_dir": str(tmp_path / "from_yaml"), "training_args": {"num_train_epochs": 2, "learning_rate": 0.01},
        "recipes": RECIPES, "title": "from yaml", "seed": 1})
    config, force, quiet = build_config([
        "--config", path, "--model", data_files["model"], "--learning-rate", "0.5", "--num_train_epochs", "2",
        "--recipes", "x:region=ambiguous,fraction=0.5;y:metric=confidence,fraction=0.1,order=hardest",
        "--control", "false", "--seed", "4", "--text-columns", "premise,hypothesis", "--force", "maps,report",
        "--quiet"])
    assert config.model == data_files["model"]
    assert config.training_args == {"num_train_epochs": 2, "learning_rate": 0.5}
    assert config.recipes == [{"name": "x", "region": "ambiguous", "fraction": 0.5},
                              {"name": "y", "metric": "confidence", "fraction": 0.1, "order": "hardest"}]
    assert config.control is False and config.seed == 4 and config.title == "from yaml"
    assert config.output_dir == str(tmp_path / "from_yaml") and config.text_columns == ["premise", "hypothesis"]
    assert force == ["maps", "report"] and quiet is True
    config, _, _ = build_config(["--config", path, "--output-dir", str(tmp_path / "flag")])
    assert config.output_dir == str(tmp_path / "flag") and config.model == "yaml-model" and config.seed == 1


def test_cli_run_resumes_a_python_run(first_run, data_files, tmp_path, capsys, monkeypatch):
    """The same config as YAML + flags hashes like the Python config: nothing reruns."""
    monkeypatch.setenv("OMP_WAIT_POLICY", "PASSIVE")
    out = tmp_path / "cli"
    shutil.copytree(first_run.output_dir, out)
    training = {k: v for k, v in TRAINING.items() if k != "learning_rate"}
    path = write_yaml(tmp_path / "run.yaml", {
        "model": data_files["model"], "dataset": str(data_files["train"]),
        "validation": str(data_files["validation"]), "test": str(data_files["test"]),
        "text_columns": ["premise", "hypothesis"], "class_names": LABEL_NAMES, "max_length": 48,
        "training_args": training, "focus_training_args": {"num_train_epochs": 1}, "recipes": RECIPES,
        "title": "pipeline test"})
    assert cli_main(["run", "--config", path, "--output-dir", str(out), "--learning_rate", "0.005"]) == 0
    printed = capsys.readouterr().out
    assert printed.count("skipped") == len(STAGES)
    assert f"report: {out / 'report.html'}" in printed


def test_example_config_documents_every_key():
    import dataclasses
    import subprocess
    from pathlib import Path

    from datacarto.commands.run import read_yaml

    root = Path(__file__).resolve().parents[1] / "examples"
    values = read_yaml(root / "run.yaml")
    assert set(values) == {f.name for f in dataclasses.fields(PipelineConfig)}
    config = PipelineConfig.from_dict(values)
    assert [r["name"] for r in config.recipes] == ["ambiguous-33", "hard-10"]
    for script in ("snli_local.sh", "snli_electra.sh"):
        subprocess.run(["bash", "-n", str(root / script)], check=True)
        assert "datacarto" in (root / script).read_text() and (root / script).stat().st_mode & 0o111


def test_other_options_without_a_test_set(data_files, tmp_path):
    """No test set, epoch_end dynamics, a ranked recipe, no control, focus from the pretrained model,
    equal-weight probability ensembles, region-coloured map."""
    config = make_config(data_files, tmp_path / "variant", test=None, control=False, focus_init="pretrained",
                         save_focused_models=True,
                         ensemble_tune=False, ensemble_combine="probs", map_color_by="region",
                         dynamics_mode="epoch_end", training_args={**TRAINING, "num_train_epochs": 2},
                         recipes=[{"name": "lowconf", "metric": "confidence", "fraction": 0.2}])
    result = run_pipeline(config, quiet=True)
    out = result.output_dir
    assert result.ran == list(STAGES)
    assert list(result.accuracy.index) == ["baseline", "focused/lowconf", "ensemble/lowconf"]
    assert result.accuracy["test_accuracy"].isna().all()
    assert set(load_predictions(out / "predictions" / "baseline.npz")) == {"validation"}
    assert result.ensembles["ensemble/lowconf"].weights == [0.5, 0.5]
    assert result.stages["baseline"].summary.output_dir == "baseline"
    assert json.loads((result.models["focused/lowconf"].parent / "focus.json").read_text())["init"] == "pretrained"
    assert any(result.models["focused/lowconf"].glob("*.safetensors"))  # kept: save_focused_models
    m = pd.read_parquet(out / "metrics" / "train.parquet").set_index("row_id")
    ids = pd.read_json(out / "subsets" / "lowconf.jsonl", lines=True)["row_id"]
    assert len(ids) == 12 and set(ids) == set(m["confidence"].nsmallest(12).index)
    md = (out / "report.md").read_text()
    assert "| baseline | – | " in md and "| random control |" not in md
    assert "weighted mean of probabilities, equal weights" in md


def test_demo_command(data_files, tmp_path, capsys, monkeypatch):
    """``datacarto demo`` end to end (with the tiny model standing in for MiniLM)."""
    monkeypatch.setenv("OMP_WAIT_POLICY", "PASSIVE")  # what the command sets (torch is loaded here already)
    out = tmp_path / "demo"
    code = cli_main(["demo", "--model", data_files["model"], "--output-dir", str(out), "--n-train", "45",
                     "--n-validation", "24", "--n-test", "24", "--epochs", "2", "--quiet"])
    printed = capsys.readouterr().out
    assert code == 0
    assert f"report: {(out / 'report.html').resolve()}" in printed and "test accuracy: baseline" in printed
    md = (out / "report.md").read_text()
    assert "## Label noise" in md and "4 of 45 training labels are known to be wrong" in md
    assert "flipped labels in hard-to-learn: " in printed
    # the report's first section, printed: the estimate and the flags, then each cleaning recipe
    assert md.index("## Label errors and retraining") < md.index("## Data map")
    from datacarto.pipeline.report import label_error_lines

    lines = label_error_lines(out)
    assert lines and lines[0].startswith("Label errors: ") and all(line in printed for line in lines)
    assert all(line in md for line in lines)
    assert sorted(p.name for p in (out / "demo_data").iterdir()) == ["test.jsonl", "train.jsonl", "validation.jsonl"]


def test_every_config_key_is_a_run_flag_derived_from_the_config():
    import dataclasses

    from datacarto.commands.run import _CLI_ONLY, _FROM_TRAINING_ARGS, _run_arguments

    flags = {f.name for f in dataclasses.fields(_run_arguments())}
    assert set(_CLI_ONLY) <= flags
    assert (flags - set(_CLI_ONLY)) | set(_FROM_TRAINING_ARGS) == {f.name for f in dataclasses.fields(PipelineConfig)}


def test_two_runs_into_one_folder_at_once(data_files, tmp_path, capsys):
    """The second `datacarto run` is refused with one line while the first holds the folder; the first finishes."""
    import subprocess
    import sys
    import time

    import yaml

    out = tmp_path / "run"
    config = tmp_path / "run.yaml"
    values = make_config(data_files, out)
    config.write_text(yaml.safe_dump({k: getattr(values, k) for k in (
        "model", "dataset", "validation", "test", "output_dir", "text_columns", "class_names", "max_length",
        "training_args", "focus_training_args", "recipes", "title")}))
    first = subprocess.Popen([sys.executable, "-m", "datacarto.cli", "run", "--config", str(config), "--quiet"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while not (out / ".datacarto.lock").exists():
        assert first.poll() is None, first.stderr.read()[-2000:]
        assert time.time() < deadline
        time.sleep(0.05)
    code = cli_main(["run", "--config", str(config), "--quiet"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "is in use by process" in err[0], err
    assert first.wait(timeout=300) == 0, first.stderr.read()[-2000:]
    assert (out / "report.html").is_file() and not (out / ".datacarto.lock").exists()


def test_recipe_names_are_names(data_files, tmp_path):
    """A trailing newline (what re.match with '$' let through) or a path never names a subset."""
    for bad in ("amb\n", "../evil", "a/b"):
        with pytest.raises(DatacartoError, match="name"):
            make_config(data_files, tmp_path / "x", recipes=[{"name": bad, "region": "ambiguous", "fraction": 0.3}]
                        ).validate()


def test_run_pipeline_takes_dataset_objects(data_files, tmp_path):
    """``dataset=`` / ``validation=`` as ``datasets.Dataset`` objects, as the docs say (not their printout)."""
    from datacarto.data import load_table

    splits = {s: load_table(str(data_files[s])) for s in ("train", "validation")}
    config = make_config(data_files, tmp_path / "objects", dataset=splits["train"], validation=splits["validation"],
                         test=None, control=False, recipes=[dict(RECIPES[1])],
                         training_args={**TRAINING, "num_train_epochs": 2})
    result = run_pipeline(config, quiet=True)
    assert list(result.accuracy.index) == ["baseline", "focused/amb", "ensemble/amb"]
    assert json.loads((result.output_dir / "config.json").read_text())["dataset"]["in_memory"] == 60


def test_a_warning_about_the_settings_is_said_once_per_run_not_per_model(data_files, tmp_path):
    """max_length beyond the model's 64 positions: one warning for the run, not one per focused model."""
    import warnings

    config = make_config(data_files, tmp_path / "long", max_length=100, test=None, recipes=[dict(RECIPES[1])],
                         training_args={**TRAINING, "num_train_epochs": 2})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("default")  # what a Python session shows: once per source line
        result = run_pipeline(config, quiet=True)
    said = [str(w.message) for w in caught if "longer than the model's" in str(w.message)]
    assert said == ["--max-length 100 is longer than the model's 64 positions: using 64"], said
    assert result.accuracy.index.tolist()[:3] == ["baseline", "focused/amb", "control/amb"]
