"""Tests for ssnas_tf.nas.operations: the binary fusion ops of the BM-NAS search space."""

import keras
import numpy as np
import pytest

from ssnas_tf.nas.operations import (PAPER_PRIMITIVES, PRIMITIVES, REFERENCE_PRIMITIVES,
                                 make_primitive)
from helpers import randomise_weights

N, L, C = 3, 4, 8
EPS = 1e-5  # LayerNorm / BatchNorm epsilon of the reference code

# Trainable variables: attention = LayerNorm (gamma, beta); the two linear ops =
# Dense (kernel, bias) + BatchNorm (gamma, beta).
TRAINABLE_WEIGHTS = {"zero": 0, "sum": 0, "attention": 2, "linear_glu": 4,
                     "concat_fc": 4}
# `docs/fidelity.md` (search space), at the MM-IMDB setting C = 192, L = 16.
PARAMS_192_16 = {"zero": 0, "sum": 0, "attention": 6_144, "linear_glu": 148_608,
                 "concat_fc": 74_304}


def _inputs(rng, n=N, length=L, channels=C):
    return [rng.normal(size=(n, length, channels)).astype("float32") for _ in range(2)]


def _built(name, length=L, channels=C, dropout=0.1):
    op = make_primitive(name, channels=channels, length=length, dropout=dropout)
    op.build([(None, length, channels), (None, length, channels)])
    return op




def _weights_by_name(layer):
    return {v.name: np.asarray(v) for v in layer.weights}


def _layer_norm(z, gamma, beta):
    mean = z.mean(axis=(-2, -1), keepdims=True)
    var = z.var(axis=(-2, -1), keepdims=True)
    return (z - mean) / np.sqrt(var + EPS) * gamma + beta


def _batch_norm(z, w):
    return ((z - w["moving_mean"]) / np.sqrt(w["moving_variance"] + EPS)
            * w["gamma"] + w["beta"])


def _sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


@pytest.mark.parametrize("name", list(PRIMITIVES))
def test_output_shape_and_trainable_weights(name):
    op = make_primitive(name, channels=C, length=L)
    x, y = _inputs(np.random.default_rng(0))
    out = op([x, y])
    assert tuple(out.shape) == (N, L, C)
    assert op.compute_output_shape([(None, L, C), (None, L, C)]) == (None, L, C)
    assert len(op.trainable_weights) == TRAINABLE_WEIGHTS[name]


@pytest.mark.parametrize("name", list(PRIMITIVES))
def test_parameter_counts_match_reference(name, count_params):
    op = _built(name, length=16, channels=192)
    assert count_params(op.trainable_weights) == PARAMS_192_16[name]


def test_sum_and_zero_maths():
    x, y = _inputs(np.random.default_rng(1))
    np.testing.assert_allclose(make_primitive("sum", C, L)([x, y]), x + y, rtol=1e-6)
    zero = np.asarray(make_primitive("zero", C, L)([x, y]))
    assert zero.shape == x.shape
    assert not zero.any()


def test_attention_matches_numpy_in_inference_mode():
    rng = np.random.default_rng(2)
    op = _built("attention")
    randomise_weights(op, rng)
    x, y = _inputs(rng)
    w = _weights_by_name(op)
    scores = np.einsum("nlc,nmc->nlm", x, y) / np.sqrt(C)
    attn = np.exp(scores - scores.max(axis=-1, keepdims=True))
    attn /= attn.sum(axis=-1, keepdims=True)
    expected = _layer_norm(attn @ y, w["gamma"], w["beta"])
    np.testing.assert_allclose(op([x, y], training=False), expected,
                               rtol=1e-4, atol=1e-4)


def test_attention_dropout_only_in_training():
    op = make_primitive("attention", C, L, dropout=0.5)
    x, y = _inputs(np.random.default_rng(3))
    np.testing.assert_array_equal(op([x, y], training=False), op([x, y], training=False))
    assert not np.allclose(op([x, y], training=True), op([x, y], training=False))


def _linear(op, x, y):
    w = _weights_by_name(op)
    z = np.concatenate([x, y], axis=-1) @ w["kernel"] + w["bias"]
    return _batch_norm(z, w)


def test_linear_glu_matches_numpy_in_inference_mode():
    rng = np.random.default_rng(4)
    op = _built("linear_glu")
    randomise_weights(op, rng)
    x, y = _inputs(rng)
    z = _linear(op, x, y)
    assert z.shape[-1] == 2 * C
    expected = z[..., :C] * _sigmoid(z[..., C:])
    np.testing.assert_allclose(op([x, y], training=False), expected,
                               rtol=1e-4, atol=1e-4)


def test_concat_fc_matches_numpy_in_inference_mode():
    rng = np.random.default_rng(5)
    op = _built("concat_fc")
    randomise_weights(op, rng)
    x, y = _inputs(rng)
    z = _linear(op, x, y)
    assert z.shape[-1] == C
    np.testing.assert_allclose(op([x, y], training=False), np.maximum(z, 0.0),
                               rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("name", ["linear_glu", "concat_fc"])
def test_one_tensor_as_x_and_y_matches_the_concat_path(name):
    """A search step calls op([t, t]); the halved matmul must equal [t, t] W."""
    import tensorflow as tf

    rng = np.random.default_rng(7)
    op = _built(name, dropout=0.0)
    randomise_weights(op, rng)
    t = tf.constant(_inputs(rng)[0])
    results = []
    for y in (t, tf.identity(t)):  # the same tensor, then an equal copy
        with tf.GradientTape() as tape:
            out = op([t, y], training=True)  # batch statistics, as in search
            loss = tf.reduce_sum(tf.sin(out))
        results.append([out] + tape.gradient(loss, op.trainable_weights))
    for same, copy in zip(*results):
        np.testing.assert_allclose(same, copy, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", list(PRIMITIVES))
def test_config_round_trip(name):
    rng = np.random.default_rng(6)
    op = make_primitive(name, channels=C, length=L, dropout=0.25, name=f"my_{name}")
    x, y = _inputs(rng)
    op([x, y])
    randomise_weights(op, rng)
    config = op.get_config()
    assert (config["channels"], config["length"], config["dropout"]) == (C, L, 0.25)
    clone = type(op).from_config(config)
    assert clone.get_config() == config
    clone([x, y])
    clone.set_weights(op.get_weights())
    np.testing.assert_allclose(clone([x, y], training=False), op([x, y], training=False),
                               rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("name", list(PRIMITIVES))
def test_keras_file_round_trip(name, tmp_path):
    rng = np.random.default_rng(7)
    x_in, y_in = keras.Input((L, C), name="x"), keras.Input((L, C), name="y")
    op = make_primitive(name, channels=C, length=L)
    model = keras.Model([x_in, y_in], op([x_in, y_in]))
    randomise_weights(op, rng)
    path = tmp_path / f"{name}.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert isinstance(loaded.layers[-1], PRIMITIVES[name])
    x, y = _inputs(rng)
    np.testing.assert_array_equal(loaded([x, y], training=False),
                                  model([x, y], training=False))


def test_unknown_primitive_is_a_value_error_naming_it():
    with pytest.raises(ValueError, match="conv_3x3"):
        make_primitive("conv_3x3", channels=C, length=L)


def test_primitive_sets():
    assert set(PAPER_PRIMITIVES) == set(PRIMITIVES)
    assert len(REFERENCE_PRIMITIVES) == 4
    assert set(REFERENCE_PRIMITIVES) == set(PRIMITIVES) - {"zero"}
