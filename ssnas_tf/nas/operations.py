"""Binary fusion primitives of the BM-NAS search space, in one registry by name.

Every primitive maps two tensors x, y of shape (N, L, C) to one of the same
shape, and is called as `op([x, y])`. Constructors share one signature
(`channels`, `length`, `dropout`, `torch_defaults`) so mixed ops can build any
of them by name.

Names (and the BM-NAS reference code's names):

| ssnas_tf     | BM-NAS       | maths                                              |
|--------------|--------------|----------------------------------------------------|
| `zero`       | (absent)     | 0                                                  |
| `sum`        | Sum          | x + y                                              |
| `attention`  | ScaleDotAttn | LN(dropout(softmax(x y^T / sqrt(C)) y))            |
| `linear_glu` | LinearGLU    | GLU(BN([x, y] W + b)), W: 2C -> 2C, then dropout   |
| `concat_fc`  | ConcatFC     | dropout(ReLU(BN([x, y] W + b))), W: 2C -> C        |

Reference: Yin, Huang & Zhang, "BM-NAS: Bilevel Multimodal Neural Architecture
Search", AAAI 2022.
"""

import math

import keras
from keras import layers, ops

from ssnas_tf.dropout import Dropout
from ssnas_tf.nas.layers import LayerNorm, batch_norm, dense

PAPER_PRIMITIVES = ("zero", "sum", "attention", "linear_glu", "concat_fc")
REFERENCE_PRIMITIVES = ("sum", "attention", "linear_glu", "concat_fc")


class _Primitive(layers.Layer):
    """Shared constructor and config of all primitives.

    `torch_defaults` gives Dense and BN layers PyTorch's defaults
    (`ssnas_tf.nas.layers`); primitives without them ignore it.
    """

    def __init__(self, channels, length, dropout=0.1, torch_defaults=False, **kwargs):
        super().__init__(**kwargs)
        self.channels = channels
        self.length = length
        self.dropout = dropout
        self.torch_defaults = torch_defaults

    def compute_output_shape(self, input_shape):
        return input_shape[0]

    def get_config(self):
        config = super().get_config()
        config.update(channels=self.channels, length=self.length,
                      dropout=self.dropout, torch_defaults=self.torch_defaults)
        return config


@keras.saving.register_keras_serializable(package="ssnas_tf")
class Zero(_Primitive):
    """Zero(x, y) = 0: lets the search switch a step off (paper's set only)."""

    def call(self, inputs):
        return ops.zeros_like(inputs[0])


@keras.saving.register_keras_serializable(package="ssnas_tf")
class Sum(_Primitive):
    """Sum(x, y) = x + y."""

    def call(self, inputs):
        return inputs[0] + inputs[1]


@keras.saving.register_keras_serializable(package="ssnas_tf")
class ScaledDotAttention(_Primitive):
    """Scaled dot-product attention over positions, query x, key = value = y.

    No learned projections; as in the BM-NAS code, the output passes dropout
    and a LayerNorm over (L, C).
    """

    def build(self, input_shape):
        self.dropout_layer = Dropout(self.dropout, dtype=self.dtype_policy)
        self.norm = LayerNorm(axis=(-2, -1), epsilon=1e-5, dtype=self.dtype_policy)
        self.norm.build(input_shape[0])

    def call(self, inputs, training=None):
        x, y = inputs
        scores = ops.matmul(x, ops.transpose(y, (0, 2, 1)))
        attn = ops.softmax(scores / math.sqrt(self.channels), axis=-1)
        out = self.dropout_layer(ops.matmul(attn, y), training=training)
        return self.norm(out)


class _ConcatLinear(_Primitive):
    """[x, y] -> pointwise linear -> batch norm; subclasses finish it."""

    out_factor = 1

    def build(self, input_shape):
        n, length, channels = input_shape[0]
        self.dense = dense(self.out_factor * self.channels, 2 * channels,
                           self.torch_defaults, dtype=self.dtype_policy)
        self.dense.build((n, length, 2 * channels))
        self.bn = batch_norm(self.torch_defaults, dtype=self.dtype_policy)
        self.bn.build((n, length, self.out_factor * self.channels))
        self.dropout_layer = Dropout(self.dropout, dtype=self.dtype_policy)

    def linear(self, inputs, training):
        x, y = inputs
        if x is y:
            # A search-cell step fuses t with itself: [t, t] W = t (W_x + W_y),
            # half the matmul of the concat, and no concat.
            kernel_x, kernel_y = ops.split(self.dense.kernel, 2, axis=0)  # split: see LinearGLU
            z = ops.matmul(x, kernel_x + kernel_y)
            z = z + self.dense.bias
        else:
            z = self.dense(ops.concatenate(inputs, axis=-1))
        return self.bn(z, training=training)


@keras.saving.register_keras_serializable(package="ssnas_tf")
class LinearGLU(_ConcatLinear):
    """GLU over a 2C -> 2C linear map of [x, y]: first half * sigmoid(second)."""

    out_factor = 2

    def call(self, inputs, training=None):
        # split, not slicing: its gradient is a concat, not two scatters
        value, gate = ops.split(self.linear(inputs, training), 2, axis=-1)
        gated = value * ops.sigmoid(gate)
        return self.dropout_layer(gated, training=training)


@keras.saving.register_keras_serializable(package="ssnas_tf")
class ConcatFC(_ConcatLinear):
    """ReLU over a 2C -> C linear map of [x, y] (with BN), then dropout."""

    def call(self, inputs, training=None):
        z = ops.relu(self.linear(inputs, training))
        return self.dropout_layer(z, training=training)


PRIMITIVES = {
    "zero": Zero,
    "sum": Sum,
    "attention": ScaledDotAttention,
    "linear_glu": LinearGLU,
    "concat_fc": ConcatFC,
}


def check_primitive_names(names, field="primitives"):
    """Raises ValueError naming `field` if a name is not a registered primitive."""
    for i, name in enumerate(names):
        if name not in PRIMITIVES:
            raise ValueError(
                f"{field}[{i}]: unknown primitive '{name}'; known primitives: "
                f"{', '.join(PRIMITIVES)}")


def make_primitive(primitive, channels, length, dropout=0.1, attention_dropout=None,
                   torch_defaults=False, **kwargs):
    """Builds the primitive registered under the name `primitive`.

    Args:
        primitive: a name in `PRIMITIVES`.
        channels, length: C and L.
        dropout: the primitive's dropout rate. Defaults to 0.1.
        attention_dropout: `attention`'s rate instead of `dropout`; None
            means `dropout`. (The BM-NAS code hard-codes 0.1.) Defaults to None.
        torch_defaults: PyTorch's Dense init and BN variance. Defaults to False.
        **kwargs: layer keyword arguments, such as `name`.
    """
    check_primitive_names([primitive])
    if primitive == "attention" and attention_dropout is not None:
        dropout = attention_dropout
    return PRIMITIVES[primitive](channels=channels, length=length, dropout=dropout,
                                 torch_defaults=torch_defaults, **kwargs)
