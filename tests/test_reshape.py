"""Tests for ssnas_tf.nas.feature_reshape: backbone features -> the common (N, L, C) layout."""

import math
from fractions import Fraction

import keras
import numpy as np
import pytest

from ssnas_tf.nas.feature_reshape import FeatureReshape, adaptive_max_pool
from helpers import randomise_weights

N, L, C = 2, 4, 8


def _np_windows(n, m):
    """PyTorch adaptive pooling windows [floor(i*n/m), ceil((i+1)*n/m))."""
    return [(math.floor(Fraction(i * n, m)), math.ceil(Fraction((i + 1) * n, m)))
            for i in range(m)]


def _np_adaptive_max_pool(x, axis, m):
    x = np.moveaxis(x, axis, 0)
    out = np.stack([x[a:b].max(axis=0) for a, b in _np_windows(x.shape[0], m)])
    return np.moveaxis(out, 0, axis)




def _twin(layer, shape):
    """A layer with the same weights, built for a (N, L, D) input that needs no pooling."""
    twin = FeatureReshape(layer.channels, layer.length, dropout=0.0)
    twin.build((None, layer.length, shape[-1]))
    twin.set_weights(layer.get_weights())
    return twin


def _layer(shape, rng, length=L):
    layer = FeatureReshape(channels=C, length=length, dropout=0.0)
    layer.build((None,) + tuple(shape[1:]))
    randomise_weights(layer, rng)
    return layer


@pytest.mark.parametrize("n, m", [(10, 4), (8, 4), (7, 4), (5, 2), (4, 4), (3, 4),
                                  (2, 4), (1, 4), (32, 4), (20, 4), (16, 4), (5, 4)])
def test_adaptive_max_pool_matches_pytorch_windows(n, m):
    rng = np.random.default_rng(n * 100 + m)
    x = rng.normal(size=(2, n, 6, 3)).astype("float32")
    np.testing.assert_array_equal(adaptive_max_pool(x, 1, m), _np_adaptive_max_pool(x, 1, m))
    y = rng.normal(size=(2, 5, n, 3)).astype("float32")
    np.testing.assert_array_equal(adaptive_max_pool(y, 2, m), _np_adaptive_max_pool(y, 2, m))


@pytest.mark.parametrize("shape", [(N, 5), (N, 10, 5), (N, 3, 5), (N, 8, 8, 3),
                                   (N, 7, 5, 3), (N, 32, 20, 3)])
def test_output_shape_and_trainable_weights(shape):
    layer = FeatureReshape(channels=C, length=L)
    x = np.random.default_rng(0).normal(size=shape).astype("float32")
    out = layer(x)
    assert tuple(out.shape) == (N, L, C)
    assert layer.compute_output_shape(shape) == (N, L, C)
    assert len(layer.trainable_weights) == 4  # Dense kernel, bias; BN gamma, beta


def test_vector_becomes_identical_positions():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(N, 5)).astype("float32")
    layer = _layer(x.shape, rng)
    out = np.asarray(layer(x, training=False))
    assert out.shape == (N, L, C)
    for i in range(1, L):
        np.testing.assert_array_equal(out[:, i], out[:, 0])
    # Same as the sequence that repeats the vector L times.
    repeated = np.repeat(x[:, None, :], L, axis=1)
    np.testing.assert_allclose(out, _twin(layer, x.shape)(repeated, training=False),
                               rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("steps, length", [(10, 4), (9, 4), (8, 4), (4, 4), (2, 4),
                                           (3, 4), (1, 4), (3, 8), (5, 8), (6, 16),
                                           (7, 16), (15, 16)])
def test_sequence_pooling_matches_pytorch(steps, length):
    """T > L pools; T = L is the identity; T < L takes the max over windows
    [floor(i*T/L), ceil((i+1)*T/L)) too, which can span two steps when L is
    not a multiple of T (torch.nn.functional.adaptive_max_pool1d, the
    reference's rule; nearest-index upsampling would differ there)."""
    rng = np.random.default_rng(steps * 100 + length)
    x = rng.normal(size=(N, steps, 5)).astype("float32")
    layer = _layer(x.shape, rng, length=length)
    expected = _twin(layer, x.shape)(_np_adaptive_max_pool(x, 1, length), training=False)
    np.testing.assert_allclose(layer(x, training=False), expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("hw", [(8, 8), (32, 20), (7, 5), (16, 10), (8, 5), (2, 3),
                                (1, 1), (1, 3)])
def test_spatial_pooling_matches_pytorch(hw):
    rng = np.random.default_rng(sum(hw))
    x = rng.normal(size=(N,) + hw + (3,)).astype("float32")
    layer = _layer(x.shape, rng)
    side = math.isqrt(L)
    pooled = _np_adaptive_max_pool(_np_adaptive_max_pool(x, 1, side), 2, side)
    expected = _twin(layer, x.shape)(pooled.reshape(N, L, 3), training=False)
    np.testing.assert_allclose(layer(x, training=False), expected, rtol=1e-5, atol=1e-5)


def test_inference_output_is_relu_of_batch_norm_of_linear():
    rng = np.random.default_rng(12)
    x = rng.normal(size=(N, L, 5)).astype("float32")
    layer = _layer(x.shape, rng)
    w = {v.name: np.asarray(v) for v in layer.weights}
    z = x @ w["kernel"] + w["bias"]
    z = (z - w["moving_mean"]) / np.sqrt(w["moving_variance"] + 1e-5) * w["gamma"] + w["beta"]
    np.testing.assert_allclose(layer(x, training=False), np.maximum(z, 0.0),
                               rtol=1e-4, atol=1e-4)


def test_dropout_only_in_training():
    x = np.random.default_rng(13).normal(size=(N, 6, 6, 3)).astype("float32")
    layer = FeatureReshape(channels=C, length=L, dropout=0.5)
    np.testing.assert_array_equal(layer(x, training=False), layer(x, training=False))
    assert not np.allclose(layer(x, training=True), layer(x, training=False))


@pytest.mark.parametrize("shape, params", [((None, 32, 20, 512), 98_880),
                                           ((None, 64), 12_864),
                                           ((None, 128), 25_152)])
def test_parameter_counts_match_reference(shape, params, count_params):
    layer = FeatureReshape(channels=192, length=16)
    layer.build(shape)
    assert count_params(layer.trainable_weights) == params


def test_spatial_map_needs_square_length():
    layer = FeatureReshape(channels=C, length=6)
    with pytest.raises(ValueError, match=r"\(2, 6, 5, 3\)"):
        layer(np.zeros((2, 6, 5, 3), "float32"))
    # Vectors and sequences do not need a square length.
    assert tuple(FeatureReshape(channels=C, length=6)(np.zeros((2, 3))).shape) == (2, 6, C)


def test_bad_rank_is_a_value_error_naming_the_shape():
    with pytest.raises(ValueError, match=r"\(2, 3, 3, 3, 3\)"):
        FeatureReshape(channels=C, length=L)(np.zeros((2, 3, 3, 3, 3), "float32"))


def test_config_round_trip():
    rng = np.random.default_rng(14)
    x = rng.normal(size=(N, 7, 5, 3)).astype("float32")
    layer = FeatureReshape(channels=C, length=L, dropout=0.3, name="reshape_image")
    layer(x)
    randomise_weights(layer, rng)
    config = layer.get_config()
    assert (config["channels"], config["length"], config["dropout"]) == (C, L, 0.3)
    clone = FeatureReshape.from_config(config)
    assert clone.get_config() == config
    clone(x)
    clone.set_weights(layer.get_weights())
    np.testing.assert_allclose(clone(x, training=False), layer(x, training=False),
                               rtol=1e-6, atol=1e-6)


def test_keras_file_round_trip(tmp_path):
    rng = np.random.default_rng(15)
    image, text = keras.Input((7, 5, 3), name="image"), keras.Input((6,), name="text")
    a, b = FeatureReshape(C, L, name="r_image"), FeatureReshape(C, L, name="r_text")
    model = keras.Model({"image": image, "text": text},
                        keras.layers.Add()([a(image), b(text)]))
    randomise_weights(a, rng)
    randomise_weights(b, rng)
    model.save(tmp_path / "reshape.keras")
    loaded = keras.saving.load_model(tmp_path / "reshape.keras")
    batch = {"image": rng.normal(size=(N, 7, 5, 3)).astype("float32"),
             "text": rng.normal(size=(N, 6)).astype("float32")}
    np.testing.assert_array_equal(loaded(batch, training=False),
                                  model(batch, training=False))
