"""Tests for ssnas_tf.ssl.heads and ssnas_tf.ssl.contrastive_model: the projection
head, the shared SimCLR step and ContrastiveModel."""

import keras
import numpy as np
import tensorflow as tf

from ssnas_tf.ssl.contrastive_model import ContrastiveModel, simclr_loss
from ssnas_tf.ssl.heads import ProjectionHead
from ssnas_tf.ssl.losses import nt_xent, positive_retrieval_accuracy
from helpers import randomise_weights

N, D = 6, 5


def _x(rng, *shape):
    return rng.normal(size=shape).astype("float32")


# ----------------------------------------------------------------- ProjectionHead


def test_projection_head_shape_and_weights(count_params):
    head = ProjectionHead(output_dim=3, hidden_dim=7)
    out = head(_x(np.random.default_rng(0), N, D))
    assert tuple(out.shape) == (N, 3)
    # hidden Dense (no bias), BN gamma/beta, output Dense kernel + bias.
    assert count_params(head.trainable_weights) == D * 7 + 2 * 7 + 7 * 3 + 3
    wide = ProjectionHead(output_dim=3)  # hidden width = input width (SimCLR)
    wide.build((None, D))
    assert tuple(wide.hidden.kernel.shape) == (D, D)


def test_projection_head_config_and_keras_round_trip(tmp_path):
    rng = np.random.default_rng(1)
    head = ProjectionHead(output_dim=4, hidden_dim=6, name="g")
    config = head.get_config()
    assert (config["output_dim"], config["hidden_dim"]) == (4, 6)
    assert ProjectionHead.from_config(config).get_config() == config

    inputs = keras.Input((D,))
    model = keras.Model(inputs, head(inputs))
    randomise_weights(head, rng)
    model.save(tmp_path / "head.keras")
    loaded = keras.saving.load_model(tmp_path / "head.keras")
    x = _x(rng, N, D)
    np.testing.assert_array_equal(loaded(x, training=False), model(x, training=False))


# ------------------------------------------------------------ the SimCLR step


def _encoder():
    inputs = {"a": keras.Input((D,), name="a"), "b": keras.Input((3,), name="b")}
    merged = keras.layers.Concatenate()([inputs["a"], inputs["b"]])
    return keras.Model(inputs, keras.layers.Dense(8, activation="relu")(merged),
                       name="encoder")


def _views(rng, n=N):
    def view():
        return {"a": _x(rng, n, D), "b": _x(rng, n, 3)}
    return view(), view()


def _contrastive():
    model = ContrastiveModel(_encoder(), ProjectionHead(4), temperature=0.3)
    model(_views(np.random.default_rng(2))[0])
    return model


def test_simclr_loss_is_nt_xent_of_the_two_views_in_one_call():
    """One call on the stacked views: batch norm in the head sees 2N samples."""
    rng = np.random.default_rng(3)
    model = _contrastive()
    v1, v2 = _views(rng)
    loss, accuracy = simclr_loss(model, (v1, v2), 0.3, training=True)
    stacked = {k: np.concatenate([v1[k], v2[k]]) for k in v1}
    z = np.asarray(model(stacked, training=True))
    np.testing.assert_allclose(float(loss), float(nt_xent(z[:N], z[N:], 0.3)), rtol=1e-5)
    assert float(accuracy) == float(positive_retrieval_accuracy(z[:N], z[N:]))
    # Separate calls would normalise each view with its own batch statistics.
    z1, z2 = model(v1, training=True), model(v2, training=True)
    assert abs(float(nt_xent(z1, z2, 0.3)) - float(loss)) > 1e-4


def test_contrastive_train_step_lowers_the_loss_on_a_fixed_batch():
    rng = np.random.default_rng(4)
    model = _contrastive()
    model.compile(keras.optimizers.Adam(1e-2))
    views = _views(rng)
    first = float(model.train_step(views)["loss"])
    for _ in range(20):
        last = float(model.train_step(views)["loss"])
    assert last < first - 0.1
    logs = model.test_step(views)
    assert set(logs) == {"loss", "pair_accuracy"}


def test_contrastive_model_config_and_keras_round_trip(tmp_path):
    rng = np.random.default_rng(5)
    model = _contrastive()
    randomise_weights(model, rng)
    config = model.get_config()
    assert config["temperature"] == 0.3
    clone = ContrastiveModel.from_config(config)
    assert clone.temperature == 0.3
    assert isinstance(clone.head, ProjectionHead)
    assert clone.head.get_config() == model.head.get_config()
    views = _views(rng)
    clone(views[0])
    clone.set_weights(model.get_weights())
    np.testing.assert_allclose(clone(views[0], training=False),
                               model(views[0], training=False), rtol=1e-6)

    model.save(tmp_path / "contrastive.keras")
    loaded = keras.saving.load_model(tmp_path / "contrastive.keras")
    assert isinstance(loaded, ContrastiveModel) and loaded.temperature == 0.3
    np.testing.assert_array_equal(loaded(views[0], training=False),
                                  model(views[0], training=False))
    np.testing.assert_allclose(
        float(simclr_loss(loaded, views, 0.3, training=False)[0]),
        float(simclr_loss(model, views, 0.3, training=False)[0]), rtol=1e-6)


def test_fit_on_a_dataset_of_view_pairs():
    rng = np.random.default_rng(6)
    model = _contrastive()
    model.compile(keras.optimizers.Adam(1e-3))
    data = tf.data.Dataset.from_tensor_slices(_views(rng, 4 * N)).batch(N)
    history = model.fit(data, epochs=2, verbose=0, shuffle=False)
    assert int(model.optimizer.iterations) == 8
    assert all(np.isfinite(v).all() for v in history.history.values())
