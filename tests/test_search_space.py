"""Tests for ssnas_tf.nas.model_search: mixed steps, search cells, the search network."""

import keras
import numpy as np
import pytest

from ssnas_tf.nas.operations import PAPER_PRIMITIVES, REFERENCE_PRIMITIVES
from ssnas_tf.nas.feature_reshape import FeatureReshape
from ssnas_tf.nas.model_search import MixedStep, SearchCell, SearchNetwork

N, L, C = 2, 4, 8
EPS = 1e-5


def _x(rng, *shape):
    return rng.normal(size=shape).astype("float32")


def _layer_norm(z):
    """LayerNorm over (L, C) at its initial gamma = 1, beta = 0."""
    mean = z.mean(axis=(-2, -1), keepdims=True)
    return (z - mean) / np.sqrt(z.var(axis=(-2, -1), keepdims=True) + EPS)


def _contains(variables, v):
    return any(w is v for w in variables)


# --------------------------------------------------------------------- MixedStep


def test_mixed_step_shape_and_trainable_weights():
    rng = np.random.default_rng(0)
    step = MixedStep(C, L, primitives=PAPER_PRIMITIVES)
    out = step([_x(rng, N, L, C), _x(rng, N, L, C)], np.full(5, 0.2, "float32"))
    assert tuple(out.shape) == (N, L, C)
    # attention LN (2) + linear_glu (4) + concat_fc (4); zero and sum have none.
    assert len(step.trainable_weights) == 10


def test_mixed_step_is_the_weighted_sum_of_its_ops():
    rng = np.random.default_rng(1)
    x, y = _x(rng, N, L, C), _x(rng, N, L, C)
    step = MixedStep(C, L, primitives=("zero", "sum", "attention", "concat_fc"))
    eye = np.eye(4, dtype="float32")
    per_op = [np.asarray(step([x, y], e, training=False)) for e in eye]
    assert not per_op[0].any()  # zero
    np.testing.assert_allclose(per_op[1], x + y, rtol=1e-6)  # sum
    w = np.array([0.1, 0.2, 0.3, 0.4], "float32")
    np.testing.assert_allclose(step([x, y], w, training=False),
                               sum(wi * o for wi, o in zip(w, per_op)),
                               rtol=1e-5, atol=1e-5)


def test_mixed_step_config_and_keras_round_trip(tmp_path):
    rng = np.random.default_rng(2)
    x_in, y_in = keras.Input((L, C)), keras.Input((L, C))
    step = MixedStep(C, L, dropout=0.2, primitives=("sum", "linear_glu"), name="mixed")
    w = np.array([0.3, 0.7], "float32")
    model = keras.Model([x_in, y_in], step([x_in, y_in], w))
    config = step.get_config()
    assert config["primitives"] == ["sum", "linear_glu"]
    assert MixedStep.from_config(config).get_config() == config

    model.save(tmp_path / "mixed.keras")
    loaded = keras.saving.load_model(tmp_path / "mixed.keras")
    x, y = _x(rng, N, L, C), _x(rng, N, L, C)
    np.testing.assert_array_equal(loaded([x, y], training=False), model([x, y], training=False))


def test_mixed_step_rejects_unknown_primitive():
    with pytest.raises(ValueError, match="max_pool"):
        MixedStep(C, L, primitives=("sum", "max_pool"))


# -------------------------------------------------------------------- SearchCell


@pytest.mark.parametrize("num_steps, node_multiplier, trainable", [
    (1, 1, 10 + 2),              # one mixed step + cell LayerNorm
    (2, 1, 2 * 10 + 2),
    (2, 2, 2 * 10 + 2 + 4),      # + projection Dense and BN
])
def test_search_cell_shape_and_trainable_weights(num_steps, node_multiplier, trainable):
    rng = np.random.default_rng(3)
    cell = SearchCell(C, L, num_steps=num_steps, node_multiplier=node_multiplier)
    edges = sum(2 + m for m in range(num_steps))
    beta = np.full((edges, 2), 0.5, "float32")
    gamma = np.full((num_steps, len(PAPER_PRIMITIVES)), 0.2, "float32")
    out = cell(_x(rng, N, L, C), beta, gamma)
    assert tuple(out.shape) == (N, L, C)
    assert len(cell.trainable_weights) == trainable


def test_search_cell_maths_with_sum_only():
    """One `sum` step: t = (b0 + b1) h, step = 2 t, out = LN(step + h)."""
    rng = np.random.default_rng(4)
    h = _x(rng, N, L, C)
    cell = SearchCell(C, L, num_steps=1, primitives=("sum",))
    beta = np.array([[0.9, 0.1], [0.4, 0.6]], "float32")  # columns: zero, identity
    out = cell(h, beta, np.ones((1, 1), "float32"), training=False)
    np.testing.assert_allclose(out, _layer_norm(2 * (0.1 + 0.6) * h + h),
                               rtol=1e-4, atol=1e-4)


def test_search_cell_two_steps_with_sum_only():
    """Step 2 sees [x, y, step_1] through its three identity weights."""
    rng = np.random.default_rng(5)
    h = _x(rng, N, L, C)
    cell = SearchCell(C, L, num_steps=2, primitives=("sum",))
    b = [0.2, 0.3, 0.5, 0.7, 0.25]
    beta = np.stack([1 - np.array(b), np.array(b)], axis=-1).astype("float32")
    step1 = 2 * (b[0] + b[1]) * h
    step2 = 2 * ((b[2] + b[3]) * h + b[4] * step1)
    out = cell(h, beta, np.ones((2, 1), "float32"), training=False)
    np.testing.assert_allclose(out, _layer_norm(step2 + h), rtol=1e-4, atol=1e-4)


def test_search_cell_config_and_keras_round_trip(tmp_path):
    rng = np.random.default_rng(6)
    cell = SearchCell(C, L, num_steps=2, node_multiplier=2, dropout=0.2,
                      primitives=REFERENCE_PRIMITIVES, name="cell")
    config = cell.get_config()
    assert (config["num_steps"], config["node_multiplier"]) == (2, 2)
    assert SearchCell.from_config(config).get_config() == config

    h_in = keras.Input((L, C))
    beta = rng.uniform(size=(5, 2)).astype("float32")
    gamma = rng.uniform(size=(2, 4)).astype("float32")
    model = keras.Model(h_in, cell(h_in, beta, gamma))
    model.save(tmp_path / "cell.keras")
    loaded = keras.saving.load_model(tmp_path / "cell.keras")
    h = _x(rng, N, L, C)
    np.testing.assert_array_equal(loaded(h, training=False), model(h, training=False))


def test_search_cell_node_multiplier_above_steps_is_an_error():
    with pytest.raises(ValueError, match="node_multiplier"):
        SearchCell(C, L, num_steps=1, node_multiplier=2)


# ----------------------------------------------------------------- SearchNetwork

NAMES = ("img", "seq", "vec")


def _features(rng, n=N):
    return {"img": _x(rng, n, 6, 6, 3), "seq": _x(rng, n, 5, 4), "vec": _x(rng, n, 7)}


def _network(**kwargs):
    kwargs = dict(dict(num_cells=2, num_steps=2, multiplier=2, channels=C, length=L,
                       primitives=PAPER_PRIMITIVES), **kwargs)
    return SearchNetwork(NAMES, **kwargs)


def _randomise_arch(net, rng):
    for v in net.arch_parameters:
        v.assign(rng.normal(size=v.shape).astype("float32"))


def test_search_network_output_and_arch_shapes():
    rng = np.random.default_rng(7)
    net = _network(num_cells=3)
    out = net(_features(rng))
    assert tuple(out.shape) == (N, L * 2 * C)
    assert net.compute_output_shape({n: (N,) for n in NAMES}) == (N, L * 2 * C)
    k, cells, steps = 3, 3, 2
    alpha, beta, gamma = net.arch_parameters
    assert tuple(alpha.shape) == (sum(k + j for j in range(cells)), 2)
    assert tuple(beta.shape) == (cells, sum(2 + m for m in range(steps)), 2)
    assert tuple(gamma.shape) == (cells, steps, len(PAPER_PRIMITIVES))
    for v in net.arch_parameters:  # 1e-3 * N(0, 1)
        value = np.asarray(v)
        assert np.abs(value).max() < 1e-2 and value.std() > 1e-4


def test_arch_parameters_are_their_own_group():
    rng = np.random.default_rng(8)
    net = _network()
    inputs = {n: keras.Input(v.shape[1:], name=n) for n, v in _features(rng).items()}
    model = keras.Model(inputs, net(inputs))
    arch = net.arch_parameters
    assert len(arch) == 3 and all(a is b for a, b in zip(arch, net.arch_parameters))
    for v in arch:
        assert not _contains(net.trainable_weights, v)
        assert not _contains(model.trainable_weights, v)
        assert _contains(net.weights, v)  # tracked, so saved with the model
        assert _contains(model.weights, v)
    # The output depends on them.
    features = _features(rng)
    before = np.asarray(net(features, training=False))
    _randomise_arch(net, rng)
    assert not np.allclose(net(features, training=False), before)


def test_search_network_trainable_weights_are_its_pieces(count_params):
    net = _network()
    net(_features(np.random.default_rng(9)))
    reshapes = count_params([w for r in net.reshapes.values() for w in r.trainable_weights])
    cells = count_params([w for c in net.cells for w in c.trainable_weights])
    output_norm = 2 * L * 2 * C
    assert count_params(net.trainable_weights) == reshapes + cells + output_norm


def test_node_multiplier_path(count_params):
    rng = np.random.default_rng(10)
    features = _features(rng)
    plain = _network(node_multiplier=1)
    multi = _network(node_multiplier=2)
    plain(features)
    out = multi(features, training=True)
    assert tuple(out.shape) == (N, L * 2 * C)
    assert np.isfinite(np.asarray(out)).all()
    projection = 2 * C * C + C + 2 * C  # Dense 2C -> C and BN, per cell
    assert (count_params(multi.trainable_weights)
            == count_params(plain.trainable_weights) + 2 * projection)


def test_search_network_config_round_trip():
    rng = np.random.default_rng(11)
    net = _network(node_multiplier=2, dropout=0.2, name="search")
    features = _features(rng)
    net(features)
    _randomise_arch(net, rng)
    config = net.get_config()
    assert config["input_names"] == list(NAMES)
    assert config["primitives"] == list(PAPER_PRIMITIVES)
    clone = SearchNetwork.from_config(config)
    assert clone.get_config() == config
    clone(features)
    clone.set_weights(net.get_weights())
    for a, b in zip(clone.arch_parameters, net.arch_parameters):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(clone(features, training=False),
                               net(features, training=False), rtol=1e-6, atol=1e-6)


def test_search_network_keras_round_trip(tmp_path):
    rng = np.random.default_rng(12)
    net = _network(primitives=REFERENCE_PRIMITIVES, name="search")
    features = _features(rng)
    inputs = {n: keras.Input(v.shape[1:], name=n) for n, v in features.items()}
    model = keras.Model(inputs, keras.layers.Dense(3)(net(inputs)))
    _randomise_arch(net, rng)
    model.save(tmp_path / "search.keras")
    loaded = keras.saving.load_model(tmp_path / "search.keras")
    (loaded_net,) = [layer for layer in loaded.layers if isinstance(layer, SearchNetwork)]
    for a, b in zip(loaded_net.arch_parameters, net.arch_parameters):
        np.testing.assert_array_equal(a, b)
    assert not any(_contains(loaded.trainable_weights, v)
                   for v in loaded_net.arch_parameters)
    np.testing.assert_array_equal(loaded(features, training=False),
                                  model(features, training=False))


def test_missing_input_feature_is_named():
    rng = np.random.default_rng(13)
    features = _features(rng)
    del features["seq"]
    with pytest.raises(ValueError, match="seq"):
        _network()(features)


@pytest.mark.parametrize("kwargs, match", [
    (dict(num_cells=2, multiplier=3), "multiplier"),
    (dict(primitives=("sum", "skip_connect")), "skip_connect"),
    (dict(num_steps=1, node_multiplier=2), "node_multiplier"),
])
def test_search_network_argument_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        _network(**kwargs)


def test_search_network_input_name_errors():
    with pytest.raises(ValueError, match="input_names"):
        SearchNetwork(["only"], channels=C, length=L)
    with pytest.raises(ValueError, match="duplicate"):
        SearchNetwork(["a", "a"], channels=C, length=L)


# ------------------------------------------------------- fidelity: MM-IMDB setting

MMIMDB_SHAPES = {"Image_1": (32, 20, 512), "Image_2": (32, 20, 512),
                 "Image_3": (16, 10, 512), "Image_4": (8, 5, 512),
                 "Text_1": (64,), "Text_2": (128,)}


def test_mmimdb_parameter_counts_match_reference(count_params):
    """`docs/fidelity.md` (search space): the BM-NAS reference's counts at the
    MM-IMDB setting."""
    net = SearchNetwork(list(MMIMDB_SHAPES), num_cells=2, num_steps=1, multiplier=2,
                        node_multiplier=1, channels=192, length=16, dropout=0.1,
                        primitives=REFERENCE_PRIMITIVES)
    inputs = {n: keras.Input(s, name=n) for n, s in MMIMDB_SHAPES.items()}
    classifier = keras.layers.Dense(23)
    model = keras.Model(inputs, classifier(net(inputs)))

    rng = np.random.default_rng(14)
    batch = {n: _x(rng, 2, *s) for n, s in MMIMDB_SHAPES.items()}
    assert tuple(model(batch, training=False).shape) == (2, 23)

    total = count_params(model.trainable_weights)
    reshapes = count_params([w for r in net.reshapes.values() for w in r.trainable_weights])
    head = count_params(classifier.trainable_weights)
    assert total == 1_057_559
    assert reshapes == 4 * 98_880 + 12_864 + 25_152 == 433_536
    assert head == 141_335
    assert total - reshapes - head == 482_688

    # Per piece: a mixed step of the four ops, plus the cell LayerNorm.
    step = MixedStep(192, 16, primitives=REFERENCE_PRIMITIVES)
    step.build([(None, 16, 192)] * 2)
    assert count_params(step.trainable_weights) == 6_144 + 148_608 + 74_304
    cell_params = [count_params(c.trainable_weights) for c in net.cells]
    assert cell_params == [count_params(step.trainable_weights) + 6_144] * 2
    output_norm = count_params(net.trainable_weights) - reshapes - sum(cell_params)
    assert output_norm == 12_288
    for name, shape in MMIMDB_SHAPES.items():
        reshape = FeatureReshape(192, 16)
        reshape.build((None,) + shape)
        assert (count_params(net.reshapes[name].trainable_weights)
                == count_params(reshape.trainable_weights))


# ----------------------------------------------------- upper-level routing (alpha)

HIGH, LOW_LOGIT = 30.0, -30.0  # identity logits: softmax weight ~1 or ~0


def _routing_alpha(net, reads):
    """alpha whose identity weight is ~1 exactly on the nodes each cell reads.

    `reads[j]` lists the node indices cell j+1 reads (0..K-1 inputs, K.. cells).
    Columns are [zero, identity]; rows run over cell 1's K edges, then cell
    2's K + 1 edges, ...
    """
    rows = []
    for j, nodes in enumerate(reads):
        for i in range(len(NAMES) + j):
            rows.append([0.0, HIGH if i in nodes else LOW_LOGIT])
    alpha = np.array(rows, "float32")
    assert alpha.shape == tuple(net.alpha.shape)
    return alpha


def _inputs_that_matter(net, features):
    """The input names whose perturbation changes the network's output."""
    base = np.asarray(net(features, training=False))
    moved = []
    for name in NAMES:
        changed = dict(features, **{name: features[name] + 1.0})
        if not np.allclose(net(changed, training=False), base, atol=1e-5):
            moved.append(name)
    return moved


@pytest.mark.parametrize("reads, expected", [
    ([[1], [0]], ["img", "seq"]),   # cell 2's own rows (offset 3) pick img
    ([[2], [3]], ["vec"]),          # cell 2 reads only cell 1
    ([[0, 1], [2]], list(NAMES)),
])
def test_cells_read_the_nodes_their_identity_weights_select(reads, expected):
    """Kills two mutations of the upper level: reading alpha's Zero column
    instead of Identity (the output would depend on the other inputs), and an
    alpha offset that never advances (cell 2 would reuse cell 1's rows)."""
    rng = np.random.default_rng(15)
    net = _network(num_cells=2, num_steps=1, multiplier=2)
    features = _features(rng)
    net(features)
    net.alpha.assign(_routing_alpha(net, reads))
    assert _inputs_that_matter(net, features) == expected
