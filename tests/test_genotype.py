"""Tests for ssnas_tf.nas.genotypes: JSON storage, validation, derivation from alphas."""

import copy
import json
import re

import numpy as np
import pytest

from ssnas_tf.nas.derive import derive_genotype
from ssnas_tf.nas.genotypes import Genotype, GenotypeError, StepGenotype
from ssnas_tf.nas.operations import PAPER_PRIMITIVES, REFERENCE_PRIMITIVES
from ssnas_tf.nas.model_search import SearchNetwork

INPUTS = ("Image_1", "Image_2", "Text_1", "Text_2")


def _genotype():
    return Genotype(
        inputs=INPUTS,
        edges=(("identity", 0), ("identity", 2), ("identity", 4), ("identity", 1)),
        steps=(StepGenotype((("identity", 0), ("identity", 1)), ("concat_fc",), (2,)),
               StepGenotype((("identity", 1), ("identity", 0),
                             ("identity", 2), ("identity", 2)),
                            ("attention", "sum"), (2, 3))),
        concat=(4, 5))


# ------------------------------------------------------------------ JSON storage


def test_json_round_trip():
    g = _genotype()
    text = g.to_json()
    assert json.loads(text)["inputs"] == list(INPUTS)
    back = Genotype.from_json(text)
    assert back == g
    assert isinstance(back.steps[0], StepGenotype)
    assert back.cell_inputs(1) == (4, 1)
    assert back.used_inputs == ("Image_1", "Image_2", "Text_1")


def test_file_round_trip(tmp_path):
    g = _genotype()
    path = tmp_path / "genotype.json"
    g.save(path)
    assert Genotype.load(path) == g
    assert Genotype.load(str(path)) == g


def _broken(change):
    data = _genotype().to_dict()
    change(data)
    return json.dumps(data)


def _set(path, value):
    def change(data):
        target = data
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value
    return change


def _drop(key):
    return lambda data: data.pop(key)


# (how to break the JSON, text the message must contain)
ERRORS = {
    "missing_inputs": (_drop("inputs"), "inputs"),
    "missing_edges": (_drop("edges"), "edges"),
    "missing_steps": (_drop("steps"), "steps"),
    "missing_concat": (_drop("concat"), "concat"),
    "edge_index_out_of_range": (_set(["edges", 1, 1], 4), "edges[1]"),
    "edge_index_negative": (_set(["edges", 0, 1], -1), "edges[0]"),
    "edge_to_later_cell": (_set(["edges", 2, 1], 5), "edges[2]"),
    "inner_edge_out_of_range": (_set(["steps", 0, "inner_edges", 1, 1], 2),
                                "steps[0].inner_edges[1]"),
    "inner_edge_to_later_step": (_set(["steps", 1, "inner_edges", 1, 1], 3),
                                 "steps[1].inner_edges[1]"),
    "unknown_primitive": (_set(["steps", 1, "inner_steps", 1], "sep_conv_3x3"),
                          "steps[1].inner_steps[1]"),
    "unknown_edge_op": (_set(["edges", 3, 0], "skip"), "edges[3]"),
    "unknown_inner_edge_op": (_set(["steps", 0, "inner_edges", 0, 0], "zero"),
                              "steps[0].inner_edges[0]"),
    "too_few_edges": (lambda d: d["edges"].pop(), "edges"),
    "too_many_edges": (lambda d: d["edges"].append(["identity", 0]), "edges"),
    "too_few_inner_edges": (lambda d: d["steps"][1]["inner_edges"].pop(),
                            "steps[1].inner_edges"),
    "concat_not_a_cell": (_set(["concat", 0], 1), "concat"),
    "concat_out_of_range": (_set(["concat", 1], 6), "concat"),
    "concat_repeated": (_set(["concat"], [5, 5]), "concat"),
    "concat_empty": (_set(["concat"], []), "concat"),
    "inner_concat_out_of_range": (_set(["steps", 0, "inner_concat"], [3]),
                                  "steps[0].inner_concat"),
    "inner_concat_input_node": (_set(["steps", 1, "inner_concat"], [1, 3]),
                                "steps[1].inner_concat"),
    "edge_index_string": (_set(["edges", 0, 1], "0"), "edges[0]"),
    "edge_index_float": (_set(["edges", 0, 1], 1.5), "edges[0]"),
    "edge_index_bool": (_set(["edges", 0, 1], True), "edges[0]"),
    "inner_edge_index_float": (_set(["steps", 0, "inner_edges", 0, 1], 0.5),
                               "steps[0].inner_edges[0]"),
    "concat_index_string": (_set(["concat", 0], "4"), "concat"),
    "inner_concat_index_float": (_set(["steps", 0, "inner_concat"], [2.5]),
                                 "steps[0].inner_concat"),
    "inner_concat_index_string": (_set(["steps", 0, "inner_concat"], ["two"]),
                                  "steps[0].inner_concat"),
    "edge_not_a_pair": (_set(["edges", 0], ["identity"]), "edges[0]"),
    "edges_not_a_list": (_set(["edges"], "identity"), "edges"),
    "duplicate_inputs": (_set(["inputs"], ["a", "a", "b", "c"]), "inputs"),
    "no_cells": (lambda d: (d.update(steps=[], edges=[])), "steps"),
}


@pytest.mark.parametrize("case", list(ERRORS))
def test_validation_errors_name_the_field(case):
    change, field = ERRORS[case]
    with pytest.raises(GenotypeError, match=re.escape(field)):
        Genotype.from_json(_broken(change))


def test_malformed_json():
    with pytest.raises(GenotypeError, match="JSON"):
        Genotype.from_json('{"inputs": ["a", "b"], ')
    with pytest.raises(GenotypeError, match="object"):
        Genotype.from_json("[1, 2]")


def test_genotype_error_is_a_value_error():
    assert issubclass(GenotypeError, ValueError)


def test_constructor_validates():
    g = _genotype()
    with pytest.raises(GenotypeError, match=re.escape("edges[3]")):
        Genotype(inputs=g.inputs, edges=g.edges[:3] + (("identity", 9),),
                 steps=g.steps, concat=g.concat)


_STEP = StepGenotype((("identity", 0), ("identity", 1)), ("sum",), (2,))


@pytest.mark.parametrize("fields, field", [
    (dict(edges=(("identity", "0"), ("identity", 1))), "edges[0]"),
    (dict(edges=(("identity", 0), ("identity", 1.0))), "edges[1]"),
    (dict(concat=("2",)), "concat"),
    (dict(steps=(StepGenotype((("identity", 0), ("identity", 1)), ("sum",), (2.0,)),)),
     "steps[0].inner_concat"),
])
def test_constructor_rejects_non_integer_indices(fields, field):
    """`validate` must reject what `from_json` rejects: a genotype that passes
    the constructor has to survive its own JSON round trip."""
    args = dict(inputs=("a", "b"), edges=(("identity", 0), ("identity", 1)),
                steps=(_STEP,), concat=(2,))
    args.update(fields)
    with pytest.raises(GenotypeError, match=re.escape(field)):
        Genotype(**args)


def test_load_of_a_corrupt_file_names_the_path(tmp_path):
    path = tmp_path / "corrupt.json"
    path.write_text(_genotype().to_json()[:-10])
    with pytest.raises(GenotypeError, match=re.escape(str(path))):
        Genotype.load(path)
    bad_field = tmp_path / "bad_field.json"
    bad_field.write_text(_broken(_set(["concat", 0], 0)))
    with pytest.raises(GenotypeError, match=re.escape(str(bad_field)) + ".*concat"):
        Genotype.load(bad_field)
    missing = tmp_path / "missing.json"
    with pytest.raises(GenotypeError, match=re.escape(str(missing))):
        Genotype.load(missing)


# -------------------------------------------------------------------- derivation

LOW = -8.0  # identity logit of an edge that should lose


def _search_network(num_cells=2, num_steps=1, multiplier=2, node_multiplier=1,
                    primitives=PAPER_PRIMITIVES):
    net = SearchNetwork(INPUTS, num_cells=num_cells, num_steps=num_steps,
                        multiplier=multiplier, node_multiplier=node_multiplier,
                        channels=4, length=4, primitives=primitives)
    net.build({name: (None, 3) for name in INPUTS})
    return net


def _upper(identity_logits_per_cell, zero_logit=0.0):
    """alpha rows [zero, identity] from one list of identity logits per cell."""
    rows = [[zero_logit, v] for cell in identity_logits_per_cell for v in cell]
    return np.array(rows, "float32")


def _set_arch(net, alpha=None, beta=None, gamma=None):
    for v, value in zip(net.arch_parameters, (alpha, beta, gamma)):
        if value is not None:
            value = np.asarray(value, "float32")
            assert value.shape == tuple(v.shape)
            v.assign(value)


def _pairs(genotype):
    return [genotype.cell_inputs(k) for k in range(genotype.num_cells)]


def test_obvious_pair_for_the_first_cell():
    net = _search_network()
    # cell 1 sees nodes 0..3, cell 2 nodes 0..4 (4 = cell 1).
    _set_arch(net, alpha=_upper([[LOW, 3.0, LOW, 2.0],
                                 [2.0, LOW, 3.0, LOW, LOW]]))
    g = derive_genotype(net)
    assert _pairs(g) == [(1, 3), (0, 2)]
    assert all(op == "identity" for op, _ in g.edges)
    assert g.inputs == INPUTS
    assert g.concat == (4, 5)


def test_pair_taken_by_an_earlier_cell_is_not_repeated():
    """Cell 2's best pair is cell 1's: the next-best pair is taken instead."""
    net = _search_network()
    _set_arch(net, alpha=_upper([[LOW, 3.0, LOW, 2.0],
                                 [1.0, 3.0, LOW, 2.5, LOW]]))
    assert _pairs(derive_genotype(net)) == [(1, 3), (0, 1)]


def test_an_earlier_cell_can_be_an_input():
    net = _search_network(num_cells=3)
    _set_arch(net, alpha=_upper([[3.0, 2.0, LOW, LOW],
                                 [LOW, LOW, 3.0, LOW, 2.5],        # input 2 + cell 1
                                 [LOW, LOW, LOW, LOW, 2.0, 3.0]]))  # cells 1 and 2
    g = derive_genotype(net)
    assert _pairs(g) == [(0, 1), (2, 4), (4, 5)]
    assert g.concat == (5, 6)
    assert g.used_inputs == ("Image_1", "Image_2", "Text_1")


def test_upper_level_uses_the_softmaxed_identity_weight():
    """A high identity logit loses to a higher zero logit on the same edge."""
    net = _search_network(num_cells=1, multiplier=1)
    alpha = _upper([[1.0, 1.0, 1.0, 1.0]])
    alpha[0] = [10.0, 5.0]   # identity logit 5 but softmax weight ~0.007
    alpha[2] = [-3.0, 0.0]   # weight ~0.95
    alpha[3] = [-2.0, 0.0]   # weight ~0.88
    _set_arch(net, alpha=alpha)
    assert _pairs(derive_genotype(net)) == [(2, 3)]


def test_zero_is_never_derived():
    net = _search_network(num_cells=2)
    gamma = np.zeros((2, 1, len(PAPER_PRIMITIVES)), "float32")
    order = list(PAPER_PRIMITIVES)
    gamma[0, 0, order.index("zero")] = 9.0
    gamma[0, 0, order.index("concat_fc")] = 4.0
    gamma[0, 0, order.index("sum")] = 3.0
    gamma[1, 0, order.index("zero")] = 9.0
    gamma[1, 0, order.index("attention")] = 1.0
    _set_arch(net, gamma=gamma)
    g = derive_genotype(net)
    assert [s.inner_steps for s in g.steps] == [("concat_fc",), ("attention",)]


def test_op_is_the_gamma_argmax_without_zero_in_the_set():
    net = _search_network(num_cells=2, primitives=REFERENCE_PRIMITIVES)
    gamma = np.zeros((2, 1, 4), "float32")
    gamma[0, 0, REFERENCE_PRIMITIVES.index("linear_glu")] = 2.0
    gamma[1, 0, REFERENCE_PRIMITIVES.index("sum")] = 2.0
    _set_arch(net, gamma=gamma)
    g = derive_genotype(net)
    assert [s.inner_steps for s in g.steps] == [("linear_glu",), ("sum",)]


@pytest.mark.parametrize("node_multiplier, inner_concat", [(1, (3,)), (2, (2, 3))])
def test_top_two_inner_edges_with_two_steps(node_multiplier, inner_concat):
    net = _search_network(num_cells=2, num_steps=2, node_multiplier=node_multiplier)
    # Per cell: step 1 <- [x, y], step 2 <- [x, y, step_1]; columns [zero, identity].
    beta = np.zeros((2, 5, 2), "float32")
    beta[0, :, 1] = [1.0, 3.0,        # step 1: y first, then x
                     LOW, 2.0, 4.0]   # step 2: step_1 (node 2), then y
    beta[1, :, 1] = [3.0, 1.0,        # step 1: x, then y
                     2.0, 0.0, 1.0]   # step 2: x's identity logit is the highest,
    beta[1, 2, 0] = 9.0               # but its zero logit wins: step_1, then y
    gamma = np.zeros((2, 2, len(PAPER_PRIMITIVES)), "float32")
    order = list(PAPER_PRIMITIVES)
    for cell, ops in enumerate([("sum", "attention"), ("linear_glu", "linear_glu")]):
        for m, op in enumerate(ops):
            gamma[cell, m, order.index(op)] = 1.0
    _set_arch(net, beta=beta, gamma=gamma)
    g = derive_genotype(net)
    assert g.steps[0] == StepGenotype(
        (("identity", 1), ("identity", 0), ("identity", 2), ("identity", 1)),
        ("sum", "attention"), inner_concat)
    assert g.steps[1] == StepGenotype(
        (("identity", 0), ("identity", 1), ("identity", 2), ("identity", 1)),
        ("linear_glu", "linear_glu"), inner_concat)


@pytest.mark.parametrize("num_cells, multiplier, concat", [(2, 1, (5,)), (3, 2, (5, 6)),
                                                           (3, 3, (4, 5, 6))])
def test_concat_is_the_last_cells(num_cells, multiplier, concat):
    net = _search_network(num_cells=num_cells, multiplier=multiplier)
    g = derive_genotype(net)
    assert g.concat == concat
    assert Genotype.from_json(g.to_json()) == g


def test_derived_genotype_survives_json_copy():
    net = _search_network(num_cells=2, num_steps=2)
    rng = np.random.default_rng(0)
    for v in net.arch_parameters:
        v.assign(rng.normal(size=v.shape).astype("float32"))
    g = derive_genotype(net)
    assert Genotype.from_dict(copy.deepcopy(g.to_dict())) == g
