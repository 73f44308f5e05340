"""Per-example statistics of a causal LM batch, computed on the device from the logits the loss has.

No extra forward pass and no extra (B, T, V) tensor is kept: the logits are reduced in chunks of
rows to three numbers per example (mean token NLL, token accuracy, number of target tokens), so
only a (B, 3) result leaves the device and recording memory stays O(N) per epoch.
"""

from __future__ import annotations

import numpy as np
import torch

from ..task_data import IGNORE

_MIN_NLL = 1e-12  # exp(-nll) < 1 in float64, so the pseudo-logit stays finite


@torch.no_grad()
def token_stats(labels: torch.Tensor, logits: torch.Tensor, *, chunk_elements: int = 1 << 26) -> torch.Tensor:
    """(B, 3) float64: mean NLL, token accuracy, target tokens over positions with ``labels != -100``.

    Shifted by one as Hugging Face causal LMs are: the logits at position t predict token t + 1.
    Rows are reduced in chunks of at most ``chunk_elements`` logits, so the temporary of the
    log-sum-exp never grows to the batch's (B, T, V); no host synchronisation happens here.
    """
    labels = labels.to(logits.device)
    target = torch.full_like(labels, IGNORE)
    target[:, :-1] = labels[:, 1:]
    mask = target != IGNORE
    rows = max(1, chunk_elements // max(1, logits.shape[1] * logits.shape[2]))
    nll_sum, hits = [], []
    for start in range(0, labels.shape[0], rows):
        chunk, gold, keep = logits[start:start + rows], target[start:start + rows], mask[start:start + rows]
        gold = gold.clamp(min=0)
        lse = torch.logsumexp(chunk.float(), dim=-1)
        nll = lse - chunk.gather(-1, gold[..., None]).squeeze(-1).float()
        nll_sum.append((nll.double() * keep).sum(-1))
        hits.append(((chunk.argmax(-1) == gold) & keep).sum(-1))
    n = mask.sum(-1).double()
    return torch.stack([torch.cat(nll_sum) / n, torch.cat(hits).double() / n, n], dim=-1)


@torch.no_grad()
def fused_stats(outputs) -> torch.Tensor | None:
    """(B, 3) like :func:`token_stats` from a fused LM head's per-token outputs (TRL's ``SFTTrainer``), or None.

    TRL's fused head returns ``log_probs`` (B, T), zero on ignored positions, its ``label_mask`` and
    ``is_top1`` instead of the (B, T, V) logits: the same statistics, with no logits at all.
    """
    log_probs, mask = getattr(outputs, "log_probs", None), getattr(outputs, "label_mask", None)
    if log_probs is None or mask is None:
        return None
    mask = mask.to(torch.float64)
    n = mask.sum(-1)
    top1 = getattr(outputs, "is_top1", None)
    hits = (top1.to(torch.float64) * mask).sum(-1) if top1 is not None else torch.full_like(n, float("nan"))
    return torch.stack([-(log_probs.detach().double() * mask).sum(-1) / n, hits / n, n], dim=-1)


def pseudo_logits(stats: np.ndarray) -> np.ndarray:
    """(k, 5) float32: the two-class logits ``[0, z]`` with ``sigmoid(z) = exp(-nll)``, then the stats.

    Softmax of ``[0, z]`` gives p(gold) = exp(-mean NLL), the geometric-mean probability of the
    response's tokens, so every classifier metric (confidence, variability, regions) applies as is.
    """
    stats = np.asarray(stats, dtype=np.float64).reshape(-1, 3)
    nll = np.maximum(stats[:, 0], _MIN_NLL)
    z = -nll - np.log(-np.expm1(-nll))  # log p - log(1 - p)
    return np.column_stack([np.zeros(len(z)), z, stats]).astype(np.float32)
