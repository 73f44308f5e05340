"""A standard Hugging Face text-classification fine-tuning script, with cartography added.

It is written the way the official ``run_glue.py`` is (dataclasses parsed by ``HfArgumentParser``,
``datasets`` for loading, a tokenizer map, ``Trainer``), and the datacarto changes are the lines
marked ``# datacarto``: one import, and ``CartographyTrainer`` in place of ``Trainer`` (or a plain
``Trainer`` with ``CartographyCallback``). Every ``TrainingArguments`` flag works.

    python examples/run_glue_cartography.py --model_name_or_path MODEL --train_file train.jsonl \\
        --validation_file dev.jsonl --text_columns premise,hypothesis --output_dir runs/x \\
        --num_train_epochs 3 --eval_strategy epoch [--cartography epoch_end]
    torchrun --nproc_per_node 2 examples/run_glue_cartography.py ...   # several processes

Then ``datacarto metrics runs/x`` / ``datacarto map runs/x --html map.html``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from datasets import load_dataset
from transformers import (
    AutoModelForSequenceClassification,
    AutoTokenizer,
    DataCollatorWithPadding,
    HfArgumentParser,
    Trainer,
    TrainingArguments,
)

from datacarto import CartographyCallback, CartographyTrainer, end_distributed  # datacarto


@dataclass
class ModelArguments:
    model_name_or_path: str = field(metadata={"help": "hub name or local folder"})


@dataclass
class DataArguments:
    train_file: str = field(metadata={"help": "a .jsonl/.csv file, or a hub data set name"})
    validation_file: str | None = field(default=None)
    text_columns: str = field(default="sentence1,sentence2", metadata={"help": "one or two comma-separated columns"})
    label_column: str = field(default="label")
    max_seq_length: int = field(default=128)
    cartography: str = field(default="training_pass", metadata={  # datacarto
        "help": "training_pass (CartographyTrainer), epoch_end (Trainer + CartographyCallback) or none"})


def load(name: str, split: str):
    """Local files through the matching builder; anything else is a hub name (same code path)."""
    for suffix, builder in ((".jsonl", "json"), (".json", "json"), (".csv", "csv"), (".parquet", "parquet")):
        if name.endswith(suffix):
            return load_dataset(builder, data_files=name, split="train")
    return load_dataset(name, split=split)


def main() -> None:
    model_args, data_args, training_args = HfArgumentParser(
        (ModelArguments, DataArguments, TrainingArguments)).parse_args_into_dataclasses()
    columns = data_args.text_columns.split(",")
    train = load(data_args.train_file, "train")
    validation = load(data_args.validation_file, "validation") if data_args.validation_file else None
    num_labels = len(set(train[data_args.label_column]))

    tokenizer = AutoTokenizer.from_pretrained(model_args.model_name_or_path)
    model = AutoModelForSequenceClassification.from_pretrained(model_args.model_name_or_path, num_labels=num_labels)
    max_length = min(data_args.max_seq_length, tokenizer.model_max_length)

    def preprocess(batch):
        encoded = tokenizer(*[batch[c] for c in columns], truncation=True, max_length=max_length)
        encoded["labels"] = batch[data_args.label_column]
        return encoded

    train = train.map(preprocess, batched=True)
    validation = validation.map(preprocess, batched=True) if validation is not None else None
    common = dict(model=model, args=training_args, train_dataset=train, eval_dataset=validation,
                  processing_class=tokenizer, data_collator=DataCollatorWithPadding(tokenizer))
    if data_args.cartography == "training_pass":  # datacarto
        trainer = CartographyTrainer(**common)  # datacarto: records from the training pass
    elif data_args.cartography == "epoch_end":  # datacarto
        trainer = Trainer(**common, callbacks=[CartographyCallback(dataset=train)])  # datacarto
    else:
        trainer = Trainer(**common)
    trainer.train(resume_from_checkpoint=training_args.resume_from_checkpoint)
    trainer.save_model()
    if validation is not None:
        trainer.evaluate()
    end_distributed()  # datacarto: closes the process group cleanly under torchrun


if __name__ == "__main__":
    main()
