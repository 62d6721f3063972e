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


@keras.saving.register_keras_serializable(package="ssnas_tf")
class JointContrastiveModel(keras.Model):
    """Several `ContrastiveModel`s that share no variables, trained in one fit.

    Each batch is a dict name -> (view1, view2) of that model's inputs. The loss
    is the sum of the models' `simclr_loss`es, minimised by one optimizer. As
    no variable belongs to two models, the gradient of the sum with respect to
    a model's variables is that model's own gradient, and Adam's update of a
    variable reads only that variable's gradient and slots (the step count is
    the same for all). So with the same batches one fit computes what separate
    fits with one Adam each compute, with one tracing and one input pipeline.

    With a `LossScaleOptimizer` (mixed_float16) there is one dynamic loss scale
    for the sum: an overflow in any model skips the step of all of them, where
    separate fits would skip only that model's step.

    Args:
        models: dict name -> `ContrastiveModel`, each with its own temperature;
            no trainable variable may belong to two of them (ValueError).

    Example:
    >>> joint = JointContrastiveModel({"a": model_a, "b": model_b})
    >>> joint.compile(keras.optimizers.Adam(1e-3))
    >>> joint.fit(tf.data.Dataset.zip({"a": pairs_a, "b": pairs_b}),
    ...           steps_per_epoch=20, epochs=10)  # logs loss, a_loss, b_loss
    """

    def __init__(self, models, **kwargs):
        super().__init__(**kwargs)
        owner = {}
        for name, model in models.items():
            for variable in model.trainable_variables:
                other = owner.setdefault(id(variable), name)
                if other != name:  # the sum would train it on both losses
                    raise ValueError(f"'{name}' and '{other}' share the variable "
                                     f"{variable.path}: train them separately")
        self.contrastive_models = dict(models)
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.loss_trackers = {name: keras.metrics.Mean(name=f"{name}_loss")
                              for name in self.contrastive_models}

    @property
    def names(self):
        """The models' names, in the order of `models`."""
        return list(self.contrastive_models)

    @property
    def metrics(self):
        return [self.loss_tracker, *self.loss_trackers.values()]

    def call(self, inputs, training=None):
        return {name: model(inputs[name], training=training)
                for name, model in self.contrastive_models.items()}

    def _modality_losses(self, data, training):
        return {name: simclr_loss(model, data[name], model.temperature, training)[0]
                for name, model in self.contrastive_models.items()}

    def _track(self, losses, total):
        self.loss_tracker.update_state(total)
        for name, loss in losses.items():
            self.loss_trackers[name].update_state(loss)
        return {m.name: m.result() for m in self.metrics}

    def train_step(self, data):
        with tf.GradientTape() as tape:
            losses = self._modality_losses(data, training=True)
            total = ops.sum(ops.stack(list(losses.values())))
            scaled = self.optimizer.scale_loss(total)  # identity unless float16
        weights = self.trainable_weights
        self.optimizer.apply(scale_gradients(tape.gradient(scaled, weights)), weights)
        return self._track(losses, total)

    def test_step(self, data):
        losses = self._modality_losses(data, training=False)
        return self._track(losses, ops.sum(ops.stack(list(losses.values()))))

    def get_config(self):
        config = super().get_config()
        config.update(models={name: keras.saving.serialize_keras_object(model)
                              for name, model in self.contrastive_models.items()})
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["models"] = {name: keras.saving.deserialize_keras_object(model)
                            for name, model in config["models"].items()}
        return cls(**config)
