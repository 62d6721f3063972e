"""`ssnas_tf.optimizers`: Adam cheaper to trace, same numbers as Keras's."""

import keras
import numpy as np
import pytest

from ssnas_tf.optimizers import Adam, build_optimizer


def _fit(optimizer, policy="float32", steps=6):
    """(initial weights, weights, optimizer slots) around `steps` steps of a
    small MLP with batch norm (trainable and non-trainable variables)."""
    keras.mixed_precision.set_dtype_policy(policy)
    try:
        keras.utils.set_random_seed(0)
        inputs = keras.Input((12,))
        h = inputs
        for _ in range(3):
            h = keras.layers.Dense(8)(h)
            h = keras.layers.BatchNormalization()(h)
            h = keras.layers.Activation("relu")(h)
        model = keras.Model(inputs, keras.layers.Dense(3, dtype="float32")(h))
        model.compile(optimizer, keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        initial = [w.numpy() for w in model.weights]
        rng = np.random.default_rng(0)
        x = rng.normal(size=(16 * steps, 12)).astype("float32")
        y = np.arange(16 * steps) % 3
        model.fit(x, y, batch_size=16, epochs=1, verbose=0, shuffle=False)
        return (initial, [w.numpy() for w in model.weights],
                [v.numpy() for v in model.optimizer.variables])
    finally:
        keras.mixed_precision.set_dtype_policy("float32")


@pytest.mark.parametrize("policy,schedule", [("float32", False), ("mixed_bfloat16", True)])
def test_adam_gives_kerass_numbers_to_the_bit(policy, schedule):
    def rate():
        return (keras.optimizers.schedules.CosineDecayRestarts(1e-2, 2) if schedule
                else 1e-2)
    initial, ours_weights, ours_slots = _fit(Adam(rate(), beta_1=0.5), policy)
    _, keras_weights, keras_slots = _fit(keras.optimizers.Adam(rate(), beta_1=0.5), policy)
    assert len(ours_weights) == len(keras_weights) and len(ours_slots) == len(keras_slots)
    for ours, theirs in zip(ours_weights + ours_slots, keras_weights + keras_slots):
        np.testing.assert_array_equal(ours, theirs)
    # and the training moved the weights (an update that did nothing would also agree)
    assert any(not np.array_equal(a, b) for a, b in zip(initial, ours_weights))


def test_amsgrad_takes_kerass_own_update():
    _, ours_weights, _ = _fit(Adam(1e-2, amsgrad=True))
    _, keras_weights, _ = _fit(keras.optimizers.Adam(1e-2, amsgrad=True))
    for ours, theirs in zip(ours_weights, keras_weights):
        np.testing.assert_array_equal(ours, theirs)


def test_adam_round_trips_through_keras_serialisation():
    config = keras.saving.serialize_keras_object(Adam(3e-4, beta_1=0.5))
    restored = keras.saving.deserialize_keras_object(config)
    assert type(restored) is Adam
    assert restored.beta_1 == 0.5 and float(restored.learning_rate) == pytest.approx(3e-4)


def test_build_optimizer_creates_the_slots_before_fit_once():
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    model.compile(Adam(1e-3), "mse")
    assert not model.optimizer.built
    optimizer = build_optimizer(model)
    assert optimizer is model.optimizer and optimizer.built
    slots = list(optimizer.variables)
    # iterations, the learning rate, and m and v for the kernel and the bias
    assert len(slots) == 2 + 2 * len(model.trainable_variables)
    build_optimizer(model)  # a second call leaves the built optimizer alone
    assert [id(v) for v in optimizer.variables] == [id(v) for v in slots]
