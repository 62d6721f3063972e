"""TensorBoard (with HParams) for the keras-tuner searches.

Pass `keras.callbacks.TensorBoard(log_dir)` to a tuner's `search`: keras-tuner
points it at `log_dir/<trial id>/execution0` and adds the HParams callback
that records the trial's hyperparameters. Our HyperModels hand those callbacks
to `model.fit` (without keras-tuner's best-epoch checkpointing: the best
architecture is retrained afterwards) and write the trial's objective, which
is computed after `fit`, as a scalar beside the trial's logs, so TensorBoard's
HParams dashboard lists every trial with its hyperparameters and its score.
"""

import os

import keras
import tensorflow as tf
from keras_tuner.src.engine import tuner_utils

# keras-tuner's own callbacks: checkpointing the best epoch (of no use, the
# best architecture is retrained) and per-epoch hooks (no-ops in our tuners).
_TUNER_CALLBACKS = (tuner_utils.SaveBestEpoch, tuner_utils.TunerCallback)


def fit_callbacks(callbacks):
    """The trial's callbacks to pass to `model.fit`."""
    return [c for c in callbacks or () if not isinstance(c, _TUNER_CALLBACKS)]


def log_objective(callbacks, name, value):
    """Writes the trial's objective `name` = `value` into each TensorBoard
    callback's validation log (`<trial log dir>/validation`)."""
    for callback in callbacks or ():
        if isinstance(callback, keras.callbacks.TensorBoard):
            path = os.path.join(str(callback.log_dir), "validation")
            writer = tf.summary.create_file_writer(path)
            with writer.as_default():
                tf.summary.scalar(name, float(value), step=0)
            writer.close()


__all__ = ["fit_callbacks", "log_objective"]
