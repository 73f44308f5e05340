"""Label errors: the confident-learning count, runs with known flipped labels, review queues, corrections."""

from __future__ import annotations

import doctest
import json

import numpy as np
import pandas as pd
import pytest

from conftest import cli_fails
from datacarto.errors import DatacartoError
from datacarto.label_errors import (
    calibrate_joint,
    confident_joint,
    find_label_errors,
    label_quality,
    probabilities_from_logits,
    softmax,
)

NAMES = ["entailment", "neutral", "contradiction"]
#: the stated tolerance: the estimate is within this share of the true number of flipped labels
TOLERANCE = 0.35

# ----------------------------------------------------------------------------------------------
# the count, on probability matrices


def test_the_confident_joint_of_a_hand_computed_example():
    labels = [0, 0, 0, 1, 1, 1, 2, 2, 2]
    p = np.array([[.8, .1, .1], [.7, .2, .1], [.2, .7, .1],    # row 2: given 0, looks like 1
                  [.1, .8, .1], [.2, .6, .2], [.1, .1, .8],    # row 5: given 1, looks like 2
                  [.1, .1, .8], [.2, .1, .7], [.3, .3, .4]])   # row 8: reaches no threshold
    # t_j = mean p_j over the rows given j: (.8+.7+.2)/3, (.8+.6+.1)/3, (.8+.7+.4)/3
    joint, t = confident_joint(labels, p)
    np.testing.assert_allclose(t, [1.7 / 3, 0.5, 1.9 / 3])
    np.testing.assert_array_equal(joint, [[2, 1, 0], [0, 2, 1], [0, 0, 2]])
    # rows scaled to the 3 rows given each label: class 2 counted 2 of its 3 rows
    np.testing.assert_allclose(calibrate_joint(joint, [3, 3, 3]), [[2, 1, 0], [0, 2, 1], [0, 0, 3]])
    found = find_label_errors(labels, p, class_names=["a", "b", "c"])
    assert found.per_class["estimated_errors"].tolist() == [1, 1, 0] and found.total == 2
    # ranked by self-confidence: row 5 (p = .1) before row 2 (p = .2); suggestions = argmax
    assert found.flagged[["row_id", "given_label", "suggested_label"]].values.tolist() == \
        [[5, "b", "c"], [2, "a", "b"]]
    np.testing.assert_allclose(found.flagged["suggested_probability"], [.8, .7])
    np.testing.assert_allclose(found.flagged["score_value"], [.1, .2])


def test_a_row_above_two_thresholds_counts_as_its_most_probable_one():
    # t0 = t1 = .4: every row reaches both thresholds and counts as its argmax, so every label is wrong
    labels, p = [0, 0, 1, 1], np.array([[.4, .6], [.4, .6], [.6, .4], [.6, .4]])
    joint, _ = confident_joint(labels, p)
    np.testing.assert_array_equal(joint, [[0, 2], [2, 0]])
    assert find_label_errors(labels, p).total == 4


def test_a_class_no_row_is_given_is_never_counted():
    # class 2 has no row: its threshold is +inf, no row counts as it, its calibrated row stays empty
    labels, p = [0, 0, 1, 1], np.array([[.5, .1, .4], [.6, .2, .2], [.1, .5, .4], [.2, .7, .1]])
    joint, t = confident_joint(labels, p)
    assert np.isinf(t[2]) and joint[:, 2].sum() == 0 and joint[2].sum() == 0
    assert calibrate_joint(joint, [2, 2, 0])[2].tolist() == [0, 0, 0]
    found = find_label_errors(labels, p)
    assert found.per_class["n"].tolist() == [2, 2, 0] and found.total == 0


def test_the_doctest():
    import datacarto.label_errors as module

    assert doctest.testmod(module).failed == 0


def _noisy_probabilities(n=3000, c=3, noise=0.1, seed=0):
    from datacarto.noise import inject_label_noise

    rng = np.random.default_rng(seed)
    true = rng.integers(0, c, n)
    probs = softmax(3.0 * np.eye(c)[true] + rng.normal(0, 1, (n, c)))
    noisy, flipped = inject_label_noise(true, noise, seed=seed)
    return noisy, probs, flipped


def test_flags_are_as_many_as_the_estimate_per_class_ranked_with_argmax_suggestions():
    labels, p, flipped = _noisy_probabilities()
    found = find_label_errors(labels, p, class_names=NAMES, ids=np.arange(len(labels)) + 100)
    flagged = found.flagged
    assert abs(found.total - flipped.sum()) <= TOLERANCE * flipped.sum()
    assert len(flagged) == found.total
    assert flagged["given_label"].value_counts().reindex(NAMES, fill_value=0).tolist() == \
        found.per_class["estimated_errors"].tolist()
    rows = flagged["row_id"].to_numpy() - 100
    assert flipped[rows].mean() > 0.8  # precision, against a chance of 0.1
    assert flagged["suggested_label"].tolist() == [NAMES[k] for k in p[rows].argmax(axis=1)]
    np.testing.assert_allclose(flagged["suggested_probability"], p[rows].max(axis=1))
    assert flagged["score_value"].is_monotonic_increasing and (flagged["score"] == "self_confidence").all()
    np.testing.assert_allclose(flagged["score_value"], p[rows, labels[rows]])
    margin = find_label_errors(labels, p, score="normalized_margin").flagged
    r = margin["row_id"].to_numpy()
    others = np.where(np.eye(3, dtype=bool)[labels[r]], -1, p[r]).max(axis=1)
    np.testing.assert_allclose(margin["score_value"], p[r, labels[r]] - others)


def test_groups_are_counted_as_separate_problems():
    labels, p, _ = _noisy_probabilities(c=2, noise=0.15)
    groups = np.arange(len(labels)) % 3
    together = find_label_errors(labels, p, class_names=["no", "yes"], groups=groups, group_names=list("xyz"))
    for g, name in enumerate("xyz"):
        alone = find_label_errors(labels[groups == g], p[groups == g], ids=np.flatnonzero(groups == g))
        assert together.per_class.loc[[f"{name}: no", f"{name}: yes"], "estimated_errors"].tolist() == \
            alone.per_class["estimated_errors"].tolist()
        assert set(together.flagged.loc[together.flagged["group"] == name, "row_id"]) == set(alone.flagged["row_id"])


def test_probabilities_from_logits_mean_and_last_skip_unusable_epochs():
    logits = np.array([[[2.0, 0.0], [0.0, 2.0], [np.nan, 0.0]],
                       [[np.nan, 1.0], [np.nan, 1.0], [np.nan, 1.0]]])
    mean = probabilities_from_logits(logits, epochs="mean")
    np.testing.assert_allclose(mean[0], (softmax(np.array([2.0, 0])) + softmax(np.array([0, 2.0]))) / 2)
    np.testing.assert_allclose(probabilities_from_logits(logits, epochs="last")[0], softmax(np.array([0, 2.0])))
    assert np.isnan(mean[1]).all()
    labels = np.array([0, 1])
    assert np.isnan(label_quality(labels, mean)[1])
    assert find_label_errors(labels, mean).n == 1  # the row without a usable epoch is left out


@pytest.mark.parametrize("call, message", [
    (lambda: find_label_errors([0, 1], np.array([[2.0, -1.0], [0.0, 1.0]])), "pass softmax(logits)"),
    (lambda: find_label_errors([0, 2], np.array([[.5, .5], [.5, .5]])), "labels must lie in 0..1"),
    (lambda: find_label_errors([0, 1], np.array([[.5, .5], [.5, .5]]), score="loss"), "score must be one of"),
    (lambda: find_label_errors([0], np.array([[.5, .5], [.5, .5]])), "1 labels for 2 rows"),
    (lambda: probabilities_from_logits(np.zeros((2, 3)), epochs="mean"), "logits must have shape"),
    (lambda: probabilities_from_logits(np.zeros((2, 1, 3)), epochs="best"), "epochs must be one of"),
])
def test_bad_input_is_refused_in_one_line(call, message):
    with pytest.raises(DatacartoError, match=message.replace("(", r"\(").replace(")", r"\)")):
        call()


# ----------------------------------------------------------------------------------------------
# stores with known flipped labels (synthetic logits: fast, no training)


def write_noisy_store(folder, n=150, noise=0.1, *, epochs=3, seed=0, dynamics=None, fits_given=False,
                      label_copy=None):
    """A recorded store of toy NLI rows with ``noise`` of the labels flipped; logits favour the true label
    (``fits_given``: the given one, as a model that memorised its labels; ``label_copy``: the data's own
    label column, kept as ids beside ``label``). Returns the flipped mask."""
    from datacarto.dynamics.store import DynamicsWriter, dataset_fingerprint, example_fingerprints
    from datacarto.noise import inject_label_noise
    from datacarto.testing import toy_nli

    rows = toy_nli(n, seed=seed)
    true = np.array([r["label"] for r in rows])
    noisy, flipped = inject_label_noise(true, noise, seed=seed)
    frame = pd.DataFrame(rows).assign(label=noisy, **({label_copy: noisy} if label_copy else {}))
    cols = ["premise", "hypothesis"]
    fps = example_fingerprints(frame[cols].assign(__label=noisy))
    writer = DynamicsWriter(folder)
    writer.write_examples(np.arange(n), fps, noisy, frame)
    writer.update_manifest(mode="training_pass", n_examples=n, dataset_fingerprint=dataset_fingerprint(fps),
                           text_columns=cols, label_names=NAMES, num_labels=3, task="sequence-classification",
                           **({"dynamics": dynamics} if dynamics else {}))
    rng = np.random.default_rng(seed)
    for e in range(epochs):
        favoured, scale = (noisy, 6.0) if fits_given else (true, 3.0)
        logits = scale * np.eye(3)[favoured] + rng.normal(0, 1, (n, 3))
        writer.write_epoch(e, np.arange(n), noisy, logits.astype(np.float32), epoch=e + 1.0)
    return flipped


@pytest.fixture(scope="module")
def noisy_store(tmp_path_factory):
    run = tmp_path_factory.mktemp("noisy") / "run"
    flipped = write_noisy_store(run / "training_dynamics", dynamics="out-of-sample")
    return run, flipped


def test_run_label_errors_on_a_store_with_known_flips(noisy_store):
    from datacarto.dynamics.label_errors import run_label_errors
    from datacarto.dynamics.store import load_dynamics

    run, flipped = noisy_store
    found = run_label_errors(run)
    assert found.info["dynamics"] == "out-of-sample" and found.info["epochs"] == "mean"
    assert abs(found.total - flipped.sum()) <= TOLERANCE * flipped.sum()
    ids = found.flagged["row_id"].to_numpy()
    assert flipped[ids].mean() > 0.5
    probs = probabilities_from_logits(load_dynamics(run).logits, epochs="mean")
    assert found.flagged["suggested_label"].tolist() == [NAMES[k] for k in probs[ids].argmax(axis=1)]
    assert found.info["warning"] is None


def test_memorised_in_sample_dynamics_warn_that_the_estimate_is_a_lower_bound(tmp_path):
    from datacarto.dynamics.label_errors import run_label_errors

    write_noisy_store(tmp_path / "run" / "training_dynamics", fits_given=True)
    found = run_label_errors(tmp_path / "run")
    assert found.info["dynamics"] == "in-sample" and "the estimate is a lower bound" in found.info["warning"]


def test_cli_label_errors_prints_the_estimate_and_writes_each_queue_format(noisy_store, tmp_path, capsys):
    from datacarto.cli import main
    from datacarto.dynamics.label_errors import run_fingerprint, run_label_errors

    run, _ = noisy_store
    found = run_label_errors(run)
    assert main(["label-errors", str(run), "--out", str(tmp_path / "q.jsonl"), "--top", "3"]) == 0
    out = capsys.readouterr().out
    assert f"estimated wrong labels: {found.total} of 150" in out and f"flagged: {found.total}" in out
    for name, row in found.per_class.iterrows():
        assert f"given {name}: {int(row['estimated_errors'])} of {int(row['n'])}" in out
    queue = [json.loads(line) for line in (tmp_path / "q.jsonl").read_text().splitlines()]
    assert [q["row_id"] for q in queue] == found.flagged["row_id"].tolist()
    assert set(queue[0]) >= {"row_id", "given_label", "suggested_label", "suggested_probability", "score",
                             "score_value", "premise", "hypothesis", "decision", "new_label", "dataset_fingerprint"}
    assert {q["dataset_fingerprint"] for q in queue} == {run_fingerprint(run)}
    assert main(["label-errors", str(run), "--out", str(tmp_path / "q.csv")]) == 0
    assert pd.read_csv(tmp_path / "q.csv")["row_id"].tolist() == found.flagged["row_id"].tolist()
    assert main(["label-errors", str(run), "--out", str(tmp_path / "ls.json"), "--format", "label-studio"]) == 0
    task = json.loads((tmp_path / "ls.json").read_text())[0]
    assert task["data"]["premise"] == queue[0]["premise"] and task["data"]["row_id"] == queue[0]["row_id"]
    prediction = task["predictions"][0]
    assert prediction["score"] == pytest.approx(queue[0]["suggested_probability"])
    assert prediction["result"] == [{"from_name": "label", "to_name": "premise", "type": "choices",
                                     "value": {"choices": [queue[0]["suggested_label"]]}}]
    assert main(["label-errors", str(run), "--out", str(tmp_path / "ar.json"), "--format", "argilla"]) == 0
    record = json.loads((tmp_path / "ar.json").read_text())[0]
    assert record["fields"] == {"premise": queue[0]["premise"], "hypothesis": queue[0]["hypothesis"]}
    assert record["suggestions"]["label"]["value"] == queue[0]["suggested_label"]
    assert record["suggestions"]["label"]["score"] == pytest.approx(queue[0]["suggested_probability"])
    assert record["metadata"]["row_id"] == queue[0]["row_id"]
    assert record["metadata"]["given_label"] == queue[0]["given_label"]


def _decide(queue_path, out_path, decisions: dict[int, tuple[str, object]]):
    """Copy a JSONL queue with ``decisions`` (position -> (decision, new_label)) filled in."""
    rows = [json.loads(line) for line in queue_path.read_text().splitlines()]
    for i, (decision, new) in decisions.items():
        rows[i]["decision"], rows[i]["new_label"] = decision, new
    out_path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return rows


def test_apply_corrections_round_trips_exactly(noisy_store, tmp_path, capsys):
    from datacarto.cli import main
    from datacarto.dynamics.store import load_examples

    run, flipped = noisy_store
    assert main(["label-errors", str(run), "--out", str(tmp_path / "q.jsonl")]) == 0
    queue = _decide(tmp_path / "q.jsonl", tmp_path / "c.jsonl",
                    {0: ("relabel", None), 1: ("drop", ""), 2: ("keep", ""), 3: ("relabel", 0), 4: ("Relabel", None)})
    for i in (0, 4):  # the suggestion, by name
        queue[i]["new_label"] = queue[i]["suggested_label"]
    (tmp_path / "c.jsonl").write_text("".join(json.dumps(r) + "\n" for r in queue))
    assert main(["apply-corrections", str(run), "--corrections", str(tmp_path / "c.jsonl"),
                 "--out", str(tmp_path / "fixed.jsonl")]) == 0
    assert "relabel 3, drop 1, keep 1" in capsys.readouterr().out
    fixed = pd.read_json(tmp_path / "fixed.jsonl", lines=True).set_index("row_id")
    records = load_examples(run)
    ids = [q["row_id"] for q in queue]
    assert fixed.index.tolist() == [r for r in records.index if r != ids[1]]  # the dropped row only is gone
    kept = records.drop(index=ids[1])
    pd.testing.assert_frame_equal(fixed[["premise", "hypothesis"]], kept[["premise", "hypothesis"]])
    expected = kept["label"].copy()
    expected[ids[0]], expected[ids[3]], expected[ids[4]] = (NAMES.index(queue[0]["suggested_label"]), 0,
                                                            NAMES.index(queue[4]["suggested_label"]))
    assert fixed["label"].tolist() == expected.tolist()
    assert fixed["given_label"].tolist() == kept["label"].tolist()
    assert fixed["new_label"].tolist() == fixed["label"].tolist()
    decisions = fixed["decision"].where(fixed["decision"].notna(), None)
    assert decisions[ids[0]] == "relabel" and decisions[ids[2]] == "keep" and decisions[ids[4]] == "relabel"
    assert decisions.drop(index=[ids[0], ids[2], ids[3], ids[4]]).isna().all()
    # the same file as CSV gives the same data
    pd.DataFrame(queue).to_csv(tmp_path / "c.csv", index=False)
    assert main(["apply-corrections", str(run), "--corrections", str(tmp_path / "c.csv"),
                 "--out", str(tmp_path / "fixed.csv")]) == 0
    again = pd.read_csv(tmp_path / "fixed.csv").set_index("row_id")
    assert again["label"].tolist() == fixed["label"].tolist()


def test_the_data_own_label_column_is_corrected_too(tmp_path):
    from datacarto.dynamics.corrections import apply_corrections

    write_noisy_store(tmp_path / "run" / "training_dynamics", label_copy="gold_label")
    corrections = pd.DataFrame({"row_id": ["3", "4"], "decision": ["relabel", "keep"], "new_label": ["2", ""]})
    fixed, counts = apply_corrections(tmp_path / "run", corrections)
    assert counts["label_columns"] == ["label", "gold_label"]
    assert fixed.set_index("row_id").loc[3, ["label", "gold_label"]].tolist() == [2, 2]
    assert (fixed["label"] == fixed["gold_label"]).all()


@pytest.mark.parametrize("change, message", [
    (lambda q: q[0].update(decision="rename"), "unknown decision 'rename'"),
    (lambda q: q[0].update(decision="relabel", new_label=""), "relabel needs a new_label"),
    (lambda q: q[0].update(decision="relabel", new_label="maybe"), "unknown label 'maybe'"),
    (lambda q: q[0].update(decision="relabel", new_label=7), "unknown label 7"),
    (lambda q: q[0].update(row_id=10_000), "row ids are not in the run's 150 records"),
    (lambda q: q[0].update(row_id="first"), "row_id 'first' is not an integer"),
    (lambda q: q[0].update(dataset_fingerprint="0" * 32), "a corrections file of other data: its dataset fingerprint"),
    (lambda q: q[0].update(premise=q[0]["premise"] + "!"), "'premise' text of row_id"),
    (lambda q: q[0].update(given_label=[n for n in NAMES if n != q[0]["given_label"]][0]), "is not the run's label"),
    (lambda q: q.append(dict(q[0])), "appears twice"),
])
def test_apply_corrections_refuses_other_data_and_bad_decisions(noisy_store, tmp_path, capsys, change, message):
    from datacarto.cli import main

    run, _ = noisy_store
    assert main(["label-errors", str(run), "--out", str(tmp_path / "q.jsonl")]) == 0
    queue = [json.loads(line) for line in (tmp_path / "q.jsonl").read_text().splitlines()]
    change(queue)
    (tmp_path / "c.jsonl").write_text("".join(json.dumps(r) + "\n" for r in queue))
    cli_fails(capsys, ["apply-corrections", str(run), "--corrections", str(tmp_path / "c.jsonl"),
                       "--out", str(tmp_path / "fixed.jsonl")], message)
    assert not (tmp_path / "fixed.jsonl").exists()


# ----------------------------------------------------------------------------------------------
# units: multi-label decisions and token-classification words


def write_noisy_unit_store(run, task: str, n: int = 80, noise: float = 0.1, *, epochs: int = 3, seed: int = 0,
                           store: str = "training_dynamics", dynamics: str | None = None, logit_seed: int | None = None):
    """A multi-label or token-classification store with ``noise`` of its units changed (``inject_unit_noise``);
    logits favour each unit's true label (their noise drawn with ``logit_seed``, default ``seed``). ``store``:
    the folder under ``run``; ``dynamics``: the manifest's. Returns the flipped mask, in (row_id, sub_id) order."""
    from datacarto.audit_tasks import inject_unit_noise
    from datacarto.dynamics.store import DynamicsWriter
    from datacarto.testing import TOY_TAGS, toy_multilabel, toy_tokens

    if task == "token-classification":
        rows = toy_tokens(n, seed=seed)
        labels, texts, names, cols = [r["ner_tags"] for r in rows], {"tokens": [r["tokens"] for r in rows]}, TOY_TAGS, []
    else:
        rows = toy_multilabel(n, seed=seed)
        labels, texts, names, cols = [r["labels"] for r in rows], {"text": [r["text"] for r in rows]}, \
            ["sunny", "rainy", "windy"], ["text"]
    noisy, flipped = inject_unit_noise(task, labels, noise, width=3, seed=seed)
    if task == "token-classification":
        true, given = np.concatenate(labels), np.concatenate(noisy)
        lengths = [len(t) for t in labels]
    else:
        hot = np.zeros((n, 3), dtype=np.int64)
        for i, ids in enumerate(labels):
            hot[i, ids] = 1
        true, lengths = hot.reshape(-1), [3] * n
        given = np.where(flipped, 1 - true, true)
    row_ids = np.repeat(np.arange(n), lengths)
    sub_ids = np.concatenate([np.arange(k) for k in lengths])
    writer = DynamicsWriter(run / store)
    writer.write_examples(np.arange(n), np.arange(n, dtype=np.uint64), noisy, pd.DataFrame(texts))
    writer.update_manifest(task=task, unit="word" if cols == [] else "label", label_names=names, n_examples=n,
                           n_units=int(row_ids.size), mode="training_pass", text_columns=cols,
                           **({"dynamics": dynamics} if dynamics else {}))
    rng = np.random.default_rng(seed if logit_seed is None else logit_seed)
    for e in range(epochs):
        if task == "token-classification":
            logits = 3.0 * np.eye(3)[true] + rng.normal(0, 1, (true.size, 3))
        else:
            logits = np.stack([np.zeros(true.size), np.where(true == 1, 3.0, -3.0) + rng.normal(0, 1, true.size)], 1)
        writer.write_epoch(e, row_ids, given, logits.astype(np.float32), epoch=e + 1.0, sub_ids=sub_ids)
    return flipped


@pytest.mark.parametrize("task", ["multi-label", "token-classification"])
def test_units_are_counted_flagged_and_corrected(tmp_path, capsys, task):
    from datacarto.cli import main
    from datacarto.dynamics.label_errors import run_label_errors
    from datacarto.dynamics.store import load_dynamics, load_examples
    from datacarto.testing import TOY_TAGS

    run = tmp_path / "run"
    flipped = write_noisy_unit_store(run, task)
    found = run_label_errors(run)
    flagged = found.flagged
    assert found.total == len(flagged) > 0 and {"row_id", "sub_id", "unit"} <= set(flagged.columns)
    dyn = load_dynamics(run)
    probs = probabilities_from_logits(dyn.logits, epochs="mean")
    unit = {(r, s): u for u, (r, s) in enumerate(zip(dyn.row_ids, dyn.sub_ids))}
    at = [unit[(r, s)] for r, s in zip(flagged["row_id"], flagged["sub_id"])]
    assert abs(found.total - flipped.sum()) <= TOLERANCE * flipped.sum() and flipped[at].mean() > 0.5
    classes = ["no", "yes"] if task == "multi-label" else TOY_TAGS
    assert flagged["suggested_label"].tolist() == [classes[k] for k in probs[at].argmax(axis=1)]
    assert flagged["given_label"].tolist() == [classes[g] for g in dyn.gold[at]]
    records = load_examples(run)
    if task == "multi-label":
        assert flagged["unit"].tolist() == [["sunny", "rainy", "windy"][s] for s in flagged["sub_id"]]
    else:
        assert flagged["unit"].tolist() == [records.loc[r, "tokens"][s] for r, s in zip(flagged["row_id"],
                                                                                      flagged["sub_id"])]
    assert main(["label-errors", str(run), "--out", str(tmp_path / "q.csv")]) == 0
    queue = pd.read_csv(tmp_path / "q.csv", dtype=str, keep_default_na=False)
    queue.loc[0, ["decision", "new_label"]] = ["relabel", queue.loc[0, "suggested_label"]]
    queue.to_csv(tmp_path / "c.csv", index=False)
    assert main(["apply-corrections", str(run), "--corrections", str(tmp_path / "c.csv"),
                 "--out", str(tmp_path / "fixed.jsonl")]) == 0
    fixed = pd.read_json(tmp_path / "fixed.jsonl", lines=True).set_index("row_id")
    row, sub, new = int(queue.loc[0, "row_id"]), int(queue.loc[0, "sub_id"]), queue.loc[0, "suggested_label"]
    before = list(records.loc[row, "label"])
    if task == "multi-label":
        after = sorted(set(before) | {sub}) if new == "yes" else sorted(set(before) - {sub})
    else:
        after = before.copy()
        after[sub] = TOY_TAGS.index(new)
    assert fixed.loc[row, "label"] == after and fixed.loc[row, "given_label"] == before
    assert fixed.loc[row, "decision"] == "relabel"
    others = fixed.drop(index=row)
    assert [list(v) for v in others["label"]] == [list(v) for v in records.drop(index=row)["label"]]
    queue.loc[0, "unit"] = "snowy"  # another unit under that row and sub id: other data
    queue.to_csv(tmp_path / "c.csv", index=False)
    cli_fails(capsys, ["apply-corrections", str(run), "--corrections", str(tmp_path / "c.csv"),
                       "--out", str(tmp_path / "again.jsonl")], "in the run's records")


def test_multiple_choice_queue_shows_the_context_and_the_choices(tmp_path):
    from datacarto.dynamics.label_errors import review_queue, run_label_errors
    from datacarto.dynamics.store import DynamicsWriter
    from datacarto.noise import inject_label_noise
    from datacarto.testing import toy_choices

    rows = toy_choices(100, seed=2)
    true = np.array([r["label"] for r in rows])
    given, flipped = inject_label_noise(true, 0.1, seed=2)
    writer = DynamicsWriter(tmp_path / "run" / "training_dynamics")
    writer.write_examples(np.arange(100), np.arange(100, dtype=np.uint64), given, pd.DataFrame(rows).drop(columns="label"))
    writer.update_manifest(task="multiple-choice", label_names=["option1", "option2"], text_columns=["sentence"],
                           task_columns={"choice_columns": ["option1", "option2"]})
    rng = np.random.default_rng(0)
    for e in range(3):
        writer.write_epoch(e, np.arange(100), given, (3.0 * np.eye(2)[true] + rng.normal(0, 1, (100, 2))).astype(
            np.float32))
    found = run_label_errors(tmp_path / "run")
    assert abs(found.total - flipped.sum()) <= TOLERANCE * flipped.sum()
    queue = review_queue(tmp_path / "run", found)
    first = rows[int(queue["row_id"].iloc[0])]
    assert queue.iloc[0][["sentence", "option1", "option2"]].tolist() == [first["sentence"], first["option1"],
                                                                            first["option2"]]
    assert set(queue["suggested_label"]) <= {"option1", "option2"}


# ----------------------------------------------------------------------------------------------
# refusals: runs that cannot support an estimate


def test_refusals(tmp_path, noisy_store):
    from datacarto.dynamics.label_errors import run_label_errors
    from datacarto.dynamics.store import DynamicsWriter

    run, _ = noisy_store
    one = tmp_path / "one"
    write_noisy_store(one / "training_dynamics", epochs=1)
    with pytest.raises(DatacartoError, match="one epoch of in-sample dynamics"):
        run_label_errors(one)
    assert run_label_errors(run).total > 0  # out-of-sample: fine (and so would be one epoch of it)
    with pytest.raises(DatacartoError, match="needs out-of-sample dynamics"):
        run_label_errors(one, method="out-of-sample")
    lazy = tmp_path / "lazy"  # logits that ignore the input: a model that learned nothing
    writer = DynamicsWriter(lazy / "training_dynamics")
    gold = np.arange(90) % 3
    writer.update_manifest(label_names=NAMES)
    for e in range(3):
        writer.write_epoch(e, np.arange(90), gold, np.random.default_rng(e).normal(size=(90, 3)).astype(np.float32))
    with pytest.raises(DatacartoError, match="cannot estimate label errors: the model barely learned the training set"):
        run_label_errors(lazy)
    lm = tmp_path / "lm"
    DynamicsWriter(lm / "training_dynamics").update_manifest(task="causal-lm")
    with pytest.raises(DatacartoError, match="causal-LM run"):
        run_label_errors(lm)


# ----------------------------------------------------------------------------------------------
# tiny models trained on labels with known flips (the measured set-up of docs/label_errors.md)


def _tiny_args(out, epochs=8):
    from conftest import training_args

    return training_args(out, num_train_epochs=epochs, learning_rate=1e-3, per_device_eval_batch_size=32)


@pytest.fixture(scope="module")
def flipped_runs(tmp_path_factory):
    """One in-sample run and one cross-fitted run of a tiny BERT on 240 toy rows, 10% of labels flipped."""
    import datasets

    from datacarto.noise import inject_label_noise
    from datacarto.testing import make_tiny_model_dir, toy_nli
    from datacarto.train.baseline import train_baseline
    from datacarto.train.crossfit import train_crossfit

    root = tmp_path_factory.mktemp("flipped")
    model = make_tiny_model_dir(root / "model", [r["premise"] + " " + r["hypothesis"] for r in toy_nli(60, seed=1)],
                                hidden_size=64)
    rows = toy_nli(240, seed=0)
    noisy, flipped = inject_label_noise(np.array([r["label"] for r in rows]), 0.1, seed=0)
    data = datasets.Dataset.from_list([{**r, "label": int(y)} for r, y in zip(rows, noisy)])
    train_baseline(model=model, train=data, output_dir=root / "in", training_args=_tiny_args(root / "in"),
                   label_names=NAMES, save_model=False)
    train_crossfit(model=model, train=data, folds=3, seed=0, output_dir=root / "cf", label_names=NAMES,
                   training_args=_tiny_args(root / "cf"))
    return {"in-sample": root / "in", "out-of-sample": root / "cf"}, flipped, np.array([r["label"] for r in rows])


@pytest.mark.parametrize("kind", ["in-sample", "out-of-sample"])
def test_the_estimate_on_a_trained_run_is_near_the_true_count(flipped_runs, kind):
    from datacarto.dynamics.label_errors import run_label_errors
    from datacarto.dynamics.store import load_dynamics

    runs, flipped, _ = flipped_runs
    found = run_label_errors(runs[kind])
    assert found.info["dynamics"] == kind
    true = int(flipped.sum())
    assert abs(found.total - true) <= TOLERANCE * true, (found.total, true)
    ids = found.flagged["row_id"].to_numpy()
    assert flipped[ids].mean() > 2 * flipped.mean()  # precision well above chance (the noise rate)
    probs = probabilities_from_logits(load_dynamics(runs[kind]).logits, epochs="mean")
    assert found.flagged["suggested_label"].tolist() == [NAMES[k] for k in probs[ids].argmax(axis=1)]


def test_accepting_the_suggestions_leaves_fewer_wrong_labels(flipped_runs, tmp_path, capsys):
    from datacarto.cli import main

    runs, flipped, true = flipped_runs
    run = runs["out-of-sample"]
    assert main(["label-errors", str(run), "--out", str(tmp_path / "q.jsonl")]) == 0
    queue = [json.loads(line) for line in (tmp_path / "q.jsonl").read_text().splitlines()]
    _decide(tmp_path / "q.jsonl", tmp_path / "c.jsonl", {i: ("relabel", q["suggested_label"])
                                                         for i, q in enumerate(queue)})
    assert main(["apply-corrections", str(run), "--corrections", str(tmp_path / "c.jsonl"),
                 "--out", str(tmp_path / "fixed.parquet")]) == 0
    fixed = pd.read_parquet(tmp_path / "fixed.parquet").set_index("row_id").sort_index()
    assert "fold" not in fixed.columns and len(fixed) == len(true)
    wrong_before = int((fixed["given_label"].to_numpy() != true).sum())
    assert wrong_before == int(flipped.sum())
    assert int((fixed["label"].to_numpy() != true).sum()) < wrong_before / 2


def test_compressed_confidences_are_refused(tmp_path):
    """A model that ranks the classes but keeps p(gold) near 1/C: confident learning would count half the data."""
    from datacarto.dynamics.label_errors import run_label_errors

    run = tmp_path / "flat"
    write_noisy_store(run / "training_dynamics", n=150, epochs=3)
    from datacarto.dynamics.store import DynamicsWriter, load_dynamics

    dyn = load_dynamics(run)
    writer = DynamicsWriter(run / "training_dynamics")
    for e in range(3):  # the same ranking, squeezed towards uniform: a softmax of logits / 12
        writer.write_epoch(e, dyn.ids, dyn.gold, (dyn.logits[:, e, :] / 12).astype(np.float32), epoch=e + 1.0)
    with pytest.raises(DatacartoError, match="cannot estimate label errors: the confidences are compressed"):
        run_label_errors(run)


def test_a_column_of_the_data_named_original_label_is_kept(tmp_path):
    """The demo data's own ``original_label`` (the label before flipping) survives: provenance is ``given_label``."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from datacarto.dynamics.corrections import apply_corrections
    from datacarto.dynamics.label_errors import review_queue, run_label_errors
    from datacarto.dynamics.store import load_examples

    run = tmp_path / "run"
    flipped = write_noisy_store(run / "training_dynamics")
    path = run / "training_dynamics" / "examples.parquet"
    table = pq.read_table(path)
    given = np.asarray(table.column("label").to_pylist())
    truth = np.where(flipped, (given + 1) % 3, given)  # a column of the data's own, unlike the given labels
    pq.write_table(table.append_column("original_label", pa.array(truth)), path)
    queue = review_queue(run, run_label_errors(run)).assign(decision="relabel")
    queue["new_label"] = queue["suggested_label"]
    fixed, _ = apply_corrections(run, queue)
    fixed = fixed.set_index("row_id")
    assert fixed["given_label"].tolist() == load_examples(run)["label"].tolist()
    assert fixed["original_label"].tolist() == truth.tolist()


def test_agreement_keeps_the_rows_both_estimates_flag_and_counts_them_per_class():
    from datacarto.label_errors import agreeing_errors

    labels, probs, flipped = _noisy_probabilities(n=2000, seed=3)
    true = np.where(flipped, np.argmax(probs, axis=1), labels)  # two models of the same rows, their own noise
    other = softmax(3.0 * np.eye(3)[true] + np.random.default_rng(4).normal(0, 1.5, (2000, 3)))
    groups = np.arange(2000) % 2  # two problems, as a multi-label run's labels are
    for kwargs in ({}, {"groups": groups, "group_names": ["g0", "g1"]}):
        a = find_label_errors(labels, probs, **kwargs)
        b = find_label_errors(labels, other, **kwargs)
        both = agreeing_errors(a, b)
        keys = ["row_id", "group"] if kwargs else ["row_id"]
        expected = a.flagged.merge(b.flagged[keys], on=keys)  # a's order, rows b flags too
        assert both.flagged[keys].values.tolist() == expected[keys].values.tolist() and 0 < len(expected) < a.total
        assert both.total == len(expected) and both.per_class["n"].equals(a.per_class["n"])
        name = (expected["group"] + ": " + expected["given_label"].astype(str)) if kwargs \
            else expected["given_label"].astype(str)
        assert both.per_class["estimated_errors"].to_dict() == {k: int((name == str(k)).sum()) for k in a.per_class.index}


def test_a_cross_fitted_run_flags_what_its_out_of_sample_and_in_sample_stores_both_flag(flipped_runs):
    from datacarto.dynamics.label_errors import run_label_errors

    runs, flipped, _ = flipped_runs
    found = run_label_errors(runs["out-of-sample"])  # auto: the agreement where the run has both stores
    alone = run_label_errors(runs["out-of-sample"], method="out-of-sample")
    insample = run_label_errors(runs["out-of-sample"], split="insample")
    assert found.info["method"].startswith("agreement") and alone.info["method"] == "confident learning"
    assert [(s["split"], s["dynamics"], s["estimate"]) for s in found.info["stores"]] == [
        ("train", "out-of-sample", alone.total), ("insample", "in-sample", insample.total)]
    both = set(alone.flagged["row_id"]) & set(insample.flagged["row_id"])
    assert found.flagged["row_id"].tolist() == [r for r in alone.flagged["row_id"] if r in both]
    assert found.total == len(both) == run_label_errors(runs["out-of-sample"], method="agreement").total
    with pytest.raises(DatacartoError, match="method agreement needs out-of-sample dynamics"):
        run_label_errors(runs["in-sample"], method="agreement")


@pytest.mark.parametrize("task", ["multi-label", "token-classification"])
def test_units_agree_by_row_and_position(tmp_path, task):
    from datacarto.dynamics.label_errors import run_label_errors

    run = tmp_path / "run"
    write_noisy_unit_store(run, task, dynamics="out-of-sample")
    write_noisy_unit_store(run, task, store="training_dynamics/eval/insample", logit_seed=7)
    found = run_label_errors(run)
    alone = run_label_errors(run, method="out-of-sample")
    insample = run_label_errors(run, split="insample")
    assert found.info["method"].startswith("agreement") and "group" not in found.flagged.columns
    key = ["row_id", "sub_id"]
    both = alone.flagged[key].merge(insample.flagged[key])
    assert found.flagged[key].values.tolist() == both.values.tolist() and 0 < len(both) < alone.total
    assert found.total == len(both) and found.per_class["estimated_errors"].sum() == len(both)
