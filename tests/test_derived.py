"""Tests for ssnas_tf.nas.model: the fixed fusion network rebuilt from a genotype."""

import keras
import numpy as np
import pytest

from ssnas_tf.nas.model import DerivedCell, DerivedNetwork
from ssnas_tf.nas.derive import derive_genotype
from ssnas_tf.nas.genotypes import Genotype, StepGenotype
from ssnas_tf.nas.operations import REFERENCE_PRIMITIVES
from ssnas_tf.nas.feature_reshape import FeatureReshape
from ssnas_tf.nas.model_search import SearchCell, SearchNetwork
from helpers import randomise_weights

N, L, C = 2, 4, 8
EPS = 1e-5
NAMES = ("img", "seq", "vec", "txt")


def _x(rng, *shape):
    return rng.normal(size=shape).astype("float32")


def _features(rng, n=N):
    return {"img": _x(rng, n, 6, 6, 3), "seq": _x(rng, n, 5, 4), "vec": _x(rng, n, 7),
            "txt": _x(rng, n, 9)}


def _layer_norm(z):
    mean = z.mean(axis=(-2, -1), keepdims=True)
    return (z - mean) / np.sqrt(z.var(axis=(-2, -1), keepdims=True) + EPS)


def _genotype(concat=(4, 5)):
    """Cell 1 fuses img and vec; cell 2 fuses cell 1 and img; seq, txt unused."""
    return Genotype(
        inputs=NAMES,
        edges=(("identity", 0), ("identity", 2), ("identity", 4), ("identity", 0)),
        steps=(StepGenotype((("identity", 0), ("identity", 1)), ("concat_fc",), (2,)),
               StepGenotype((("identity", 1), ("identity", 0),
                             ("identity", 2), ("identity", 1)),
                            ("attention", "linear_glu"), (2, 3))),
        concat=concat)




@pytest.mark.parametrize("concat", [(4, 5), (5,), (4,)])
def test_output_shape(concat):
    rng = np.random.default_rng(0)
    net = DerivedNetwork(_genotype(concat), channels=C, length=L)
    out = net(_features(rng))
    assert tuple(out.shape) == (N, L * len(concat) * C)
    assert net.compute_output_shape({n: (N,) for n in NAMES}) == (N, L * len(concat) * C)


def test_only_used_inputs_get_reshape_layers(count_params):
    rng = np.random.default_rng(1)
    net = DerivedNetwork(_genotype(), channels=C, length=L)
    assert net.input_names == ("img", "vec")
    assert sorted(net.reshapes) == ["img", "vec"]
    features = _features(rng)
    used = {n: features[n] for n in ("img", "vec")}
    out = np.asarray(net(used, training=False))  # unused inputs may be absent
    np.testing.assert_array_equal(net(features, training=False), out)  # or present
    # Weights: two reshapes, the cells and the output LayerNorm, nothing else.
    reshape_params = 0
    for name in ("img", "vec"):
        ref = FeatureReshape(C, L)
        ref.build((None,) + features[name].shape[1:])
        reshape_params += count_params(ref.trainable_weights)
    cell_params = count_params([w for c in net.cells for w in c.trainable_weights])
    assert (count_params(net.trainable_weights)
            == reshape_params + cell_params + 2 * L * 2 * C)


def test_missing_used_input_is_named():
    rng = np.random.default_rng(2)
    features = _features(rng)
    del features["vec"]
    with pytest.raises(ValueError, match="vec"):
        DerivedNetwork(_genotype(), channels=C, length=L)(features)


def test_derived_cell_applies_ops_to_the_chosen_nodes():
    """Two `sum` steps: s1 = T[1] + T[0], s2 = s1 + T[1]; out = LN(s2 + x)."""
    rng = np.random.default_rng(3)
    x, y = _x(rng, N, L, C), _x(rng, N, L, C)
    step = StepGenotype((("identity", 1), ("identity", 0), ("identity", 2), ("identity", 1)),
                        ("sum", "sum"), (3,))
    cell = DerivedCell(step, channels=C, length=L)
    out = cell([x, y], training=False)
    np.testing.assert_allclose(out, _layer_norm((x + y) + y + x), rtol=1e-4, atol=1e-4)
    assert len(cell.trainable_weights) == 2  # the cell LayerNorm only


def test_derived_cell_with_repeated_inputs_matches_search_cell():
    """At one-hot gamma and h as both inputs, the derived cell is the search cell."""
    rng = np.random.default_rng(4)
    h = _x(rng, N, L, C)
    step = StepGenotype((("identity", 0), ("identity", 1)), ("sum",), (2,))
    derived = DerivedCell(step, channels=C, length=L)
    search = SearchCell(C, L, num_steps=1, primitives=("sum",))
    beta = np.array([[0.5, 0.5], [0.5, 0.5]], "float32")  # t = h
    gamma = np.ones((1, 1), "float32")
    search(h, beta, gamma)
    derived([h, h])
    randomise_weights(search, rng)
    derived.set_weights(search.get_weights())
    np.testing.assert_allclose(derived([h, h], training=False),
                               search(h, beta, gamma, training=False),
                               rtol=1e-5, atol=1e-5)


def test_derived_cell_node_multiplier_path():
    rng = np.random.default_rng(5)
    step = StepGenotype((("identity", 0), ("identity", 1), ("identity", 2), ("identity", 0)),
                        ("concat_fc", "linear_glu"), (2, 3))
    cell = DerivedCell(step, channels=C, length=L)
    out = cell([_x(rng, N, L, C), _x(rng, N, L, C)])
    assert tuple(out.shape) == (N, L, C)
    # concat_fc (4) + linear_glu (4) + projection Dense and BN (4) + LayerNorm (2)
    assert len(cell.trainable_weights) == 14
    clone = DerivedCell.from_config(cell.get_config())
    assert clone.step_genotype == step
    assert clone.get_config() == cell.get_config()


def test_config_round_trip():
    rng = np.random.default_rng(6)
    net = DerivedNetwork(_genotype(), channels=C, length=L, dropout=0.2, name="derived")
    features = _features(rng)
    net(features)
    randomise_weights(net, rng)
    config = net.get_config()
    assert Genotype.from_dict(config["genotype"]) == _genotype()
    clone = DerivedNetwork.from_config(config)
    assert clone.genotype == net.genotype
    assert clone.get_config() == config
    clone(features)
    clone.set_weights(net.get_weights())
    np.testing.assert_allclose(clone(features, training=False),
                               net(features, training=False), rtol=1e-6, atol=1e-6)


def test_keras_round_trip(tmp_path):
    rng = np.random.default_rng(7)
    features = _features(rng)
    used = {n: features[n] for n in ("img", "vec")}
    inputs = {n: keras.Input(v.shape[1:], name=n) for n, v in used.items()}
    net = DerivedNetwork(_genotype(), channels=C, length=L)
    model = keras.Model(inputs, keras.layers.Dense(5)(net(inputs)))
    randomise_weights(net, rng)
    model.save(tmp_path / "derived.keras")
    loaded = keras.saving.load_model(tmp_path / "derived.keras")
    (loaded_net,) = [layer for layer in loaded.layers if isinstance(layer, DerivedNetwork)]
    assert loaded_net.genotype == net.genotype
    np.testing.assert_array_equal(loaded(used, training=False), model(used, training=False))


def test_network_from_a_derived_genotype_runs():
    rng = np.random.default_rng(8)
    search = SearchNetwork(NAMES, num_cells=2, num_steps=2, node_multiplier=2,
                           channels=C, length=L, primitives=REFERENCE_PRIMITIVES)
    features = _features(rng)
    search(features)
    for v in search.arch_parameters:
        v.assign(rng.normal(size=v.shape).astype("float32"))
    genotype = derive_genotype(search)
    net = DerivedNetwork(genotype, channels=C, length=L)
    out = net(features, training=True)
    assert tuple(out.shape) == (N, L * len(genotype.concat) * C)
    assert np.isfinite(np.asarray(out)).all()
    assert set(net.reshapes) == set(genotype.used_inputs)
