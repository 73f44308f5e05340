"""A training run launched as a separate process by the crash and distributed tests.

python tests/train_script.py --model DIR --data FILE --out DIR [--mode M] [--epochs E]
                             [--pause-at-step S --marker FILE]
Under torchrun each process runs this; gloo on CPU.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from transformers import AutoModelForSequenceClassification, AutoTokenizer, TrainerCallback, TrainingArguments

from datacarto import CartographyTrainer
from datacarto.data import load_table, prepare_labels, tokenize


class PauseAt(TrainerCallback):
    """Touch a marker file at a step and sleep, so the parent can kill -9 us mid-epoch."""

    def __init__(self, step: int, marker: str):
        self.step, self.marker = step, marker

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == self.step:
            Path(self.marker).write_text(str(os.getpid()))
            time.sleep(300)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--model", required=True)
    p.add_argument("--data", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--mode", default="training_pass")
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--lr", type=float, default=5e-3)
    p.add_argument("--pause-at-step", type=int)
    p.add_argument("--marker")
    a = p.parse_args()
    tok = AutoTokenizer.from_pretrained(a.model)
    raw, spec = prepare_labels(load_table(a.data), text_columns=["premise", "hypothesis"])
    data = tokenize(raw, tok, spec)
    args = TrainingArguments(
        a.out, num_train_epochs=a.epochs, per_device_train_batch_size=8, per_device_eval_batch_size=16,
        learning_rate=a.lr, report_to="none", save_strategy="epoch", logging_strategy="no", use_cpu=True,
        disable_tqdm=True, average_tokens_across_devices=False, seed=0,
        ddp_backend="gloo" if int(os.environ.get("WORLD_SIZE", "1")) > 1 else None,
    )
    callbacks = [PauseAt(a.pause_at_step, a.marker)] if a.pause_at_step else []
    model = AutoModelForSequenceClassification.from_pretrained(a.model)
    trainer = CartographyTrainer(model=model, args=args, train_dataset=data, processing_class=tok,
                                 dynamics_mode=a.mode, callbacks=callbacks)
    trainer.train()
    # what a torchrun script should end with (datacarto's CLI does the same): see end_distributed
    from datacarto import end_distributed

    end_distributed()


if __name__ == "__main__":
    main()
