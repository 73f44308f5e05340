"""Packed training sets: each token's row id carried through TRL's packing, the examples kept unpacked.

TRL's ``SFTTrainer`` packs (``packing=True``) after keeping only ``input_ids`` and ``labels``,
so a row id column would not survive. Through :class:`~datacarto.record.trainer.CartographyMixin`,
its ``_prepare_dataset`` runs in two steps: TRL tokenizes the examples unpacked (no truncation, no
shuffle), then the rows are packed exactly as TRL packs them (the same columns, shuffles and
:func:`trl.pack_dataset`) with one more list column, the row id of every token. The unpacked
examples are kept: recording keys its units by them, and the epoch-end pass, the rows a training
pass did not see and the evaluation sets are predicted on them, one example per segment.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np

from ..errors import DatacartoError
from .examples import ROW_ID, with_row_ids

PACKING_COLUMNS = ("position_ids", "seq_lengths", "cu_seq_lens_q")
SPLITTING = ("wrapped", "bfd_split")  # TRL strategies that cut an example across packed rows


@dataclass
class Packed:
    """A packed data set (kept, so its id stays its own), its ``examples`` (tokenized, unpacked, row i = row
    id i) and whether packing cut some examples across rows (``splits``)."""

    packed: object
    examples: object
    splits: bool


def is_sft_trainer(trainer) -> bool:
    return any(c.__name__ == "SFTTrainer" and c.__module__.startswith("trl") for c in type(trainer).__mro__)


def prepare_with_row_ids(trainer, prepare, dataset, processing_class, args, packing, formatting_func, dataset_name):
    """TRL's ``_prepare_dataset`` (``prepare``), where packing carries each token's row id.

    Registers the packed set's :class:`Packed` in ``trainer._dc_packed`` (by object id).
    """
    if not packing or not is_sft_trainer(trainer):
        return prepare(dataset, processing_class, args, packing, formatting_func, dataset_name)
    dataset = with_row_ids(dataset, "training set" if dataset_name == "train" else "evaluation set")
    if ROW_ID not in (getattr(dataset, "column_names", None) or []):  # an evaluation set without a length
        return prepare(dataset, processing_class, args, packing, formatting_func, dataset_name)
    from trl.trainer.utils import global_then_local_main_first

    plain = copy.copy(args)
    plain.max_length, plain.shuffle_dataset = None, False
    tokens = prepare(dataset, processing_class, plain, False, formatting_func, dataset_name)
    with global_then_local_main_first():  # as TRL maps: the main process first, the others read its cache
        packed = _pack(tokens, args)
        examples = _truncated(tokens, args.max_length)
    trainer._dc_packed[id(packed)] = Packed(packed, examples, args.packing_strategy in SPLITTING)
    return packed


def _pack(tokens, args):
    """``tokens`` packed as TRL packs them (``input_ids``, ``labels``, shuffles, strategy), plus each token's row id."""
    from trl.data_utils import pack_dataset

    map_kwargs = {"num_proc": args.dataset_num_proc}
    columns = tokens.select_columns(["input_ids", "labels", ROW_ID])
    columns = columns.with_format("arrow").map(_token_rows, batched=True, **map_kwargs).with_format(None)
    if args.shuffle_dataset:
        columns = columns.shuffle(seed=args.seed)
    packed = pack_dataset(columns, args.max_length, args.packing_strategy, map_kwargs)
    return packed.shuffle(seed=args.seed) if args.shuffle_dataset else packed


def _token_rows(table):
    """An Arrow batch's row id as a list of one int32 per token, the three lists sharing one offsets array."""
    import pyarrow as pa
    import pyarrow.compute as pc

    ids, labels = table.column("input_ids").combine_chunks(), table.column("labels").combine_chunks()
    lengths = pc.list_value_length(ids).to_numpy(zero_copy_only=False).astype(np.int64)
    if not np.array_equal(lengths, pc.list_value_length(labels).to_numpy(zero_copy_only=False)):
        raise DatacartoError("the tokenized training set has rows whose labels and input_ids differ in length")
    offsets = pa.array(np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32))
    rows = np.repeat(table.column(ROW_ID).to_numpy(), lengths).astype(np.int32)
    return pa.table({"input_ids": pa.ListArray.from_arrays(offsets, ids.flatten()),
                     "labels": pa.ListArray.from_arrays(offsets, labels.flatten()),
                     ROW_ID: pa.ListArray.from_arrays(offsets, pa.array(rows))})


def _truncated(tokens, max_length: int | None):
    """The examples as predicted unpacked: their first ``max_length`` tokens (TRL's bfd keeps those)."""
    import pyarrow.compute as pc

    if max_length is None or not len(tokens):
        return tokens
    longest = pc.max(pc.list_value_length(tokens.data.column("input_ids"))).as_py()
    if longest <= max_length:
        return tokens
    cut = tokens.with_format("arrow").map(_first_tokens, fn_kwargs={"max_length": max_length}, batched=True)
    return cut.with_format(tokens.format["type"])


def _first_tokens(table, max_length: int):
    import pyarrow.compute as pc

    for name in ("input_ids", "labels"):
        table = table.set_column(table.schema.get_field_index(name), name, pc.list_slice(table[name], 0, max_length))
    return table


def packing_reason(dataset, args, *, evaluation: bool = False) -> str | None:
    """Why ``dataset`` looks packed (a column, or TRL's packing option), or None."""
    columns = getattr(dataset, "column_names", None) or []
    found = next((c for c in PACKING_COLUMNS if c in columns), None)
    if found:
        return f"column {found!r}"
    packing = getattr(args, "packing", False)
    if evaluation and getattr(args, "eval_packing", None) is not None:
        packing = args.eval_packing
    return "TRL packing=True" if packing else None


def check_packing(task, dataset, packed: Packed | None, args) -> None:
    """A packed causal-LM training set is recorded only with its examples (the mixin carries them); else refused."""
    from .distributed import rank_world

    if packed is not None:
        if packed.splits and rank_world()[1] > 1:
            raise DatacartoError(
                f"packing_strategy={args.packing_strategy!r} cuts examples across packed rows, whose pieces may train "
                "on different processes: datacarto adds an example's pieces on one process only; use "
                "packing_strategy='bfd' with several processes")
        return
    reason = packing_reason(dataset, args)
    if task.entry.generative and reason:
        raise DatacartoError(
            f"the training set looks packed ({reason}) and carries no row id per token, so datacarto cannot tell "
            "which example each token belongs to: record TRL packing with class SFT(CartographyMixin, SFTTrainer) "
            "(either dynamics_mode), which carries the row ids through packing, or train unpacked (padding_free=True "
            "keeps batches free of padding)")
