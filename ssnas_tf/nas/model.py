"""The fixed fusion network rebuilt from a genotype (DARTS's model.py).

Each cell applies its inner steps to its two chosen inputs (x = h1, y = h2),
with the same concat / residual / LayerNorm as during search; the network
output is the concatenation of the genotype's `concat` cells -> LayerNorm ->
ReLU -> flatten. Only live cells (those whose output reaches the network output) are built,
only their live inner steps (those that reach the cell output), and only the
backbone features they read get reshape layers, so unused backbone taps, dead
cells and dead steps cost nothing (the reference builds and computes them all).
"""

import keras
from keras import layers

from ssnas_tf.nas.cells import CellOutput, FusionOutput, check_feature_names
from ssnas_tf.nas.feature_reshape import FeatureReshape
from ssnas_tf.nas.genotypes import Genotype, StepGenotype
from ssnas_tf.nas.operations import make_primitive


def _from_config(cls, config):
    """`from_config` of the derived layers. A config without `build_dead_steps`
    was saved when every step was built; Keras keys list entries by class, so
    pruning it could load a dead step's weights into a live step of the same
    primitive."""
    config.setdefault("build_dead_steps", True)
    return cls(**config)


@keras.saving.register_keras_serializable(package="ssnas_tf")
class DerivedCell(layers.Layer):
    """A fixed fusion cell: `cell([h1, h2])` -> (N, L, C).

    Args:
        step_genotype: a `StepGenotype` or its dict form.
        channels: C. Defaults to 192.
        length: L. Defaults to 16.
        dropout: Defaults to 0.1.
        attention_dropout: `attention`'s dropout; None means `dropout`.
            Defaults to None.
        torch_defaults: PyTorch's Dense init and BN variance. Defaults to
            False.
        build_dead_steps: also build the steps that reach no output, as
            cells saved before dead steps were left out did (their `.keras`
            files load with it). Defaults to False.
    """

    def __init__(self, step_genotype, channels=192, length=16, dropout=0.1,
                 attention_dropout=None, torch_defaults=False, build_dead_steps=False,
                 **kwargs):
        super().__init__(**kwargs)
        if isinstance(step_genotype, dict):
            step_genotype = StepGenotype(
                tuple(tuple(e) for e in step_genotype["inner_edges"]),
                tuple(step_genotype["inner_steps"]),
                tuple(step_genotype["inner_concat"]))
        self.step_genotype = step_genotype
        self.channels = channels
        self.length = length
        self.dropout = dropout
        self.attention_dropout = attention_dropout
        self.torch_defaults = torch_defaults
        self.build_dead_steps = build_dead_steps
        live = set(range(len(step_genotype.inner_steps)) if build_dead_steps
                   else step_genotype.live_steps)
        self.ops = [make_primitive(p, channels, length, dropout, attention_dropout,
                                   torch_defaults, name=f"step_{m + 1}_{p}",
                                   dtype=self.dtype_policy)
                    if m in live else None
                    for m, p in enumerate(step_genotype.inner_steps)]
        self.output_block = CellOutput(len(step_genotype.inner_concat), dropout,
                                       torch_defaults, name="output",
                                       dtype=self.dtype_policy)

    def build(self, input_shape):
        shape = input_shape[0]
        for op in self.ops:
            if op is not None:
                op.build([shape, shape])
        self.output_block.build(shape)

    def call(self, inputs, training=None):
        nodes = list(inputs)
        edges = self.step_genotype.inner_edges
        for m, op in enumerate(self.ops):
            a, b = edges[2 * m][1], edges[2 * m + 1][1]
            nodes.append(None if op is None else op([nodes[a], nodes[b]], training=training))
        concat = [nodes[i] for i in self.step_genotype.inner_concat]
        return self.output_block(concat, inputs[0], training=training)

    def compute_output_shape(self, input_shape):
        return input_shape[0]

    def get_config(self):
        config = super().get_config()
        g = self.step_genotype
        config.update(
            step_genotype={"inner_edges": [list(e) for e in g.inner_edges],
                           "inner_steps": list(g.inner_steps),
                           "inner_concat": list(g.inner_concat)},
            channels=self.channels, length=self.length, dropout=self.dropout,
            attention_dropout=self.attention_dropout,
            torch_defaults=self.torch_defaults, build_dead_steps=self.build_dead_steps)
        return config

    from_config = classmethod(_from_config)


@keras.saving.register_keras_serializable(package="ssnas_tf")
class DerivedNetwork(layers.Layer):
    """The fusion network of a genotype over named backbone features.

    Takes a dict name -> feature (extra names are ignored) and returns the
    flattened (N, L * len(concat) * C) fusion feature.

    Args:
        genotype: a `Genotype` or its dict form.
        channels: C. Defaults to 192.
        length: L. Defaults to 16.
        dropout: Defaults to 0.1.
        attention_dropout: the `attention` primitive's dropout; None means
            `dropout`. Defaults to None.
        torch_defaults: PyTorch's Dense initialisation and BN running
            variance (`ssnas_tf.nas.layers`). Defaults to False.
        build_dead_steps: see `DerivedCell`. Defaults to False.

    Example:
    >>> net = DerivedNetwork(Genotype.load("genotype.json"), channels=64, length=8)
    >>> fused = net(features)  # (N, 8 * len(genotype.concat) * 64)
    """

    def __init__(self, genotype, channels=192, length=16, dropout=0.1,
                 attention_dropout=None, torch_defaults=False, build_dead_steps=False,
                 **kwargs):
        super().__init__(**kwargs)
        if isinstance(genotype, dict):
            genotype = Genotype.from_dict(genotype)
        self.genotype = genotype
        self.channels = channels
        self.length = length
        self.dropout = dropout
        self.attention_dropout = attention_dropout
        self.torch_defaults = torch_defaults
        self.build_dead_steps = build_dead_steps
        self.autocast = False  # inputs stay as given: each FeatureReshape casts after pooling
        self.reshapes = {name: FeatureReshape(channels, length, dropout, torch_defaults,
                                              name=f"reshape_{name}",
                                              dtype=self.dtype_policy)
                         for name in genotype.used_inputs}
        live = set(genotype.live_cells)
        self.cells = [DerivedCell(s, channels, length, dropout, attention_dropout,
                                  torch_defaults, build_dead_steps, name=f"cell_{k + 1}",
                                  dtype=self.dtype_policy)
                      if k in live else None
                      for k, s in enumerate(genotype.steps)]
        self.output_block = FusionOutput(name="output", dtype=self.dtype_policy)

    @property
    def input_names(self):
        return self.genotype.used_inputs

    def build(self, input_shape):
        check_feature_names(self.name, self.input_names, input_shape)
        for name in self.input_names:
            self.reshapes[name].build(input_shape[name])
        cell_shape = (None, self.length, self.channels)
        for cell in self.cells:
            if cell is not None:
                cell.build([cell_shape, cell_shape])
        self.output_block.build([cell_shape] * len(self.genotype.concat))

    def call(self, inputs, training=None):
        g = self.genotype
        states = [self.reshapes[name](inputs[name], training=training)
                  if name in self.reshapes else None for name in g.inputs]
        for k, cell in enumerate(self.cells):
            i, j = g.cell_inputs(k)
            states.append(None if cell is None
                          else cell([states[i], states[j]], training=training))
        return self.output_block([states[i] for i in g.concat])

    def compute_output_shape(self, input_shape):
        batch = next(iter(input_shape.values()))[0]
        return (batch, self.length * len(self.genotype.concat) * self.channels)

    def get_config(self):
        config = super().get_config()
        config.update(genotype=self.genotype.to_dict(), channels=self.channels,
                      length=self.length, dropout=self.dropout,
                      attention_dropout=self.attention_dropout,
                      torch_defaults=self.torch_defaults,
                      build_dead_steps=self.build_dead_steps)
        return config

    from_config = classmethod(_from_config)
