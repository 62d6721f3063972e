"""Brings backbone features of any shape to the common (N, L, C) layout.

`docs/fidelity.md` (search space): spatial maps are adaptively max-pooled to
a sqrt(L) x sqrt(L) grid, 1-D vectors become 1x1 maps that pooling repeats L times, sequences are
adaptively max-pooled to L steps; then a pointwise linear map to C channels,
batch norm, ReLU and dropout. Every pooling uses PyTorch's adaptive window rule
(the reference's `adaptive_max_pool`), also when it upsamples: a sequence of
T < L steps gives windows of one or two steps, never nearest-index picks.
"""

import math

import keras
import tensorflow as tf
from keras import layers, ops

from ssnas_tf.dropout import Dropout
from ssnas_tf.nas.layers import batch_norm, dense


def adaptive_windows(size_in, size_out):
    """PyTorch's adaptive pooling windows: [floor(i*n/m), ceil((i+1)*n/m))."""
    return [(i * size_in // size_out, -(-(i + 1) * size_in // size_out))
            for i in range(size_out)]


def uniform_window(size_in, size_out):
    """(size, stride) when all adaptive windows have one size and stride, else None."""
    windows = adaptive_windows(size_in, size_out)
    sizes = {stop - start for start, stop in windows}
    strides = {b[0] - a[0] for a, b in zip(windows, windows[1:])} or {1}
    # Upsampling repeats windows (stride 0), which max_pool2d cannot express.
    if len(sizes) == 1 and len(strides) == 1 and min(strides) > 0:
        return sizes.pop(), strides.pop()
    return None


def adaptive_max_pool_2d(x, side):
    """Adaptive max pooling of (N, H, W, C) maps to (N, side, side, C)."""
    rows, cols = uniform_window(x.shape[1], side), uniform_window(x.shape[2], side)
    if rows and cols:
        # One pooling op over the whole map: a single pass over the (large) input.
        return tf.nn.max_pool2d(x, (rows[0], cols[0]), (rows[1], cols[1]), "VALID")
    return adaptive_max_pool(adaptive_max_pool(x, 1, side), 2, side)


def adaptive_max_pool(x, axis, size_out):
    """Adaptive max pooling of `x` along one static axis."""
    size_in = x.shape[axis]
    if size_in == size_out:
        return x
    if size_in % size_out == 0:
        # Even windows: one reshape + max, much cheaper than slicing.
        shape = list(ops.shape(x))
        shape[axis:axis + 1] = [size_out, size_in // size_out]
        return ops.max(ops.reshape(x, shape), axis=axis + 1)
    windows = adaptive_windows(size_in, size_out)
    if size_in < size_out:
        # Upsampling windows hold one or two steps: the max of two gathers.
        first = ops.take(x, [start for start, _ in windows], axis=axis)
        last = ops.take(x, [stop - 1 for _, stop in windows], axis=axis)
        return ops.maximum(first, last)
    pieces = []
    for start, stop in windows:
        index = [slice(None)] * len(x.shape)
        index[axis] = slice(start, stop)
        pieces.append(ops.max(x[tuple(index)], axis=axis, keepdims=True))
    return ops.concatenate(pieces, axis=axis)


@keras.saving.register_keras_serializable(package="ssnas_tf")
class FeatureReshape(layers.Layer):
    """Maps one backbone feature to (N, length, channels).

    Accepts (N, D) vectors, (N, T, D) sequences and (N, H, W, D) maps
    (channels-last). Spatial maps need `length` to be a perfect square.

    Args:
        channels: C, output channels. Defaults to 192.
        length: L, output positions. Defaults to 16.
        dropout: dropout rate after the ReLU. Defaults to 0.1.
        torch_defaults: PyTorch's Dense init and BN variance
            (`ssnas_tf.nas.layers`). Defaults to False.

    Example:
    >>> FeatureReshape(channels=8, length=4)(np.zeros((2, 8, 5, 3))).shape
    (2, 4, 8)
    """

    def __init__(self, channels=192, length=16, dropout=0.1, torch_defaults=False,
                 **kwargs):
        super().__init__(**kwargs)
        self.channels = channels
        self.length = length
        self.dropout = dropout
        self.torch_defaults = torch_defaults
        # Under mixed precision, pool in the input's dtype and cast after:
        # max-pooling commutes with the (monotonic) cast, and casting the
        # pooled map is much cheaper than casting a large backbone map.
        self.autocast = False

    def build(self, input_shape):
        rank = len(input_shape)
        if rank not in (2, 3, 4):
            raise ValueError(
                f"{self.name}: a feature must be (N, D), (N, T, D) or "
                f"(N, H, W, D); got shape {tuple(input_shape)}")
        if rank == 4 and math.isqrt(self.length) ** 2 != self.length:
            raise ValueError(
                f"{self.name}: spatial feature {tuple(input_shape)} needs "
                f"length to be a perfect square, got {self.length}")
        self.dense = dense(self.channels, input_shape[-1], self.torch_defaults,
                           dtype=self.dtype_policy)
        self.dense.build((None, input_shape[-1]))
        self.bn = batch_norm(self.torch_defaults, dtype=self.dtype_policy)
        # Vectors are normalised before being repeated to L positions, except
        # with torch's unbiased variance, whose n / (n - 1) counts the copies.
        self.repeat_vector_first = rank == 2 and self.torch_defaults
        self.bn.build((None, self.channels) if rank == 2 and not self.repeat_vector_first
                      else (None, self.length, self.channels))
        self.dropout_layer = Dropout(self.dropout, dtype=self.dtype_policy)

    def pool(self, x):
        """(N, ...) -> (N, L, D) before the channel map."""
        if len(x.shape) == 2:
            return x  # repeated in `call`, after the pointwise maps
        if len(x.shape) == 3:
            return adaptive_max_pool(x, 1, self.length)
        side = math.isqrt(self.length)
        x = adaptive_max_pool_2d(x, side)
        return ops.reshape(x, (-1, self.length, x.shape[-1]))

    def repeat(self, z):
        """(N, C) -> (N, L, C), L identical positions."""
        return ops.broadcast_to(z[:, None, :], (ops.shape(z)[0], self.length, self.channels))

    def call(self, x, training=None):
        x = ops.cast(self.pool(x), self.compute_dtype)
        z = self.dense(x)
        if self.repeat_vector_first:
            z = self.repeat(z)
        z = ops.relu(self.bn(z, training=training))
        if len(z.shape) == 2:
            # A vector is a 1x1 map repeated L times: linear map, BN (same
            # batch statistics over identical copies) and ReLU commute with the
            # repeat, so repeat last; dropout still acts per position.
            z = self.repeat(z)
        return self.dropout_layer(z, training=training)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.length, self.channels)

    def get_config(self):
        config = super().get_config()
        config.update(channels=self.channels, length=self.length,
                      dropout=self.dropout, torch_defaults=self.torch_defaults)
        return config
