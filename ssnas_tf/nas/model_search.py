"""The search-time BM-NAS fusion network (DARTS's model_search.py).

Two levels, each a continuous relaxation (`docs/fidelity.md`, search space):

* Upper level (feature selection): nodes S = [inputs..., Cell_1..Cell_n]. Every
  edge i -> j carries softmax(alpha_ij) over {Zero, Identity}; Cell_j receives
  the single tensor sum_i w_ij * S_i and feeds it as both x and y.
* Lower level (fusion strategy): inside a cell, T = [x, y, Step_1..Step_M];
  Step_m = sum_f softmax(gamma_m)_f * f(t, t), with t the beta-weighted sum of
  its predecessors.

Architecture parameters alpha, beta and gamma live in `SearchNetwork` as their
own variable group (`arch_parameters`). They are created non-trainable so that
`trainable_weights` holds exactly the weights w, `fit` with one optimizer can
never move them, and parameter counts match the reference (whose alphas are not
module parameters either). `ssnas_tf.nas.architect.SearchModel` trains them with
the architecture optimizer.
"""

import keras
from keras import layers, ops

from ssnas_tf.nas.cells import CellOutput, FusionOutput, check_feature_names
from ssnas_tf.nas.feature_reshape import FeatureReshape
from ssnas_tf.nas.operations import (PAPER_PRIMITIVES, check_primitive_names,
                                     make_primitive)

EDGE_OPS = ("zero", "identity")  # the unary ops of every mixed edge
IDENTITY = EDGE_OPS.index("identity")


def weighted_sum(tensors, weights):
    """sum_i weights[i] * tensors[i]; `weights` is a 1-D tensor."""
    total = weights[0] * tensors[0]
    for i in range(1, len(tensors)):
        total = total + weights[i] * tensors[i]
    return total


def num_inner_edges(num_steps):
    """Edges into the inner steps: step m has 2 + m predecessors."""
    return sum(2 + m for m in range(num_steps))


def num_upper_edges(num_inputs, num_cells):
    """Edges into the cells: cell j has num_inputs + j predecessors."""
    return sum(num_inputs + j for j in range(num_cells))


@keras.saving.register_keras_serializable(package="ssnas_tf")
class MixedStep(layers.Layer):
    """A mixed binary op: sum_f w_f * f([x, y]) over the primitive set.

    Only the primitive names are configuration; the ops are rebuilt from the
    registry. `attention_dropout` and `torch_defaults` are as in
    `operations.make_primitive`.
    """

    def __init__(self, channels, length, dropout=0.1,
                 primitives=PAPER_PRIMITIVES, attention_dropout=None,
                 torch_defaults=False, **kwargs):
        super().__init__(**kwargs)
        check_primitive_names(primitives)
        self.channels = channels
        self.length = length
        self.dropout = dropout
        self.primitives = tuple(primitives)
        self.attention_dropout = attention_dropout
        self.torch_defaults = torch_defaults
        self.ops = [make_primitive(p, channels, length, dropout, attention_dropout,
                                   torch_defaults, name=p, dtype=self.dtype_policy)
                    for p in self.primitives]
        # Zero adds nothing to the sum or to any gradient: its term is left out.
        self.summed = (tuple(i for i, p in enumerate(self.primitives) if p != "zero")
                       or tuple(range(len(self.primitives))))

    def build(self, input_shape):
        for op in self.ops:
            op.build(input_shape)

    def call(self, inputs, weights, training=None):
        outs = [self.ops[i](inputs, training=training) for i in self.summed]
        return weighted_sum(outs, [weights[i] for i in self.summed])

    def compute_output_shape(self, input_shape):
        return input_shape[0]

    def get_config(self):
        config = super().get_config()
        config.update(channels=self.channels, length=self.length,
                      dropout=self.dropout, primitives=list(self.primitives),
                      attention_dropout=self.attention_dropout,
                      torch_defaults=self.torch_defaults)
        return config


@keras.saving.register_keras_serializable(package="ssnas_tf")
class SearchCell(layers.Layer):
    """A fusion cell during search: M mixed inner steps over one input.

    Called as `cell(h, beta_weights, gamma_weights)` where h is (N, L, C),
    beta_weights (num_inner_edges, 2) and gamma_weights (M, P) are softmaxed.

    Args:
        channels: C. Defaults to 192.
        length: L. Defaults to 16.
        num_steps: M, inner steps. Defaults to 1.
        node_multiplier: how many of the last inner nodes form the output.
            Defaults to 1.
        dropout: Defaults to 0.1.
        primitives: names of the candidate binary ops. Defaults to the
            paper's five.
        attention_dropout: `attention`'s dropout; None means `dropout`.
            Defaults to None.
        torch_defaults: PyTorch's Dense init and BN variance. Defaults to
            False.
    """

    def __init__(self, channels=192, length=16, num_steps=1, node_multiplier=1,
                 dropout=0.1, primitives=PAPER_PRIMITIVES, attention_dropout=None,
                 torch_defaults=False, **kwargs):
        super().__init__(**kwargs)
        if not 1 <= node_multiplier <= num_steps:
            raise ValueError(
                f"node_multiplier must be in [1, num_steps={num_steps}], got "
                f"{node_multiplier}")
        self.channels = channels
        self.length = length
        self.num_steps = num_steps
        self.node_multiplier = node_multiplier
        self.dropout = dropout
        self.primitives = tuple(primitives)
        self.attention_dropout = attention_dropout
        self.torch_defaults = torch_defaults
        self.steps = [MixedStep(channels, length, dropout, primitives,
                                attention_dropout, torch_defaults,
                                name=f"step_{m + 1}", dtype=self.dtype_policy)
                      for m in range(num_steps)]
        self.output_block = CellOutput(node_multiplier, dropout, torch_defaults,
                                       name="output", dtype=self.dtype_policy)

    def build(self, input_shape):
        for step in self.steps:
            step.build([input_shape, input_shape])
        self.output_block.build(input_shape)

    def call(self, h, beta_weights, gamma_weights, training=None):
        nodes = [h, h]
        offset = 0
        for m, step in enumerate(self.steps):
            count = 2 + m
            w = beta_weights[offset:offset + count, IDENTITY]
            # Nodes 0 and 1 are both h: one product with their summed weight.
            t = weighted_sum([h] + nodes[2:], [w[0] + w[1]] + [w[i] for i in range(2, count)])
            nodes.append(step([t, t], gamma_weights[m], training=training))
            offset += count
        return self.output_block(nodes[-self.node_multiplier:], h, training=training)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(channels=self.channels, length=self.length,
                      num_steps=self.num_steps,
                      node_multiplier=self.node_multiplier,
                      dropout=self.dropout, primitives=list(self.primitives),
                      attention_dropout=self.attention_dropout,
                      torch_defaults=self.torch_defaults)
        return config


@keras.saving.register_keras_serializable(package="ssnas_tf")
class SearchNetwork(layers.Layer):
    """The BM-NAS search network over K named backbone features.

    Takes a dict name -> feature tensor ((N, D), (N, T, D) or (N, H, W, D)),
    reshapes each to (N, L, C), runs the cells and returns the flattened
    (N, L * multiplier * C) fusion feature. A head (projection head or
    classifier) goes on top of it.

    Args:
        input_names: the K feature names, in node order.
        num_cells: n, fusion cells. Defaults to 2.
        num_steps: M, inner steps per cell. Defaults to 1.
        multiplier: how many of the last cells form the output. Defaults to 2.
        node_multiplier: see `SearchCell`. Defaults to 1.
        channels: C. Defaults to 192.
        length: L. Defaults to 16.
        dropout: Defaults to 0.1.
        primitives: candidate binary ops. Defaults to `PAPER_PRIMITIVES`;
            `primitives.REFERENCE_PRIMITIVES` is the BM-NAS code's four.
        attention_dropout: the `attention` primitive's dropout; None means
            `dropout`. The BM-NAS code hard-codes 0.1. Defaults to None.
        torch_defaults: PyTorch's Dense initialisation and BN running
            variance, as in the BM-NAS code (`ssnas_tf.nas.layers`).
            Defaults to False.

    Example:
    >>> net = SearchNetwork(["image", "text"], channels=8, length=4)
    >>> net({"image": np.zeros((2, 6, 6, 3)), "text": np.zeros((2, 5))}).shape
    (2, 64)
    >>> [v.shape for v in net.arch_parameters]
    [(3, 2), (2, 2, 2), (2, 1, 5)]

    Reference: Yin et al., "BM-NAS", AAAI 2022, eq. 1-2.
    """

    def __init__(self, input_names, num_cells=2, num_steps=1, multiplier=2,
                 node_multiplier=1, channels=192, length=16, dropout=0.1,
                 primitives=PAPER_PRIMITIVES, attention_dropout=None,
                 torch_defaults=False, **kwargs):
        super().__init__(**kwargs)
        self.input_names = tuple(input_names)
        if len(self.input_names) < 2:
            raise ValueError(
                f"input_names: need at least 2 features to fuse, got "
                f"{list(self.input_names)}")
        if len(set(self.input_names)) != len(self.input_names):
            raise ValueError(f"input_names: duplicate names in {list(self.input_names)}")
        if not 1 <= multiplier <= num_cells:
            raise ValueError(
                f"multiplier must be in [1, num_cells={num_cells}], got {multiplier}")
        check_primitive_names(primitives)
        self.num_cells = num_cells
        self.num_steps = num_steps
        self.multiplier = multiplier
        self.node_multiplier = node_multiplier
        self.channels = channels
        self.length = length
        self.dropout = dropout
        self.primitives = tuple(primitives)
        self.attention_dropout = attention_dropout
        self.torch_defaults = torch_defaults
        self.autocast = False  # inputs stay as given: each FeatureReshape casts after pooling
        self.reshapes = {name: FeatureReshape(channels, length, dropout, torch_defaults,
                                              name=f"reshape_{name}",
                                              dtype=self.dtype_policy)
                         for name in self.input_names}
        self.cells = [SearchCell(channels, length, num_steps, node_multiplier,
                                 dropout, primitives, attention_dropout,
                                 torch_defaults, name=f"cell_{j + 1}",
                                 dtype=self.dtype_policy)
                      for j in range(num_cells)]
        self.output_block = FusionOutput(name="output", dtype=self.dtype_policy)

    def build(self, input_shape):
        check_feature_names(self.name, self.input_names, input_shape)
        for name in self.input_names:
            self.reshapes[name].build(input_shape[name])
        cell_shape = (None, self.length, self.channels)
        for cell in self.cells:
            cell.build(cell_shape)
        self.output_block.build([cell_shape] * self.multiplier)
        k = len(self.input_names)
        shapes = {"alpha": (num_upper_edges(k, self.num_cells), len(EDGE_OPS)),
                  "beta": (self.num_cells, num_inner_edges(self.num_steps), len(EDGE_OPS)),
                  "gamma": (self.num_cells, self.num_steps, len(self.primitives))}
        for name, shape in shapes.items():
            # Not autocast: under mixed precision they and their softmaxes
            # stay in the variable dtype (float32), as the genotype depends on them.
            setattr(self, name, self.add_weight(
                name=name, shape=shape, trainable=False,
                autocast=False, initializer=keras.initializers.RandomNormal(stddev=1e-3)))

    @property
    def arch_parameters(self):
        """[alpha, beta, gamma]: the architecture variables (not trainable_weights)."""
        return [self.alpha, self.beta, self.gamma]

    def arch_weights(self):
        """The softmaxed architecture parameters as numpy arrays, by name."""
        return {v.name: ops.convert_to_numpy(ops.softmax(v, axis=-1))
                for v in self.arch_parameters}

    def call(self, inputs, training=None):
        states = [self.reshapes[name](inputs[name], training=training)
                  for name in self.input_names]
        # Softmax in float32; only the weights that scale features are cast.
        alpha, beta, gamma = (ops.cast(ops.softmax(v, axis=-1), self.compute_dtype)
                              for v in self.arch_parameters)
        offset = 0
        for j, cell in enumerate(self.cells):
            count = len(states)
            h = weighted_sum(states, alpha[offset:offset + count, IDENTITY])
            states.append(cell(h, beta[j], gamma[j], training=training))
            offset += count
        return self.output_block(states[-self.multiplier:])

    def compute_output_shape(self, input_shape):
        batch = next(iter(input_shape.values()))[0]
        return (batch, self.length * self.multiplier * self.channels)

    def get_config(self):
        config = super().get_config()
        config.update(input_names=list(self.input_names),
                      num_cells=self.num_cells, num_steps=self.num_steps,
                      multiplier=self.multiplier,
                      node_multiplier=self.node_multiplier,
                      channels=self.channels, length=self.length,
                      dropout=self.dropout, primitives=list(self.primitives),
                      attention_dropout=self.attention_dropout,
                      torch_defaults=self.torch_defaults)
        return config
