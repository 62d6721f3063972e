"""Deriving a discrete genotype from a search network's alpha, beta and gamma.

Upper level: paper eq. 3 (one input pair per cell, no pair shared). Lower
level: the top-2 inner edges per step and eq. 11 without Zero.
"""

import itertools

import numpy as np

from ssnas_tf.nas.genotypes import EDGE_OP, Genotype, StepGenotype


def _softmax(x):
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def derive_cell_inputs(alpha_identity, num_inputs, num_cells):
    """Upper level, eq. 3: one (i, j) pair per cell, no pair shared."""
    pairs, offset = [], 0
    for k in range(num_cells):
        count = num_inputs + k
        w = alpha_identity[offset:offset + count]
        candidates = [p for p in itertools.combinations(range(count), 2)
                      if p not in pairs]
        pairs.append(max(candidates, key=lambda p: w[p[0]] * w[p[1]]))
        offset += count
    return pairs


def derive_step(beta_identity, gamma, primitives, node_multiplier):
    """Lower level: top-2 inner edges per step and eq. 11 without Zero."""
    edges, ops_, offset = [], [], 0
    allowed = [i for i, p in enumerate(primitives) if p != "zero"]
    for m in range(len(gamma)):
        count = 2 + m
        w = beta_identity[offset:offset + count]
        strongest = sorted(range(count), key=lambda i: -w[i])[:2]
        edges += [(EDGE_OP, i) for i in strongest]
        ops_.append(primitives[max(allowed, key=lambda i: gamma[m][i])])
        offset += count
    num_steps = len(gamma)
    concat = tuple(range(2 + num_steps - node_multiplier, 2 + num_steps))
    return StepGenotype(tuple(edges), tuple(ops_), concat)


def derive_genotype(network):
    """The genotype of a built `SearchNetwork` from its current alpha, beta, gamma."""
    weights = {name: _softmax(np.asarray(v)) for name, v in
               zip(("alpha", "beta", "gamma"), network.arch_parameters)}
    k = len(network.input_names)
    pairs = derive_cell_inputs(weights["alpha"][:, 1], k, network.num_cells)
    steps = tuple(derive_step(weights["beta"][c][:, 1], weights["gamma"][c],
                              network.primitives, network.node_multiplier)
                  for c in range(network.num_cells))
    n = network.num_cells
    return Genotype(
        inputs=network.input_names,
        edges=tuple((EDGE_OP, i) for pair in pairs for i in pair),
        steps=steps,
        concat=tuple(range(k + n - network.multiplier, k + n)))
