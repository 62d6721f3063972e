"""ssnas_tf.dropout.Dropout: Keras's masks in float32, unbiased masks in bfloat16."""

import keras
import numpy as np
import tensorflow as tf

from ssnas_tf.backbones.reference import maxout_mlp_taps
from ssnas_tf.dropout import Dropout
from ssnas_tf.nas.model_search import SearchNetwork

RATE = 0.1


def test_float32_masks_are_keras_masks_from_the_same_seed():
    x = np.random.default_rng(0).normal(size=(16, 4, 24)).astype("float32")
    ours, keras_layer = Dropout(RATE, seed=5), keras.layers.Dropout(RATE, seed=5)
    for _ in range(3):  # the seed generators advance alike
        np.testing.assert_array_equal(ours(x, training=True), keras_layer(x, training=True))
    np.testing.assert_array_equal(ours(x, training=False), x)


def test_bfloat16_mask_keeps_one_minus_rate():
    units = 4_000_000  # the kept fraction's standard deviation is 1.5e-4
    y = Dropout(RATE, seed=1, dtype="mixed_bfloat16")(tf.ones((units,)), training=True)
    assert y.dtype == tf.bfloat16
    kept = float(tf.reduce_mean(tf.cast(y > 0, tf.float32)))
    # Keras's own layer keeps 0.8987 here: its bfloat16 uniforms are multiples of 1/128.
    assert abs(kept - (1 - RATE)) < 6e-4, kept


def test_noise_shape_drops_whole_slices():
    x = np.ones((8, 5, 6), "float32")
    y = np.asarray(Dropout(0.5, noise_shape=(None, 1, 6), seed=2)(x, training=True))
    assert ((y == 0).all(axis=1) | (y != 0).all(axis=1)).all()
    assert 0 < (y == 0).mean() < 1


def test_saved_model_keeps_the_layer(tmp_path):
    inputs = keras.Input((3,))
    model = keras.Model(inputs, Dropout(0.2, seed=3)(inputs))
    model.save(tmp_path / "m.keras")
    layer = keras.models.load_model(tmp_path / "m.keras").layers[-1]
    assert type(layer) is Dropout and layer.rate == 0.2


def _dropouts(layer):
    return [sub for sub in layer._flatten_layers() if isinstance(sub, keras.layers.Dropout)]


def test_fusion_network_and_reference_backbone_use_it():
    network = SearchNetwork(["a", "b"], num_cells=1, num_steps=1, multiplier=1,
                            channels=8, length=2, dropout=0.1)
    network({"a": np.zeros((2, 4), "float32"), "b": np.zeros((2, 3, 5), "float32")})
    for model in (network, maxout_mlp_taps()):
        found = _dropouts(model)
        assert found and all(type(d) is Dropout for d in found), found
