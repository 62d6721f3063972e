"""TensorBoard logs of a run: each step's scalars, and the architecture per epoch.

    tensorboard --logdir runs/a/tensorboard

`DIR/tensorboard/<step>/train` (and `validation`) hold Keras's epoch scalars of
that step (losses, the search's `genotype_criterion`);
`DIR/tensorboard/search/architecture` holds, per search epoch, histograms of
the softmaxed alpha, beta and gamma and a heat-map image of each (rows: the
edge / step / cell, columns: the candidates).
"""

import os

import keras
import numpy as np
import tensorflow as tf


class ArchitectureSummary(keras.callbacks.Callback):
    """Writes the softmaxed alpha/beta/gamma of `model.network` after every epoch.

    Args:
        log_dir: the folder of the summary files.

    Example:
    >>> model.fit(data, epochs=10, callbacks=[ArchitectureSummary("tb/arch")])
    """

    def __init__(self, log_dir):
        super().__init__()
        self.log_dir = log_dir
        self._writer = None

    def on_train_begin(self, logs=None):
        self._writer = tf.summary.create_file_writer(self.log_dir)

    def on_epoch_end(self, epoch, logs=None):
        with self._writer.as_default(step=epoch + 1):
            for name, weights in self.model.network.arch_weights().items():
                tf.summary.histogram(f"{name}/softmax", weights)
                tf.summary.image(f"{name}/softmax", _heat_map(weights))
        self._writer.flush()

    def on_train_end(self, logs=None):
        if self._writer is not None:
            self._writer.close()


def _heat_map(weights):
    """(rows, columns) weights in [0, 1] -> a (1, H, W, 1) image, 8 px per entry."""
    table = np.asarray(weights, np.float32).reshape(-1, weights.shape[-1])
    table = np.kron(table, np.ones((8, 8), np.float32))
    return table[None, :, :, None]


def step_callbacks(log_dir, step):
    """The TensorBoard callbacks of one step of a run, logging under `log_dir`."""
    # update_freq="batch": the scalars of every training step (batch_loss, ...)
    # besides the epoch ones.
    callbacks = [keras.callbacks.TensorBoard(log_dir, write_graph=False,
                                             update_freq="batch")]
    if step == "search":
        callbacks.append(ArchitectureSummary(os.path.join(log_dir, "architecture")))
    return callbacks
