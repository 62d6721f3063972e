"""Heads that sit on the fused feature: SimCLR projection head and classifier."""

import keras
from keras import layers


@keras.saving.register_keras_serializable(package="ssnas_tf")
class ProjectionHead(layers.Layer):
    """SimCLR projection head g: Dense -> BN -> ReLU -> Dense (no final ReLU).

    Args:
        output_dim: projection size. Defaults to 128.
        hidden_dim: hidden width; None means the input width, as in SimCLR.
            Defaults to None.

    The head computes in float32 under mixed precision too (its `dtype`
    defaults to "float32"), so the projections NT-Xent reads are float32.

    Reference: Chen et al., ICML 2020, §2.1.
    """

    def __init__(self, output_dim=128, hidden_dim=None, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        self.output_dim = output_dim
        self.hidden_dim = hidden_dim

    def build(self, input_shape):
        hidden = self.hidden_dim or input_shape[-1]
        # Sublayers take the head's policy, not the global one.
        dtype = self.dtype_policy
        self.hidden = layers.Dense(hidden, use_bias=False, dtype=dtype)
        self.hidden.build(input_shape)
        self.bn = layers.BatchNormalization(momentum=0.9, epsilon=1e-5, dtype=dtype)
        self.bn.build((None, hidden))
        self.out = layers.Dense(self.output_dim, dtype=dtype)
        self.out.build((None, hidden))

    def call(self, x, training=None):
        h = keras.ops.relu(self.bn(self.hidden(x), training=training))
        return self.out(h)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.output_dim)

    def get_config(self):
        config = super().get_config()
        config.update(output_dim=self.output_dim, hidden_dim=self.hidden_dim)
        return config


def classifier_head(num_classes, name="classifier"):
    """The linear classifier (logits) that replaces g for the downstream task.

    float32 under mixed precision too, so losses and metrics see float32 logits.
    """
    return layers.Dense(num_classes, name=name, dtype="float32")
