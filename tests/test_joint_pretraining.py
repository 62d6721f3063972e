"""All backbones pretrained in one fit (`JointContrastiveModel`) end with the
weights of one fit per modality, as the backbone step computed them before."""

import dataclasses

import keras
import numpy as np
import pytest
import tensorflow as tf

from ssnas_tf import backbones as bb
from ssnas_tf.backbones.pretrain import _pool
from ssnas_tf.backbones.small import _as_tap_dict
from ssnas_tf.data.base import MultimodalDataset
from ssnas_tf.data.pipelines import steps_per_epoch, view_pairs
from ssnas_tf.seeds import derive_seed
from ssnas_tf.ssl.augment import AugmentConfig, VectorAugment
from ssnas_tf.ssl.contrastive_model import ContrastiveModel, JointContrastiveModel
from ssnas_tf.ssl.heads import ProjectionHead

SETTINGS = dict(epochs=2, batch_size=24, seed=3, temperature=0.5, learning_rate=3e-3,
                projection_dim=16, max_steps_per_epoch=3)


def _dataset():
    rng = np.random.default_rng(4)
    n = 80
    return MultimodalDataset(
        name="joint",
        inputs={"vec": rng.normal(size=(n, 12)).astype(np.float32),
                "img": rng.integers(0, 256, (n, 6, 6, 1)).astype(np.uint8),
                "other": rng.normal(size=(n, 7)).astype(np.float32)},
        kinds={"vec": "vector", "img": "image", "other": "vector"},
        labels=np.zeros(n, np.int64), label_names=("only",))


def _backbones(dataset, index):
    keras.utils.set_random_seed(11)
    return bb.backbones_by_modality(bb.build_backbones(dataset, index, width=8))


def _separately(backbones, dataset, index, config, epochs, batch_size, seed,
                temperature, learning_rate, projection_dim, max_steps_per_epoch):
    """The backbone step before the joint fit: one ContrastiveModel.fit per
    modality, with that modality's seeds; returns modality -> epoch losses."""
    histories = {}
    batch = min(batch_size, len(index))
    for m, backbone in backbones.items():
        one = dataclasses.replace(dataset, inputs={m: dataset.inputs[m]},
                                  kinds={m: dataset.kinds[m]})
        ds = view_pairs(one, index, batch, config, derive_seed(seed, m), 0,
                        max_steps=max_steps_per_epoch)
        keras.utils.set_random_seed(derive_seed(seed, m, "init"))
        spec = backbone.inputs[0]
        raw = keras.Input(spec.shape[1:], dtype=spec.dtype, name=m)
        encoder = keras.Model({m: raw}, _pool(_as_tap_dict(backbone(raw), m)))
        model = ContrastiveModel(encoder, ProjectionHead(
            projection_dim, name=f"{m}_pretrain_projection"), temperature=temperature)
        model(next(iter(ds))[0])
        model.compile(keras.optimizers.Adam(learning_rate))
        logs = model.fit(ds, epochs=epochs, shuffle=False, verbose=0,
                         steps_per_epoch=steps_per_epoch(len(index), batch,
                                                         max_steps_per_epoch))
        histories[m] = logs.history["loss"]
    return histories


@pytest.mark.slow  # whole searches or fits: kept out of the fast tier
def test_joint_fit_gives_the_backbones_of_one_fit_per_modality(capsys):
    dataset = _dataset()
    index = np.arange(72)
    config = AugmentConfig(vector=VectorAugment(noise_std=0.3, feature_dropout=0.2))
    alone, joint = _backbones(dataset, index), _backbones(dataset, index)
    start = {m: [np.array(w) for w in b.weights] for m, b in joint.items()}
    expected = _separately(alone, dataset, index, config, **SETTINGS)
    keras.utils.set_random_seed(99)  # what came before must not matter
    history = bb.pretrain_backbones(joint, dataset, index, config, verbose=1,
                                    return_history=True, **SETTINGS)
    assert list(history) == ["vec", "img", "other"]
    for m in joint:
        assert any(not np.array_equal(a, np.array(w))
                   for a, w in zip(start[m], joint[m].weights))  # trained
        for a, b in zip(alone[m].weights, joint[m].weights, strict=True):
            np.testing.assert_allclose(np.array(a), np.array(b), rtol=1e-5, atol=1e-5,
                                       err_msg=f"{m}: {b.path}")
        np.testing.assert_allclose(history[m], expected[m], rtol=1e-5, atol=1e-6)
    printed = capsys.readouterr().out.splitlines()
    assert printed[-1].startswith("pretrain backbones: epoch 2/2 loss vec ")
    assert " img " in printed[-1] and " other " in printed[-1]


def test_joint_model_reports_each_loss_and_their_sum():
    dataset = _dataset()
    index = np.arange(48)
    backbones = _backbones(dataset, index)
    models = {}
    for m in ("vec", "other"):
        spec = backbones[m].inputs[0]
        raw = keras.Input(spec.shape[1:], dtype=spec.dtype, name=m)
        encoder = keras.Model({m: raw}, _pool(_as_tap_dict(backbones[m](raw), m)))
        models[m] = ContrastiveModel(encoder, ProjectionHead(8), temperature=0.5)
    joint = JointContrastiveModel(models)
    data = {m: view_pairs(dataclasses.replace(
        dataset, inputs={m: dataset.inputs[m]}, kinds={m: dataset.kinds[m]}),
        index, 16, AugmentConfig(), seed=1) for m in models}
    batches = tf.data.Dataset.zip(data).take(2)
    joint.compile(keras.optimizers.Adam(1e-3))
    logs = joint.evaluate(batches, verbose=0, return_dict=True)
    assert sorted(logs) == ["loss", "other_loss", "vec_loss"]
    assert logs["loss"] == pytest.approx(logs["vec_loss"] + logs["other_loss"], rel=1e-5)
    assert joint.names == ["vec", "other"]
    outputs = joint({m: next(iter(data[m]))[0] for m in models})
    assert {m: tuple(z.shape) for m, z in outputs.items()} == {
        "vec": (16, 8), "other": (16, 8)}
    weights = len(joint.trainable_weights)
    assert weights == sum(len(m.trainable_weights) for m in models.values())
    with pytest.raises(ValueError, match="share the variable"):
        JointContrastiveModel({"a": models["vec"], "b": ContrastiveModel(
            models["vec"].encoder, ProjectionHead(8))})


def test_joint_fit_under_mixed_float16_shares_one_loss_scale(monkeypatch):
    from ssnas_tf.precision import precision_scope
    dataset = _dataset()
    index = np.arange(48)
    seen = {}
    fit = JointContrastiveModel.fit

    def spy(self, *args, **kwargs):
        seen["optimizer"] = self.optimizer
        return fit(self, *args, **kwargs)
    monkeypatch.setattr(JointContrastiveModel, "fit", spy)
    with precision_scope("mixed_float16"):
        backbones = _backbones(dataset, index)
        history = bb.pretrain_backbones(backbones, dataset, index, AugmentConfig(),
                                        verbose=0, return_history=True,
                                        **{**SETTINGS, "epochs": 1})
    assert isinstance(seen["optimizer"], keras.optimizers.LossScaleOptimizer)
    assert sorted(history) == ["img", "other", "vec"]
    assert all(np.isfinite(h).all() and len(h) == 1 for h in history.values())
