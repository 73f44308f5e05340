"""``datacarto focus RUN --subset subset.jsonl --init baseline|pretrained --output-dir DIR``.

Fine-tune on a focused subset (written by ``datacarto select``) from the baseline's final model or
from the run's original pretrained model. Every ``TrainingArguments`` flag works, as in
``datacarto train``. See docs/focus.md.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .._validation import check_choice
from ..errors import DatacartoError
from .train import explicit_flags, parse_with_training_args, split_list


@dataclass
class FocusArguments:
    """What to fine-tune on, from where, with which loss."""

    run: str | None = field(default=None, metadata={
        "help": "the baseline run folder (holding training_dynamics/ and model/); also the first positional argument"})
    subset: str | None = field(default=None, metadata={
        "help": "the subset to train on: a .jsonl/.csv/.parquet file written by 'datacarto select'"})
    init: str = field(default="baseline", metadata={
        "help": "baseline (continue from RUN/model) or pretrained (restart from the run's original model)"})
    model: str | None = field(default=None, metadata={"help": "start from this model instead (overrides --init's)"})
    validation: str | None = field(default=None, metadata={"help": "validation data evaluated at each epoch"})
    label_column: str = field(default="label", metadata={"help": "label column of the subset"})
    loss: str = field(default="ce", metadata={"help": "ce (cross-entropy) or focal"})
    focal_gamma: float = field(default=2.0, metadata={"help": "focal loss gamma"})
    focal_alpha: str | None = field(default=None, metadata={
        "help": "focal loss alpha: one number, or comma-separated weights per class"})
    region_weight: str | None = field(default=None, metadata={
        "help": "weight examples by their region in RUN, e.g. 'ambiguous=3' or 'ambiguous=3,hard-to-learn=2' "
                "(others get 1): a weighted mean of the loss"})
    max_length: int = field(default=128, metadata={"help": "tokenizer truncation length"})


def _alpha(text: str | None):
    values = split_list(text)
    if not values:
        return None
    try:
        numbers = [float(v) for v in values]
    except ValueError as e:
        raise DatacartoError(f"--focal-alpha must be a number or comma-separated numbers, got {text!r}") from e
    return numbers[0] if len(numbers) == 1 else numbers


def _region_weights(text: str) -> dict[str, float]:
    out = {}
    for part in split_list(text) or []:
        name, sep, value = part.partition("=")
        try:
            out[name.strip()] = float(value)
        except ValueError:
            sep = ""
        if not sep or not name.strip():
            raise DatacartoError(f"--region-weight takes REGION=WEIGHT pairs, got {part!r}")
    if not out:
        raise DatacartoError("--region-weight is empty")
    return out


def build_loss(data: FocusArguments):
    """The loss callable the flags ask for (None = the Trainer's own cross-entropy)."""
    from ..train.losses import cross_entropy, focal_loss, region_weights, weighted_loss

    if data.loss not in ("ce", "focal"):
        raise DatacartoError(f"--loss must be ce or focal, got {data.loss!r}")
    base = focal_loss(data.focal_gamma, _alpha(data.focal_alpha)) if data.loss == "focal" else None
    if data.region_weight:
        from ..dynamics.cache import get_metrics

        weights = region_weights(get_metrics(data.run), _region_weights(data.region_weight))
        return weighted_loss(weights, base=base or cross_entropy())
    return base


def main(argv: list[str]) -> int:
    from ..train.focused import INITS, train_focused

    argv = list(argv)
    if argv and not argv[0].startswith("-"):
        argv = ["--run", argv[0], *argv[1:]]
    data, args = parse_with_training_args(argv, FocusArguments, prog="datacarto focus")
    if not data.run:
        raise DatacartoError("the baseline run folder is required: datacarto focus RUN --subset FILE ...")
    if not data.subset:
        raise DatacartoError("--subset is required (a file written by 'datacarto select')")
    check_choice(data.init, INITS, "--init")
    if data.max_length < 1:
        raise DatacartoError(f"--max-length must be at least 1, got {data.max_length}")
    if not data.focal_gamma >= 0:  # also NaN
        raise DatacartoError(f"--focal-gamma must be >= 0, got {data.focal_gamma}")
    if data.validation and "eval_strategy" not in explicit_flags(argv):
        args.eval_strategy = "epoch"
    loss = build_loss(data)
    from ..record.recorder import entry_point

    with entry_point("focus"):  # a refusal to mix runs: another --output-dir is this command's way out
        result = train_focused(data.run, data.subset, init=data.init, model=data.model, output_dir=args.output_dir,
                               validation=data.validation, training_args=args, loss=loss,
                               label_column=data.label_column, max_length=data.max_length)
    if result.trainer is None or result.trainer.is_world_process_zero():
        print(f"focused training on {data.subset} from {data.init}: {result.output_dir}")
        print(f"training dynamics: {result.output_dir / 'training_dynamics'}")
        print(f"model: {result.model_dir}")
        if data.validation and result.trainer is not None:
            history = [h for h in result.trainer.state.log_history if "eval_loss" in h]
            if history:
                print(f"validation loss after the last epoch: {history[-1]['eval_loss']:.4f}")
    return 0
