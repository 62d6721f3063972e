"""Contrastive pretraining of a fixed encoder (step 2 of the method).

`ContrastiveModel` = encoder f (backbones + derived fusion network) + projection
head g, trained with NT-Xent on pairs of augmented views. After training, g is
dropped and f goes on to the classifier (step 3).
"""

import keras
import tensorflow as tf

from ssnas_tf.ssl.losses import nt_xent, positive_retrieval_accuracy
from ssnas_tf.nas.architect import stack_views


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

    def _loss(self, data, training):
        view1, view2 = data
        n = tf.shape(next(iter(view1.values())))[0]
        z = self(stack_views(view1, view2), training=training)
        return (nt_xent(z[:n], z[n:], self.temperature),
                positive_retrieval_accuracy(z[:n], z[n:]))

    def train_step(self, data):
        with tf.GradientTape() as tape:
            loss, accuracy = self._loss(data, training=True)
        weights = self.trainable_weights
        self.optimizer.apply(tape.gradient(loss, weights), weights)
        self.loss_tracker.update_state(loss)
        self.pair_accuracy_tracker.update_state(accuracy)
        return {m.name: m.result() for m in self.metrics}

    def test_step(self, data):
        loss, accuracy = self._loss(data, training=False)
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
