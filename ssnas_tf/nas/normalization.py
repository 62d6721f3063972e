"""Batch and layer normalisation with a hand-written backward pass.

TensorFlow fuses no elementwise ops on CPU, so a norm costs one memory pass per
full-size op. Keras's norms are built from generic ops (`tf.nn.moments`, then
broadcast multiplies), and autodiff of them adds more passes (a `Tile` per
mean, the gradient of every product). The closed-form gradients below need
fewer: batch norm's dx folds into dy * a + x * b + c with per-channel a, b, c.
Both give Keras's outputs and gradients to float32 rounding (tests compare
them); together they cut the search step's CPU time by 2-8%
(`benchmarks/norms.py`).

The standard formulas, with xhat = (x - mean) / sqrt(var + eps), g = dy * gamma
and means over the normalised axes:

    dx = (g - mean(g) - xhat * mean(g * xhat)) / sqrt(var + eps)
    dgamma = sum(dy * xhat),  dbeta = sum(dy)   (over the other axes)
"""

import tensorflow as tf


def batch_norm(x, gamma, beta, epsilon):
    """Training-mode batch norm over every axis but the last.

    Args:
        x: (..., C) float tensor.
        gamma, beta: (C,) scale and offset.
        epsilon: added to the variance.

    Returns:
        (y, mean, variance): the normalised x, and the batch mean and biased
        variance (C,) for the moving averages. No gradient flows through the
        last two.
    """
    axes = list(range(len(x.shape) - 1))

    @tf.custom_gradient
    def forward(x, gamma, beta):
        count = tf.cast(tf.reduce_prod(tf.shape(x)[:-1]), x.dtype)
        mean = tf.reduce_mean(x, axes)
        variance = tf.reduce_mean(tf.math.squared_difference(x, mean), axes)
        inv_std = tf.math.rsqrt(variance + epsilon)
        scale = inv_std * gamma
        y = x * scale + (beta - mean * scale)

        def backward(dy, *_):  # the statistics' own gradients are not used
            dbeta = tf.reduce_sum(dy, axes)
            dgamma = (tf.reduce_sum(dy * x, axes) - mean * dbeta) * inv_std
            # gamma is constant over the reduced axes, so mean(g) = gamma * dbeta / n
            # and mean(g * xhat) = gamma * dgamma / n: dx is affine in dy and x.
            x_coef = -scale * inv_std * dgamma / count
            dx = dy * scale + x * x_coef - (scale * dbeta / count + x_coef * mean)
            return dx, dgamma, dbeta

        return (y, mean, variance), backward

    y, mean, variance = forward(x, gamma, beta)
    return y, tf.stop_gradient(mean), tf.stop_gradient(variance)


def layer_norm(x, gamma, beta, epsilon, num_axes):
    """Layer norm over the last `num_axes` axes of x.

    Args:
        x: float tensor.
        gamma, beta: scale and offset of shape x.shape[-num_axes:].
        epsilon: added to the variance.
        num_axes: how many trailing axes are normalised together.
    """
    axes = list(range(len(x.shape) - num_axes, len(x.shape)))
    batch_axes = list(range(len(x.shape) - num_axes))

    @tf.custom_gradient
    def forward(x, gamma, beta):
        mean = tf.reduce_mean(x, axes, keepdims=True)
        variance = tf.reduce_mean(tf.math.squared_difference(x, mean), axes, keepdims=True)
        inv_std = tf.math.rsqrt(variance + epsilon)
        xhat = (x - mean) * inv_std

        def backward(dy):
            g = dy * gamma
            dx = (g - tf.reduce_mean(g, axes, keepdims=True)
                  - xhat * tf.reduce_mean(g * xhat, axes, keepdims=True)) * inv_std
            return dx, tf.reduce_sum(dy * xhat, batch_axes), tf.reduce_sum(dy, batch_axes)

        return xhat * gamma + beta, backward

    return forward(x, gamma, beta)
