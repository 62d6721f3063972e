"""The fusion network's norms (hand-written gradients) against Keras's own layers."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from ssnas_tf.nas.layers import BatchNorm, LayerNorm, UnbiasedVarianceBatchNorm


def _pair(ours, theirs, shape, seed):
    """Builds both layers on `shape` with the same random gamma and beta."""
    rng = np.random.default_rng(seed)
    for layer in (ours, theirs):
        layer.build(shape)
    for a, b in zip(ours.weights, theirs.weights):
        value = rng.normal(size=a.shape).astype("float32") if a.trainable else b.numpy()
        a.assign(value)
        b.assign(value)


def _outputs_and_gradients(layer, x, upstream, **call_kwargs):
    x = tf.convert_to_tensor(x)
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = layer(x, **call_kwargs)
        loss = tf.reduce_sum(tf.sin(y) * upstream)  # a non-trivial dy
    grads = tape.gradient(loss, [x] + layer.trainable_weights)
    return [y] + grads


def _assert_close(ours, theirs):
    for a, b in zip(ours, theirs):
        scale = float(tf.reduce_max(tf.abs(b)))
        np.testing.assert_allclose(a, b, rtol=0, atol=2e-6 * max(scale, 1.0))


@pytest.mark.parametrize("shape", [(32, 16, 24), (9, 24)])
@pytest.mark.parametrize("cls, keras_var", [(BatchNorm, False), (UnbiasedVarianceBatchNorm, True)])
def test_batch_norm_matches_keras_in_training(shape, cls, keras_var):
    ours = cls(momentum=0.9, epsilon=1e-5)
    theirs = keras.layers.BatchNormalization(momentum=0.9, epsilon=1e-5)
    _pair(ours, theirs, shape, seed=0)
    rng = np.random.default_rng(1)
    x = (3.0 + 2.0 * rng.normal(size=shape)).astype("float32")
    upstream = rng.normal(size=shape).astype("float32")
    for _ in range(2):  # two steps, so the moving averages move twice
        _assert_close(_outputs_and_gradients(ours, x, upstream, training=True),
                      _outputs_and_gradients(theirs, x, upstream, training=True))
    n = np.prod(shape[:-1])
    variance = x.reshape(-1, shape[-1]).var(axis=0) * (n / (n - 1) if keras_var else 1.0)
    expected_var = 0.19 * variance + 0.81  # two updates of momentum 0.9 from ones
    np.testing.assert_allclose(ours.moving_variance, expected_var, rtol=1e-5)
    np.testing.assert_allclose(ours.moving_mean, theirs.moving_mean, rtol=1e-5, atol=1e-6)
    # Inference is Keras's own code path on the same statistics.
    if not keras_var:
        _assert_close([ours(x, training=False)], [theirs(x, training=False)])


@pytest.mark.parametrize("shape, axis", [((8, 16, 24), (-2, -1)), ((8, 16, 24), -1), ((5, 7), -1)])
def test_layer_norm_matches_keras(shape, axis):
    ours = LayerNorm(axis=axis, epsilon=1e-5)
    theirs = keras.layers.LayerNormalization(axis=axis, epsilon=1e-5)
    _pair(ours, theirs, shape, seed=2)
    rng = np.random.default_rng(3)
    x = (1.0 + 4.0 * rng.normal(size=shape)).astype("float32")
    upstream = rng.normal(size=shape).astype("float32")
    _assert_close(_outputs_and_gradients(ours, x, upstream),
                  _outputs_and_gradients(theirs, x, upstream))


def test_norms_compute_in_float32_under_mixed_bfloat16():
    policy = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_bfloat16")
    try:
        norms = [LayerNorm(axis=(-2, -1), epsilon=1e-5), BatchNorm(epsilon=1e-5)]
    finally:
        keras.config.set_dtype_policy(policy)
    x = tf.cast(tf.random.stateless_normal((4, 6, 8), (0, 1)), "bfloat16")
    for norm in norms:
        with tf.GradientTape() as tape:
            y = norm(x, training=True) if isinstance(norm, BatchNorm) else norm(x)
            loss = tf.reduce_sum(tf.cast(y, "float32") ** 2)
        assert y.dtype == tf.bfloat16
        grads = tape.gradient(loss, norm.trainable_weights)
        assert all(g.dtype == tf.float32 and np.isfinite(g).all() for g in grads)


def test_other_uses_fall_back_to_keras():
    """Renorm and a channels-first axis take Keras's path, unchanged."""
    x = np.random.default_rng(4).normal(size=(6, 5, 4)).astype("float32")
    for kwargs in (dict(axis=1), dict(renorm=True)):
        ours, theirs = BatchNorm(**kwargs), keras.layers.BatchNormalization(**kwargs)
        _pair(ours, theirs, x.shape, seed=5)
        _assert_close([ours(x, training=True)], [theirs(x, training=True)])
    ours, theirs = LayerNorm(axis=1), keras.layers.LayerNormalization(axis=1)
    _pair(ours, theirs, x.shape, seed=6)
    _assert_close([ours(x)], [theirs(x)])
