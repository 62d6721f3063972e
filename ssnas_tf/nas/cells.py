"""Pieces shared by the search-time and the derived fusion networks.

Both cells end the same way (`CellOutput`) and both networks end the same way
(`FusionOutput`); each cell or network owns one of these layers.
"""

import keras
from keras import layers, ops

from ssnas_tf.dropout import Dropout
from ssnas_tf.nas.layers import LayerNorm, batch_norm, dense


def check_feature_names(layer_name, input_names, input_shape):
    """Raises ValueError naming the features a network reads but is not given."""
    missing = [n for n in input_names if n not in input_shape]
    if missing:
        raise ValueError(
            f"{layer_name}: features {missing} are missing from the inputs "
            f"(got {sorted(input_shape)})")


@keras.saving.register_keras_serializable(package="ssnas_tf")
class CellOutput(layers.Layer):
    """A cell's output: its last inner nodes (projected to C), + x, LayerNorm.

    Called as `block(nodes, x)` with `node_multiplier` tensors in `nodes` and
    the cell input x, all (N, L, C). With more than one node, the concat is
    mapped back to C channels (pointwise linear, BN, ReLU, dropout).

    Args:
        node_multiplier: how many inner nodes form the output. Defaults to 1.
        dropout: dropout after the projection. Defaults to 0.1.
        torch_defaults: PyTorch's Dense init and BN variance
            (`ssnas_tf.nas.layers`). Defaults to False.
    """

    def __init__(self, node_multiplier=1, dropout=0.1, torch_defaults=False, **kwargs):
        super().__init__(**kwargs)
        self.node_multiplier = node_multiplier
        self.dropout = dropout
        self.torch_defaults = torch_defaults

    def build(self, input_shape):
        """`input_shape` is the (N, L, C) shape of one node."""
        n, length, channels = input_shape
        if self.node_multiplier > 1:
            fan_in = self.node_multiplier * channels
            self.project = dense(channels, fan_in, self.torch_defaults, dtype=self.dtype_policy)
            self.project.build((n, length, fan_in))
            self.project_bn = batch_norm(self.torch_defaults, dtype=self.dtype_policy)
            self.project_bn.build((n, length, channels))
            self.project_dropout = Dropout(self.dropout, dtype=self.dtype_policy)
        self.norm = LayerNorm(axis=(-2, -1), epsilon=1e-5, dtype=self.dtype_policy)
        self.norm.build(input_shape)

    def call(self, nodes, x, training=None):
        if self.node_multiplier > 1:
            out = ops.concatenate(nodes, axis=-1)
            out = self.project_bn(self.project(out), training=training)
            out = self.project_dropout(ops.relu(out), training=training)
        else:
            out = nodes[-1]
        return self.norm(out + x)

    def compute_output_shape(self, nodes_shape, x_shape):
        return x_shape

    def get_config(self):
        config = super().get_config()
        config.update(node_multiplier=self.node_multiplier, dropout=self.dropout,
                      torch_defaults=self.torch_defaults)
        return config


@keras.saving.register_keras_serializable(package="ssnas_tf")
class FusionOutput(layers.Layer):
    """A network's output: concat of its output cells -> LayerNorm -> ReLU -> flatten.

    Called on a list of (N, L, C) tensors; returns (N, L * len(list) * C).
    """

    def build(self, input_shape):
        n, length, channels = input_shape[0]
        self.norm = LayerNorm(axis=(-2, -1), epsilon=1e-5, dtype=self.dtype_policy)
        self.norm.build((n, length, len(input_shape) * channels))

    def call(self, cell_outputs):
        out = ops.concatenate(cell_outputs, axis=-1)
        out = ops.relu(self.norm(out))
        return ops.reshape(out, (-1, out.shape[1] * out.shape[2]))

    def compute_output_shape(self, input_shape):
        n, length, channels = input_shape[0]
        return (n, length * len(input_shape) * channels)
