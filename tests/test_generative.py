"""Causal-LM (SFT) cartography: recording in both modes, exact per-example NLL, corrupted responses, S2L."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from conftest import stop_at, training_args, write_jsonl
from datacarto.dynamics.store import load_dynamics
from datacarto.errors import DatacartoError
from datacarto.testing import (
    make_causal_tokenizer,
    make_tiny_causal_lm_dir,
    toy_instruction_words,
    toy_instructions,
)


@pytest.fixture(scope="module")
def lm_dir(tmp_path_factory):
    return make_tiny_causal_lm_dir(tmp_path_factory.mktemp("gpt2") / "tiny", toy_instruction_words())


def tokenized(lm_dir, rows, max_length=64):
    import datasets
    from transformers import AutoTokenizer

    from datacarto.tasks import TaskSpec, prepare_for_task, tokenize_task

    ds, spec = prepare_for_task(datasets.Dataset.from_list(rows),
                                TaskSpec(task="causal-lm", prompt_column="prompt", response_column="response"))
    return tokenize_task(ds, AutoTokenizer.from_pretrained(lm_dir), spec, max_length=max_length), spec


def recomputed_nll(model, ds):
    """Mean NLL of each example's response tokens, one example at a time, in eval mode."""
    model.eval()
    out = []
    with torch.no_grad():
        for row in ds:
            ids, labels = torch.tensor([row["input_ids"]]), torch.tensor(row["labels"])
            logits = model(input_ids=ids).logits[0]
            out.append(torch.nn.functional.cross_entropy(logits[:-1], labels[1:], ignore_index=-100).item())
    return np.array(out)


def epoch_stats(run, index, split="train"):
    from datacarto.dynamics.store import load_epoch_columns

    return load_epoch_columns(run, index, split)


def test_token_stats_match_a_per_row_loop():
    from datacarto.record.causal_lm import causal_lm_loss, pseudo_logits, token_stats

    g = torch.Generator().manual_seed(0)
    logits = torch.randn(5, 7, 11, generator=g)
    labels = torch.randint(0, 11, (5, 7), generator=g)
    labels[:, :3] = -100  # a prompt
    labels[2, 5:] = -100  # padding
    logits[0, 3:5] = 0.0  # ties: the gold token wins only as the first of the tied (argmax), as in TRL's is_top1
    labels[0, 4], labels[0, 5] = 0, 4
    logits[1, 3, [2, 6]] = 9.0
    labels[1, 4] = 6
    stats = token_stats(labels, logits)
    chunked = token_stats(labels, logits, chunk_elements=7 * 11)  # one row per chunk: the same numbers
    torch.testing.assert_close(stats, chunked)
    caught = []  # the training loss's own per-token NLL gives the same statistics
    loss = causal_lm_loss(logits, labels, 11, caught=caught)
    torch.testing.assert_close(caught[0].stats(), stats)
    keep = labels[:, 1:] != -100
    want = torch.nn.functional.cross_entropy(logits[:, :-1][keep], labels[:, 1:][keep])
    assert abs(loss.item() - want.item()) < 1e-6
    for b in range(5):
        keep = labels[b, 1:] != -100
        nll = torch.nn.functional.cross_entropy(logits[b, :-1][keep], labels[b, 1:][keep])
        acc = (logits[b, :-1][keep].argmax(-1) == labels[b, 1:][keep]).double().mean()
        assert abs(stats[b, 0].item() - nll.item()) < 1e-5 and stats[b, 1].item() == pytest.approx(acc.item())
        assert stats[b, 2].item() == keep.sum().item()
    pairs = pseudo_logits(stats.numpy())[:, :2].astype(np.float64)
    p_gold = np.exp(pairs[:, 1]) / np.exp(pairs).sum(axis=1)
    np.testing.assert_allclose(p_gold, np.exp(-stats[:, 0].numpy()), rtol=1e-5)


@pytest.mark.parametrize("mode", ["training_pass", "epoch_end"])
def test_each_example_once_per_epoch_with_its_exact_nll(tmp_path, lm_dir, mode):
    """lr 0 and no dropout: the recorded mean NLL is the per-example recomputation (both modes)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer, Trainer

    from datacarto.record import CartographyCallback, CartographyTrainer
    from datacarto.tasks import collator_for

    rows = toy_instructions(30, seed=1)
    ds, _ = tokenized(lm_dir, rows)
    tok = AutoTokenizer.from_pretrained(lm_dir)
    model = AutoModelForCausalLM.from_pretrained(lm_dir)
    args = training_args(tmp_path, learning_rate=0.0, per_device_train_batch_size=4, gradient_accumulation_steps=2,
                         eval_strategy="epoch")
    common = dict(model=model, args=args, train_dataset=ds, eval_dataset=ds.select(range(8)),
                  data_collator=collator_for("causal-lm", tok))
    if mode == "training_pass":
        trainer = CartographyTrainer(**common)
    else:
        trainer = Trainer(**common, callbacks=[CartographyCallback(dataset=ds)])
    trainer.train()
    dyn = load_dynamics(tmp_path)
    assert dyn.manifest["task"] == "causal-lm" and dyn.manifest["mode"] == mode
    assert dyn.logits.shape == (30, 2, 2) and (dyn.gold == 1).all()
    np.testing.assert_array_equal(dyn.ids, np.arange(30))
    want = recomputed_nll(AutoModelForCausalLM.from_pretrained(lm_dir), ds)
    for e in range(2):
        stats = epoch_stats(tmp_path, e)
        assert len(stats) == 30 and stats.index.is_unique
        np.testing.assert_allclose(stats["nll"].sort_index().to_numpy(), want, atol=1e-5, rtol=0)
        n_tokens = [sum(t != -100 for t in row[1:]) for row in ds["labels"]]
        np.testing.assert_array_equal(stats["n_tokens"].sort_index().to_numpy(), n_tokens)
    p_gold = 1 / (1 + np.exp(-dyn.logits[:, :, 1].astype(np.float64)))
    np.testing.assert_allclose(p_gold[:, 0], np.exp(-want), rtol=1e-5)
    examples = dyn.examples()
    assert list(examples["response"]) == [r["response"] for r in rows]  # records keep prompt and response
    validation = load_dynamics(tmp_path, "validation")  # evaluation dynamics: eval mode, reduced on the device
    assert validation.logits.shape == (8, 2, 2)
    stats = epoch_stats(tmp_path, 1, "validation")
    np.testing.assert_allclose(stats["nll"], want[:8], atol=1e-5, rtol=0)


def test_per_token_loss_replaces_only_the_default_loss_and_restores_it(lm_dir):
    from transformers import AutoModelForCausalLM

    from datacarto.record.causal_lm import per_token_loss

    model = AutoModelForCausalLM.from_pretrained(lm_dir)
    ids = torch.tensor([[1, 2, 3, 4, 5]])
    want = model(input_ids=ids, labels=ids).loss
    with per_token_loss(model) as caught:
        got = model(input_ids=ids, labels=ids).loss
    assert len(caught) == 1 and caught[0].nll.shape == (1, 5) and "_loss_function" not in vars(model)
    torch.testing.assert_close(got, want)

    def own(logits, labels, vocab_size, **kwargs):  # a user's loss function is left alone
        return logits.sum() * 0

    model.loss_function = own
    with per_token_loss(model) as caught:
        model(input_ids=ids, labels=ids)
    assert not caught and model.loss_function is own
    fresh = AutoModelForCausalLM.from_pretrained(lm_dir)
    with per_token_loss(torch.compile(fresh)) as caught:  # compiled: not patched (no recompilation each step)
        assert "_loss_function" not in vars(fresh)


def _causal_trainer(tmp_path, lm_dir, rows=16, **options):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from datacarto.record import CartographyTrainer
    from datacarto.tasks import collator_for

    ds, _ = tokenized(lm_dir, toy_instructions(rows, seed=3))
    return CartographyTrainer(model=AutoModelForCausalLM.from_pretrained(lm_dir),
                              args=training_args(tmp_path, **options), train_dataset=ds,
                              data_collator=collator_for("causal-lm", AutoTokenizer.from_pretrained(lm_dir)))


def test_without_for_causal_lm_loss_the_logits_are_reduced(tmp_path, lm_dir, monkeypatch):
    """transformers without ``transformers.loss.loss_utils.ForCausalLMLoss``: no replacement, the logits path."""
    import sys

    from transformers import AutoModelForCausalLM

    from datacarto.record import causal_lm

    monkeypatch.setitem(sys.modules, "transformers.loss.loss_utils", None)  # its import raises ImportError
    assert causal_lm._causal_lm_module(AutoModelForCausalLM.from_pretrained(lm_dir)) is None
    reduced = []
    token_stats = causal_lm.token_stats
    monkeypatch.setattr(causal_lm, "token_stats", lambda *a, **k: reduced.append(1) or token_stats(*a, **k))
    trainer = _causal_trainer(tmp_path, lm_dir, per_device_train_batch_size=4, num_train_epochs=1)
    trainer.train()
    assert len(reduced) == 4 and "_loss_function" not in vars(trainer.model)
    stats = epoch_stats(tmp_path, 0)
    assert len(stats) == 16 and np.isfinite(stats["nll"]).all() and (stats["n_tokens"] > 0).all()


def _trained_weights(trainer):
    trainer.train()
    return {k: v.detach().clone() for k, v in trainer.model.state_dict().items()}


@pytest.mark.parametrize("setup", ["plain", "gradient accumulation", "lora"])
def test_recording_leaves_the_optimised_loss_unchanged(tmp_path, lm_dir, monkeypatch, setup):
    """Same seed, same data: a recorded training_pass run ends with the plain Trainer's weights and losses.

    The recorder computes the loss itself (the per-token NLL it records), so any difference from the
    model's own loss (the mean, ``num_items_in_batch`` under gradient accumulation) moves the weights.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer, Trainer

    from datacarto.record import CartographyTrainer, causal_lm
    from datacarto.tasks import collator_for

    ds, _ = tokenized(lm_dir, toy_instructions(30, seed=7))
    collator = collator_for("causal-lm", AutoTokenizer.from_pretrained(lm_dir))
    options = dict(learning_rate=3e-2, per_device_train_batch_size=4, logging_strategy="steps", logging_steps=1)
    if setup == "gradient accumulation":  # 30 rows: the last accumulated batch is short, num_items_in_batch varies
        options.update(per_device_train_batch_size=7, gradient_accumulation_steps=3)

    def model():
        torch.manual_seed(0)  # LoRA's A matrices start random
        m = AutoModelForCausalLM.from_pretrained(lm_dir)
        if setup == "lora":
            peft = pytest.importorskip("peft")
            m = peft.get_peft_model(m, peft.LoraConfig(r=4, target_modules=["c_attn"], task_type="CAUSAL_LM"))
        return m

    plain = Trainer(model=model(), args=training_args(tmp_path / "plain", **options), train_dataset=ds,
                    data_collator=collator)
    recorded = CartographyTrainer(model=model(), args=training_args(tmp_path / "rec", **options), train_dataset=ds,
                                  data_collator=collator)
    reduced = []  # the logits path: a second reduction over (B, T, V), which the training pass must not take
    monkeypatch.setattr(causal_lm, "token_stats", lambda *a, **k: reduced.append(1) / 0)
    want, got = _trained_weights(plain), _trained_weights(recorded)
    assert not reduced
    assert want.keys() == got.keys()
    moved = 0
    for name, value in want.items():
        torch.testing.assert_close(got[name], value, rtol=1e-5, atol=1e-6, msg=name)
        moved += not torch.equal(value, model().state_dict()[name])
    assert moved  # the run trained
    losses = [[h["loss"] for h in t.state.log_history if "loss" in h] for t in (plain, recorded)]
    assert len(losses[0]) > 2
    np.testing.assert_allclose(losses[1], losses[0], rtol=1e-5)


def test_statistics_kept_on_the_device_reach_checkpoints_and_epochs(tmp_path, lm_dir, monkeypatch):
    """The (B, 3) statistics wait on the device a few batches: a checkpoint inside an epoch and the epoch files hold them."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from datacarto.record import CartographyTrainer, callbacks
    from datacarto.tasks import collator_for

    monkeypatch.setattr(callbacks, "PENDING_BATCHES", 2)
    ds, _ = tokenized(lm_dir, toy_instructions(30, seed=8))
    collator = collator_for("causal-lm", AutoTokenizer.from_pretrained(lm_dir))

    def trainer(*extra):  # 30 rows, batch 4: 8 steps an epoch; checkpoints at steps 3, 6, 9, ...
        return CartographyTrainer(model=AutoModelForCausalLM.from_pretrained(lm_dir), train_dataset=ds,
                                  data_collator=collator, callbacks=list(extra),
                                  args=training_args(tmp_path, learning_rate=0.0, per_device_train_batch_size=4,
                                                     save_strategy="steps", save_steps=3))

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trainer(stop_at(11)).train()  # stops inside epoch 1, after the checkpoint at step 9
    trainer().train(resume_from_checkpoint=True)
    want = recomputed_nll(AutoModelForCausalLM.from_pretrained(lm_dir), ds)
    for e in range(2):
        stats = epoch_stats(tmp_path, e)
        assert len(stats) == 30 and ("filled" not in stats or not stats["filled"].any())
        np.testing.assert_allclose(stats["nll"].sort_index().to_numpy(), want, atol=1e-5, rtol=0)


@pytest.fixture(scope="module")
def learned_run(tmp_path_factory, lm_dir):
    """A training_pass run on instructions with 15% corrupted responses, long enough to learn each template's format.

    The settings the outcome depends on are explicit, not library defaults. At learning rate 3e-2 with no
    warm-up the loss spiked mid-run and the AUROC below ranged 0.85-0.99 over training seeds and model
    initialisations, so an installed package's numerics moved seed 0 from a pass to 0.886; a warmed-up 5e-3
    on batches of 4 gives 0.96-0.99 over 10 seeds x 2 initialisations (fused AdamW too).
    """
    from datacarto.train.baseline import train_baseline

    rows = toy_instructions(120, seed=0, corrupt=0.15)
    out = tmp_path_factory.mktemp("learned")
    data = write_jsonl(out / "train.jsonl", rows)
    dev = write_jsonl(out / "dev.jsonl", toy_instructions(12, seed=5))
    train_baseline(model=lm_dir, train=data, validation=dev, task="causal-lm", prompt_column="prompt",
                   response_column="response", output_dir=out / "run", save_model=False,
                   training_args={"num_train_epochs": 12, "learning_rate": 5e-3, "per_device_train_batch_size": 4,
                                  "optim": "adamw_torch", "lr_scheduler_type": "linear", "warmup_steps": 30,
                                  "weight_decay": 0.0, "max_grad_norm": 1.0, "save_strategy": "no",
                                  "logging_strategy": "no", "use_cpu": True, "disable_tqdm": True, "seed": 0})
    return out / "run", rows


def test_corrupted_responses_get_low_confidence(learned_run):
    from sklearn.metrics import roc_auc_score

    from datacarto.dynamics.cache import get_metrics
    from datacarto.dynamics.generative import load_token_stats

    run, rows = learned_run
    metrics = get_metrics(run)
    corrupted = np.array([r["corrupted"] for r in rows])
    assert corrupted.sum() == 18
    assert roc_auc_score(corrupted, -metrics["confidence"]) > 0.9
    ids, stats = load_token_stats(run)
    np.testing.assert_allclose(metrics["correctness"], stats["token_accuracy"].mean(axis=1))  # token accuracy
    np.testing.assert_allclose(metrics["confidence"], np.exp(-stats["nll"]).mean(axis=1), rtol=1e-5)
    validation = load_dynamics(run, "validation")  # evaluation dynamics, reduced on the device too
    assert validation.logits.shape == (12, 12, 2)


def test_s2l_selection_is_balanced_and_exact(learned_run):
    from datacarto.dynamics.generative import loss_trajectories
    from datacarto.trajectory import balanced_sample, cluster_trajectories, trajectory_clusters

    run, _ = learned_run
    traj = loss_trajectories(run)
    assert traj.shape == (120, 12)
    ids = trajectory_clusters(traj.to_numpy(), traj.index.to_numpy(), fraction=0.3, clusters=4, seed=1)
    assert len(ids) == 36 and len(np.unique(ids)) == 36
    np.testing.assert_array_equal(ids, trajectory_clusters(traj.to_numpy(), traj.index.to_numpy(), fraction=0.3,
                                                           clusters=4, seed=1))  # seeded
    labels = cluster_trajectories(traj.to_numpy(), 4, seed=1)
    sizes = np.bincount(labels)
    taken = np.bincount(labels[np.searchsorted(traj.index.to_numpy(), ids)], minlength=4)
    # balanced: a cluster is taken whole or gets the largest share (no cluster gets more than one extra)
    full = taken == sizes
    assert taken[~full].max() - taken[~full].min() <= 1 if (~full).any() else True
    assert (taken[full] <= taken[~full].min() if (~full).any() else True).all()
    # a hand-made case: clusters of 2, 10 and 30 with 15 wanted -> 2 whole, then 7 and 6
    labels = np.array([0] * 2 + [1] * 10 + [2] * 30)
    got = np.bincount(labels[balanced_sample(labels, 15, seed=0)], minlength=3)
    assert got.tolist() == [2, 7, 6]


def test_cli_select_trajectory_clusters_and_metrics(learned_run, tmp_path, capsys):
    import pandas as pd

    from datacarto.cli import main

    run, rows = learned_run
    out = tmp_path / "s2l.jsonl"
    assert main(["select", str(run), "--method", "trajectory-clusters", "--fraction", "0.3", "--clusters", "3",
                 "--out", str(out)]) == 0
    subset = pd.read_json(out, lines=True)
    assert len(subset) == 36 and {"prompt", "response", "row_id"} <= set(subset.columns)
    # a causal LM has no classes: no label column in the subset, no count by label in the summary
    assert "label" not in subset.columns and "by label" not in capsys.readouterr().out
    focused = tmp_path / "focused"  # continue SFT on the S2L subset (from the run's model: here the start point)
    assert main(["focus", str(run), "--subset", str(out), "--init", "pretrained", "--output-dir", str(focused),
                 "--num_train_epochs", "1", "--use_cpu", "--disable_tqdm", "true", "--save_strategy", "no",
                 "--report_to", "none"]) == 0
    dyn = load_dynamics(focused)
    assert dyn.manifest["task"] == "causal-lm" and dyn.logits.shape == (36, 1, 2)
    assert sorted(dyn.examples()["response"]) == sorted(subset["response"])
    assert main(["metrics", str(run), "--out", str(tmp_path / "m.csv")]) == 0
    table = pd.read_csv(tmp_path / "m.csv")
    assert len(table) == 120 and {"nll", "n_tokens", "region"} <= set(table.columns)
    html = tmp_path / "map.html"
    assert main(["map", str(run), "--html", str(html), "--png", str(tmp_path / "map.png")]) == 0
    from datacarto.maps.interactive import decode_payload

    _, arrays, text = decode_payload(html.read_text())
    first = int(np.flatnonzero(arrays["row_id"] == 0)[0])
    assert text["prompt"][first] == rows[0]["prompt"] and text["response"][first] == rows[0]["response"]


def test_cli_train_causal_lm(tmp_path, lm_dir, capsys):
    from datacarto.cli import main

    data = write_jsonl(tmp_path / "train.jsonl", toy_instructions(24, seed=2))
    out = tmp_path / "run"
    assert main(["train", "--model", lm_dir, "--dataset", data, "--task", "causal-lm", "--prompt-column", "prompt",
                 "--response-column", "response", "--output-dir", str(out), "--num_train_epochs", "2",
                 "--per_device_train_batch_size", "8", "--use_cpu", "--disable_tqdm", "true", "--save_strategy",
                 "no", "--report_to", "none"]) == 0
    assert "task: causal-lm (given)" in capsys.readouterr().err
    assert load_dynamics(out).logits.shape == (24, 2, 2)


def test_plain_text_lm_predicts_every_token(tmp_path, lm_dir):
    import datasets

    from datacarto.tasks import TaskSpec, prepare_for_task, tokenize_task

    ds, spec = prepare_for_task(datasets.Dataset.from_list([{"text": "copy a b = a b"}]), TaskSpec(task="causal-lm"))
    row = tokenize_task(ds, make_causal_tokenizer(toy_instruction_words()), spec)[0]
    assert row["labels"] == row["input_ids"] and len(row["input_ids"]) == 7  # six words and the end token


@pytest.mark.parametrize("change,message", [
    (lambda rows: [{"prompt": r["prompt"]} for r in rows], "not in the data set"),
    (lambda rows: [{**r, "response": "" if i == 3 else r["response"]} for i, r in enumerate(rows)],
     "1 empty response(s) in 'response'"),
])
def test_bad_causal_data_is_one_line(change, message):
    import datasets

    from datacarto.tasks import TaskSpec, prepare_for_task

    rows = change(toy_instructions(9))
    with pytest.raises(DatacartoError, match=message.replace("(", r"\(").replace(")", r"\)")):
        prepare_for_task(datasets.Dataset.from_list(rows),
                         TaskSpec(task="causal-lm", prompt_column="prompt", response_column="response"))


def test_truncated_responses_are_counted_and_dropped(lm_dir):
    rows = toy_instructions(6)  # prompts of 3 to 6 words
    with pytest.warns(UserWarning, match=r"of 6 responses were truncated away by max_length=5"):
        ds, _ = tokenized(lm_dir, rows, max_length=5)
    assert 0 < len(ds) < 6 and all(any(t != -100 for t in r[1:]) for r in ds["labels"])


def test_packed_data_and_non_causal_models_are_refused(tmp_path, lm_dir, tiny_model):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from datacarto.models import load_model
    from datacarto.record import CartographyTrainer
    from datacarto.tasks import collator_for

    ds, _ = tokenized(lm_dir, toy_instructions(8))
    packed = ds.add_column("position_ids", [list(range(len(r))) for r in ds["input_ids"]])
    trainer = CartographyTrainer(model=AutoModelForCausalLM.from_pretrained(lm_dir), args=training_args(tmp_path),
                                 train_dataset=packed,
                                 data_collator=collator_for("causal-lm", AutoTokenizer.from_pretrained(lm_dir)))
    with pytest.raises(DatacartoError, match=r"looks packed \(column 'position_ids'\) and carries no row id per token"):
        trainer.train()
    with pytest.raises(DatacartoError, match="is not a causal language model"):
        load_model(tiny_model, 2, task="causal-lm")


def test_corrupt_responses_is_exact_and_seeded():
    from datacarto.audit_tasks import corrupt_responses

    responses = [f"r{i}" for i in range(40)]
    out, flags = corrupt_responses(responses, 0.15, seed=3)
    assert flags.sum() == 6 and sorted(out) == sorted(responses)  # 0.15 x 40 = 6 swapped among themselves
    assert all((o != r) == f for o, r, f in zip(out, responses, flags))
    assert corrupt_responses(responses, 0.15, seed=3) [0] == out and corrupt_responses(responses, 0.15, seed=4)[0] != out


def test_generative_audit_end_to_end(tmp_path, lm_dir, capsys):
    import json

    from datacarto.cli import main

    rows = [{"prompt": r["prompt"], "response": r["response"]} for r in toy_instructions(120, seed=0)]
    data = write_jsonl(tmp_path / "train.jsonl", rows)
    out = tmp_path / "audit"
    assert main(["audit", "--model", lm_dir, "--dataset", data, "--task", "causal-lm", "--prompt-column", "prompt",
                 "--response-column", "response", "--noise", "0.15", "--output-dir", str(out), "--num_train_epochs",
                 "12", "--learning_rate", "3e-2", "--per_device_train_batch_size", "8", "--use_cpu",
                 "--disable_tqdm", "true", "--save_strategy", "no", "--logging_strategy", "no"]) == 0
    report = json.loads((out / "audit.json").read_text())
    assert report["n_flipped"] == 18 and report["config"]["noise_kind"] == "swapped responses"
    scores = {row["score"]: row for row in report["scores"]}
    assert {"confidence", "nll", "correctness"} <= set(scores)
    # a random swap may give letters for letters (copy <-> reverse), which only a model that learned to copy
    # can tell: well above chance, not perfect, on this small run
    assert scores["last_loss"]["auroc"] > 0.75 and scores["confidence"]["auroc"] > 0.65, scores


def test_trl_sft_trainer_through_the_mixin(tmp_path, lm_dir):
    """TRL's SFTTrainer (fused LM head, no logits): every example once per epoch, its NLL exact, no second forward."""
    trl = pytest.importorskip("trl")
    import datasets
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from datacarto.record import CartographyMixin

    class SFT(CartographyMixin, trl.SFTTrainer):
        pass

    rows = [{"prompt": r["prompt"], "completion": " " + r["response"]} for r in toy_instructions(20, seed=3)]
    args = trl.SFTConfig(str(tmp_path), num_train_epochs=2, per_device_train_batch_size=4, learning_rate=0.0,
                         report_to="none", save_strategy="no", logging_strategy="no", use_cpu=True, max_length=64,
                         disable_tqdm=True, bf16=False)  # TRL defaults to bf16 autocast
    model = AutoModelForCausalLM.from_pretrained(lm_dir)
    calls = []
    model.register_forward_hook(lambda *a: calls.append(1))
    trainer = SFT(model=model, args=args, train_dataset=datasets.Dataset.from_list(rows),
                  processing_class=AutoTokenizer.from_pretrained(lm_dir))
    with warnings_as_errors("return_outputs"):
        trainer.train()
    assert len(calls) == 2 * 5  # one forward per step: no recomputation of the logits for recording
    dyn = load_dynamics(tmp_path)
    assert dyn.logits.shape == (20, 2, 2) and dyn.manifest["task"] == "causal-lm"
    assert list(dyn.examples()["completion"]) == [r["completion"] for r in rows]
    tokenized = trainer.train_dataset
    order = np.argsort(tokenized["datacarto_row_id"])
    fresh = AutoModelForCausalLM.from_pretrained(lm_dir).eval()
    want = []
    with torch.no_grad():
        for i in order:
            ids = torch.tensor([tokenized[int(i)]["input_ids"]])
            target = torch.tensor(tokenized[int(i)]["labels"])[1:]  # TRL's labels: -100 on the prompt
            assert (target == -100).any() and (target != -100).any()
            logits = fresh(input_ids=ids).logits[0, :-1]
            want.append(torch.nn.functional.cross_entropy(logits, target, ignore_index=-100).item())
    np.testing.assert_allclose(epoch_stats(tmp_path, 1)["nll"].sort_index().to_numpy(), want, atol=1e-5, rtol=0)

    # packing=True, packing_strategy="wrapped" and padding_free=True: tests/test_packed_sft.py


class warnings_as_errors:
    """Fail on a warning whose message holds ``text`` (TRL warns when asked for the logits it must recompute)."""

    def __init__(self, text):
        self.text = text

    def __enter__(self):
        import warnings

        self._ctx = warnings.catch_warnings()
        self._ctx.__enter__()
        warnings.filterwarnings("error", message=f".*{self.text}.*")

    def __exit__(self, *exc):
        return self._ctx.__exit__(*exc)


def test_chat_template_labels_only_the_assistant_turn(lm_dir):
    import datasets
    from transformers import AutoTokenizer

    from datacarto.tasks import TaskSpec, prepare_for_task, tokenize_task

    tok = AutoTokenizer.from_pretrained(lm_dir)
    tok.chat_template = ("{% for m in messages %}{{ m['role'] }} {{ m['content'] }} [SEP] {% endfor %}"
                         "{% if add_generation_prompt %}assistant {% endif %}")
    ds, spec = prepare_for_task(datasets.Dataset.from_list([{"prompt": "add 1 2 =", "response": "3"}]),
                                TaskSpec(task="causal-lm", prompt_column="prompt", response_column="response",
                                         chat_template=True))
    row = tokenize_task(ds, tok, spec)[0]
    words = tok.convert_ids_to_tokens(row["input_ids"])
    assert words == ["[UNK]", "add", "1", "2", "=", "[SEP]", "[UNK]", "3", "[SEP]"]  # user ... assistant 3 [SEP]
    assert [t for t in row["labels"] if t != -100] == tok.convert_tokens_to_ids(["3", "[SEP]"])
    assert row["labels"][:7] == [-100] * 7


def test_lora_causal_lm_is_recorded(tmp_path, lm_dir):
    peft = pytest.importorskip("peft")
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from datacarto.record import CartographyTrainer
    from datacarto.tasks import collator_for

    ds, _ = tokenized(lm_dir, toy_instructions(12, seed=4))
    model = peft.get_peft_model(AutoModelForCausalLM.from_pretrained(lm_dir),
                                peft.LoraConfig(r=4, target_modules=["c_attn"], task_type="CAUSAL_LM"))
    trainer = CartographyTrainer(model=model, args=training_args(tmp_path, learning_rate=0.0), train_dataset=ds,
                                 data_collator=collator_for("causal-lm", AutoTokenizer.from_pretrained(lm_dir)))
    trainer.train()
    dyn = load_dynamics(tmp_path)
    assert dyn.manifest["task"] == "causal-lm" and dyn.logits.shape == (12, 2, 2)
    want = recomputed_nll(AutoModelForCausalLM.from_pretrained(lm_dir), ds)  # LoRA starts as the identity
    np.testing.assert_allclose(epoch_stats(tmp_path, 0)["nll"].sort_index().to_numpy(), want, atol=1e-5, rtol=0)


def test_rows_dropped_by_the_loader_are_filled_exactly(tmp_path, lm_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from datacarto.record import CartographyTrainer
    from datacarto.tasks import collator_for

    ds, _ = tokenized(lm_dir, toy_instructions(30, seed=6))
    trainer = CartographyTrainer(model=AutoModelForCausalLM.from_pretrained(lm_dir),
                                 args=training_args(tmp_path, learning_rate=0.0, per_device_train_batch_size=8,
                                                    dataloader_drop_last=True),
                                 train_dataset=ds, data_collator=collator_for("causal-lm", AutoTokenizer.from_pretrained(lm_dir)))
    with pytest.warns(UserWarning, match="dataloader_drop_last"):
        trainer.train()
    stats = epoch_stats(tmp_path, 0)
    assert len(stats) == 30 and int(stats["filled"].sum()) == 6  # 30 = 3 x 8 + 6 dropped, predicted at the epoch end
    want = recomputed_nll(AutoModelForCausalLM.from_pretrained(lm_dir), ds)
    np.testing.assert_allclose(stats["nll"].sort_index().to_numpy(), want, atol=1e-5, rtol=0)


def test_trajectory_clusters_on_a_classifier_run(tmp_path, capsys):
    """A classifier run's trajectories are -log p(gold) per epoch: three groups of examples, three clusters."""
    import pandas as pd

    from datacarto.cli import main
    from datacarto.dynamics.store import DynamicsWriter, dynamics_dir

    rng = np.random.default_rng(0)
    n, epochs = 40, 4
    writer = DynamicsWriter(dynamics_dir(tmp_path / "run"))
    writer.write_examples(np.arange(n), np.arange(n, dtype=np.uint64), np.zeros(n, np.int64),
                          pd.DataFrame({"text": [f"t{i}" for i in range(n)]}))
    writer.update_manifest(n_examples=n, text_columns=["text"], label_names=["a", "b"], num_labels=2)
    level = np.repeat([-3.0, 0.0, 3.0], [4, 16, 20])  # gold logit margins: hard, ambiguous, easy groups
    for e in range(epochs):
        z = np.stack([np.zeros(n), level + 0.05 * rng.standard_normal(n)], axis=1)  # gold is class 1
        writer.write_epoch(e, np.arange(n), np.ones(n, np.int64), z.astype(np.float32))
    out = tmp_path / "s2l.jsonl"
    assert main(["select", str(tmp_path / "run"), "--method", "trajectory-clusters", "--fraction", "0.25",
                 "--clusters", "3", "--out", str(out)]) == 0
    ids = pd.read_json(out, lines=True)["row_id"].to_numpy()
    assert len(ids) == 10
    # the 4-example cluster is taken whole, the 10 - 4 = 6 left are split 3 and 3 over the other two
    assert np.bincount(np.digitize(ids, [4, 20]), minlength=3).tolist() == [4, 3, 3]


def test_focused_training_prepares_its_subset_as_the_baseline_did(tmp_path, lm_dir):
    """A chat-template run's focused model trains on chat-formatted subset rows (the option is not lost)."""
    import shutil

    from transformers import AutoTokenizer

    from datacarto.train.baseline import train_baseline
    from datacarto.train.focused import train_focused

    chat_dir = tmp_path / "chat-lm"
    shutil.copytree(lm_dir, chat_dir)
    tok = AutoTokenizer.from_pretrained(chat_dir)
    tok.chat_template = ("{% for m in messages %}{{ m['role'] }} {{ m['content'] }} [SEP] {% endfor %}"
                         "{% if add_generation_prompt %}assistant {% endif %}")
    tok.save_pretrained(chat_dir)
    rows = [{"prompt": r["prompt"], "response": r["response"]} for r in toy_instructions(16, seed=2)]
    data = write_jsonl(tmp_path / "train.jsonl", rows)
    fast = {"num_train_epochs": 1, "per_device_train_batch_size": 8, "save_strategy": "no",
            "logging_strategy": "no", "use_cpu": True, "disable_tqdm": True, "report_to": "none"}
    base = train_baseline(model=str(chat_dir), train=data, task="causal-lm", prompt_column="prompt",
                          response_column="response", chat_template=True, output_dir=tmp_path / "run",
                          training_args=fast)
    focused = train_focused(tmp_path / "run", list(range(8)), output_dir=tmp_path / "focused", training_args=fast)
    want = list(base.trainer.train_dataset["input_ids"][:8])
    assert list(focused.trainer.train_dataset["input_ids"]) == want  # the same chat-formatted tokens
