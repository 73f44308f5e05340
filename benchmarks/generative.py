"""Causal-LM (SFT) cartography: recording overhead and memory, the audit AUROC, S2L vs random.

* overhead: ``trainer.train()`` of a plain ``Trainer`` and of ``CartographyTrainer`` in
  ``training_pass`` mode, the same run, interleaved in alternating order and repeated (each pair
  printed, medians compared; target ratio <= 1.03), for the tiny GPT-2 of the tests and a larger
  random GPT-2 (6 layers, 256 wide, vocabulary 32k, sequence 256 by default);
* packed SFT (``--packed``): TRL's ``SFTTrainer`` with ``packing=True`` (bfd, padding-free batches) against
  ``class SFT(CartographyMixin, SFTTrainer)``, the larger random GPT-2 on rows of random lengths (target <= 1.05);
* memory: the recorder's epoch buffer (bytes, measured) and the statistics waiting on the device,
  against what keeping the (N, T, V) logits would take;
* audit: AUROC of -confidence for corrupted responses in the generated instruction data;
* S2L: a tiny GPT-2 proxy records loss trajectories on clean and on noisy instruction data; 30% chosen by
  trajectory clusters and 30% at random each train a fresh model; held-out loss on clean data.

    python benchmarks/generative.py [--repeats 5] [--large-n 32] [--seq 256] [--quick] [--packed]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
import warnings

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
warnings.filterwarnings("ignore")


def _args(out, *, epochs, batch, lr, seed=0):
    from transformers import TrainingArguments

    return TrainingArguments(out, num_train_epochs=epochs, per_device_train_batch_size=batch,
                             per_device_eval_batch_size=batch, learning_rate=lr, report_to="none", save_strategy="no",
                             logging_strategy="no", disable_tqdm=True, seed=seed,
                             use_cpu=not __import__("torch").cuda.is_available())


def _instruction_data(model_dir, rows, max_length=64):
    import datasets
    from transformers import AutoTokenizer

    from datacarto.tasks import TaskSpec, prepare_for_task, tokenize_task

    tok = AutoTokenizer.from_pretrained(model_dir)
    ds, spec = prepare_for_task(datasets.Dataset.from_list(rows), TaskSpec(task="causal-lm", prompt_column="prompt",
                                                                          response_column="response"))
    return tok, tokenize_task(ds, tok, spec, max_length=max_length)


def _random_lm_data(n, seq, vocab, seed=0):
    """Random token rows, the first quarter a prompt (labels -100), for the larger model's timing."""
    import datasets
    import numpy as np

    rng = np.random.default_rng(seed)
    ids = rng.integers(5, vocab, size=(n, seq)).tolist()
    labels = [[-100] * (seq // 4) + row[seq // 4:] for row in ids]
    return datasets.Dataset.from_dict({"input_ids": ids, "attention_mask": [[1] * seq] * n, "labels": labels})


def _train(kind, make_model, data, collator, out, *, epochs, batch, lr):
    from transformers import Trainer

    from datacarto import CartographyTrainer

    args = _args(out, epochs=epochs, batch=batch, lr=lr)
    model = make_model()
    if kind == "plain":
        trainer = Trainer(model=model, args=args, train_dataset=data, data_collator=collator)
    else:
        trainer = CartographyTrainer(model=model, args=args, train_dataset=data, data_collator=collator,
                                     overwrite_dynamics=True)
    t0 = time.perf_counter()
    trainer.train()
    return time.perf_counter() - t0, trainer


def _random_sft_rows(n, seq, vocab, seed=0):
    """Pre-tokenized rows of random lengths (seq / 8 to seq / 2), the first quarter a prompt: several per packed row."""
    import datasets
    import numpy as np

    rng = np.random.default_rng(seed)
    ids = [rng.integers(5, vocab, size=int(k)).tolist() for k in rng.integers(seq // 8, seq // 2 + 1, size=n)]
    labels = [[-100] * (len(row) // 4) + row[len(row) // 4:] for row in ids]
    return datasets.Dataset.from_dict({"input_ids": ids, "labels": labels})


def _packed_sft(seq):
    """A ``_train`` for TRL packed SFT (bfd): plain ``SFTTrainer`` or the mixin; preparation (packing) not timed."""
    import trl

    from datacarto import CartographyMixin

    class SFT(CartographyMixin, trl.SFTTrainer):
        pass

    def train(kind, make_model, data, collator, out, *, epochs, batch, lr):
        import torch

        args = trl.SFTConfig(out, num_train_epochs=epochs, per_device_train_batch_size=batch, learning_rate=lr,
                             report_to="none", save_strategy="no", logging_strategy="no", disable_tqdm=True,
                             packing=True, max_length=seq, bf16=False, use_cpu=not torch.cuda.is_available())
        common = dict(model=make_model(), args=args, train_dataset=data, processing_class=collator)
        trainer = trl.SFTTrainer(**common) if kind == "plain" else SFT(**common, overwrite_dynamics=True)
        t0 = time.perf_counter()
        trainer.train()
        return time.perf_counter() - t0, trainer

    return train


def overhead(name, make_model, data, collator, *, epochs, batch, repeats, seq, vocab, train=_train):
    """Plain ``Trainer`` against ``CartographyTrainer`` (training_pass): the same run, interleaved, medians compared.

    Each repeat runs both, in alternating order (so drift on a shared machine hits both alike); the
    pairs are printed side by side with the load average, then the ratio of the medians.
    """
    import statistics

    times = {"plain": [], "training_pass": []}
    buffer_bytes = pending_bytes = None
    load = [os.getloadavg()[0]]
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(repeats):
            for kind in (("plain", "training_pass") if r % 2 == 0 else ("training_pass", "plain")):
                seconds, trainer = train(kind, make_model, data, collator, f"{tmp}/{kind}", epochs=epochs,
                                         batch=batch, lr=1e-4)
                times[kind].append(seconds)
                if kind == "training_pass":
                    from datacarto.record.callbacks import PENDING_BATCHES

                    buf = trainer.cartography.buffer
                    buffer_bytes = buf.logits.nbytes + buf.gold.nbytes + buf.seen.nbytes
                    pending_bytes = PENDING_BATCHES * batch * (3 * 8 + 8)  # (B, 3) float64 and (B,) row ids
            load.append(os.getloadavg()[0])
    print(f"{name}: N={len(data)}, T={seq}, V={vocab}, {epochs} epoch(s), batch {batch}, {repeats} interleaved repeats")
    for r, (plain, rec) in enumerate(zip(times["plain"], times["training_pass"])):
        print(f"  repeat {r}: plain Trainer {plain:.3f} s, training_pass {rec:.3f} s, ratio {rec / plain:.3f}")
    plain, rec = statistics.median(times["plain"]), statistics.median(times["training_pass"])
    pairs = statistics.median(t / p for p, t in zip(times["plain"], times["training_pass"]))
    print(f"  median: plain Trainer {plain:.3f} s, training_pass {rec:.3f} s: overhead ratio {rec / plain:.3f}; "
          f"median of the pair ratios {pairs:.3f} (1-min load average {min(load):.1f} to {max(load):.1f} on "
          f"{os.cpu_count()} CPUs)")
    full = len(data) * seq * vocab * 4
    print(f"  recording memory: epoch buffer {buffer_bytes} bytes ({buffer_bytes / len(data):.0f} per example) on the "
          f"host, at most {pending_bytes} bytes of statistics waiting on the device; keeping the (N, T, V) float32 "
          f"logits would take {full / 2**20:.0f} MiB")
    return rec / plain


def _record(lm_dir, rows, out, *, epochs):
    """A recorded causal-LM run (training_pass) of the tiny GPT-2 on ``rows``."""
    import datasets

    from datacarto.train.baseline import train_baseline

    train_baseline(model=lm_dir, train=datasets.Dataset.from_list(rows), task="causal-lm", prompt_column="prompt",
                   response_column="response", output_dir=out, save_model=False,
                   training_args={"num_train_epochs": epochs, "learning_rate": 3e-2, "per_device_train_batch_size": 8,
                                  "save_strategy": "no", "logging_strategy": "no", "disable_tqdm": True,
                                  "use_cpu": True})


def audit_auroc(lm_dir, *, n, epochs, tmp):
    import numpy as np
    from sklearn.metrics import roc_auc_score

    from datacarto.dynamics.cache import get_metrics
    from datacarto.testing import toy_instructions

    rows = toy_instructions(n, seed=0, corrupt=0.15)
    _record(lm_dir, rows, f"{tmp}/audit", epochs=epochs)
    m = get_metrics(f"{tmp}/audit")
    y = np.array([r["corrupted"] for r in rows])
    scores = {"confidence": -m["confidence"], "nll": m["nll"], "correctness": -m["correctness"],
              "last_loss": m["last_loss"]}
    print(f"audit: {int(y.sum())} of {n} responses corrupted (letters for sums and sums for letters), {epochs} epochs")
    for name, s in scores.items():
        print(f"  AUROC {name}: {roc_auc_score(y, s):.3f}")


def _held_out_loss(lm_dir, train_rows, test_rows, *, epochs, tmp, seed):
    from transformers import AutoModelForCausalLM, Trainer

    from datacarto.tasks import collator_for

    tok, train = _instruction_data(lm_dir, train_rows)
    _, test = _instruction_data(lm_dir, test_rows)
    keep = ["input_ids", "attention_mask", "labels"]
    trainer = Trainer(model=AutoModelForCausalLM.from_pretrained(lm_dir), args=_args(tmp, epochs=epochs, batch=8,
                                                                                      lr=3e-2, seed=seed),
                      train_dataset=train.select_columns(keep), eval_dataset=test.select_columns(keep),
                      data_collator=collator_for("causal-lm", tok))
    trainer.train()
    return trainer.evaluate()["eval_loss"]


def s2l_vs_random(lm_dir, *, n, epochs, clusters, seeds, tmp, corrupt):
    import numpy as np

    from datacarto.dynamics.generative import loss_trajectories
    from datacarto.testing import toy_instructions
    from datacarto.trajectory import trajectory_clusters

    rows = toy_instructions(n, seed=0, corrupt=corrupt)
    test_rows = toy_instructions(150, seed=99)
    tmp = f"{tmp}/s2l{corrupt}"
    _record(lm_dir, rows, f"{tmp}/proxy", epochs=epochs)
    traj = loss_trajectories(f"{tmp}/proxy")
    s2l, rnd = [], []
    for seed in range(seeds):
        ids = trajectory_clusters(traj.to_numpy(), traj.index.to_numpy(), fraction=0.3, clusters=clusters, seed=seed)
        other = np.sort(np.random.default_rng(seed).choice(n, len(ids), replace=False))
        s2l.append(_held_out_loss(lm_dir, [rows[i] for i in ids], test_rows, epochs=epochs, tmp=f"{tmp}/s{seed}",
                                  seed=seed))
        rnd.append(_held_out_loss(lm_dir, [rows[i] for i in other], test_rows, epochs=epochs, tmp=f"{tmp}/r{seed}",
                                  seed=seed))
        corrupt_s2l = np.mean([rows[i]["corrupted"] for i in ids])
        corrupt_rnd = np.mean([rows[i]["corrupted"] for i in other])
        print(f"  seed {seed}: S2L-30% held-out loss {s2l[-1]:.3f} (corrupted share {corrupt_s2l:.2f}), "
              f"random-30% {rnd[-1]:.3f} (corrupted share {corrupt_rnd:.2f})")
    print(f"S2L-30% vs random-30% held-out loss ({n} rows, {corrupt:.0%} corrupted; {clusters} clusters; {seeds} seeds): "
          f"{np.mean(s2l):.3f} vs {np.mean(rnd):.3f}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--tiny-n", type=int, default=480)
    p.add_argument("--large-n", type=int, default=32)
    p.add_argument("--seq", type=int, default=256)
    p.add_argument("--n", type=int, default=300, help="instruction rows for the audit and S2L")
    p.add_argument("--seeds", type=int, default=2)
    p.add_argument("--quick", action="store_true", help="smaller sizes (a smoke run)")
    p.add_argument("--overhead-only", action="store_true", help="only the two overhead measurements")
    p.add_argument("--packed", action="store_true",
                   help="only the overhead of TRL packed SFT (packing=True, bfd) on the larger random GPT-2")
    a = p.parse_args()
    import torch
    from transformers import AutoModelForCausalLM, GPT2Config, GPT2LMHeadModel
    from transformers.utils import logging

    from datacarto.tasks import collator_for
    from datacarto.testing import make_tiny_causal_lm_dir, toy_instruction_words, toy_instructions

    logging.set_verbosity_error()
    torch.set_num_threads(1)  # tiny models gain nothing from more; a shared machine makes them much slower
    if a.quick:
        a.repeats, a.tiny_n, a.large_n, a.seq, a.n, a.seeds = 1, 96, 8, 64, 120, 1
    if a.packed:
        return packed_overhead(a)
    with tempfile.TemporaryDirectory() as tmp:
        lm_dir = make_tiny_causal_lm_dir(f"{tmp}/tiny", toy_instruction_words())
        tok, data = _instruction_data(lm_dir, toy_instructions(a.tiny_n, seed=0))
        data = data.select_columns(["input_ids", "attention_mask", "labels"])
        overhead("tiny GPT-2 (2 layers, 64 wide)", lambda: AutoModelForCausalLM.from_pretrained(lm_dir), data,
                 collator_for("causal-lm", tok), epochs=2, batch=16, repeats=a.repeats, seq=64, vocab=len(tok))
        config = GPT2Config(n_layer=6, n_embd=256, n_head=4, vocab_size=32000, n_positions=a.seq)

        def large():
            torch.manual_seed(0)
            return GPT2LMHeadModel(config)

        from transformers import default_data_collator

        overhead(f"random GPT-2 (6 layers, 256 wide, vocab 32k, sequence {a.seq})", large,
                 _random_lm_data(a.large_n, a.seq, 32000), default_data_collator, epochs=1, batch=8,
                 repeats=a.repeats, seq=a.seq, vocab=32000)
        if a.overhead_only:
            return
        audit_auroc(lm_dir, n=a.n, epochs=12, tmp=tmp)
        for corrupt in (0.0, 0.15):
            s2l_vs_random(lm_dir, n=a.n, epochs=12, clusters=6, seeds=a.seeds, tmp=tmp, corrupt=corrupt)


def packed_overhead(a) -> None:
    """TRL packed SFT, plain against recorded, on the larger random GPT-2 (each packed row up to ``--seq`` tokens)."""
    import datasets
    import torch
    from tokenizers import Tokenizer, models
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    datasets.disable_progress_bars()
    config = GPT2Config(n_layer=6, n_embd=256, n_head=4, vocab_size=32000, n_positions=a.seq)

    def large():
        torch.manual_seed(0)
        return GPT2LMHeadModel(config)

    tokenizer = PreTrainedTokenizerFast(tokenizer_object=Tokenizer(models.WordLevel({"[PAD]": 0, "[EOS]": 1},
                                                                                    unk_token="[PAD]")),
                                        pad_token="[PAD]", eos_token="[EOS]")  # the rows come tokenized
    n = a.large_n * 3  # about three examples per packed row: as many packed rows as the unpacked run has rows
    data = _random_sft_rows(n, a.seq, 32000)
    ratio = overhead(f"TRL packed SFT (bfd), random GPT-2 (6 layers, 256 wide, vocab 32k, packed rows of {a.seq})",
                     large, data, tokenizer, epochs=1, batch=8, repeats=a.repeats, seq=a.seq, vocab=32000,
                     train=_packed_sft(a.seq))
    print(f"  packed SFT recording overhead {ratio:.3f} (target <= 1.05)")


if __name__ == "__main__":
    main()
