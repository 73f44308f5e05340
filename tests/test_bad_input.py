"""Bad input, faults and hostile data against every command: one line, exit 2, nothing changed.

Each case runs ``datacarto ARGV`` in-process on a fresh copy of a small world (a recorded run, data
files, a tiny model, allenai files) and asserts: exit code 2, exactly one stderr line starting
``datacarto: error:`` (naming what the case expects), no traceback, every file present before
byte-identical after and no new file. Faults: a full disk and a read-only folder are small tmpfs
mounts where the machine allows it (root), else skipped here and injected in
``test_injected_*``; kill -9 during import and two lock holders are in test_interop.py and
test_store.py, two commands at once here.
"""

from __future__ import annotations

import hashlib
import json
import shlex
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import write_jsonl
from datacarto.cli import main
from datacarto.testing import toy_nli, toy_tokens

FAST = ("--num_train_epochs 1 --per_device_train_batch_size 16 --use_cpu --disable_tqdm true "
        "--save_strategy no --logging_strategy no --report_to none")
LABELS = ["entailment", "neutral", "contradiction"]
OWNED = "owned by recording/pipeline work"
ROW = '{"premise": "a cat", "hypothesis": "an animal", "label": 0}\n'
DUP_ROW = '{"premise": "a", "premise": "b", "hypothesis": "c", "label": 1}\n'
CACHE_FILES = ("metrics.parquet", "metrics.json")  # the metrics cache may appear next to dynamics, by design


# ----------------------------------------------------------------------------------------------
# the world every case starts from


def _write_store(folder: Path, rows: list[dict], epochs: int, seed: int, model: str | None = None,
                 fingerprint: bool = True) -> None:
    """A store as the recorder writes it: examples, manifest with fingerprints (unless not), epochs."""
    from datacarto.dynamics.store import DynamicsWriter, dataset_fingerprint, example_fingerprints

    frame = pd.DataFrame(rows)
    labels = frame["label"].to_numpy()
    cols = ["premise", "hypothesis"]
    fps = example_fingerprints(frame[cols].assign(__label=labels))
    writer = DynamicsWriter(folder)
    writer.write_examples(np.arange(len(rows)), fps, labels, frame)
    writer.update_manifest(mode="training_pass", n_examples=len(rows), text_columns=cols, label_names=LABELS,
                           num_labels=3, model=model)
    if fingerprint:
        writer.update_manifest(dataset_fingerprint=dataset_fingerprint(fps))
    rng = np.random.default_rng(seed)
    for e in range(epochs):
        writer.write_epoch(e, np.arange(len(rows)), labels, rng.normal(size=(len(rows), 3)).astype(np.float32),
                           epoch=e + 1.0)


@pytest.fixture(scope="module")
def world(tmp_path_factory, tiny_model):
    return build_world(tmp_path_factory.mktemp("world"), tiny_model)


def build_world(w: Path, tiny_model: str) -> Path:
    from datacarto.dynamics.interop import export_allenai

    train, val = toy_nli(30, seed=1), toy_nli(15, seed=2)
    write_jsonl(w / "train.jsonl", train)
    write_jsonl(w / "val.jsonl", val)
    write_jsonl(w / "test.jsonl", toy_nli(15, seed=3))
    shutil.copytree(tiny_model, w / "model")
    _write_store(w / "run" / "training_dynamics", train, 3, seed=0, model=str(w / "model"))
    _write_store(w / "run" / "training_dynamics" / "eval" / "validation", val, 2, seed=1)
    shutil.copytree(tiny_model, w / "run" / "model")
    export_allenai(w / "run", w / "paper")
    from datacarto.dynamics.cache import get_metrics

    for split in ("train", "validation"):  # the metrics cache exists: a command must keep it as it is
        get_metrics(w / "run", split)
    (w / "run.yaml").write_text(f"model: {w / 'model'}\ndataset: {w / 'train.jsonl'}\nvalidation: {w / 'val.jsonl'}\n"
                                f"output_dir: {w / 'out'}\n")
    return w


def snapshot(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


# ----------------------------------------------------------------------------------------------
# setups: hostile files written into the copy of the world before the command runs


def _jsonl(name: str, rows):
    return lambda w: write_jsonl(w / name, rows)


def _text(name: str, content: str | bytes):
    def setup(w):
        (w / name).parent.mkdir(parents=True, exist_ok=True)
        (w / name).write_bytes(content if isinstance(content, bytes) else content.encode())
    return setup


def _rows(change):
    return lambda w: write_jsonl(w / "bad.jsonl", [change(dict(r)) for r in toy_nli(12, seed=4)])


def _words(change):
    """Token-classification rows whose word 2 is ``change(row, word)``; an int there makes every word an int."""
    def setup(w):
        rows = toy_tokens(12, seed=4)
        for i, r in enumerate(rows):
            r["tokens"][2] = change(i, r["tokens"][2])
            if isinstance(r["tokens"][2], int):
                r["tokens"] = [r["tokens"][2]] * len(r["tokens"])
        write_jsonl(w / "bad.jsonl", rows)
    return setup


def _manifest(content):
    """A broken manifest, and no metrics cache (a cache hit needs no manifest)."""
    def setup(w):
        for name in ("metrics.json", "metrics.parquet"):
            (w / "run/training_dynamics" / name).unlink()
        _text("run/training_dynamics/manifest.json", content)(w)
    return setup


def _manifest_field(**fields):
    """The run's manifest with ``fields`` set to values of the wrong type (and no metrics cache)."""
    def setup(w):
        manifest = json.loads((w / "run/training_dynamics/manifest.json").read_text())
        _manifest(json.dumps({**manifest, **fields}))(w)
    return setup


def _other_run_without_fingerprint(w):
    """A run over other rows whose manifest has no dataset_fingerprint (an old or hand-made store)."""
    _write_store(w / "other" / "training_dynamics", toy_nli(30, seed=9), 3, seed=5, fingerprint=False)


def _duplicated_row_ids(w):
    rows = [{**r, "row_id": i} for i, r in enumerate(toy_nli(30, seed=1)[:12])]
    write_jsonl(w / "bad.jsonl", rows + [rows[3], rows[7]])


def _bad_epoch(w):
    (w / "run/training_dynamics/epoch_001.parquet").write_bytes(b"PAR1 not really parquet")


def _foreign_epoch(w):
    pd.DataFrame({"x": [1, 2]}).to_parquet(w / "run/training_dynamics/epoch_001.parquet")


def _lost_epoch(w):
    (w / "run/training_dynamics/epoch_002.parquet").unlink()


def _gold_out_of_range(w):
    from datacarto.dynamics.store import DynamicsWriter

    DynamicsWriter(w / "odd").write_epoch(0, np.arange(3), np.array([0, 1, 5]), np.zeros((3, 3), np.float32))


def _paper_line(epoch: int, line: str, keep: bool = True):
    def setup(w):
        path = w / f"paper/training_dynamics/dynamics_epoch_{epoch}.jsonl"
        path.write_text((path.read_text() if keep else "") + line + "\n")
    return setup


def _paper_gold_changed(w):
    path = w / "paper/training_dynamics/dynamics_epoch_1.jsonl"
    rows = [json.loads(x) for x in path.read_text().splitlines()]
    rows[4]["gold"] = (rows[4]["gold"] + 1) % 3
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def _dir(name: str):
    return lambda w: (w / name).mkdir(parents=True)


def _rare_class(w):
    """rare.jsonl: 4 + 4 examples of two classes and a single one of the third."""
    rows = toy_nli(12, seed=4)
    write_jsonl(w / "rare.jsonl", [r for r in rows if r["label"] != 2] + [next(r for r in rows if r["label"] == 2)])


RAISES = "{{ raise_exception('this template takes no user turn') }}"
UNSAFE = "{{ messages.__class__.__mro__ }}"  # jinja's sandbox stops it


def _chat_lm(template: str | None):
    """lm/: a tiny causal LM whose tokenizer has ``template`` as its chat template; sft.jsonl: prompt/response rows."""
    def setup(w):
        from transformers import AutoTokenizer

        from datacarto.testing import make_tiny_causal_lm_dir, toy_instruction_words, toy_instructions

        make_tiny_causal_lm_dir(w / "lm", toy_instruction_words())
        if template is not None:
            tokenizer = AutoTokenizer.from_pretrained(w / "lm")
            tokenizer.chat_template = template
            tokenizer.save_pretrained(w / "lm")
        write_jsonl(w / "sft.jsonl", toy_instructions(12, seed=1))
        write_jsonl(w / "sft_clean.jsonl", [{k: r[k] for k in ("prompt", "response")}
                                            for r in toy_instructions(12, seed=1)])
    return setup


def _review_export(tool: str, *choices: str, **data):
    """A reviewed queue of the world's row 0 (label 0, entailment) as Label Studio's JSON export or Argilla's
    records export holds it: one answer of the ``label`` question per choice."""
    ids = {"row_id": 0, "given_label": "entailment", **data}
    if tool == "label-studio":
        annotations = [{"id": k, "completed_by": k, "was_cancelled": False, "ground_truth": False,
                        "result": [{"from_name": "label", "to_name": "premise", "type": "choices",
                                    "value": {"choices": [c]}}]} for k, c in enumerate(choices)]
        item = {"id": 1, "data": ids, "annotations": annotations, "predictions": [], "drafts": []}
    else:
        responses = [{"value": c, "user_id": f"u{k}", "status": "submitted"} for k, c in enumerate(choices)]
        item = {"id": "0", "fields": {}, "metadata": ids, "suggestions": {}, "responses": {"label": responses},
                "vectors": {}, "status": "completed", "_server_id": "5e"}
    return _text("c.json", json.dumps([item], indent=2))


def _pipeline_folder(*stages: str):
    """A ``datacarto run`` output folder (3 folds) whose named stages finished."""
    def setup(w):
        (w / "pipe" / "stages").mkdir(parents=True)
        (w / "pipe" / "config.json").write_text(json.dumps({"folds": 3, "dynamics": "out-of-sample", "recipes": []}))
        for stage in stages:
            (w / "pipe" / "stages" / f"{stage}.json").write_text("{}")
    return setup


def _each(*setups):
    """Every one of ``setups``, in order."""
    return lambda w: [setup(w) for setup in setups]


def _config(*setups, **keys):
    """bad.yaml: run.yaml with ``keys`` added ("{w}" in a string value is the copy of the world)."""
    def setup(w):
        import yaml

        for other in setups:
            other(w)
        values = yaml.safe_load((w / "run.yaml").read_text())
        values.update({k: v.format(w=w) if isinstance(v, str) else v for k, v in keys.items()})
        (w / "bad.yaml").write_text(yaml.safe_dump(values))
    return setup


# ----------------------------------------------------------------------------------------------
# the table


@dataclass
class Case:
    id: str
    argv: str | list[str]  # a string is split by shlex; {w} is the copy of the world
    message: str = ""  # what the error line must contain
    setup: object = None
    owner: str | None = None  # the failure today, when the fix is in another engineer's files

    def args(self, w: Path, faults: dict[str, Path]) -> list[str]:
        parts = shlex.split(self.argv) if isinstance(self.argv, str) else list(self.argv)
        return [p.format(w=w, **{k: str(v) for k, v in faults.items()}) for p in parts]


M, SEL = "metrics {w}/run", "select {w}/run --out {w}/s.jsonl"
ENS = "ensemble --models {w}/model --weights 1 --dataset {w}/test.jsonl"
FOCUS = f"focus {{w}}/run --subset {{w}}/train.jsonl --output-dir {{w}}/f {FAST}"
TRAIN = f"train --model {{w}}/model --dataset {{w}}/train.jsonl --output-dir {{w}}/t {FAST}"
IMP = "import-allenai {w}/paper {w}/imported"
LE = "label-errors {w}/run"
AC = "apply-corrections {w}/run --corrections {w}/c.jsonl --out {w}/fixed.jsonl"
ACJ = AC.replace("c.jsonl", "c.json")  # a review tool's export
SFT = (f"train --model {{w}}/lm --dataset {{w}}/sft.jsonl --task causal-lm --prompt_column prompt "
       f"--response_column response --chat_template true --output-dir {{w}}/t {FAST}")
SFT_RUN = dict(model="{w}/lm", dataset="{w}/sft.jsonl", validation="{w}/sft.jsonl", task="causal-lm",
               prompt_column="prompt", response_column="response", chat_template=True)

CASES = [
    # -- metrics
    Case("metrics-missing-run", "metrics {w}/nope", "not found"),
    Case("metrics-split-escapes", M + " --split ../../../other/training_dynamics", "invalid split name"),
    Case("metrics-split-newline", ["metrics", "{w}/run", "--split", "validation\n"], "invalid split name"),
    Case("metrics-split-absolute", M + " --split /tmp", "invalid split name"),
    Case("metrics-split-unrecorded", M + " --split test", "no training dynamics found"),
    Case("metrics-out-format", M + " --out {w}/m.txt", "unsupported output format"),
    Case("metrics-out-is-dir", M + " --out {w}/d.parquet", "--out {w}/d.parquet is a directory", _dir("d.parquet")),
    Case("metrics-burn-out-0", M + " --burn-out 0", "burn_out must be between 1 and 3"),
    Case("metrics-burn-out-negative", M + " --burn-out -2", "burn_out must be between 1 and 3"),
    Case("metrics-burn-out-too-many", M + " --burn-out 9", "burn_out must be between 1 and 3"),
    Case("metrics-corrupt-epoch", M, "unreadable or partial", _bad_epoch),
    Case("metrics-foreign-epoch", M, "not a datacarto epoch file", _foreign_epoch),
    Case("metrics-lost-epoch", M, "whose files are missing", _lost_epoch),
    Case("metrics-manifest-list", M, "unreadable manifest", _manifest("[1, 2]")),
    Case("metrics-manifest-not-utf8", M, "unreadable manifest", _manifest(b"{\"mode\": \"\xff\"}")),
    Case("metrics-manifest-truncated", M, "unreadable manifest", _manifest("{")),
    Case("select-manifest-list", "select {w}/run --region ambiguous --out {w}/s.jsonl", "unreadable manifest",
         _manifest("[1, 2]")),
    Case("metrics-manifest-num-labels-string", M, "manifest.json: num_labels must be an integer",
         _manifest_field(num_labels="3")),
    Case("metrics-manifest-n-examples-float", M, "manifest.json: n_examples must be an integer",
         _manifest_field(n_examples=29.5)),
    Case("select-manifest-label-names-string", SEL + " --region ambiguous",
         "manifest.json: label_names must be a list of strings", _manifest_field(label_names="abc")),
    Case("map-manifest-label-names-string", "map {w}/run --html {w}/m.html",
         "manifest.json: label_names must be a list of strings", _manifest_field(label_names="abc")),
    Case("focus-manifest-text-columns-string", FOCUS, "manifest.json: text_columns must be a list of strings",
         _manifest_field(text_columns="premise")),
    Case("metrics-run-is-file", "metrics {w}/train.jsonl", "no training dynamics"),
    Case("metrics-empty-run", "metrics {w}/empty", "no training dynamics found", _dir("empty")),
    Case("metrics-folder-of-runs", "metrics {w}", "{w} holds recorded runs: {w}/paper, {w}/run"),
    Case("metrics-out-full-disk", M + " --out {full}/m.parquet", "no space left on device"),
    Case("metrics-out-read-only", M + " --out {ro}/m.parquet", "read-only file system"),
    # -- select
    Case("select-missing-run", "select {w}/nope --out {w}/s.jsonl", "not found"),
    Case("select-out-format", "select {w}/run --out {w}/s.txt", "unsupported output format"),
    Case("select-out-is-dir", "select {w}/run --region ambiguous --out {w}/d.jsonl", "--out {w}/d.jsonl is a directory",
         _dir("d.jsonl")),
    Case("select-control-out-is-dir", "select {w}/run --region ambiguous --out {w}/s.jsonl --control-out {w}/c.jsonl",
         "--control-out {w}/c.jsonl is a directory", _dir("c.jsonl")),
    Case("select-split-escapes", SEL + " --split ../../x", "invalid split name"),
    Case("select-unknown-region", SEL + " --region sideways", "unknown region 'sideways'"),
    Case("select-fraction-0", SEL + " --metric confidence --fraction 0", "fraction must be in (0, 1]"),
    Case("select-fraction-2", SEL + " --metric confidence --fraction 2", "fraction must be in (0, 1]"),
    Case("select-fraction-nan", SEL + " --metric confidence --fraction nan", "fraction must be a number"),
    Case("select-unknown-metric", SEL + " --metric shininess", "unknown metric 'shininess'"),
    Case("select-both-ends-2", SEL + " --metric aum --fraction 0.5 --both-ends 2", "both_ends must be in [0, 1]"),
    Case("select-min-above-max", SEL + " --min-confidence 0.9 --max-confidence 0.1", "nothing can match"),
    Case("select-trajectory-clusters-with-metric", SEL + " --method trajectory-clusters --fraction 0.5 --metric aum",
         "method trajectory-clusters does not rank: metric is for method rules"),
    Case("select-clusters-without-the-method", SEL + " --region ambiguous --fraction 0.5 --clusters 3",
         "clusters is for method trajectory-clusters"),
    Case("select-trajectory-clusters-more-than-the-pool",
         SEL + " --method trajectory-clusters --fraction 0.5 --clusters 30 --region hard-to-learn",
         "clusters=30 is more than the"),
    Case("select-control-same-file", "select {w}/run --region ambiguous --out {w}/s.jsonl --control-out {w}/s.jsonl",
         "--control-out must differ"),
    Case("select-disjoint-alone", "select {w}/run --region ambiguous --out {w}/s.jsonl --control-disjoint",
         "--control-disjoint needs"),
    Case("select-burn-out-0", SEL + " --region ambiguous --burn-out 0", "burn_out must be between 1 and 3"),
    Case("select-out-read-only", "select {w}/run --region ambiguous --out {ro}/s.jsonl", "read-only file system"),
    Case("select-out-full-disk", "select {w}/run --region ambiguous --out {full}/s.jsonl", "no space left"),
    # -- map
    Case("map-split-escapes", "map {w}/run --html {w}/m.html --split ../x", "invalid split name"),
    Case("map-missing-run", "map {w}/nope --html {w}/m.html", "not found"),
    Case("map-sample-0", "map {w}/run --html {w}/m.html --sample 0", "--sample must be at least 1"),
    Case("map-sample-negative", "map {w}/run --html {w}/m.html --sample -4", "--sample must be at least 1"),
    Case("map-compare-run-without-fingerprint", "map {w}/run --compare {w}/other --html {w}/c.html",
         "has no dataset_fingerprint", _other_run_without_fingerprint),
    Case("map-png-format", "map {w}/run --png {w}/m.txt", "unsupported figure format"),
    Case("map-html-is-dir", "map {w}/run --html {w}/d.html", "is a directory", _dir("d.html")),
    Case("map-html-read-only", "map {w}/run --html {ro}/m.html", "read-only file system"),
    # -- serve (each fails before it serves: a success would serve until stopped)
    Case("serve-missing-run", "serve {w}/nope --port 0 --no-open", "run directory {w}/nope not found"),
    Case("serve-run-is-file", "serve {w}/train.jsonl --port 0 --no-open", "not found"),
    Case("serve-empty-run", "serve {w}/empty --port 0 --no-open", "no training dynamics found", _dir("empty")),
    Case("serve-split-escapes", "serve {w}/run --port 0 --no-open --split ../x", "invalid split name"),
    Case("serve-port-out-of-range", "serve {w}/run --port 70000 --no-open", "port must be between 0 and 65535"),
    Case("serve-port-negative", "serve {w}/run --port -1 --no-open", "port must be between 0 and 65535"),
    Case("serve-bad-host", "serve {w}/run --host no-such-host.invalid --port 0 --no-open",
         "cannot listen on no-such-host.invalid:0: unknown host"),
    Case("serve-max-points-0", "serve {w}/run --port 0 --no-open --max-points 0", "--max-points must be at least 1"),
    # -- focus
    Case("focus-missing-subset", f"focus {{w}}/run --subset {{w}}/nope.jsonl --output-dir {{w}}/f {FAST}",
         "data file not found"),
    Case("focus-unknown-init", FOCUS + " --init random", "--init must be one of"),
    Case("focus-unknown-loss", FOCUS + " --loss hinge", "--loss must be ce or focal"),
    Case("focus-bad-alpha", FOCUS + " --loss focal --focal_alpha abc", "--focal-alpha must be a number"),
    Case("focus-region-weight-no-value", FOCUS + " --region_weight ambiguous", "REGION=WEIGHT"),
    Case("focus-region-weight-unknown", FOCUS + " --region_weight sideways=2", "unknown region 'sideways'"),
    Case("focus-region-weight-nan", FOCUS + " --region_weight ambiguous=nan", "must be a number >= 0, got nan"),
    Case("focus-into-a-run", f"focus {{w}}/run --subset {{w}}/train.jsonl --output-dir {{w}}/nrun {FAST}",
         "of this data set: use another output folder, so two runs are never mixed",
         lambda w: _noisy_run(w, [False] * 30)),
    Case("focus-not-a-run", f"focus {{w}} --subset {{w}}/train.jsonl --output-dir {{w}}/f {FAST}", "not a datacarto run"),
    Case("focus-output-is-run", f"focus {{w}}/run --subset {{w}}/train.jsonl --output-dir {{w}}/run {FAST}",
         "the baseline run itself"),
    Case("focus-subset-lacks-text", FOCUS.replace("train.jsonl", "bad.jsonl"), "lacks the baseline's text column",
         _rows(lambda r: {"premise": r["premise"], "label": r["label"]})),
    Case("focus-subset-no-label", FOCUS.replace("train.jsonl", "bad.jsonl"), "label column 'label' not in",
         _rows(lambda r: {"premise": r["premise"], "hypothesis": r["hypothesis"]})),
    Case("focus-subset-row-ids-not-in-run", FOCUS.replace("train.jsonl", "bad.jsonl") + " --region_weight ambiguous=2",
         "are not examples of", _rows(lambda r: {**r, "row_id": 1000})),
    Case("focus-subset-row-ids-of-another-run", FOCUS.replace("train.jsonl", "bad.jsonl"),
         "are not examples of", _rows(lambda r: {**r, "row_id": 1000})),
    Case("focus-subset-none-text", FOCUS.replace("train.jsonl", "bad.jsonl"), "hypothesis",
         _rows(lambda r: {**r, "hypothesis": None})),
    Case("focus-subset-duplicated-row-ids", FOCUS.replace("train.jsonl", "bad.jsonl"),
         "2 rows repeat a row_id (first: 3)", _duplicated_row_ids),
    Case("focus-max-length-0", FOCUS + " --max_length 0", "--max-length must be at least 1"),
    Case("focus-negative-gamma", FOCUS + " --loss focal --focal_gamma -1", "--focal-gamma must be >= 0"),
    Case("focus-no-saved-model", FOCUS, "holds no saved model", lambda w: shutil.rmtree(w / "run" / "model")),
    Case("focus-model-path-not-found", FOCUS + " --model no/such/folder", "model folder not found: no/such/folder"),
    Case("focus-empty-subset", FOCUS.replace("train.jsonl", "bad.jsonl"), "{w}/bad.jsonl is empty",
         _text("bad.jsonl", "")),
    Case("focus-subset-duplicate-key", FOCUS.replace("train.jsonl", "bad.jsonl"),
         "{w}/bad.jsonl, line 2: duplicate key 'premise'", _text("bad.jsonl", ROW + DUP_ROW)),
    # -- ensemble
    Case("ensemble-weights-nan", ENS.replace("--weights 1", "--weights nan"), "weights must be >= 0"),
    Case("ensemble-weights-count", ENS.replace("--weights 1", "--weights 1 2"), "2 --weights given for 1"),
    Case("ensemble-step-0", ENS.replace("--weights 1", "--tune-on validation --validation {w}/val.jsonl --step 0"),
         "grid step must divide 1"),
    Case("ensemble-batch-size-0", ENS + " --batch-size 0", "--batch-size must be at least 1"),
    Case("ensemble-class-names-dup", ENS + " --class-names a,b,a", "duplicate --class-names"),
    Case("ensemble-split-escapes", ENS + " --split ../../x --regions-from {w}/run", "invalid split name"),
    Case("ensemble-missing-data", "ensemble --models {w}/model --dataset {w}/nope.jsonl", "data file not found"),
    Case("ensemble-missing-model", "ensemble --models {w}/nope --dataset {w}/test.jsonl", "model folder not found"),
    Case("ensemble-regions-other-data", ENS + " --split validation --regions-from {w}/run",
         "is not the data {w}/run recorded for split 'validation'"),  # same size, other rows
    Case("ensemble-regions-unrecorded", ENS + " --split test --regions-from {w}/run", "no training dynamics found"),
    Case("ensemble-out-is-dir", ENS + " --out {w}/d.json", "--out {w}/d.json is a directory", _dir("d.json")),
    Case("ensemble-unknown-text-column", ENS + " --text-columns nope", "text column(s) ['nope'] not in"),
    Case("ensemble-label-as-text", ENS + " --text-columns premise,label", "label column 'label' is also given as a"),
    Case("ensemble-none-text", ENS.replace("test.jsonl", "bad.jsonl"), "hypothesis",
         _rows(lambda r: {**r, "hypothesis": None})),
    Case("ensemble-int-text", ENS.replace("test.jsonl", "bad.jsonl") + " --text-columns premise,hypothesis",
         "hypothesis", _rows(lambda r: {**r, "hypothesis": 7})),
    Case("ensemble-label-out-of-range", ENS.replace("test.jsonl", "bad.jsonl"), "out of range",
         _rows(lambda r: {**r, "label": 9})),
    Case("ensemble-out-read-only", ENS + " --out {ro}/r.json", "read-only file system"),
    # -- train
    Case("train-missing-model-folder", TRAIN.replace("{w}/model", "{w}/nomodel"), "model folder not found"),
    Case("train-missing-data", TRAIN.replace("train.jsonl", "nope.jsonl"), "data file not found"),
    Case("train-label-as-text", TRAIN + " --text_columns premise,label", "label"),
    Case("train-unknown-text-column", TRAIN + " --text_columns nope", "text column(s) ['nope'] not in"),
    Case("train-label-out-of-range", TRAIN.replace("train.jsonl", "bad.jsonl"), "out of range",
         _rows(lambda r: {**r, "label": 7})),
    Case("train-string-labels-no-names", TRAIN.replace("train.jsonl", "bad.jsonl"), "--class-names",
         _rows(lambda r: {**r, "label": LABELS[r["label"]]})),
    Case("train-class-names-dup", TRAIN + " --class_names a,b,a", "duplicate"),
    Case("train-max-length-0", TRAIN + " --max_length 0", "max"),
    Case("train-epochs-0", TRAIN + " --num_train_epochs 0", "epoch"),
    Case("train-resume-missing", TRAIN + " --resume_from_checkpoint {w}/nockpt", "nockpt"),
    Case("train-dynamics-mode", TRAIN + " --dynamics_mode sometimes", "dynamics_mode must be one of"),
    Case("train-none-text", TRAIN.replace("train.jsonl", "bad.jsonl"), "hypothesis",
         _rows(lambda r: {**r, "hypothesis": None})),
    Case("train-all-none-text", TRAIN.replace("train.jsonl", "bad.jsonl") + " --text_columns premise,hypothesis",
         "hypothesis", _rows(lambda r: {**r, "hypothesis": None})),
    Case("train-non-utf8-jsonl", TRAIN.replace("train.jsonl", "bad.jsonl"), "bad.jsonl",
         _text("bad.jsonl", b'{"premise": "\xff\xfe", "hypothesis": "x", "label": 0}\n')),
    Case("train-duplicate-csv-columns", TRAIN.replace("train.jsonl", "bad.csv"), "duplicate column",
         _text("bad.csv", "premise,premise,label\na,b,0\nc,d,1\ne,f,2\n")),
    Case("train-token-word-null", TRAIN.replace("train.jsonl", "bad.jsonl") + " --task token-classification",
         "row 3 of the training set: word 2 of 'tokens' is None", _words(lambda i, w: None if i == 3 else w)),
    Case("train-token-word-int", TRAIN.replace("train.jsonl", "bad.jsonl") + " --task token-classification",
         "row 0 of the training set: word 0 of 'tokens' is 7", _words(lambda i, w: 7)),
    Case("train-regression-text-score", TRAIN.replace("train.jsonl", "bad.jsonl") + " --task regression",
         "regression: 'label' of the training set must hold one finite number per row (row 0: 'high')",
         _rows(lambda r: {**r, "label": "high"})),
    Case("train-regression-classifier", TRAIN + " --task regression",
         "model '{w}/model' is a classifier with 3 labels, not 1"),
    # the whole request is checked before any model loads (nothing trained, nothing written)
    Case("train-seeds-negative", TRAIN + " --seeds -1 1", "--seeds must be integers between 0 and 2**32 - 1, got -1"),
    Case("train-seeds-too-big", TRAIN + " --seeds 0 4294967296", "between 0 and 2**32 - 1, got 4294967296"),
    Case("train-seeds-repeated", TRAIN + " --seeds 0 0 1", "seed 0 is given twice"),
    Case("train-seed-negative", TRAIN + " --seed -1", "--seed must be an integer between 0 and 2**32 - 1, got -1"),
    Case("train-folds-rare-class", TRAIN.replace("train.jsonl", "rare.jsonl") + " --folds 3",
         "class '2' has 1 example", _rare_class),
    Case("train-task-option-of-another-task", TRAIN + " --task token-classification --choice_columns premise,hypothesis",
         "choice_columns is an option of multiple-choice, not of token-classification"),
    Case("train-chat-template-raises", SFT, "the chat template fails on the first row of the training set: "
         "TemplateError: this template takes no user turn", _chat_lm(RAISES)),
    Case("train-chat-template-unsafe", SFT, "the chat template fails on the first row of the training set: "
         "SecurityError", _chat_lm(UNSAFE)),
    Case("train-empty-data", TRAIN.replace("train.jsonl", "bad.jsonl"), "{w}/bad.jsonl is empty", _text("bad.jsonl", "")),
    Case("train-blank-data", TRAIN.replace("train.jsonl", "bad.jsonl"), "{w}/bad.jsonl is empty",
         _text("bad.jsonl", "\n  \n")),
    Case("train-jsonl-duplicate-key", TRAIN.replace("train.jsonl", "bad.jsonl"),
         "{w}/bad.jsonl, line 2: duplicate key 'premise'", _text("bad.jsonl", ROW + DUP_ROW)),
    Case("train-jsonl-not-json", TRAIN.replace("train.jsonl", "bad.jsonl"), "{w}/bad.jsonl, line 3: not valid JSON",
         _text("bad.jsonl", ROW + ROW + '{"premise": oops}\n')),
    Case("train-jsonl-not-an-object", TRAIN.replace("train.jsonl", "bad.jsonl"),
         "{w}/bad.jsonl, line 2: not a JSON object", _text("bad.jsonl", ROW + "[1, 2]\n")),
    Case("train-model-path-not-found", TRAIN.replace("{w}/model", "no/such/folder"),
         "model folder not found: no/such/folder"),
    # -- audit
    Case("audit-unknown-score", "audit --run {w}/nrun --noisy-column is_flipped --scores shininess", "shininess",
         lambda w: _noisy_run(w, flags=[i % 5 == 0 for i in range(30)])),
    Case("audit-train-unknown-score", f"audit --model {{w}}/model --dataset {{w}}/train.jsonl --scores shininess "
         f"--output-dir {{w}}/a {FAST}", "shininess"),  # trains first, then refuses
    Case("audit-causal-lm-unknown-score", f"audit --model {{w}}/lm --dataset {{w}}/sft_clean.jsonl --task causal-lm "
         f"--prompt-column prompt --response-column response --scores shininess --output-dir {{w}}/a {FAST}",
         "unknown score(s) ['shininess']", _chat_lm(None)),
    Case("audit-missing-run", "audit --run {w}/nope", "not found"),
    Case("audit-split-escapes", "audit --run {w}/run --split ../x", "invalid split name"),
    Case("audit-non-numeric-noisy-column", "audit --run {w}/nrun --noisy-column is_flipped", "is_flipped",
         lambda w: _noisy_run(w, flags=["yes", "no"] * 15)),
    Case("audit-noise-1.5", f"audit --model {{w}}/model --dataset {{w}}/train.jsonl --noise 1.5 "
         f"--output-dir {{w}}/a {FAST}", "noise must be in [0, 1)"),
    # -- run
    Case("run-config-missing", "run --config {w}/nope.yaml", "nope.yaml"),
    Case("run-config-wrong-type", "run --config {w}/bad.yaml", "three",
         lambda w: _text("bad.yaml", (w / "run.yaml").read_text() + "training_args:\n  num_train_epochs: three\n")(w)),
    Case("run-config-not-utf8", "run --config {w}/bad.yaml", "bad.yaml", _text("bad.yaml", b"model: \xff\xfe\n")),
    Case("run-config-bad-yaml", "run --config {w}/bad.yaml", "cannot parse {w}/bad.yaml",
         _text("bad.yaml", "model: [unclosed\n")),
    Case("run-config-list", "run --config {w}/bad.yaml", "{w}/bad.yaml must hold a mapping", _text("bad.yaml", "- a\n")),
    Case("run-recipes-malformed", "run --config {w}/run.yaml --recipes nonsense", "recipe 'nonsense' must read"),
    Case("run-config-unknown-key", "run --config {w}/bad.yaml", "unknown config key(s)",
         lambda w: _text("bad.yaml", (w / "run.yaml").read_text() + "epochs: 3\n")(w)),
    Case("run-no-output-dir", "run --model {w}/model --dataset {w}/train.jsonl", "no output directory"),
    Case("run-class-names-dup", "run --config {w}/run.yaml --class_names a,a,b", "duplicate"),
    Case("run-seeds-negative", "run --config {w}/bad.yaml", "config key 'seeds' must be integers between 0 and "
         "2**32 - 1, got -1", _config(seeds=[-1, 1])),
    Case("run-seeds-too-big", "run --config {w}/bad.yaml", "got 4294967296", _config(seeds=[0, 2**32])),
    Case("run-seeds-repeated", "run --config {w}/bad.yaml", "seed 0 is given twice", _config(seeds=[0, 0, 1])),
    Case("run-s2l-fraction-0", "run --config {w}/bad.yaml", "recipe 's2l': fraction must be in (0, 1], got 0",
         _config(recipes=[{"name": "s2l", "method": "trajectory-clusters", "fraction": 0}])),
    Case("run-recipe-unknown-region", "run --config {w}/bad.yaml", "recipe 'amb': unknown region 'sideways'",
         _config(recipes=[{"name": "amb", "region": "sideways", "fraction": 0.3}])),
    Case("run-recipe-both-ends-alone", "run --config {w}/bad.yaml", "recipe 'ends': both_ends needs a metric",
         _config(recipes=[{"name": "ends", "region": "ambiguous", "both_ends": 0.5}])),
    Case("run-folds-rare-class", "run --config {w}/bad.yaml", "class 'contradiction' has 1 example",
         _config(_rare_class, dataset="{w}/rare.jsonl", folds=3, class_names=LABELS)),
    Case("run-task-option-of-another-task", "run --config {w}/bad.yaml",
         "choice_columns is an option of multiple-choice, not of token-classification",
         _config(task="token-classification", choice_columns=["premise", "hypothesis"])),
    Case("run-chat-template-raises", "run --config {w}/bad.yaml", "the chat template fails on the first row of the "
         "training set: TemplateError", _config(_chat_lm(RAISES), **SFT_RUN)),
    Case("run-clean-recipe-unknown-action", "run --config {w}/bad.yaml",
         "recipe 'fix': action must be one of drop, relabel, got 'burn'",
         _config(recipes=[{"name": "fix", "action": "burn"}])),
    Case("run-clean-recipe-one-epoch", "run --config {w}/bad.yaml --num_train_epochs 1",
         "recipe 'fix' (action drop) needs a label-error estimate, and in-sample dynamics of 1 epoch cannot "
         "support one", _config(recipes=[{"name": "fix", "action": "drop"}])),
    Case("run-clean-recipe-multi-label", "run --config {w}/bad.yaml",
         "recipe 'fix': cleaning recipes (action drop or relabel) retrain on corrected example labels, which a "
         "multi-label run does not have", _config(_rows(lambda r: {**r, "label": [r["label"]]}),
                                                   dataset="{w}/bad.jsonl",
                                                   recipes=[{"name": "fix", "action": "relabel"}])),
    Case("run-model-path-not-found", "run --config {w}/run.yaml --model no/such/folder",
         "model folder not found: no/such/folder"),
    Case("run-empty-data", "run --config {w}/run.yaml --dataset {w}/bad.jsonl", "{w}/bad.jsonl is empty",
         _text("bad.jsonl", "")),
    Case("run-jsonl-not-json", "run --config {w}/run.yaml --dataset {w}/bad.jsonl",
         "{w}/bad.jsonl, line 3: not valid JSON", _text("bad.jsonl", ROW + ROW + '{"premise": oops}\n')),
    Case("run-records-of-an-earlier-version", "run --config {w}/run.yaml", "the records of stage(s) data were "
         "written by another datacarto version, whose resume keys this one cannot check: rerun with --force data",
         _text("out/stages/data.json", '{"name": "data", "key": "k", "digest": "d", "seconds": 1.0, '
               '"finished_at": 0.0, "outputs": [], "summary": {}}')),
    # -- demo
    Case("demo-n-train-0", "demo --output-dir {w}/demo --n-train 0", "n_train must be at least 1"),
    Case("demo-flip-1.5", "demo --output-dir {w}/demo --flip 1.5", "flip must be in [0, 1]"),
    Case("demo-epochs-0", "demo --output-dir {w}/demo --epochs 0", "epochs"),
    Case("demo-output-is-file", "demo --output-dir {w}/train.jsonl", "train.jsonl"),
    # -- import-allenai
    Case("import-missing-src", "import-allenai {w}/nope {w}/imported", "no allenai dynamics found"),
    Case("import-malformed-line", IMP, "dynamics_epoch_1.jsonl, line 31: not valid JSON",
         _paper_line(1, '{"guid": 99, "gold": 0,')),
    Case("import-string-gold", IMP, "line 1: gold label must be an integer",
         _paper_line(2, '{"guid": 0, "gold": "0", "logits_epoch_2": [0, 1, 2]}', keep=False)),
    Case("import-gold-differs", IMP, "in dynamics_epoch_0.jsonl it is", _paper_gold_changed),
    Case("import-into-run", "import-allenai {w}/paper {w}/run", "already holds training dynamics"),
    Case("import-out-is-file", "import-allenai {w}/paper {w}/train.jsonl", "is a file"),
    Case("import-label-names", IMP + " --label-names a,b", "2 label names given"),
    Case("import-not-utf8", IMP, "not UTF-8", _text("paper/training_dynamics/dynamics_epoch_0.jsonl", b"\xff\n")),
    Case("import-read-only", "import-allenai {w}/paper {ro}/imported", "read-only file system"),
    Case("import-full-disk", "import-allenai {w}/paper {full}/imported", "no space left on device"),
    Case("import-locked", IMP, "is in use by process", lambda w: _locked(w / "imported")),
    # -- export-allenai
    Case("export-over-export", "export-allenai {w}/run {w}/paper", "pass --overwrite"),
    Case("export-missing-run", "export-allenai {w}/nope {w}/e", "no training dynamics found"),
    Case("export-split-escapes", "export-allenai {w}/run {w}/e --split ../../x", "invalid split name"),
    Case("export-gold-out-of-range", "export-allenai {w}/odd {w}/e", "outside [0, 3)", _gold_out_of_range),
    Case("export-into-store", "export-allenai {w}/run {w}/run --overwrite", "holds a datacarto store"),
    Case("export-out-is-file", "export-allenai {w}/run {w}/train.jsonl", "is a file"),
    Case("export-read-only", "export-allenai {w}/run {ro}/e", "read-only file system"),
    Case("export-full-disk", "export-allenai {w}/run {full}/e", "no space left on device"),
    # -- label-errors (the world's run has random logits: a model that learned nothing)
    Case("label-errors-missing-run", "label-errors {w}/nope", "run directory {w}/nope not found"),
    Case("label-errors-barely-learned", LE, "cannot estimate label errors: the model barely learned the training set"),
    Case("label-errors-one-epoch", "label-errors {w}/one", "holds one epoch of in-sample dynamics",
         lambda w: _write_store(w / "one" / "training_dynamics", toy_nli(30, seed=1), 1, seed=0)),
    Case("label-errors-needs-out-of-sample", LE + " --method out-of-sample", "needs out-of-sample dynamics"),
    Case("label-errors-unknown-method", LE + " --method sometimes", "method must be one of"),
    Case("label-errors-causal-lm", "label-errors {w}/lm", "is a causal-LM run",
         _text("lm/training_dynamics/manifest.json", '{"task": "causal-lm"}')),
    Case("label-errors-split-escapes", LE + " --split ../x", "invalid split name"),
    Case("label-errors-pipeline-unfinished", "label-errors {w}/pipe",
         "{w}/pipe: the pipeline has not finished its baseline stage", _pipeline_folder("data")),
    Case("label-errors-pipeline-split", "label-errors {w}/pipe --split insample",
         "{w}/pipe is a pipeline run folder: --split insample names a store of one of its runs; give that run's "
         "folder ({w}/pipe/baseline or {w}/pipe/crossfit)", _pipeline_folder("data", "baseline")),
    Case("apply-corrections-pipeline-unfinished", AC.replace("{w}/run", "{w}/pipe"),
         "{w}/pipe: the pipeline has not finished its baseline stage", _pipeline_folder("data")),
    Case("label-errors-out-format", LE + " --out {w}/q.txt", "cannot tell the queue format of {w}/q.txt"),
    Case("label-errors-unknown-format", LE + " --out {w}/q.json --format xml", "--format must be one of"),
    Case("label-errors-format-suffix", LE + " --out {w}/q.csv --format label-studio", "unsupported output format"),
    Case("label-errors-format-no-out", LE + " --format csv", "--format needs --out"),
    Case("label-errors-unknown-score", LE + " --score loss", "--score must be one of"),
    Case("label-errors-unknown-epochs", LE + " --epochs best", "--epochs must be one of"),
    Case("label-errors-out-is-dir", LE + " --out {w}/d.csv", "--out {w}/d.csv is a directory", _dir("d.csv")),
    # -- apply-corrections (row 0 of the world's run: label 0, entailment)
    Case("apply-corrections-missing-file", AC, "corrections file not found: {w}/c.jsonl"),
    Case("apply-corrections-missing-run", AC.replace("{w}/run", "{w}/nope"), "run directory {w}/nope not found"),
    Case("apply-corrections-row-outside", AC, "1 row ids are not in the run's 30 records",
         _jsonl("c.jsonl", [{"row_id": 30, "decision": "drop"}])),
    Case("apply-corrections-fingerprint", AC, "is a corrections file of other data: its dataset fingerprint",
         _jsonl("c.jsonl", [{"row_id": 0, "decision": "drop", "dataset_fingerprint": "0" * 32}])),
    Case("apply-corrections-text-differs", AC, "the 'premise' text of row_id 0 differs from the run's record",
         _jsonl("c.jsonl", [{"row_id": 0, "decision": "drop", "premise": "a cat is here"}])),
    Case("apply-corrections-given-label-differs", AC, "given_label 'neutral' is not the run's label 'entailment'",
         _jsonl("c.jsonl", [{"row_id": 0, "decision": "keep", "given_label": "neutral"}])),
    Case("apply-corrections-unknown-decision", AC, "unknown decision 'fix'",
         _jsonl("c.jsonl", [{"row_id": 0, "decision": "fix"}])),
    Case("apply-corrections-relabel-no-label", AC, "relabel needs a new_label",
         _jsonl("c.jsonl", [{"row_id": 0, "decision": "relabel"}])),
    Case("apply-corrections-unknown-label", AC, "unknown label 'maybe'",
         _jsonl("c.jsonl", [{"row_id": 0, "decision": "relabel", "new_label": "maybe"}])),
    Case("apply-corrections-label-id-out-of-range", AC, "unknown label 3",
         _jsonl("c.jsonl", [{"row_id": 0, "decision": "relabel", "new_label": 3}])),
    Case("apply-corrections-twice", AC, "row_id 0 appears twice",
         _jsonl("c.jsonl", [{"row_id": 0, "decision": "drop"}, {"row_id": 0, "decision": "keep"}])),
    Case("apply-corrections-no-decision", AC, "has no column(s) ['decision']", _jsonl("c.jsonl", [{"row_id": 0}])),
    Case("apply-corrections-empty", AC, "corrections file {w}/c.jsonl is empty", _text("c.jsonl", "")),
    Case("apply-corrections-not-json", AC, "{w}/c.jsonl, line 1: not valid JSON", _text("c.jsonl", "{oops\n")),
    Case("apply-corrections-not-utf8", AC, "{w}/c.jsonl is not UTF-8", _text("c.jsonl", b'{"row_id": "\xff"}\n')),
    Case("apply-corrections-csv-row-id", AC.replace("c.jsonl", "c.csv"), "row_id 'first' is not an integer",
         _text("c.csv", "row_id,decision\nfirst,drop\n")),
    Case("apply-corrections-format", AC.replace("c.jsonl", "c.txt"), "unsupported corrections file",
         _text("c.txt", "row_id,decision\n0,drop\n")),
    Case("apply-corrections-label-studio-fingerprint", ACJ, "a corrections file of other data: its dataset fingerprint",
         _review_export("label-studio", "neutral", dataset_fingerprint="0" * 32)),
    Case("apply-corrections-argilla-fingerprint", ACJ, "a corrections file of other data: its dataset fingerprint",
         _review_export("argilla", "neutral", dataset_fingerprint="0" * 32)),
    Case("apply-corrections-label-studio-unknown-label", ACJ, "unknown label 'maybe'",
         _review_export("label-studio", "maybe")),
    Case("apply-corrections-argilla-unknown-label", ACJ, "unknown label 'maybe'", _review_export("argilla", "maybe")),
    Case("apply-corrections-label-studio-disagree", ACJ, "task 1 (row_id 0): annotators disagree",
         _review_export("label-studio", "neutral", "contradiction")),
    Case("apply-corrections-argilla-disagree", ACJ, "record 0 (row_id 0): annotators disagree",
         _review_export("argilla", "drop", "entailment")),
    Case("apply-corrections-json-malformed", ACJ, "{w}/c.json: not valid JSON",
         _text("c.json", '[{"data": {"row_id": 0}, "annotations": [')),
    Case("apply-corrections-json-neither", ACJ, "item 1 is neither a Label Studio task",
         _text("c.json", '[{"premise": "a cat", "label": "neutral"}]')),
    Case("apply-corrections-json-not-a-list", ACJ, "expected a JSON list", _text("c.json", '{"row_id": 0}')),
    Case("apply-corrections-label-studio-queue", ACJ, "a Label Studio task without annotations",
         _text("c.json", '[{"data": {"row_id": 0}, "predictions": []}]')),
    Case("apply-corrections-out-is-input", AC.replace("{w}/fixed.jsonl", "{w}/c.jsonl"), "is an input",
         _jsonl("c.jsonl", [{"row_id": 0, "decision": "drop"}])),
    Case("apply-corrections-out-format", AC.replace("fixed.jsonl", "fixed.txt"), "unsupported output format",
         _jsonl("c.jsonl", [{"row_id": 0, "decision": "drop"}])),
    Case("label-errors-out-exists", LE + " --out {w}/q.csv", "--out {w}/q.csv exists",  # a queue being reviewed
         _text("q.csv", "row_id,decision\n0,drop\n")),
    Case("label-errors-parent-folder", "label-errors {w}", "no training dynamics found in {w}/training_dynamics"),
    Case("apply-corrections-parent-folder", AC.replace("{w}/run", "{w}"),
         "no training dynamics found in {w}/training_dynamics", _jsonl("c.jsonl", [{"row_id": 0, "decision": "drop"}])),
    Case("apply-corrections-not-a-run", AC.replace("{w}/run", "{w}/maps"), "no training dynamics found in {w}/maps",
         _each(_dir("maps"), _jsonl("c.jsonl", [{"row_id": 0, "decision": "drop"}]))),
    Case("apply-corrections-out-exists", AC, "--out {w}/fixed.jsonl exists",
         _each(_jsonl("c.jsonl", [{"row_id": 0, "decision": "drop"}]), _text("fixed.jsonl", ROW))),
    Case("apply-corrections-out-read-only", AC.replace("{w}/fixed.jsonl", "{ro}/fixed.jsonl"), "read-only file system",
         _jsonl("c.jsonl", [{"row_id": 0, "decision": "drop"}])),
]


def _noisy_run(w, flags):
    rows = [{**r, "is_flipped": f} for r, f in zip(toy_nli(30, seed=1), flags)]
    _write_store(w / "nrun" / "training_dynamics", rows, 3, seed=0)


def _locked(folder: Path):
    import os

    folder.mkdir(parents=True)
    (folder / ".datacarto.lock").write_text(f"{os.getpid()}\n")  # this process is alive: a live holder


# ----------------------------------------------------------------------------------------------
# faults: a full and a read-only tmpfs


def _mount(path: Path, *options: str) -> bool:
    path.mkdir(parents=True, exist_ok=True)
    try:
        return subprocess.run(["mount", "-t", "tmpfs", "-o", ",".join(("size=64k", *options)), "tmpfs", str(path)],
                              capture_output=True, timeout=20).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


@pytest.fixture
def faults(tmp_path):
    """{"full": a tmpfs with no space left, "ro": a read-only tmpfs holding one file}; skip if no mount."""
    full, ro = tmp_path / "full", tmp_path / "ro"
    if not _mount(full):
        pytest.skip("cannot mount a tmpfs here (not root?): see test_injected_*")
    try:
        with open(full / "filler", "wb") as f:
            try:
                f.write(b"x" * (1 << 20))
            except OSError:
                pass
        assert _mount(ro)
        (ro / "old.json").write_text("{}")
        subprocess.run(["mount", "-o", "remount,ro", str(ro)], check=True, timeout=20)
        yield {"full": full, "ro": ro}
    finally:
        for m in (ro, full):
            subprocess.run(["umount", "-l", str(m)], capture_output=True, timeout=20)


def _one_error_line(code: int, err: str, message: str, tmp: Path) -> None:
    assert "Traceback" not in err, err
    assert code == 2, err
    lines = [line for line in err.strip().splitlines() if line.startswith("datacarto: error:")]
    assert len(lines) == 1, err
    # the test's own folder name must not match for the message
    assert message.replace(str(tmp), "<tmp>") in lines[0].replace(str(tmp), "<tmp>"), err


def _params():
    for case in CASES:
        marks = [pytest.mark.xfail(strict=True, reason=case.owner)] if case.owner else []
        yield pytest.param(case, id=case.id, marks=marks)


@pytest.mark.parametrize("case", list(_params()))
def test_bad_input(case, world, tmp_path, capsys, request):
    w = tmp_path / "w"
    shutil.copytree(world, w, symlinks=True)
    # the world's paths point at the shared copy; point them at this one
    for cfg in (w / "run.yaml",):
        cfg.write_text(cfg.read_text().replace(str(world), str(w)))
    uses = " ".join(case.argv) if isinstance(case.argv, list) else case.argv
    faults = request.getfixturevalue("faults") if ("{full}" in uses or "{ro}" in uses) else {}
    if case.setup is not None:
        case.setup(w)
    argv = case.args(w, faults)
    message = case.message.format(w=w)
    before = snapshot(tmp_path)
    capsys.readouterr()
    code = main(argv)
    err = capsys.readouterr().err
    _one_error_line(code, err, message, tmp_path)
    after = snapshot(tmp_path)
    changed = sorted(k for k in before if after.get(k) != before[k])
    assert not changed, f"changed or removed: {changed}"
    new = sorted(k for k in set(after) - set(before) if Path(k).name not in CACHE_FILES)
    assert not new, f"new files: {new}"


def test_the_table_is_big_enough():
    assert len(CASES) >= 80
    assert len({c.id for c in CASES}) == len(CASES)
    commands = {(c.argv.split()[0] if isinstance(c.argv, str) else c.argv[0]) for c in CASES}
    assert commands == {"train", "metrics", "map", "select", "focus", "ensemble", "audit", "run",
                        "import-allenai", "export-allenai", "demo", "label-errors", "apply-corrections", "serve"}

