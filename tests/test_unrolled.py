"""Tests for the second-order (unrolled) architecture gradient, ssnas_tf.nas.unrolled,
against a finite-difference estimate of d L_val(w - xi * dL_train/dw(w, a), a) / da."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from ssnas_tf.nas.architect import SearchModel
from ssnas_tf.nas.model_search import SearchNetwork

N = 6
XI, WEIGHT_DECAY = 0.5, 0.01


@pytest.fixture
def float64():
    """Float64 everywhere, so that finite differences resolve the gradient."""
    keras.mixed_precision.set_global_policy("float64")
    yield
    keras.mixed_precision.set_global_policy("float32")


def _features(rng):
    return {"a": rng.normal(size=(N, 3)), "b": rng.normal(size=(N, 2, 3))}


def _model(rng, arch_order=2):
    network = SearchNetwork(["a", "b"], num_cells=1, num_steps=1, multiplier=1,
                            channels=3, length=2, dropout=0.0,
                            primitives=("sum", "concat_fc"))
    # A plain Dense head follows the float64 policy (the library heads are float32).
    model = SearchModel(network, keras.layers.Dense(2), objective="supervised",
                        arch_order=arch_order)
    model(_features(rng))
    for v in model.arch_parameters:  # away from the uniform start
        v.assign(rng.normal(size=v.shape))
    model.compile(keras.optimizers.SGD(XI), keras.optimizers.SGD(1.0),
                  weight_decay=WEIGHT_DECAY)
    return model


def _loss(model, batch):
    return float(model.objective_loss(batch, training=True)[0])


def _unrolled_valid_loss(model, train, valid, arch_values):
    """L_val(w - xi * (dL_train/dw + lambda w), a) at a = arch_values, by hand."""
    weights = model.trainable_weights
    saved = [np.asarray(w) for w in weights]
    for v, value in zip(model.arch_parameters, arch_values):
        v.assign(value)
    with tf.GradientTape() as tape:
        loss, _ = model.objective_loss(train, training=True)
    grads = tape.gradient(loss, [w.value for w in weights])
    for w, g, w0 in zip(weights, grads, saved):
        w.assign(w0 - XI * (np.asarray(g) + WEIGHT_DECAY * w0))
    value = _loss(model, valid)
    for w, w0 in zip(weights, saved):
        w.assign(w0)
    return value


def _finite_difference_gradient(model, train, valid, h=1e-5):
    arch = [np.asarray(v) for v in model.arch_parameters]
    grads = []
    for k, a in enumerate(arch):
        g = np.zeros_like(a)
        for index in np.ndindex(a.shape):
            values = []
            for sign in (1, -1):
                moved = [x.copy() for x in arch]
                moved[k][index] += sign * h
                values.append(_unrolled_valid_loss(model, train, valid, moved))
            g[index] = (values[0] - values[1]) / (2 * h)
        grads.append(g)
    for v, value in zip(model.arch_parameters, arch):
        v.assign(value)
    return grads


def _batch(rng):
    return _features(rng), rng.integers(0, 2, size=N).astype("int32")


def test_second_order_gradient_matches_finite_differences(float64):
    rng = np.random.default_rng(0)
    model = _model(rng)
    train, valid = _batch(rng), _batch(rng)
    weights_before = [np.asarray(w) for w in model.trainable_weights]
    expected = _finite_difference_gradient(model, train, valid)

    grads, valid_loss = model.arch_gradients(train, valid)
    # The Hessian-vector product is itself a central difference (DARTS's
    # eps = 0.01 / ||v||): agreement to ~1e-3 of the largest entry.
    scale = max(np.abs(w).max() for w in expected)
    for got, want in zip(grads, expected):
        np.testing.assert_allclose(np.asarray(got), want, rtol=1e-2, atol=1e-3 * scale)
    # The weights are restored, and the loss is the valid loss at w'.
    for w, before in zip(model.trainable_weights, weights_before):
        np.testing.assert_array_equal(w, before)
    arch = [np.asarray(v) for v in model.arch_parameters]
    np.testing.assert_allclose(float(valid_loss),
                               _unrolled_valid_loss(model, train, valid, arch), rtol=1e-9)

    # The first-order gradient is clearly different here, so the match above
    # is the second-order term at work.
    first = _model(np.random.default_rng(0), arch_order=1)
    first.set_weights(model.get_weights())
    first_grads, _ = first.arch_gradients(train, valid)
    gap = max(np.abs(np.asarray(f) - w).max() for f, w in zip(first_grads, expected))
    assert gap > 0.05 * scale


def _batch_statistics(model):
    return [np.asarray(v) for layer in model._flatten_layers()
            if isinstance(layer, keras.layers.BatchNormalization)
            for v in (layer.moving_mean, layer.moving_variance)]


def test_unrolled_gradient_leaves_weights_and_statistics_alone(float64):
    rng = np.random.default_rng(1)
    model = _model(rng)
    train, valid = _batch(rng), _batch(rng)
    stats, w0 = _batch_statistics(model), [np.asarray(w) for w in model.trainable_weights]
    assert stats  # reshapes and concat_fc have batch norms
    model.arch_gradients(train, valid)
    for before, after in zip(stats + w0, _batch_statistics(model) + model.trainable_weights):
        np.testing.assert_array_equal(before, after)
    # A whole step moves both groups (and the statistics, once, in the weight step).
    a0 = [np.asarray(v) for v in model.arch_parameters]
    logs = model.train_step((train, valid))
    assert np.isfinite(float(logs["arch_loss"]))
    assert all(not np.array_equal(a, v) for a, v in zip(a0, model.arch_parameters))
    assert all(not np.array_equal(w, v) for w, v in zip(w0, model.trainable_weights))


def test_arch_order_is_validated_and_saved():
    network = SearchNetwork(["a", "b"], num_cells=1, num_steps=1, multiplier=1,
                            channels=3, length=2)
    with pytest.raises(ValueError, match="arch_order"):
        SearchModel(network, keras.layers.Dense(2), arch_order=3)
    model = SearchModel(network, keras.layers.Dense(2), arch_order=2)
    assert model.get_config()["arch_order"] == 2
