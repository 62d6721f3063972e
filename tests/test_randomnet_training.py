"""RandomNet at small budgets: optional normalised inputs and ops, a floor on
a trial's steps (`tuners.search`), Adam 1e-3 by default."""

import re

import keras
import numpy as np
import pytest

from ssnas_tf.data.base import MultimodalDataset
from ssnas_tf.tuners import search as rn_search
from ssnas_tf.tuners.randomnet import build_randomnet, sample_architecture
from ssnas_tf.workflow.config import RunConfig

KINDS = {"img": "image", "vec": "vector"}
SHAPES = {"img": (8, 8, 1), "vec": (5,)}


def _layers(model, cls):
    return [l for l in model.layers if isinstance(l, cls)]


@pytest.mark.parametrize("seed", range(3))
def test_normalised_networks_normalise_inputs_and_every_weighted_op(seed):
    arch = sample_architecture(KINDS, seed, normalization=True)
    assert arch["normalization"] is True
    assert sample_architecture(KINDS, seed, normalization=False) == {
        k: v for k, v in arch.items() if k != "normalization"}
    stats = {"img": (np.array([0.3], "float32"), np.array([0.04], "float32")),
             "vec": (np.zeros(5, "float32"), np.ones(5, "float32"))}
    model = build_randomnet(arch, SHAPES, 3, stats)
    weighted = [l for l in model.layers if l.name.split("_")[0] in KINDS
                and "_cell" in l.name and isinstance(l, (keras.layers.Conv2D,
                                                          keras.layers.SeparableConv2D))
                or ("_l" in l.name and isinstance(l, keras.layers.Dense))]
    norms = {l.name for l in _layers(model, keras.layers.BatchNormalization)}
    expected = {re.match(r"(.*_l\d+)_", l.name).group(1) + "_bn" for l in weighted}
    assert weighted and expected == norms
    img_norm = model.get_layer("img_norm")
    x = np.full((2, 8, 8, 1), 0.5, "float32")
    assert np.allclose(img_norm(x), (0.5 - 0.3) / 0.2, atol=1e-5)


def test_architectures_without_the_field_have_no_normalisation():
    arch = sample_architecture(KINDS, 0)  # the default, and every older file
    assert "normalization" not in arch
    model = build_randomnet(arch, SHAPES, 3)
    assert not _layers(model, keras.layers.BatchNormalization)
    assert "img_norm" not in {l.name for l in model.layers}


def test_bad_normalization_field_is_refused():
    from ssnas_tf.tuners.randomnet import ArchitectureError, validate_architecture
    arch = dict(sample_architecture(KINDS, 0), normalization="yes")
    with pytest.raises(ArchitectureError, match="normalization"):
        validate_architecture(arch)


def test_a_trial_trains_at_least_the_minimum_steps():
    floor = rn_search.MIN_TRIAL_STEPS
    assert rn_search.trial_steps(600, 32, 0.1) == floor  # 10% would be 2 steps
    assert rn_search.trial_steps(100_000, 32, 0.1) == 313
    assert rn_search.trial_steps(600, 32, 0.1, min_steps=1) == 2


def test_image_statistics_are_per_channel_on_the_model_scale():
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, size=(40, 4, 4, 3)).astype("uint8")
    ds = MultimodalDataset("t", {"img": img}, {"img": "image"}, np.arange(40) % 2,
                           ("a", "b"))
    train = np.arange(0, 40, 3)
    _, stats, _ = rn_search.model_inputs_info(ds, train)
    rows = img[train].reshape(-1, 3) / 255.0
    assert np.allclose(stats["img"][0], rows.mean(axis=0), atol=1e-6)
    assert np.allclose(stats["img"][1], rows.var(axis=0), atol=1e-6)


def test_default_learning_rate_is_not_the_papers():
    assert RunConfig().randomnet_learning_rate == 1e-3
    assert RunConfig(randomnet_learning_rate=1e-4).randomnet_learning_rate == 1e-4


def test_trial_min_steps_is_checked_and_recorded_with_the_tuner_settings():
    from ssnas_tf.workflow.baselines import TUNER_FIELDS
    with pytest.raises(ValueError, match="--trial-min-steps"):
        RunConfig(trial_min_steps=0)
    assert "trial_min_steps" in TUNER_FIELDS  # a resumed search with another floor is refused


def test_normalisation_follows_the_config_into_the_trials_and_is_a_tuner_setting(tmp_path):
    """`randomnet_normalization` (on by default, `--no-randomnet-normalization`
    off) decides the trials' architectures; a trial's batch norm statistics
    are the precise ones of its training batches, not Keras's lagging
    moving averages."""
    import keras_tuner
    import tensorflow as tf
    from ssnas_tf.cli import build_parser, _config_from_args
    from ssnas_tf.tasks import Task
    from ssnas_tf.workflow.baselines import TUNER_FIELDS
    assert RunConfig().randomnet_normalization is True
    args = build_parser().parse_args(["run", "--no-randomnet-normalization"])
    assert _config_from_args(args).randomnet_normalization is False
    assert "randomnet_normalization" in TUNER_FIELDS
    task = Task(num_classes=3, multilabel=False)
    rng = np.random.default_rng(0)
    x = {"img": rng.uniform(size=(16, 8, 8, 1)).astype("float32"),
         "vec": rng.normal(size=(16, 5)).astype("float32")}
    train = tf.data.Dataset.from_tensors((x, np.arange(16) % 3)).repeat()
    for normalization in (True, False):
        hypermodel = rn_search.RandomNetHyperModel(KINDS, SHAPES, task,
                                                   normalization=normalization)
        hp = keras_tuner.HyperParameters()
        hp.Fixed("architecture_seed", 5)
        assert hypermodel.architecture(hp).get("normalization", False) is normalization
        model = hypermodel.build(hp)
        norms = _layers(model, keras.layers.BatchNormalization)
        assert bool(norms) is normalization
    # the normalised trial (the last model): one repeated batch, so after its
    # fit inference equals the training-mode pass
    hypermodel = rn_search.RandomNetHyperModel(KINDS, SHAPES, task)
    model = hypermodel.build(hp)
    hypermodel.fit(hp, model, train, 3, (x, np.arange(16) % 3))
    np.testing.assert_allclose(model(x, training=False).numpy(),
                               model(x, training=True).numpy(), rtol=1e-3, atol=1e-4)
