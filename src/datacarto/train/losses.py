"""Loss callables for ``CartographyMixin(loss=...)``: cross-entropy, focal loss, per-example weights.

Each loss is called as ``loss(logits, labels, row_ids) -> scalar tensor`` (row ids are positions in
the training set, as recorded) and also offers ``per_example(logits, labels) -> (B,) tensor`` so
that :func:`weighted_loss` can weight any of them. Labels equal to -100 are ignored, as in
``torch.nn.functional.cross_entropy``.

Use a region's weight instead of dropping the rest of the data::

    m = get_metrics("runs/snli")
    loss = weighted_loss(region_weights(m, {"ambiguous": 3.0}))   # indexed by row id

torch is imported inside the functions, so importing this module (and ``region_weights``) stays light.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from ..errors import DatacartoError

IGNORE_INDEX = -100


def _mean_over_valid(per_example, labels):
    """Mean of ``per_example`` over labels != -100; 0 (with a gradient path) if there are none."""
    valid = labels != IGNORE_INDEX
    count = valid.sum()
    total = (per_example * valid).sum()
    return total / count.clamp(min=1)


class CrossEntropyLoss:
    """Mean cross-entropy of the gold label: what the Trainer computes by default."""

    def per_example(self, logits, labels):
        import torch.nn.functional as F

        return F.cross_entropy(logits.float(), labels, reduction="none", ignore_index=IGNORE_INDEX)

    def __call__(self, logits, labels, row_ids=None):
        return _mean_over_valid(self.per_example(logits, labels), labels)

    def __repr__(self) -> str:
        return "cross_entropy()"


class FocalLoss:
    """Focal loss (Lin et al., 2017): ``-alpha_t (1 - p_t)^gamma log p_t``, averaged over the batch.

    ``alpha``: None (1), a float (the same factor for every class) or one weight per class.
    ``gamma=0, alpha=None/1`` is exactly cross-entropy. The mean is over examples (not over
    ``alpha_t``), as in the paper.
    """

    def __init__(self, gamma: float = 2.0, alpha: float | Sequence[float] | None = None):
        if isinstance(gamma, bool) or not isinstance(gamma, numbers.Real) or not np.isfinite(gamma) or gamma < 0:
            raise DatacartoError(f"focal loss gamma must be a finite number >= 0, got {gamma!r}")
        self.gamma = float(gamma)
        if alpha is None:
            self.alpha = None
        elif isinstance(alpha, numbers.Real) and not isinstance(alpha, bool):
            if not np.isfinite(alpha) or alpha <= 0:
                raise DatacartoError(f"focal loss alpha must be > 0, got {alpha!r}")
            self.alpha = float(alpha)
        else:
            arr = np.asarray(alpha, dtype=np.float64).ravel()
            if arr.size == 0 or not np.all(np.isfinite(arr)) or np.any(arr < 0):
                raise DatacartoError(f"focal loss alpha must be a float or per-class weights >= 0, got {alpha!r}")
            self.alpha = arr
        self._alpha_tensors: dict[Any, Any] = {}

    def _alpha_t(self, labels, safe_labels, logits):
        import torch

        if self.alpha is None:
            return None
        if isinstance(self.alpha, float):
            return self.alpha
        if self.alpha.size != logits.shape[-1]:
            raise DatacartoError(f"focal loss has {self.alpha.size} class weights but the model has "
                                 f"{logits.shape[-1]} classes")
        key = logits.device
        if key not in self._alpha_tensors:
            self._alpha_tensors[key] = torch.as_tensor(self.alpha, dtype=torch.float32, device=logits.device)
        return self._alpha_tensors[key][safe_labels]

    def per_example(self, logits, labels):
        import torch

        logp = torch.log_softmax(logits.float(), dim=-1)
        safe = labels.clamp(min=0)  # -100 rows are masked by the caller's mean
        logp_t = logp.gather(-1, safe.unsqueeze(-1)).squeeze(-1)
        loss = -logp_t
        if self.gamma != 0.0:
            # 1 - p_t computed as -expm1(log p_t): exact near p_t = 1; clamped so the gradient stays finite
            one_minus = (-torch.expm1(logp_t)).clamp(min=1e-12)
            loss = loss * one_minus.pow(self.gamma)
        alpha_t = self._alpha_t(labels, safe, logits)
        if alpha_t is not None:
            loss = loss * alpha_t
        return torch.where(labels == IGNORE_INDEX, torch.zeros_like(loss), loss)

    def __call__(self, logits, labels, row_ids=None):
        return _mean_over_valid(self.per_example(logits, labels), labels)

    def __repr__(self) -> str:
        alpha = self.alpha.tolist() if isinstance(self.alpha, np.ndarray) else self.alpha
        return f"focal_loss(gamma={self.gamma}, alpha={alpha})"


class WeightedLoss:
    """``sum_i w[row_i] loss_i / sum_i w[row_i]`` over a batch: per-example weights by row id.

    A zero weight removes an example's gradient contribution entirely; all-ones weights give the
    base loss. A batch whose weights are all zero contributes a zero loss (no gradient). Called
    without row ids and without gradient (the Trainer's evaluation), it is the unweighted base loss.
    """

    def __init__(self, example_weights, base=None):
        self.weights = _weights_array(example_weights)
        self.base = base if base is not None else CrossEntropyLoss()
        if not hasattr(self.base, "per_example"):
            raise DatacartoError("weighted_loss needs a base loss with per_example() (cross_entropy() or focal_loss())")
        self._tensors: dict[Any, Any] = {}

    def for_rows(self, row_ids) -> WeightedLoss:
        """The same loss for a subset whose position i is row ``row_ids[i]`` of the weights' data set."""
        ids = np.asarray(row_ids, dtype=np.int64).ravel()
        if ids.size and (ids.min() < 0 or ids.max() >= self.weights.size):
            raise DatacartoError(f"row ids range over [{ids.min()}, {ids.max()}] but only "
                                 f"{self.weights.size} example weights were given")
        return WeightedLoss(self.weights[ids], base=self.base)

    def _weights_for(self, row_ids, device):
        import torch

        if row_ids is None:
            raise DatacartoError("weighted_loss needs row ids: train with recording on (CartographyTrainer, record=True)")
        if device not in self._tensors:
            self._tensors[device] = torch.as_tensor(self.weights, dtype=torch.float32, device=device)
        table = self._tensors[device]
        ids = row_ids.to(device=device, dtype=torch.long)
        if ids.numel() and int(ids.max()) >= table.shape[0]:
            raise DatacartoError(f"row id {int(ids.max())} has no example weight ({table.shape[0]} weights given)")
        return table[ids]

    def __call__(self, logits, labels, row_ids=None):
        import torch

        if row_ids is None and not (torch.is_grad_enabled() and logits.requires_grad):
            # evaluation (no gradient): the Trainer passes no row ids, and eval rows have no weight
            return self.base(logits, labels, None)
        per = self.base.per_example(logits, labels)
        w = self._weights_for(row_ids, per.device) * (labels != IGNORE_INDEX)
        total = w.sum()
        # all-zero weights: 0 / 1 = 0, and no gradient from any example (no host sync needed)
        return (per * w).sum() / total.where(total > 0, total.new_ones(()))

    def __repr__(self) -> str:
        return f"weighted_loss({self.weights.size} weights, base={self.base!r})"


def _weights_array(example_weights) -> np.ndarray:
    """Dense float64 weights indexed by row id; a pandas Series may be indexed by row id."""
    import pandas as pd

    if isinstance(example_weights, pd.Series):
        idx = np.asarray(example_weights.index, dtype=np.int64)
        if idx.size and idx.min() < 0:
            raise DatacartoError("example weights are indexed by row id: negative index found")
        dense = np.full(int(idx.max()) + 1 if idx.size else 0, np.nan)
        dense[idx] = example_weights.to_numpy(dtype=np.float64)
        if np.isnan(dense).any():
            raise DatacartoError("example weights must cover every row id 0..N-1 (some are missing)")
        example_weights = dense
    if isinstance(example_weights, Mapping):
        raise DatacartoError("example weights must be an array indexed by row id (use region_weights for regions)")
    try:
        arr = np.asarray(example_weights, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise DatacartoError(f"example weights must be numbers: {e}") from e
    if arr.ndim != 1 or arr.size == 0:
        raise DatacartoError(f"example weights must be a non-empty 1-D array indexed by row id, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)) or np.any(arr < 0):
        raise DatacartoError("example weights must be finite and >= 0")
    return arr


def cross_entropy() -> CrossEntropyLoss:
    """Mean cross-entropy, ``loss(logits, labels, row_ids)``: the Trainer's default, as a callable."""
    return CrossEntropyLoss()


def focal_loss(gamma: float = 2.0, alpha: float | Sequence[float] | None = None) -> FocalLoss:
    """Focal loss: down-weights examples the model already gets right (``gamma``), optional class ``alpha``."""
    return FocalLoss(gamma=gamma, alpha=alpha)


def weighted_loss(example_weights, base: Callable | None = None) -> WeightedLoss:
    """Weighted mean of ``base`` (default cross-entropy) with one weight per training row id.

    ``example_weights``: array indexed by row id (e.g. :func:`region_weights`) or a Series by row id.
    ``train_focused`` re-indexes it to a subset's rows through the subset's ``row_id`` column.
    """
    return WeightedLoss(example_weights, base=base)


def region_weights(metrics, weights: Mapping[str, float], default: float = 1.0) -> np.ndarray:
    """Per-example weights indexed by row id: ``weights[region]`` for examples of that region, else ``default``.

    ``metrics``: a table with a ``region`` column (``get_metrics``) or the ``confidence`` and
    ``variability`` columns (regions are then assigned with ``assign_regions``' defaults). Row ids
    missing from the table, and examples without a region, get ``default``.
    """
    from ..selection import normalize_regions

    if not hasattr(metrics, "index") or not hasattr(metrics, "columns"):
        raise DatacartoError("region_weights needs a metrics table (a DataFrame indexed by row_id)")
    if "region" in metrics.columns:
        region = metrics["region"]
    else:
        from ..metrics import assign_regions

        region = assign_regions(metrics)
    values = {}
    for name, w in dict(weights).items():
        norm = normalize_regions(str(name))  # raises DatacartoError on an unknown name
        if isinstance(w, bool) or not isinstance(w, numbers.Real) or not np.isfinite(w) or w < 0:
            raise DatacartoError(f"the weight of region {name!r} must be a number >= 0, got {w!r}")
        values[norm[0]] = float(w)
    if not np.isfinite(default) or default < 0:
        raise DatacartoError(f"the default weight must be a number >= 0, got {default!r}")
    ids = np.asarray(metrics.index, dtype=np.int64)
    if ids.size and ids.min() < 0:
        raise DatacartoError("the metrics table's row ids must be >= 0")
    out = np.full(int(ids.max()) + 1 if ids.size else 0, float(default))
    names = region.astype(object).to_numpy()
    for name, w in values.items():
        out[ids[names == name]] = w
    return out
