"""The alternating architecture search (DARTS's architect.py).

`SearchModel.train_step` takes a pair (train batch, valid batch), as yielded by
`tf.data.Dataset.zip((train, valid))`, and does

1. a weight update: the objective on the train batch, gradients w.r.t. the
   weights w (`trainable_weights`), applied by `optimizer`;
2. an architecture update: the objective on the valid batch, gradients w.r.t.
   alpha, beta, gamma (`arch_parameters`), applied by `arch_optimizer`. With
   `arch_order=1` (default) the gradient is taken at the current weights
   (DARTS's first-order approximation); with `arch_order=2` through one
   virtual weight step (DARTS's unrolled step, `ssnas_tf.nas.unrolled`).

Objectives: `"ssl"` (NT-Xent through a projection head; a batch is a pair of
augmented views) and `"supervised"` (softmax cross-entropy, or per-class
binary cross-entropy for multi-label data, through a classifier; a batch is
(x, y)). L2 weight decay is added to the gradients (coupled, as torch.optim.Adam
does in the reference), not Keras's decoupled weight decay.

Reference: Liu et al., "DARTS", ICLR 2019 (§2.3, both orders);
Suzuki & Ono, IEICE 2025 (the contrastive objective).
"""

import keras
import tensorflow as tf
from keras import ops

from ssnas_tf.nas.unrolled import unrolled_arch_gradients
from ssnas_tf.optimizers import Adam
from ssnas_tf.ssl.contrastive_model import simclr_loss
from ssnas_tf.ssl.distributed import scale_gradients
from ssnas_tf.tasks import Task

OBJECTIVES = ("ssl", "supervised")


def supervised_loss(y_true, logits, multilabel):
    """Mean BCE per class (multi-label) or softmax cross-entropy (multi-class);
    `Task.loss`."""
    return Task(logits.shape[-1], multilabel).loss(y_true, logits)


def add_l2(grads, variables, rate, loss_scale=1.0):
    """grad + rate * w, torch.optim's coupled weight decay.

    `loss_scale` is the factor the gradients carry (a LossScaleOptimizer's
    `scale_loss(1.0)`), so the optimizer's unscaling leaves rate * w exact.
    """
    if not rate:
        return grads
    return [g + (rate * loss_scale) * ops.cast(v, g.dtype)
            for g, v in zip(grads, variables)]


def reference_optimizers(steps_per_epoch, learning_rate=1e-3, min_learning_rate=1e-6,
                         arch_learning_rate=3e-4):
    """The BM-NAS optimizers: Adam with cosine warm restarts (period one epoch,
    doubling) for the weights, Adam(3e-4, beta_1=0.5) for the architecture.

    Pair with `compile(weight_decay=1e-4, arch_weight_decay=1e-3)`.
    """
    schedule = keras.optimizers.schedules.CosineDecayRestarts(
        learning_rate, first_decay_steps=max(1, steps_per_epoch), t_mul=2.0,
        m_mul=1.0, alpha=min_learning_rate / learning_rate)
    return (Adam(schedule),
            Adam(arch_learning_rate, beta_1=0.5, beta_2=0.999))


@keras.saving.register_keras_serializable(package="ssnas_tf")
class SearchModel(keras.Model):
    """Backbones (optional) + `SearchNetwork` + head, searched by alternation.

    Args:
        network: a `SearchNetwork`.
        head: the head on the fused feature: a `ProjectionHead` for `"ssl"`,
            a classifier (logits) for `"supervised"`.
        objective: `"ssl"` or `"supervised"`. Defaults to `"ssl"`.
        backbone: optional model mapping the raw inputs to the dict of named
            features `network` reads; None when the inputs already are those
            features. Defaults to None.
        temperature: NT-Xent tau. Defaults to 0.1.
        multilabel: supervised only, per-class BCE instead of softmax
            cross-entropy. Defaults to False.
        arch_order: 1 (first-order DARTS) or 2 (the unrolled step, about 3x
            the cost of an architecture update; its virtual step uses the
            weight optimizer's current learning rate). Defaults to 1.

    Example:
    >>> model = SearchModel(SearchNetwork(["a", "b"]), ProjectionHead())
    >>> model(sample_batch)  # build before compile
    >>> model.compile(*reference_optimizers(steps_per_epoch=100),
    ...               weight_decay=1e-4, arch_weight_decay=1e-3)
    >>> model.fit(tf.data.Dataset.zip((train_views, valid_views)), epochs=30)
    """

    def __init__(self, network, head, objective="ssl", backbone=None,
                 temperature=0.1, multilabel=False, arch_order=1, **kwargs):
        super().__init__(**kwargs)
        # Inputs reach the backbone / network uncast: they cast where cheapest.
        self.autocast = False
        if objective not in OBJECTIVES:
            raise ValueError(f"objective must be one of {OBJECTIVES}, got '{objective}'")
        if arch_order not in (1, 2):
            raise ValueError(f"arch_order must be 1 or 2, got {arch_order!r}")
        self.arch_order = arch_order
        self.network = network
        self.head = head
        self.objective = objective
        self.backbone = backbone
        self.temperature = temperature
        self.multilabel = multilabel
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.arch_loss_tracker = keras.metrics.Mean(name="arch_loss")
        self.pair_accuracy_tracker = keras.metrics.Mean(name="pair_accuracy")
        self.arch_optimizer = None

    @property
    def arch_parameters(self):
        return self.network.arch_parameters

    @property
    def metrics(self):
        trackers = [self.loss_tracker, self.arch_loss_tracker]
        if self.objective == "ssl":
            trackers.append(self.pair_accuracy_tracker)
        return trackers

    def call(self, inputs, training=None):
        features = self.backbone(inputs, training=False) if self.backbone else inputs
        return self.head(self.network(features, training=training), training=training)

    def compile(self, optimizer, arch_optimizer, weight_decay=0.0,
                arch_weight_decay=0.0, jit_compile=False, **kwargs):
        """Sets both optimizers; builds them if the model is already built.

        Args:
            optimizer: updates the weights w.
            arch_optimizer: updates alpha, beta, gamma.
            weight_decay: coupled L2 rate on w. Defaults to 0.
            arch_weight_decay: coupled L2 rate on alpha, beta, gamma.
                Defaults to 0.
            jit_compile: XLA; slower on CPU, worth trying on GPU. Defaults to
                False.
        """
        # Under mixed_float16, Keras wraps `optimizer` in a LossScaleOptimizer;
        # the architecture optimizer needs the same.
        if self.arch_order == 2 and self.dtype_policy.name == "mixed_float16":
            raise ValueError("arch_order=2 is not loss-scaled: use float32 or "
                             "mixed_bfloat16 precision with it")
        super().compile(optimizer=optimizer, jit_compile=jit_compile, **kwargs)
        if (self.dtype_policy.name == "mixed_float16"
                and not isinstance(arch_optimizer, keras.optimizers.LossScaleOptimizer)):
            arch_optimizer = keras.optimizers.LossScaleOptimizer(arch_optimizer)
        self.arch_optimizer = arch_optimizer
        self.weight_decay = weight_decay
        self.arch_weight_decay = arch_weight_decay
        if self.built:
            self.build_optimizers()

    def build_optimizers(self):
        """Creates the optimizer slots now, so `fit` traces train_step once."""
        self.optimizer.build(self.trainable_weights)
        self.arch_optimizer.build(self.arch_parameters)

    def objective_loss(self, batch, training):
        """(loss, pair accuracy or None) of one batch under the objective."""
        if self.objective == "ssl":
            return simclr_loss(self, batch, self.temperature, training)
        x, y = batch
        return supervised_loss(y, self(x, training=training), self.multilabel), None

    def weight_step(self, batch):
        """One update of w on `batch`; returns (loss, pair accuracy or None)."""
        weights = self.trainable_weights
        with tf.GradientTape() as tape:
            loss, accuracy = self.objective_loss(batch, training=True)
            scaled = self.optimizer.scale_loss(loss)  # identity unless float16
        grads = add_l2(tape.gradient(scaled, weights), weights, self.weight_decay,
                       self.optimizer.scale_loss(1.0))
        # Per-replica gradients are summed by the optimizer (tf.distribute).
        self.optimizer.apply(scale_gradients(grads), weights)
        return loss, accuracy

    def arch_gradients(self, train_batch, valid_batch):
        """(gradients w.r.t. alpha, beta, gamma, valid loss), without the L2.

        Scaled by the architecture optimizer's loss scale under float16.
        """
        if self.arch_order == 2:
            return unrolled_arch_gradients(
                self, train_batch, valid_batch, xi=self.optimizer.learning_rate,
                weight_decay=self.weight_decay)
        # Non-trainable variables are invisible to the tape unless watched;
        # not watching w here also spares their gradients.
        arch = [v.value for v in self.arch_parameters]
        with tf.GradientTape(watch_accessed_variables=False) as tape:
            tape.watch(arch)
            arch_loss, _ = self.objective_loss(valid_batch, training=True)
            scaled = self.arch_optimizer.scale_loss(arch_loss)
        return tape.gradient(scaled, arch), arch_loss

    def arch_step(self, train_batch, valid_batch):
        """One update of alpha, beta, gamma; returns the valid loss."""
        grads, arch_loss = self.arch_gradients(train_batch, valid_batch)
        arch = [v.value for v in self.arch_parameters]
        grads = add_l2(grads, arch, self.arch_weight_decay,
                       self.arch_optimizer.scale_loss(1.0))
        self.arch_optimizer.apply(scale_gradients(grads), self.arch_parameters)
        return arch_loss

    def train_step(self, data):
        train_batch, valid_batch = data
        loss, accuracy = self.weight_step(train_batch)
        arch_loss = self.arch_step(train_batch, valid_batch)
        self.loss_tracker.update_state(loss)
        self.arch_loss_tracker.update_state(arch_loss)
        if accuracy is not None:
            self.pair_accuracy_tracker.update_state(accuracy)
        return {m.name: m.result() for m in self.metrics}

    def test_step(self, data):
        loss, accuracy = self.objective_loss(data, training=False)
        self.loss_tracker.update_state(loss)
        if accuracy is not None:
            self.pair_accuracy_tracker.update_state(accuracy)
        return {m.name: m.result() for m in self.metrics if m is not self.arch_loss_tracker}

    def get_config(self):
        config = super().get_config()
        config.update(
            network=keras.saving.serialize_keras_object(self.network),
            head=keras.saving.serialize_keras_object(self.head),
            backbone=(keras.saving.serialize_keras_object(self.backbone)
                      if self.backbone else None),
            objective=self.objective, temperature=self.temperature,
            multilabel=self.multilabel, arch_order=self.arch_order)
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        for key in ("network", "head", "backbone"):
            if config.get(key) is not None:
                config[key] = keras.saving.deserialize_keras_object(config[key])
        return cls(**config)
