"""Per-example statistics of a causal LM batch, computed on the device from the logits the loss has.

No extra forward pass and no extra (B, T, V) tensor is kept: each row's (T, V) logits are reduced
to three numbers (mean token NLL, token accuracy, number of target tokens) before the next row, so
only a (B, 3) result leaves the device and recording memory stays O(N) per epoch.
"""

from __future__ import annotations

import numpy as np
import torch

from ..task_data import IGNORE

#: the epoch-file columns a causal-LM unit carries besides its pseudo-logits (docs/format.md)
EXTRA_COLUMNS = ("nll", "token_accuracy", "n_tokens")
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


def pseudo_logits(stats: np.ndarray) -> np.ndarray:
    """(k, 5) float32: the two-class logits ``[0, z]`` with ``sigmoid(z) = exp(-nll)``, then the stats.

    Softmax of ``[0, z]`` gives p(gold) = exp(-mean NLL), the geometric-mean probability of the
    response's tokens, so every classifier metric (confidence, variability, regions) applies as is.
    """
    stats = np.asarray(stats, dtype=np.float64).reshape(-1, 3)
    nll = np.maximum(stats[:, 0], _MIN_NLL)
    z = -nll - np.log(-np.expm1(-nll))  # log p - log(1 - p)
    return np.column_stack([np.zeros(len(z)), z, stats]).astype(np.float32)
