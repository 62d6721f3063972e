"""Tests for the BM-NAS reference-parity options: `torch_defaults` (PyTorch's
Dense initialisation and BN running variance, ssnas_tf.nas.layers) and
`attention_dropout`, on the search-time and the derived networks."""

import keras
import numpy as np
import pytest

from ssnas_tf.nas.feature_reshape import FeatureReshape
from ssnas_tf.nas.genotypes import EDGE_OP, Genotype, StepGenotype
from ssnas_tf.nas.layers import UnbiasedVarianceBatchNorm, batch_norm, dense
from ssnas_tf.nas.model import DerivedNetwork
from ssnas_tf.nas.model_search import SearchNetwork
from ssnas_tf.nas.operations import REFERENCE_PRIMITIVES, ScaledDotAttention

N, L, C = 4, 4, 8


def _dense_layers(layer):
    return [l for l in layer._flatten_layers() if isinstance(l, keras.layers.Dense)]


def _bn_layers(layer):
    return [l for l in layer._flatten_layers()
            if isinstance(l, keras.layers.BatchNormalization)]


@pytest.mark.parametrize("fan_in", [16, 400])
def test_torch_dense_init_is_uniform_within_one_over_sqrt_fan_in(fan_in):
    layer = dense(2000, fan_in, torch_defaults=True)
    layer.build((None, fan_in))
    bound = 1 / np.sqrt(fan_in)
    kernel, bias = np.asarray(layer.kernel), np.asarray(layer.bias)
    for value in (kernel, bias):
        assert np.abs(value).max() <= bound
        assert np.abs(value).max() > 0.95 * bound  # the whole range is used
    # U(-b, b) has std b / sqrt(3); Keras's glorot_uniform would be smaller.
    np.testing.assert_allclose(kernel.std(), bound / np.sqrt(3), rtol=0.02)
    keras_layer = dense(2000, fan_in)
    keras_layer.build((None, fan_in))
    assert not np.asarray(keras_layer.bias).any()


def test_unbiased_variance_batch_norm_matches_torch():
    """Normalises with the biased batch variance, tracks the unbiased one."""
    rng = np.random.default_rng(0)
    x = (3 * rng.normal(size=(5, L, C)) + 1).astype("float32")
    torch_bn, keras_bn = batch_norm(torch_defaults=True), batch_norm()
    assert isinstance(torch_bn, UnbiasedVarianceBatchNorm)
    for bn in (torch_bn, keras_bn):
        bn.build(x.shape)
    y_torch, y_keras = torch_bn(x, training=True), keras_bn(x, training=True)
    np.testing.assert_allclose(y_torch, y_keras, rtol=1e-6, atol=1e-6)
    flat = x.reshape(-1, C).astype(np.float64)
    np.testing.assert_allclose(torch_bn.moving_variance, 0.9 + 0.1 * flat.var(0, ddof=1),
                               rtol=1e-5)
    np.testing.assert_allclose(keras_bn.moving_variance, 0.9 + 0.1 * flat.var(0),
                               rtol=1e-5)
    np.testing.assert_allclose(torch_bn.moving_mean, keras_bn.moving_mean, rtol=1e-6)
    # Inference mode leaves the statistics alone.
    before = np.asarray(torch_bn.moving_variance)
    torch_bn(x, training=False)
    np.testing.assert_array_equal(torch_bn.moving_variance, before)


def test_vector_feature_counts_its_repeated_positions():
    """torch sees a vector as a 1x1 map pooled to L positions: N * L samples."""
    rng = np.random.default_rng(1)
    x = rng.normal(size=(N, 5)).astype("float32")
    torch_layer = FeatureReshape(C, L, dropout=0.0, torch_defaults=True)
    keras_layer = FeatureReshape(C, L, dropout=0.0)
    for layer in (torch_layer, keras_layer):
        layer.build(x.shape)
    keras_layer.set_weights(torch_layer.get_weights())
    np.testing.assert_allclose(torch_layer(x, training=True),
                               keras_layer(x, training=True), rtol=1e-5, atol=1e-5)
    z = (x @ np.asarray(torch_layer.dense.kernel)
         + np.asarray(torch_layer.dense.bias)).astype(np.float64)
    np.testing.assert_allclose(torch_layer.bn.moving_variance,
                               0.9 + 0.1 * z.var(0) * (N * L) / (N * L - 1), rtol=1e-5)


FEATURES = {"img": (N, 6, 6, 3), "seq": (N, 5, 4), "vec": (N, 7)}


def _inputs(rng):
    return {k: rng.normal(size=s).astype("float32") for k, s in FEATURES.items()}


def _genotype():
    step = StepGenotype(((EDGE_OP, 0), (EDGE_OP, 1)), ("attention",), (2,))
    return Genotype(inputs=tuple(FEATURES), edges=((EDGE_OP, 0), (EDGE_OP, 2),
                                                   (EDGE_OP, 1), (EDGE_OP, 3)),
                    steps=(step, step), concat=(3, 4))


def _networks(**kwargs):
    search = SearchNetwork(list(FEATURES), num_cells=2, num_steps=2, multiplier=2,
                           node_multiplier=2, channels=C, length=L,
                           primitives=REFERENCE_PRIMITIVES, **kwargs)
    derived = DerivedNetwork(_genotype(), channels=C, length=L, **kwargs)
    return search, derived


@pytest.mark.parametrize("index", [0, 1])
def test_torch_defaults_reach_every_dense_and_batch_norm(index):
    rng = np.random.default_rng(2)
    net = _networks(torch_defaults=True)[index]
    net(_inputs(rng))
    denses, bns = _dense_layers(net), _bn_layers(net)
    assert denses and bns
    for layer in denses:
        bound = 1 / np.sqrt(layer.kernel.shape[0])
        assert np.abs(np.asarray(layer.bias)).max() > 0  # torch's bias is not zero
        assert np.abs(np.asarray(layer.kernel)).max() <= bound
    assert all(isinstance(b, UnbiasedVarianceBatchNorm) for b in bns)
    plain = _networks()[index]
    plain(_inputs(rng))
    assert not any(isinstance(b, UnbiasedVarianceBatchNorm) for b in _bn_layers(plain))
    # Same variables, so the same parameter counts as the Keras defaults.
    assert ([tuple(v.shape) for v in net.weights]
            == [tuple(v.shape) for v in plain.weights])


@pytest.mark.parametrize("index", [0, 1])
def test_attention_dropout_is_separate_from_dropout(index):
    net = _networks(dropout=0.3, attention_dropout=0.1)[index]
    net(_inputs(np.random.default_rng(3)))
    rates = {type(l).__name__: l.dropout for l in net._flatten_layers()
             if isinstance(l, (ScaledDotAttention, FeatureReshape))}
    assert rates == {"ScaledDotAttention": 0.1, "FeatureReshape": 0.3}
    default = _networks(dropout=0.3)[index]
    assert all(l.dropout == 0.3 for l in default._flatten_layers()
               if isinstance(l, ScaledDotAttention))


@pytest.mark.parametrize("index", [0, 1])
def test_options_survive_config_and_keras_round_trips(index, tmp_path):
    rng = np.random.default_rng(4)
    net = _networks(torch_defaults=True, attention_dropout=0.15, dropout=0.0)[index]
    features = _inputs(rng)
    inputs = {n: keras.Input(v.shape[1:], name=n) for n, v in features.items()}
    model = keras.Model(inputs, net(inputs))
    model(features, training=True)  # moves the BN statistics
    config = net.get_config()
    assert config["torch_defaults"] is True and config["attention_dropout"] == 0.15
    assert type(net).from_config(config).get_config() == config

    model.save(tmp_path / "net.keras")
    loaded = keras.saving.load_model(tmp_path / "net.keras")
    (loaded_net,) = [l for l in loaded.layers if isinstance(l, type(net))]
    assert all(isinstance(b, UnbiasedVarianceBatchNorm) for b in _bn_layers(loaded_net))
    np.testing.assert_array_equal(loaded(features, training=False),
                                  model(features, training=False))
