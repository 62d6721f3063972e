"""Dense and norm layers of the fusion network, with optional PyTorch defaults.

The BM-NAS reference is PyTorch; two of its module defaults differ from Keras's:

* `nn.Linear` initialises kernel and bias from U(-1/sqrt(fan_in), 1/sqrt(fan_in))
  (kaiming_uniform with a = sqrt(5)); Keras's Dense uses glorot_uniform and a
  zero bias (a kernel std about sqrt(2) to 2x smaller at the fusion widths).
* `nn.BatchNorm` updates its running variance with the *unbiased* batch
  variance (n / (n - 1) times the biased one it normalises with); Keras uses
  the biased one for both.

`torch_defaults=True` gives the PyTorch behaviour; the default is Keras's.

`BatchNorm` and `LayerNorm` are Keras's layers (same weights, same config)
whose training path uses `ssnas_tf.nas.normalization`'s closed-form gradients.
"""

import math

import keras
from keras import backend, layers, ops

from ssnas_tf.nas import normalization


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
    cls = UnbiasedVarianceBatchNorm if torch_defaults else BatchNorm
    return cls(momentum=0.9, epsilon=1e-5, **kwargs)


def _float_dtype(x):
    """The dtype a norm computes in: float32 at least, as Keras's norms do."""
    return backend.result_type(x.dtype, "float32")


@keras.saving.register_keras_serializable(package="ssnas_tf")
class BatchNorm(layers.BatchNormalization):
    """Keras's BatchNormalization, trained through `normalization.batch_norm`.

    The fast path covers the fusion network's use (channels last, scale and
    centre, no mask, renorm or synchronised statistics); everything else, and
    inference, is Keras's own code.
    """

    unbiased_moving_variance = False

    def _fast_path(self, inputs, training, mask):
        return (training and self.trainable and mask is None and not self.synchronized
                and not self.renorm and self.scale and self.center
                and self.axis in (-1, len(inputs.shape) - 1))

    def call(self, inputs, training=None, mask=None):
        if not self._fast_path(inputs, training, mask):
            return super().call(inputs, training=training, mask=mask)
        x = ops.cast(inputs, _float_dtype(inputs))
        outputs, mean, variance = normalization.batch_norm(
            x, ops.cast(self.gamma, x.dtype), ops.cast(self.beta, x.dtype), self.epsilon)
        if self.unbiased_moving_variance:
            count = ops.cast(ops.prod(ops.shape(x)[:-1]), x.dtype)
            variance = variance * count / ops.maximum(count - 1.0, 1.0)
        for moving, batch in ((self.moving_mean, mean), (self.moving_variance, variance)):
            moving.assign(moving * self.momentum
                          + ops.cast(batch, moving.dtype) * (1.0 - self.momentum))
        return ops.cast(outputs, self.compute_dtype)


@keras.saving.register_keras_serializable(package="ssnas_tf")
class UnbiasedVarianceBatchNorm(BatchNorm):
    """BatchNorm whose moving variance tracks the unbiased batch variance.

    It normalises with the biased batch variance, as Keras and torch both do;
    only the moving-average update uses var * n / (n - 1), as torch does.
    """

    unbiased_moving_variance = True

    def call(self, inputs, training=None, mask=None):
        outputs = super().call(inputs, training=training, mask=mask)
        if (training and self.trainable and mask is None
                and not self._fast_path(inputs, training, mask)):
            # Keras's path added (1 - m) * biased; add the rest of (1 - m) * unbiased.
            x = ops.cast(inputs, "float32")
            axes = self._reduction_axes  # set by the parent's build
            n = ops.cast(ops.prod(ops.take(ops.shape(x), axes)), "float32")
            variance = ops.var(x, axis=axes)
            self.moving_variance.assign_add(
                (1.0 - self.momentum) * variance / ops.maximum(n - 1.0, 1.0))
        return outputs


@keras.saving.register_keras_serializable(package="ssnas_tf")
class LayerNorm(layers.LayerNormalization):
    """Keras's LayerNormalization, through `normalization.layer_norm` when the
    normalised axes are the trailing ones (as everywhere in the fusion network)."""

    def call(self, inputs):
        rank = len(inputs.shape)
        axes = sorted(a % rank for a in self.axis)
        if (self.rms_scaling or not (self.scale and self.center)
                or axes != list(range(rank - len(axes), rank))):
            return super().call(inputs)
        x = ops.cast(inputs, _float_dtype(inputs))
        outputs = normalization.layer_norm(
            x, ops.cast(self.gamma, x.dtype), ops.cast(self.beta, x.dtype),
            self.epsilon, len(axes))
        return ops.cast(outputs, self.compute_dtype)
