"""Optimizer set-up shared by every training loop: Adam traced in fewer ops,
and optimizers built before `fit` traces its step.

Tracing, not arithmetic, is most of a short run's time on CPU
(docs/performance.md). Two costs sit in the optimizer:

- Keras builds an optimizer lazily, on its first `apply`, which under `fit`
  happens inside the traced train step: its slot variables are then created
  in graph mode and lifted out one by one, about 20 ms each. Built eagerly
  (`build_optimizer`) they take about 1 ms each (a RandomNet of 244 layers on
  mfeat: 416 slots, `fit`'s first call 22.4 s -> 11-12 s, identical weights).
- Keras's `Adam.update_step` recomputes the step's scalars (learning rate,
  bias corrections) for every variable, through `keras.ops`, which costs
  about 1-2 ms of Python per op in a trace. `Adam` below computes them once
  per step and dtype and updates each variable with plain TensorFlow ops:
  the same operations on the same values, so the same numbers to the bit
  (tested against `keras.optimizers.Adam`), in fewer ops (the default run,
  profiled: the update trace 7.2 s -> 2.7 s).
"""

import keras
import tensorflow as tf


@keras.saving.register_keras_serializable(package="ssnas_tf")
class Adam(keras.optimizers.Adam):
    """`keras.optimizers.Adam` with the same arithmetic, cheaper to trace.

    Dense gradients without amsgrad take the short path; anything else
    (sparse gradients, amsgrad) falls back to Keras's own update.
    """

    _step_scalars = None

    def _backend_update_step(self, grads, trainable_variables, learning_rate):
        self._step_scalars = {}  # per apply: tensors of this step's graph only
        try:
            super()._backend_update_step(grads, trainable_variables, learning_rate)
        finally:
            self._step_scalars = None

    def _scalars(self, learning_rate, variable):
        """(alpha, 1 - beta_1, 1 - beta_2, epsilon) as Keras's update_step
        computes them, once per dtype and device."""
        dtype = variable.dtype
        key = (dtype, getattr(variable, "device", None))
        if key not in self._step_scalars:
            lr = tf.cast(learning_rate, dtype)
            local_step = tf.cast(self.iterations.value + 1, dtype)
            beta_1_power = tf.pow(tf.cast(self.beta_1, dtype), local_step)
            beta_2_power = tf.pow(tf.cast(self.beta_2, dtype), local_step)
            alpha = lr * tf.sqrt(1 - beta_2_power) / (1 - beta_1_power)
            self._step_scalars[key] = (
                alpha, tf.constant(1 - self.beta_1, dtype), tf.constant(1 - self.beta_2, dtype),
                tf.constant(self.epsilon, dtype))
        return self._step_scalars[key]

    def update_step(self, gradient, variable, learning_rate):
        if (self._step_scalars is None or self.amsgrad
                or isinstance(gradient, tf.IndexedSlices)):
            return super().update_step(gradient, variable, learning_rate)
        alpha, one_minus_beta_1, one_minus_beta_2, epsilon = self._scalars(
            learning_rate, variable)
        gradient = tf.cast(gradient, variable.dtype)
        index = self._get_variable_index(variable)
        m = self._momentums[index].value
        v = self._velocities[index].value
        m.assign_add((gradient - m) * one_minus_beta_1)
        v.assign_add((tf.square(gradient) - v) * one_minus_beta_2)
        variable = variable.value if isinstance(variable, keras.Variable) else variable
        variable.assign_sub(m * alpha / (tf.sqrt(v) + epsilon))


def build_optimizer(model):
    """Builds `model.optimizer` for `model.trainable_variables` (once), so
    `fit` does not create its slots inside the traced step. Call after
    `compile`, in the same distribution scope; returns the optimizer."""
    optimizer = model.optimizer
    if not optimizer.built:
        optimizer.build(model.trainable_variables)
    return optimizer
