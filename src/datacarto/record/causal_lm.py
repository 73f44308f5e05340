"""Per-example statistics of a causal LM batch, computed on the device from the logits the loss has.

No extra forward pass and no extra (B, T, V) tensor is kept: a batch is reduced to three numbers
per example (mean token NLL, token accuracy, number of target tokens), so only a (B, 3) result
leaves the device and recording memory stays O(N) per epoch.

In the training pass the per-token NLL is the loss's own: :func:`per_token_loss` makes the
model's ``ForCausalLMLoss`` compute its cross-entropy with ``reduction='none'`` (the same cost)
and reduce it as Hugging Face does, so the logits are not reduced a second time for recording.
"""

from __future__ import annotations

import functools
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ..task_data import IGNORE

_MIN_NLL = 1e-12  # exp(-nll) < 1 in float64, so the pseudo-logit stays finite


class Segments:
    """A packed or padding-free batch's segments: ``index`` (B, T), the segment of each position's target
    (-1: none), and ``count``, the number of segments (:func:`~datacarto.record.segments.segment_batch`)."""

    def __init__(self, index: torch.Tensor, count: int):
        self.index, self.count = index, int(count)


def _sums(nll: torch.Tensor, hit: torch.Tensor, keep: torch.Tensor, segments: Segments | None) -> torch.Tensor:
    """Per row (B, 3), or per segment (S, 3): float64 sums of NLL, hits and target tokens over the kept positions.

    ``nll`` (B, T) is 0 where ``keep`` is False and ``hit`` is already ``& keep``. One stacked sum: a
    step of a small model pays for each op it launches. Per segment, positions outside any segment
    go to one extra slot, dropped: no host synchronisation.
    """
    values = torch.stack([nll, hit, keep], dim=-1)
    if segments is None:
        return values.sum(1, dtype=torch.float64)
    index = segments.index.to(values.device, non_blocking=True)[:, :values.shape[1]]
    index = torch.where(keep & (index >= 0), index, segments.count).reshape(-1)
    sums = torch.zeros(segments.count + 1, 3, dtype=torch.float64, device=values.device)
    return sums.index_add_(0, index, values.reshape(-1, 3).to(torch.float64))[:segments.count]


def _means(sums: torch.Tensor) -> torch.Tensor:
    """(k, 3) sums -> mean NLL, token accuracy, target tokens (NaN means where a row has no target)."""
    n = sums[:, 2:]
    return torch.cat([sums[:, :2] / n, n], dim=-1)


def _hits(logits: torch.Tensor, target: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """Target tokens that are the argmax of their row, the first index on ties (as ``np.argmax`` and TRL's
    ``is_top1``; bf16 logits do tie): ``max(-1).indices`` gives that at about half ``argmax``'s cost on CPU,
    with no (B, T, V) temporary."""
    return (logits.max(-1).indices == target) & keep


@torch.no_grad()
def token_stats(labels: torch.Tensor, logits: torch.Tensor, *, chunk_elements: int = 1 << 26,
                segments: Segments | None = None) -> torch.Tensor:
    """(B, 3) float64: mean NLL, token accuracy, target tokens over positions with ``labels != -100``.

    Shifted by one as Hugging Face causal LMs are: the logits at position t predict token t + 1.
    With ``segments`` (a packed or padding-free batch), (S, 3): one row per segment.
    Rows are reduced in chunks of at most ``chunk_elements`` logits, so the temporary of the
    cross-entropy never grows to the batch's (B, T, V); no host synchronisation happens here.
    Used where no loss computed the per-token NLL already (eval-mode passes, a label smoother).
    """
    labels = labels.to(logits.device)
    target = torch.full_like(labels, IGNORE)
    target[:, :-1] = labels[:, 1:]
    mask = target != IGNORE
    rows = max(1, chunk_elements // max(1, logits.shape[1] * logits.shape[2]))
    out = []
    for start in range(0, labels.shape[0], rows):
        chunk, gold, keep = logits[start:start + rows], target[start:start + rows], mask[start:start + rows]
        nll = F.cross_entropy(chunk.float().flatten(0, 1), gold.reshape(-1), ignore_index=IGNORE, reduction="none")
        part = None if segments is None else Segments(segments.index[start:start + rows], segments.count)
        out.append(_sums(nll.view(gold.shape), _hits(chunk, gold, keep), keep, part))
    return _means(torch.cat(out) if segments is None else torch.stack(out).sum(0))


@dataclass
class TokenLoss:
    """The per-token NLL (B, T) a causal-LM loss computed, its shifted targets and the logits it read."""

    nll: torch.Tensor
    target: torch.Tensor
    logits: torch.Tensor
    ignore_index: int = IGNORE

    @torch.no_grad()
    def stats(self, segments: Segments | None = None) -> torch.Tensor:
        """(B, 3) like :func:`token_stats`, from the loss's own per-token NLL (ignored positions are 0)."""
        keep = self.target != self.ignore_index
        return _means(_sums(self.nll, _hits(self.logits, self.target, keep), keep, segments))


def causal_lm_loss(logits, labels, vocab_size, num_items_in_batch=None, ignore_index=IGNORE, shift_labels=None,
                   *, caught: list, **kwargs) -> torch.Tensor:
    """transformers' ``ForCausalLMLoss``, its cross-entropy per token (``reduction='none'``), kept in ``caught``.

    The same loss: summed over the target tokens, divided by ``num_items_in_batch`` when the
    Trainer passes it (gradient accumulation), else by this batch's target tokens (the mean).
    """
    source, logits = logits, logits.float()
    if shift_labels is None:
        shift_labels = F.pad(labels, (0, 1), value=ignore_index)[..., 1:].contiguous()
    shift_labels = shift_labels.to(logits.device)
    nll = F.cross_entropy(logits.view(-1, vocab_size), shift_labels.view(-1), ignore_index=ignore_index,
                          reduction="none")
    caught.append(TokenLoss(nll.detach().view(shift_labels.shape), shift_labels, source.detach(), ignore_index))
    total = nll.sum()
    if num_items_in_batch is None:
        return total / (shift_labels != ignore_index).sum()
    if torch.is_tensor(num_items_in_batch):
        num_items_in_batch = num_items_in_batch.to(total.device)
    return total / num_items_in_batch


def _causal_lm_module(model):
    """The ``PreTrainedModel`` inside ``model`` (DDP, PEFT wrappers) whose loss is ``ForCausalLMLoss``, or None.

    None under ``torch.compile`` too: a new loss function each step would be a new guard, a recompilation.
    """
    from transformers import PreTrainedModel

    try:
        from transformers.loss.loss_utils import ForCausalLMLoss
    except ImportError:  # a transformers without it (older, or moved): no replacement, the logits path
        return None

    for m in model.modules():
        if hasattr(m, "_orig_mod"):  # torch.compile's wrapper
            return None
        if isinstance(m, PreTrainedModel):
            return m if getattr(m, "loss_function", None) is ForCausalLMLoss else None
    return None


@contextmanager
def per_token_loss(model):
    """Within the block, ``model``'s causal-LM loss keeps its per-token NLL; yields the list of :class:`TokenLoss`.

    Only a model whose loss is transformers' ``ForCausalLMLoss`` is changed (its ``loss_function``
    for the block's duration); for any other, and for a forward without labels, the list stays empty.
    """
    caught: list[TokenLoss] = []
    lm = _causal_lm_module(model)
    if lm is None:
        yield caught
        return
    own = vars(lm).get("_loss_function", _UNSET)
    lm.loss_function = functools.partial(causal_lm_loss, caught=caught)
    try:
        yield caught
    finally:
        if own is _UNSET:
            del lm._loss_function
        else:
            lm._loss_function = own


_UNSET = object()


@torch.no_grad()
def fused_stats(outputs, segments: Segments | None = None) -> torch.Tensor | None:
    """(B, 3) like :func:`token_stats` from a fused LM head's per-token outputs (TRL's ``SFTTrainer``), or None.

    TRL's fused head returns ``log_probs`` (B, T - 1), zero on ignored positions, its ``label_mask`` and
    ``is_top1`` instead of the (B, T, V) logits: the same statistics, with no logits at all.
    """
    log_probs, mask = getattr(outputs, "log_probs", None), getattr(outputs, "label_mask", None)
    if log_probs is None or mask is None:
        return None
    top1 = getattr(outputs, "is_top1", None)
    hits = mask if top1 is None else top1.bool() & mask
    stats = _means(_sums(-log_probs.detach(), hits, mask, segments))
    if top1 is None:
        stats[:, 1] = float("nan")
    return stats


def pseudo_logits(stats: np.ndarray) -> np.ndarray:
    """(k, 5) float32: the two-class logits ``[0, z]`` with ``sigmoid(z) = exp(-nll)``, then the stats.

    Softmax of ``[0, z]`` gives p(gold) = exp(-mean NLL), the geometric-mean probability of the
    response's tokens, so every classifier metric (confidence, variability, regions) applies as is.
    """
    stats = np.asarray(stats, dtype=np.float64).reshape(-1, 3)
    nll = np.maximum(stats[:, 0], _MIN_NLL)
    z = -nll - np.log(-np.expm1(-nll))  # log p - log(1 - p)
    return np.column_stack([np.zeros(len(z)), z, stats]).astype(np.float32)
