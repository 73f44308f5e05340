"""Recording training dynamics inside a ``transformers.Trainer``.

One recorder (:class:`~datacarto.record.recorder.SplitRecorder`) writes every split in both modes;
the callbacks decide *when* a snapshot is taken, the trainer mixin only forwards the training
pass's logits to its callback.
"""

from .callbacks import CartographyCallback, PredictEachEpoch
from .distributed import end_distributed
from .trainer import CartographyMixin, CartographyTrainer

__all__ = ["CartographyCallback", "CartographyMixin", "CartographyTrainer", "PredictEachEpoch", "end_distributed"]
