"""Old import path of the recording API; it lives in :mod:`datacarto.record` now."""

from ..record.callbacks import CartographyCallback, PredictEachEpoch, TrainingPassCallback  # noqa: F401
from ..record.examples import ROW_ID, RowIdCollator  # noqa: F401
from ..record.predict import predict_logits  # noqa: F401
from ..record.recorder import EpochBuffer, SplitRecorder  # noqa: F401
from ..record.trainer import CartographyMixin, CartographyTrainer  # noqa: F401
