"""MFAS-style surrogate search over BM-NAS genotypes, on keras-tuner.

MFAS (Perez-Rua et al., CVPR 2019) searches fusion configurations with a
surrogate model that predicts a configuration's score from the ones tried so
far. Here the surrogate is keras-tuner's `BayesianOptimization` (a Gaussian
process) and the space is the discrete BM-NAS genotype space of the run's
search settings:

* per cell k, its input pair (i, j), i < j, among the backbone features and
  the earlier cells: `cell{k}_inputs`;
* per inner step m, its ordered pair of predecessors among [x, y, Step_1..]
  (`cell{k}_step{m}_inputs`, first = the query of attention) and its
  primitive (`cell{k}_step{m}_op`; Zero left out, as in derivation).

The outputs are the last `multiplier` cells and, inside a cell, the last
`node_multiplier` steps, as `derive_genotype` does. Each trial trains the
derived fusion network with a classifier head for `search_epochs` epochs on
the labeled search-train half (the frozen backbones' features are computed
once) and is scored by weighted F1 on the search-valid half.
"""

import itertools

import keras
import keras_tuner
import numpy as np
import tensorflow as tf

from ssnas_tf.nas.genotypes import EDGE_OP, Genotype, StepGenotype
from ssnas_tf.nas.model import DerivedNetwork
from ssnas_tf.optimizers import Adam, build_optimizer
from ssnas_tf.ssl.heads import classifier_head
from ssnas_tf.tuners.search import OBJECTIVE, best_trial, score_f1  # noqa: F401
from ssnas_tf.tuners.trial_logs import fit_callbacks, log_objective
from ssnas_tf.seeds import derive_seed

PROJECT = "surrogate_tuner"
MAX_INITIAL_POINTS = 5


def _pair(text):
    return tuple(int(i) for i in text.split(","))


def declare_genotype_space(hp, num_inputs, num_cells, num_steps, primitives):
    """Declares the genotype hyperparameters on `hp` (see the module doc)."""
    ops = [p for p in primitives if p != "zero"]
    if not ops:
        raise ValueError("primitives: the surrogate search needs a primitive besides 'zero'")
    for k in range(1, num_cells + 1):
        pairs = itertools.combinations(range(num_inputs + k - 1), 2)
        hp.Choice(f"cell{k}_inputs", [f"{i},{j}" for i, j in pairs])
        for m in range(1, num_steps + 1):
            edges = itertools.permutations(range(m + 1), 2)
            hp.Choice(f"cell{k}_step{m}_inputs", [f"{a},{b}" for a, b in edges])
            hp.Choice(f"cell{k}_step{m}_op", ops)


def genotype_from_values(values, feature_names, num_cells, num_steps, multiplier,
                         node_multiplier):
    """The genotype of a trial's hyperparameter values."""
    k = len(feature_names)
    edges, steps = [], []
    for c in range(1, num_cells + 1):
        edges += [(EDGE_OP, i) for i in _pair(values[f"cell{c}_inputs"])]
        inner = [(EDGE_OP, i) for m in range(1, num_steps + 1)
                 for i in _pair(values[f"cell{c}_step{m}_inputs"])]
        steps.append(StepGenotype(
            tuple(inner), tuple(values[f"cell{c}_step{m}_op"] for m in range(1, num_steps + 1)),
            tuple(range(2 + num_steps - node_multiplier, 2 + num_steps))))
    return Genotype(inputs=tuple(feature_names), edges=tuple(edges), steps=tuple(steps),
                    concat=tuple(range(k + num_cells - multiplier, k + num_cells)))


def trial_genotype(hp, feature_names, config):
    """The genotype of a trial (`hp`: its HyperParameters) under a RunConfig."""
    c = config
    return genotype_from_values(hp.values, list(feature_names), c.num_cells, c.num_steps,
                                c.multiplier, c.node_multiplier)


class SurrogateHyperModel(keras_tuner.HyperModel):
    """Builds the fusion network + classifier of a genotype; trains it briefly.

    Args:
        feature_shapes: backbone feature name -> per-sample shape, in node order.
        config: the `RunConfig` (search space, epochs, rates).
        task: the `ssnas_tf.tasks.Task`.
    """

    def __init__(self, feature_shapes, config, task, **kwargs):
        super().__init__(**kwargs)
        self.feature_shapes = dict(feature_shapes)
        self.config = config
        self.task = task

    def declare_hyperparameters(self, hp):
        c = self.config
        declare_genotype_space(hp, len(self.feature_shapes), c.num_cells, c.num_steps,
                               c.primitives)

    def build(self, hp):
        c = self.config
        self.declare_hyperparameters(hp)
        genotype = trial_genotype(hp, self.feature_shapes, c)
        inputs = {n: keras.Input(self.feature_shapes[n], name=n) for n in genotype.used_inputs}
        fused = DerivedNetwork(genotype, channels=c.channels, length=c.length,
                               dropout=c.dropout, attention_dropout=c.attention_dropout,
                               torch_defaults=c.torch_defaults, name="fusion")(inputs)
        model = keras.Model(inputs, classifier_head(self.task.num_classes)(fused))
        model.compile(Adam(c.learning_rate), loss=self.task.keras_loss())
        build_optimizer(model)
        return model

    def fit(self, hp, model, train, valid, callbacks=None, **kwargs):
        """Trains on `train` = (features, labels) and returns the valid F1."""
        c = self.config
        names = list(model.input)
        (x, y), (vx, vy) = train, valid
        batch = min(c.batch_size, len(y))
        data = tf.data.Dataset.from_tensor_slices(({n: x[n] for n in names}, y))
        data = data.shuffle(len(y), seed=derive_seed(c.seed, "search", "trial_data"))
        data = data.batch(batch, drop_remainder=True)
        model.fit(data, epochs=max(1, c.search_epochs), verbose=0, shuffle=False,
                  callbacks=fit_callbacks(callbacks))
        score = score_f1(model, {n: vx[n] for n in names}, vy, self.task)
        log_objective(callbacks, OBJECTIVE.name, score)
        return {OBJECTIVE.name: score}


def backbone_features(backbones, dataset, index):
    """The frozen backbones' features of the samples at `index` (inference mode).

    The inputs stream a batch at a time (`model_inputs`); only the features,
    which the surrogate search trains on, are held in memory.
    """
    from ssnas_tf.data.pipelines import model_inputs
    out = backbones.predict(model_inputs(dataset, index), verbose=0)
    return {name: np.asarray(out[name]) for name in backbones.output}


def surrogate_search(dataset, backbones, train_index, valid_index, directory, config,
                     task, project_name=PROJECT, callbacks=None):
    """Runs (or resumes) the Bayesian optimisation; returns (tuner, feature names).

    `callbacks` go to every trial's training; a TensorBoard callback gets
    per-trial logs with HParams (`ssnas_tf.tuners.trial_logs`)."""
    train = backbone_features(backbones, dataset, train_index)
    valid = backbone_features(backbones, dataset, valid_index)
    shapes = {name: array.shape[1:] for name, array in train.items()}
    labels = dataset.labels
    y = labels[train_index].astype("float32" if task.multilabel else "int64")
    vy = labels[valid_index]
    tuner = keras_tuner.BayesianOptimization(
        SurrogateHyperModel(shapes, config, task), objective=OBJECTIVE,
        max_trials=config.trials, num_initial_points=min(MAX_INITIAL_POINTS, config.trials),
        seed=derive_seed(config.seed, "search", "tuner"), directory=directory, project_name=project_name, overwrite=False)
    tuner.search((train, y), (valid, vy), verbose=0, callbacks=list(callbacks or []))
    return tuner, list(shapes)
