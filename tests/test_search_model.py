"""Tests for ssnas_tf.ssl.losses and ssnas_tf.nas.architect: NT-Xent and the
alternating weight / architecture updates."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from ssnas_tf.ssl.heads import ProjectionHead, classifier_head
from ssnas_tf.ssl.losses import NTXent, nt_xent, positive_retrieval_accuracy
from ssnas_tf.nas.architect import SearchModel, add_l2, reference_optimizers
from ssnas_tf.ssl.contrastive_model import stack_views
from ssnas_tf.nas.model_search import SearchNetwork
from ssnas_tf.nas.callbacks import HeldOutLoss
from helpers import randomise_weights

N, L, C = 4, 4, 8
NUM_CLASSES = 3


# ------------------------------------------------------------------------ NT-Xent


def _nt_xent_numpy(z1, z2, tau):
    """`docs/fidelity.md` (the method), literally: views interleaved as
    z_{2k-1}, z_{2k}."""
    n = len(z1)
    z = np.empty((2 * n, z1.shape[1]), np.float64)
    z[0::2], z[1::2] = z1, z2  # 0-based: z[2k] = view 1 of sample k, z[2k+1] = view 2

    def sim(a, b):
        return a @ b / (np.linalg.norm(a) * np.linalg.norm(b))

    def loss(i, j):
        denominator = sum(np.exp(sim(z[i], z[k]) / tau) for k in range(2 * n) if k != i)
        return -np.log(np.exp(sim(z[i], z[j]) / tau) / denominator)

    return sum(loss(2 * k, 2 * k + 1) + loss(2 * k + 1, 2 * k) for k in range(n)) / (2 * n)


@pytest.mark.parametrize("tau", [0.1, 0.5])
def test_nt_xent_matches_the_formula(tau):
    rng = np.random.default_rng(int(tau * 10))
    z1 = rng.normal(size=(5, 7)).astype("float32")
    z2 = (z1 + 0.5 * rng.normal(size=(5, 7))).astype("float32")
    expected = _nt_xent_numpy(z1.astype(np.float64), z2.astype(np.float64), tau)
    np.testing.assert_allclose(float(nt_xent(z1, z2, tau)), expected, rtol=1e-4)
    # The Keras wrapper takes the stacked [z1; z2].
    loss = NTXent(temperature=tau)(np.zeros(10), np.concatenate([z1, z2]))
    np.testing.assert_allclose(float(loss), expected, rtol=1e-4)


def test_nt_xent_is_scale_invariant_and_symmetric():
    rng = np.random.default_rng(1)
    z1, z2 = rng.normal(size=(2, 6, 5)).astype("float32")
    base = float(nt_xent(z1, z2, 0.2))
    np.testing.assert_allclose(float(nt_xent(3 * z1, 0.5 * z2, 0.2)), base, rtol=1e-5)
    np.testing.assert_allclose(float(nt_xent(z2, z1, 0.2)), base, rtol=1e-5)


def test_positive_retrieval_accuracy():
    rng = np.random.default_rng(2)
    z = rng.normal(size=(6, 5)).astype("float32")
    assert float(positive_retrieval_accuracy(z, z)) == 1.0
    # Pairs that point away from each other are never retrieved.
    assert float(positive_retrieval_accuracy(z, -z)) == 0.0


# ------------------------------------------------------------------- SearchModel


def _features(rng, n=N):
    return {"a": rng.normal(size=(n, 3)).astype("float32"),
            "b": rng.normal(size=(n, 5, 2)).astype("float32")}


def _model(objective="ssl", multilabel=False):
    # Small: one cell over three cheap ops keeps the traced train_step quick.
    network = SearchNetwork(["a", "b"], num_cells=1, num_steps=1, multiplier=1,
                            channels=C, length=L,
                            primitives=("zero", "sum", "concat_fc"))
    head = ProjectionHead(8) if objective == "ssl" else classifier_head(NUM_CLASSES)
    model = SearchModel(network, head, objective=objective, multilabel=multilabel,
                        temperature=0.5)
    rng = np.random.default_rng(3)
    model(_features(rng, 2 * N))  # build before compile
    return model


def _batch(rng, objective, multilabel=False):
    if objective == "ssl":
        return _features(rng), _features(rng)
    if multilabel:
        y = (rng.uniform(size=(N, NUM_CLASSES)) < 0.5).astype("float32")
    else:
        y = rng.integers(0, NUM_CLASSES, size=N).astype("int32")
    return _features(rng), y


def _compile(model, lr=1e-2, arch_lr=1e-2, **kwargs):
    model.compile(keras.optimizers.Adam(lr), keras.optimizers.Adam(arch_lr), **kwargs)


def _snapshot(variables):
    return [np.array(v) for v in variables]


def _changed(before, variables):
    return [not np.array_equal(b, np.asarray(v)) for b, v in zip(before, variables)]


@pytest.mark.parametrize("objective, multilabel", [("ssl", False), ("supervised", False),
                                                   ("supervised", True)])
def test_train_step_updates_weights_and_architecture(objective, multilabel):
    rng = np.random.default_rng(4)
    model = _model(objective, multilabel)
    _compile(model, weight_decay=1e-4, arch_weight_decay=1e-3)
    weights, arch = model.trainable_weights, model.arch_parameters
    w0, a0 = _snapshot(weights), _snapshot(arch)
    logs = model.train_step((_batch(rng, objective, multilabel),
                             _batch(rng, objective, multilabel)))
    assert np.isfinite(float(logs["loss"])) and np.isfinite(float(logs["arch_loss"]))
    assert ("pair_accuracy" in logs) == (objective == "ssl")
    assert sum(_changed(w0, weights)) > len(weights) // 2
    assert all(_changed(a0, arch))  # alpha, beta and gamma all move


def test_each_optimizer_holds_state_for_its_own_group():
    rng = np.random.default_rng(5)
    model = _model()
    _compile(model)
    opt, arch_opt = model.optimizer, model.arch_optimizer
    assert opt is not arch_opt
    assert opt.iterations is not arch_opt.iterations

    def slot_shapes(optimizer):
        return sorted(tuple(v.shape) for v in optimizer.variables if len(v.shape))

    def doubled(variables):
        return sorted(2 * [tuple(v.shape) for v in variables])

    # Adam: a momentum and a velocity per variable, built at compile time.
    assert slot_shapes(opt) == doubled(model.trainable_weights)
    assert slot_shapes(arch_opt) == doubled(model.arch_parameters)
    model.train_step((_batch(rng, "ssl"), _batch(rng, "ssl")))
    assert int(opt.iterations) == 1 and int(arch_opt.iterations) == 1
    assert slot_shapes(opt) == doubled(model.trainable_weights)
    assert slot_shapes(arch_opt) == doubled(model.arch_parameters)


def test_zero_arch_learning_rate_moves_only_the_weights():
    rng = np.random.default_rng(6)
    model = _model()
    _compile(model, lr=1e-2, arch_lr=0.0)
    w0, a0 = _snapshot(model.trainable_weights), _snapshot(model.arch_parameters)
    model.train_step((_batch(rng, "ssl"), _batch(rng, "ssl")))
    assert not any(_changed(a0, model.arch_parameters))
    assert any(_changed(w0, model.trainable_weights))


def test_zero_weight_learning_rate_moves_only_the_architecture():
    rng = np.random.default_rng(7)
    model = _model()
    _compile(model, lr=0.0, arch_lr=1e-2)
    w0, a0 = _snapshot(model.trainable_weights), _snapshot(model.arch_parameters)
    model.train_step((_batch(rng, "ssl"), _batch(rng, "ssl")))
    assert not any(_changed(w0, model.trainable_weights))
    assert all(_changed(a0, model.arch_parameters))


def test_add_l2_is_coupled_weight_decay():
    rng = np.random.default_rng(8)
    values = [rng.normal(size=(3, 2)).astype("float32"), rng.normal(size=4).astype("float32")]
    variables = [keras.Variable(v) for v in values]
    grads = [np.ones((3, 2), "float32"), np.full(4, -2.0, "float32")]
    out = add_l2(grads, variables, 0.1)
    for o, g, v in zip(out, grads, values):
        np.testing.assert_allclose(o, g + 0.1 * v, rtol=1e-6)
    same = add_l2(grads, variables, 0.0)
    assert all(a is b for a, b in zip(same, grads))


def test_stack_views():
    rng = np.random.default_rng(9)
    v1, v2 = _features(rng), _features(rng)
    stacked = stack_views(v1, v2)
    for k in v1:
        np.testing.assert_array_equal(stacked[k], np.concatenate([v1[k], v2[k]]))


def test_fit_on_zipped_train_and_valid_batches():
    rng = np.random.default_rng(10)

    def views(n):
        return tf.data.Dataset.from_tensor_slices((_features(rng, n), _features(rng, n)))

    model = _model()
    _compile(model)
    data = tf.data.Dataset.zip((views(2 * N).batch(N), views(2 * N).batch(N)))
    a0 = _snapshot(model.arch_parameters)
    history = model.fit(data, epochs=1, verbose=0, shuffle=False)
    assert {"loss", "arch_loss", "pair_accuracy"} <= set(history.history)
    assert all(np.isfinite(v[-1]) for v in history.history.values())
    assert int(model.optimizer.iterations) == 2 == int(model.arch_optimizer.iterations)
    assert all(_changed(a0, model.arch_parameters))

    logs = model.test_step((_features(rng), _features(rng)))
    assert "loss" in logs and "pair_accuracy" in logs
    assert "arch_loss" not in logs


# ------------------------------------------------------- which batch feeds which step


def _gradients(model, batch, variables):
    values = [v.value for v in variables]  # Keras variables wrap tf.Variables
    with tf.GradientTape(watch_accessed_variables=False) as tape:
        tape.watch(values)
        loss, _ = model.objective_loss(batch, training=True)
    return [np.asarray(g) for g in tape.gradient(loss, values)]


def test_weight_step_reads_the_train_batch_and_arch_step_the_valid_batch():
    """SGD steps, recomputed by hand: w' = w - lr * dL_train/dw at (w, a), then
    a' = a - arch_lr * dL_valid/da at (w', a) (DARTS first order). Kills the
    mutation where the architecture step reads the train batch."""
    rng = np.random.default_rng(11)
    network = SearchNetwork(["a", "b"], num_cells=2, num_steps=1, multiplier=1,
                            channels=C, length=L, dropout=0.0,
                            primitives=("zero", "sum", "concat_fc"))
    model = SearchModel(network, ProjectionHead(8), temperature=0.5)
    model(_features(rng, 2 * N))
    lr, arch_lr = 0.05, 1.0
    model.compile(keras.optimizers.SGD(lr), keras.optimizers.SGD(arch_lr))
    train, valid = _batch(rng, "ssl"), _batch(rng, "ssl")
    weights, arch = model.trainable_weights, model.arch_parameters
    w0, a0 = _snapshot(weights), _snapshot(arch)
    expected_w = [w - lr * g for w, g in zip(w0, _gradients(model, train, weights))]

    model.train_step((train, valid))
    w1, a1 = _snapshot(weights), _snapshot(arch)
    for got, want in zip(w1, expected_w):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6)
    for v, value in zip(arch, a0):  # back to a, at the updated weights w'
        v.assign(value)
    valid_grads = _gradients(model, valid, arch)
    train_grads = _gradients(model, train, arch)
    for got, a, g, g_train in zip(a1, a0, valid_grads, train_grads):
        np.testing.assert_allclose(got, a - arch_lr * g, rtol=1e-4, atol=1e-7)
        # The batches give clearly different arch gradients, so reading the
        # wrong one cannot pass the check above.
        assert not np.allclose(g, g_train, rtol=1e-2, atol=1e-5)


# -------------------------------------------------------------------- saving


def test_search_model_config_and_keras_round_trip(tmp_path):
    rng = np.random.default_rng(12)
    model = _model("ssl")
    for v in model.arch_parameters:
        v.assign(rng.normal(size=v.shape).astype("float32"))
    config = model.get_config()
    assert (config["objective"], config["temperature"]) == ("ssl", 0.5)
    clone = SearchModel.from_config(config)
    assert (clone.objective, clone.temperature, clone.multilabel) == ("ssl", 0.5, False)
    assert clone.network.get_config() == model.network.get_config()
    features = _features(rng)
    clone(features)
    clone.set_weights(model.get_weights())
    np.testing.assert_allclose(clone(features, training=False),
                               model(features, training=False), rtol=1e-6, atol=1e-6)

    model.save(tmp_path / "search.keras")
    loaded = keras.saving.load_model(tmp_path / "search.keras")
    assert isinstance(loaded, SearchModel) and loaded.objective == "ssl"
    for a, b in zip(loaded.arch_parameters, model.arch_parameters):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(loaded(features, training=False),
                                  model(features, training=False))


def test_supervised_search_model_keras_round_trip(tmp_path):
    rng = np.random.default_rng(13)
    model = _model("supervised", multilabel=True)
    model.save(tmp_path / "supervised.keras")
    loaded = keras.saving.load_model(tmp_path / "supervised.keras")
    assert (loaded.objective, loaded.multilabel) == ("supervised", True)
    features = _features(rng)
    np.testing.assert_array_equal(loaded(features, training=False),
                                  model(features, training=False))


# ------------------------------------------------------------ the optimizers


def _sgdr(step, period, lr_max, lr_min):
    """SGDR (torch CosineAnnealingWarmRestarts, T_mult 2) at optimizer step `step`."""
    start, length = 0, period
    while step >= start + length:
        start, length = start + length, 2 * length
    return lr_min + 0.5 * (lr_max - lr_min) * (1 + np.cos(np.pi * (step - start) / length))


def test_reference_optimizers_schedule_is_cosine_with_doubling_restarts():
    steps_per_epoch = 10
    weights_opt, arch_opt = reference_optimizers(steps_per_epoch, learning_rate=2e-3,
                                                 min_learning_rate=1e-5,
                                                 arch_learning_rate=3e-4)
    # Restarts at 10, 30, 70: periods of 10, 20, 40 steps.
    for step in [0, 1, 5, 9, 10, 11, 20, 29, 30, 50, 69, 70, 100]:
        weights_opt.iterations.assign(step)
        np.testing.assert_allclose(float(weights_opt.learning_rate),
                                   _sgdr(step, 10, 2e-3, 1e-5), rtol=1e-5,
                                   err_msg=f"step {step}")
    # The architecture optimizer: constant Adam(3e-4, beta_1 = 0.5).
    np.testing.assert_allclose(float(arch_opt.learning_rate), 3e-4)
    assert (arch_opt.beta_1, arch_opt.beta_2) == (0.5, 0.999)
    assert isinstance(weights_opt, keras.optimizers.Adam)


def test_schedule_advances_with_the_weight_optimizer_steps():
    rng = np.random.default_rng(14)
    model = _model()
    model.compile(*reference_optimizers(steps_per_epoch=2, learning_rate=1e-2))
    for _ in range(3):
        model.train_step((_batch(rng, "ssl"), _batch(rng, "ssl")))
    lr = float(model.optimizer.learning_rate)
    np.testing.assert_allclose(lr, _sgdr(3, 2, 1e-2, 1e-6), rtol=1e-5)


# ------------------------------------------------ held-out selection loss, one call


def _held_out(rng, objective, batches=3):
    parts = [_batch(rng, objective) for _ in range(batches)]
    stacked = tf.nest.map_structure(lambda *xs: np.concatenate(xs), *parts)
    return tf.data.Dataset.from_tensor_slices(stacked).batch(N)


@pytest.mark.parametrize("objective", ["ssl", "supervised"])
def test_held_out_loss_is_what_keras_evaluate_reports(objective):
    rng = np.random.default_rng(12)
    model = _model(objective)
    _compile(model)
    held_out = _held_out(rng, objective)
    scorer = HeldOutLoss(held_out, 3)
    for _ in range(2):  # the second round: other weights, the same traced function
        expected = model.evaluate(held_out, verbose=0, return_dict=True)
        first, second = scorer(model), scorer(model)
        assert first == second  # every pass reads the same batches
        assert set(first) == ({"loss", "pair_accuracy"} if objective == "ssl" else {"loss"})
        for key, value in first.items():
            np.testing.assert_allclose(value, expected[key], rtol=1e-5, atol=1e-6)
        randomise_weights(model.head, rng)
    assert scorer(model)["loss"] != pytest.approx(expected["loss"], rel=1e-3)


def test_held_out_loss_refuses_a_pass_of_another_length():
    held_out = _held_out(np.random.default_rng(0), "ssl")
    with pytest.raises(ValueError, match="3 batches, not steps=2"):
        HeldOutLoss(held_out, 2)


def test_held_out_criterion_logs_validation_keys():
    rng = np.random.default_rng(13)
    model = _model("ssl")
    _compile(model)
    held_out = _held_out(rng, "ssl")
    logs = {"loss": 1.0}
    score = HeldOutLoss(held_out, 3).criterion(model, logs)
    expected = model.evaluate(held_out, verbose=0, return_dict=True)
    assert set(logs) == {"loss", "val_loss", "val_pair_accuracy"}
    assert score == logs["val_loss"] == pytest.approx(expected["loss"], rel=1e-5)
