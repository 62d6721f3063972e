"""The SimCLR contrastive loss (NT-Xent) and its retrieval accuracy.

For N samples with two views each (2N vectors z), sim = cosine similarity:

    l(i, j) = -log( exp(sim(z_i, z_j)/tau) / sum_{k != i} exp(sim(z_i, z_k)/tau) )
    L = 1/(2N) * sum_k [ l(2k-1, 2k) + l(2k, 2k-1) ]

Here the views are stacked as [z1; z2], so the positive of row i is row i + N
(mod 2N); the order does not change L.

Reference: Chen et al., "A Simple Framework for Contrastive Learning of Visual
Representations", ICML 2020 (objective.add_contrastive_loss).
"""

import keras
from keras import ops

_LARGE = 1e9  # masks self-similarity out of the softmax


def _logits_and_targets(z1, z2, temperature):
    z = ops.concatenate([z1, z2], axis=0)
    z = z / ops.maximum(ops.norm(z, axis=-1, keepdims=True), 1e-12)
    n = ops.shape(z1)[0]
    sim = ops.matmul(z, ops.transpose(z)) / temperature
    sim = sim - _LARGE * ops.eye(2 * n, dtype=sim.dtype)
    targets = ops.concatenate([ops.arange(n) + n, ops.arange(n)], axis=0)
    return sim, targets


def nt_xent(z1, z2, temperature=0.1):
    """NT-Xent loss of two (N, D) batches of projections, averaged over 2N anchors.

    Args:
        z1: projections of the first views.
        z2: projections of the second views (row i pairs with z1's row i).
        temperature: tau. Defaults to 0.1.

    Returns:
        A scalar tensor.
    """
    logits, targets = _logits_and_targets(ops.cast(z1, "float32"),
                                          ops.cast(z2, "float32"), temperature)
    return ops.mean(keras.losses.sparse_categorical_crossentropy(
        targets, logits, from_logits=True))


def positive_retrieval_accuracy(z1, z2):
    """Fraction of the 2N anchors whose most similar other vector is their pair."""
    logits, targets = _logits_and_targets(ops.cast(z1, "float32"),
                                          ops.cast(z2, "float32"), 1.0)
    hits = ops.equal(ops.argmax(logits, axis=-1), ops.cast(targets, "int64"))
    return ops.mean(ops.cast(hits, "float32"))


@keras.saving.register_keras_serializable(package="ssnas_tf")
class NTXent(keras.losses.Loss):
    """`nt_xent` as a Keras loss: y_pred is the stacked [z1; z2], y_true ignored.

    Args:
        temperature: tau. Defaults to 0.1.
    """

    def __init__(self, temperature=0.1, name="nt_xent", **kwargs):
        super().__init__(name=name, **kwargs)
        self.temperature = temperature

    def call(self, y_true, y_pred):
        z1, z2 = ops.split(y_pred, 2, axis=0)
        return nt_xent(z1, z2, self.temperature)

    def get_config(self):
        config = super().get_config()
        config.update(temperature=self.temperature)
        return config
