"""Tests for mixed precision (ssnas_tf.precision): loss-scaled float16 steps of
both training models, float32 architecture parameters and heads, and a
bfloat16 search that derives the float32 genotype, and a bfloat16 classifier
that reloads unchanged under float32."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from ssnas_tf.backbones.layers import MaskedTokenMean
from ssnas_tf.nas.architect import SearchModel
from ssnas_tf.nas.derive import derive_genotype
from ssnas_tf.nas.genotypes import EDGE_OP, Genotype, StepGenotype
from ssnas_tf.nas.model_search import SearchNetwork
from ssnas_tf.precision import PRECISIONS, check_precision, precision_scope
from ssnas_tf.ssl.contrastive_model import ContrastiveModel
from ssnas_tf.ssl.heads import ProjectionHead, classifier_head
from ssnas_tf.workflow.config import RunConfig
from ssnas_tf.workflow.run import Run

NAMES = ("a", "b", "c", "d")
N = 8


def _features(rng, n=N):
    return {k: rng.normal(size=(n, 6)).astype("float32") for k in NAMES}


def _network(**kwargs):
    kwargs = dict(dict(num_cells=1, num_steps=1, multiplier=1, channels=8, length=2,
                       dropout=0.0, primitives=("sum", "concat_fc", "attention")),
                  **kwargs)
    return SearchNetwork(NAMES, **kwargs)


def _finite_and_changed(before, variables):
    after = [np.asarray(v) for v in variables]
    assert all(np.isfinite(a).all() for a in after)
    return [not np.array_equal(b, a) for b, a in zip(before, after)]


def test_scope_sets_and_restores_the_policy():
    assert keras.mixed_precision.global_policy().name == "float32"
    with pytest.raises(RuntimeError):
        with precision_scope("mixed_bfloat16"):
            assert keras.mixed_precision.global_policy().name == "mixed_bfloat16"
            raise RuntimeError("inside")
    assert keras.mixed_precision.global_policy().name == "float32"
    assert PRECISIONS == ("float32", "mixed_bfloat16", "mixed_float16")
    with pytest.raises(ValueError, match="precision"):
        check_precision("float16")


@pytest.mark.parametrize("objective", ["ssl", "supervised"])
def test_float16_search_step_updates_both_groups(objective):
    rng = np.random.default_rng(0)
    with precision_scope("mixed_float16"):
        head = ProjectionHead(4) if objective == "ssl" else classifier_head(3)
        model = SearchModel(_network(), head, objective=objective)
        model(_features(rng))
        model.compile(keras.optimizers.Adam(1e-2), keras.optimizers.Adam(1e-2),
                      weight_decay=1e-4, arch_weight_decay=1e-3)
    # Both optimizers are loss-scaled; the arch parameters stay float32.
    assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
    assert isinstance(model.arch_optimizer, keras.optimizers.LossScaleOptimizer)
    assert all(v.dtype == "float32" for v in model.arch_parameters)
    assert model.network.compute_dtype == "float16"
    assert model(_features(rng), training=False).dtype == "float32"  # the head

    def batch():
        if objective == "ssl":
            return _features(rng), _features(rng)
        return _features(rng), rng.integers(0, 3, size=N).astype("int32")

    w0 = [np.asarray(v) for v in model.trainable_weights]
    a0 = [np.asarray(v) for v in model.arch_parameters]
    # Dynamic loss scaling starts at 2^15 and skips a step whose scaled
    # gradients overflow (halving the scale), so allow a few steps.
    for _ in range(6):
        logs = model.train_step((batch(), batch()))
        assert np.isfinite(float(logs["loss"])) and np.isfinite(float(logs["arch_loss"]))
    assert sum(_finite_and_changed(w0, model.trainable_weights)) > len(w0) // 2
    assert all(_finite_and_changed(a0, model.arch_parameters))
    # The steps that were taken were unscaled: no update is anywhere near the
    # loss scale (6 Adam steps at lr 1e-2 move a variable by at most ~0.06).
    for before, v in zip(w0 + a0, model.trainable_weights + model.arch_parameters):
        assert np.abs(np.asarray(v) - before).max() < 0.1


def test_float16_contrastive_step_updates_the_weights():
    rng = np.random.default_rng(1)
    with precision_scope("mixed_float16"):
        inputs = {k: keras.Input((6,), name=k) for k in NAMES}
        encoder = keras.Model(inputs, keras.layers.Dense(8)(
            keras.layers.Concatenate()(list(inputs.values()))))
        model = ContrastiveModel(encoder, ProjectionHead(4))
        model(_features(rng))
        model.compile(keras.optimizers.Adam(1e-2))
    assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
    w0 = [np.asarray(v) for v in model.trainable_weights]
    for _ in range(6):  # overflowing steps are skipped, see above
        logs = model.train_step((_features(rng), _features(rng)))
        assert np.isfinite(float(logs["loss"]))
    assert all(_finite_and_changed(w0, model.trainable_weights))


def _search(policy, batches, weights=None):
    """A supervised search on fixed batches; labels depend on inputs a and b only."""
    with precision_scope(policy):
        model = SearchModel(_network(), classifier_head(2), objective="supervised")
        model(_features(np.random.default_rng(0)))
        if weights is not None:
            model.set_weights(weights)  # the same start in both precisions
        model.compile(keras.optimizers.Adam(1e-2), keras.optimizers.Adam(3e-2))
        step = tf.function(model.train_step)  # traced once: the batches share shapes
        for pair in batches:
            step(pair)
    return model


def test_bfloat16_search_derives_the_float32_genotype():
    rng = np.random.default_rng(2)

    def batch():
        x = _features(rng, 64)
        return x, (x["a"][:, 0] + x["b"][:, 0] > 0).astype("int32")

    batches = [(batch(), batch()) for _ in range(40)]
    start = _search("float32", [])
    reference = _search("float32", batches, start.get_weights())
    mixed = _search("mixed_bfloat16", batches, start.get_weights())
    assert mixed.network.compute_dtype == "bfloat16"
    genotype = derive_genotype(reference.network)
    assert genotype == derive_genotype(mixed.network)
    assert genotype.cell_inputs(0) == (0, 1)  # the informative inputs
    # Robust, not a coin toss: clear margins in both precisions. (The inner
    # edges' order is a tie-break of the initial beta: with x = y during the
    # search both edges get identical gradients in any precision.)
    for model in (reference, mixed):
        w = model.network.arch_weights()
        identity = w["alpha"][:, 1]
        assert min(identity[:2]) - max(identity[2:]) > 0.3
        gamma = np.sort(w["gamma"][0, 0])
        assert gamma[-1] - gamma[-2] > 0.1


def test_features_are_pooled_before_the_cast(monkeypatch):
    """Backbone maps are pooled in float32 and cast after (exactly the same
    result, as the cast is monotonic, for a fraction of the memory traffic)."""
    from ssnas_tf.nas.feature_reshape import FeatureReshape
    seen = []
    original = FeatureReshape.pool

    def spy(self, x):
        seen.append(keras.backend.standardize_dtype(x.dtype))
        return original(self, x)

    monkeypatch.setattr(FeatureReshape, "pool", spy)
    rng = np.random.default_rng(3)
    features = {"img": rng.normal(size=(2, 8, 6, 3)).astype("float32"),
                "vec": rng.normal(size=(2, 5)).astype("float32")}
    with precision_scope("mixed_bfloat16"):
        net = SearchNetwork(["img", "vec"], num_cells=1, num_steps=1, multiplier=1,
                            channels=4, length=4)
        out = net(features)
    assert out.dtype == "bfloat16"
    assert seen and all(dtype == "float32" for dtype in seen)


@pytest.mark.parametrize("primitive", ["sum", "attention", "linear_glu", "concat_fc"])
def test_mixed_classifier_reloads_under_float32_unchanged(tmp_path, primitive):
    """`ssnas evaluate` and `export` (and a user's `load_model`) reload the
    fine-tuned classifier outside the run's policy. Sublayers made in a layer's
    constructor or build are not saved with their own dtype: they must follow
    their parent's, or the reloaded model mixes float32 and bfloat16."""
    rng = np.random.default_rng(4)
    x = {"tokens": rng.integers(0, 20, size=(3, 7)).astype("int32"),
         "image": rng.normal(size=(3, 8, 6, 3)).astype("float32")}
    step = StepGenotype(((EDGE_OP, 0), (EDGE_OP, 1)), (primitive,), (2,))
    genotype = Genotype(inputs=("text", "image"), edges=((EDGE_OP, 0), (EDGE_OP, 1)),
                        steps=(step,), concat=(2,))
    with precision_scope("mixed_bfloat16"):
        tokens = keras.Input((7,), dtype="int32", name="tokens")
        image = keras.Input((8, 6, 3), name="image")
        backbones = keras.Model(
            {"tokens": tokens, "image": image},
            {"text": keras.layers.Dense(6)(MaskedTokenMean(20, 5)(tokens)),
             "image": keras.layers.Conv2D(4, 3, padding="same")(image)})
        config = RunConfig(channels=8, length=4, num_cells=1, multiplier=1)
        encoder = Run(str(tmp_path / "run"), config).build_encoder(genotype, backbones)
        classifier = keras.Model(encoder.input, classifier_head(3)(encoder.output))
        expected = np.asarray(classifier(x))
    classifier.save(tmp_path / "classifier.keras")
    reloaded = keras.models.load_model(tmp_path / "classifier.keras")
    np.testing.assert_array_equal(reloaded.predict(x, verbose=0), expected)
