"""The SimCLR step, and contrastive pretraining of a fixed encoder.

`simclr_loss` is the one SimCLR objective of the package: both views of a
batch through the model in one call, NT-Xent on the projections. The search
(`ssnas_tf.nas.architect.SearchModel`, objective "ssl") and `ContrastiveModel`
both use it.

`ContrastiveModel` = encoder f (backbones + derived fusion network) + projection
head g, trained with NT-Xent on pairs of augmented views (step 2 of the
method). After training, g is dropped and f goes on to the classifier (step 3).
"""

import keras
import tensorflow as tf
from keras import ops

from ssnas_tf.ssl.distributed import global_nt_xent, scale_gradients
from ssnas_tf.ssl.losses import positive_retrieval_accuracy


def stack_views(view1, view2):
    """Stacks two views (dicts of tensors) along the batch axis."""
    return {k: ops.concatenate([view1[k], view2[k]], axis=0) for k in view1}


def simclr_loss(model, views, temperature, training):
    """(NT-Xent loss, positive retrieval accuracy) of `model` on a view pair.

    Both views go through `model` in one call (so batch norm sees all 2N
    samples, as in SimCLR), and the projections are split back into z1, z2.

    Args:
        model: maps a dict of inputs to projections z.
        views: (view1, view2), dicts of tensors with the same keys.
        temperature: NT-Xent tau.
        training: passed to `model`.
    """
    view1, view2 = views
    n = ops.shape(next(iter(view1.values())))[0]
    z = model(stack_views(view1, view2), training=training)
    z1, z2 = z[:n], z[n:]
    # Under tf.distribute the anchors meet the negatives of every replica.
    return global_nt_xent(z1, z2, temperature), positive_retrieval_accuracy(z1, z2)


@keras.saving.register_keras_serializable(package="ssnas_tf")
class ContrastiveModel(keras.Model):
    """Encoder + projection head trained on (view1, view2) batches.

    Args:
        encoder: maps the model inputs to a feature vector.
        head: a `ProjectionHead`.
        temperature: NT-Xent tau. Defaults to 0.1.

    Example:
    >>> model = ContrastiveModel(encoder, ProjectionHead(128))
    >>> model.compile(keras.optimizers.Adam(1e-3))
    >>> model.fit(view_pairs_dataset, steps_per_epoch=20, epochs=10)
    """

    def __init__(self, encoder, head, temperature=0.1, **kwargs):
        super().__init__(**kwargs)
        self.encoder = encoder
        self.head = head
        self.temperature = temperature
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.pair_accuracy_tracker = keras.metrics.Mean(name="pair_accuracy")

    @property
    def metrics(self):
        return [self.loss_tracker, self.pair_accuracy_tracker]

    def call(self, inputs, training=None):
        return self.head(self.encoder(inputs, training=training), training=training)

    def train_step(self, data):
        with tf.GradientTape() as tape:
            loss, accuracy = simclr_loss(self, data, self.temperature, training=True)
            scaled = self.optimizer.scale_loss(loss)  # identity unless float16
        weights = self.trainable_weights
        self.optimizer.apply(scale_gradients(tape.gradient(scaled, weights)), weights)
        self.loss_tracker.update_state(loss)
        self.pair_accuracy_tracker.update_state(accuracy)
        return {m.name: m.result() for m in self.metrics}

    def test_step(self, data):
        loss, accuracy = simclr_loss(self, data, self.temperature, training=False)
        self.loss_tracker.update_state(loss)
        self.pair_accuracy_tracker.update_state(accuracy)
        return {m.name: m.result() for m in self.metrics}

    def get_config(self):
        config = super().get_config()
        config.update(encoder=keras.saving.serialize_keras_object(self.encoder),
                      head=keras.saving.serialize_keras_object(self.head),
                      temperature=self.temperature)
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        for key in ("encoder", "head"):
            config[key] = keras.saving.deserialize_keras_object(config[key])
        return cls(**config)
