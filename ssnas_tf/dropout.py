"""Dropout whose keep mask is drawn in float32, whatever the compute dtype.

Keras's `Dropout` draws its uniforms in the input's dtype. In bfloat16 they take
only 128 values (multiples of 1/128), so rate 0.1 keeps 89.87% of the units
instead of 90%: measured over 4M units, the mean output is 0.9970 of the
input. Drawn in float32, the mask keeps 90.00% and the mean is 0.9984 (what is
left is 1/0.9 rounded to bfloat16). The float32 draw is also faster than the
bfloat16 one on CPU (docs/devices.md, Mixed precision), and in float32 it gives the same
masks as Keras's layer from the same seed.
"""

import keras
from keras import layers, ops


@keras.saving.register_keras_serializable(package="ssnas_tf")
class Dropout(layers.Dropout):
    """`keras.layers.Dropout` (same arguments and config), mask drawn in float32.

    Example:
    >>> Dropout(0.1, dtype="mixed_bfloat16")(x, training=True)
    """

    def call(self, inputs, training=False):
        if not training or self.rate == 0:
            return inputs
        shape = ops.shape(inputs)
        if self.noise_shape is not None:
            shape = [shape[i] if size is None else size
                     for i, size in enumerate(self.noise_shape)]
        # The same draw as tf.nn.experimental.stateless_dropout's, in float32.
        keep = keras.random.uniform(shape, dtype="float32",
                                    seed=self.seed_generator) >= self.rate
        scaled = inputs * ops.cast(1.0 / (1.0 - self.rate), inputs.dtype)
        return ops.where(keep, scaled, ops.zeros((), inputs.dtype))
