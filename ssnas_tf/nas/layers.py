"""Dense and batch-norm layers of the fusion network, with optional PyTorch defaults.

The BM-NAS reference is PyTorch; two of its module defaults differ from Keras's:

* `nn.Linear` initialises kernel and bias from U(-1/sqrt(fan_in), 1/sqrt(fan_in))
  (kaiming_uniform with a = sqrt(5)); Keras's Dense uses glorot_uniform and a
  zero bias (a kernel std about sqrt(2) to 2x smaller at the fusion widths).
* `nn.BatchNorm` updates its running variance with the *unbiased* batch
  variance (n / (n - 1) times the biased one it normalises with); Keras uses
  the biased one for both.

`torch_defaults=True` gives the PyTorch behaviour; the default is Keras's.
"""

import math

import keras
from keras import layers, ops


def dense(units, fan_in, torch_defaults=False, **kwargs):
    """A Dense layer; with `torch_defaults`, torch.nn.Linear's initialisation.

    Args:
        units: output width.
        fan_in: input width (the bias bound needs it before the layer is built).
        torch_defaults: U(+-1/sqrt(fan_in)) for kernel and bias instead of
            glorot_uniform and zeros. Defaults to False.
        **kwargs: passed to `keras.layers.Dense`.
    """
    if torch_defaults:
        bound = 1.0 / math.sqrt(fan_in)
        # VarianceScaling(1/3, fan_in, uniform) has limit sqrt(3 * scale / fan_in).
        kwargs.update(
            kernel_initializer=keras.initializers.VarianceScaling(
                1.0 / 3.0, mode="fan_in", distribution="uniform"),
            bias_initializer=keras.initializers.RandomUniform(-bound, bound))
    return layers.Dense(units, **kwargs)


def batch_norm(torch_defaults=False, **kwargs):
    """BatchNormalization(momentum 0.9, epsilon 1e-5) as torch's defaults.

    Args:
        torch_defaults: update the moving variance with the unbiased batch
            variance. Defaults to False.
        **kwargs: passed to the layer.
    """
    cls = UnbiasedVarianceBatchNorm if torch_defaults else layers.BatchNormalization
    return cls(momentum=0.9, epsilon=1e-5, **kwargs)


@keras.saving.register_keras_serializable(package="ssnas_tf")
class UnbiasedVarianceBatchNorm(layers.BatchNormalization):
    """BatchNormalization whose moving variance tracks the unbiased batch variance.

    It normalises with the biased batch variance, as Keras and torch both do;
    only the moving-average update uses var * n / (n - 1), as torch does.
    """

    def call(self, inputs, training=None, mask=None):
        outputs = super().call(inputs, training=training, mask=mask)
        if training and self.trainable and mask is None:
            x = ops.cast(inputs, "float32")
            axes = self._reduction_axes  # set by the parent's build
            n = ops.cast(ops.prod(ops.take(ops.shape(x), axes)), "float32")
            variance = ops.var(x, axis=axes)
            # The parent added (1 - m) * biased; add the rest of (1 - m) * unbiased.
            self.moving_variance.assign_add(
                (1.0 - self.momentum) * variance / ops.maximum(n - 1.0, 1.0))
        return outputs
