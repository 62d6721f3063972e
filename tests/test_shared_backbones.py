"""Backbones shared across an experiment's trials: the premise (the backbone
step does not depend on the method or the label fraction), the key, and the
copy into a trial."""

import dataclasses
import json
import os

import numpy as np
import pytest

from ssnas_tf.workflow.config import RunConfig
from ssnas_tf.workflow.run import Run
from ssnas_tf.workflow.shared_backbones import (BACKBONE_FIELDS, backbone_key,
                                                reuse_backbones, share_backbones)

TINY = RunConfig(backbone_epochs=1, backbone_width=8, batch_size=64, split_seed=7, seed=3,
                 backbone_pretraining="external",
                 dataset_options={"views": ["fou", "mor"]})


def _weights(run):
    import keras
    model = keras.saving.load_model(run.path("backbones.keras"), compile=False)
    return model.get_weights()


@pytest.mark.parametrize("mode", ["external", pytest.param("shared", marks=pytest.mark.slow)])
def test_backbone_step_ignores_method_and_fraction(tmp_path, mode):
    """The premise of sharing: another method and fraction, same seeds, give
    the same backbones weight for weight, under the same key."""
    runs = []
    for method, fraction in (("ssl", 0.1), ("supervised", 0.5)):
        config = dataclasses.replace(TINY, method=method, label_fraction=fraction,
                                     backbone_pretraining=mode)
        run = Run(str(tmp_path / f"{method}"), config, verbose=0)
        run.start()
        run.train_backbones()
        runs.append(run)
    for a, b in zip(*(_weights(r) for r in runs), strict=True):
        np.testing.assert_array_equal(a, b)
    keys = []
    for run in runs:
        with open(run.path("splits.json")) as f:
            keys.append(backbone_key(run.config, json.load(f)["fingerprint"]))
    assert keys[0] == keys[1]


def test_key_changes_with_every_backbone_field():
    base = backbone_key(TINY, {"n": 1})
    assert backbone_key(dataclasses.replace(TINY, method="supervised",
                                            label_fraction=0.7), {"n": 1}) == base
    assert backbone_key(TINY, {"n": 2}) != base  # other data
    changes = {"seed": 4, "split_seed": 8, "backbone_epochs": 2, "backbone_width": 16,
               "backbone_pretraining": "shared", "external_fraction": 0.3,
               "batch_size": 32, "dataset_options": {"views": ["fou"]}}
    assert set(changes) <= set(BACKBONE_FIELDS)
    for name, value in changes.items():
        assert backbone_key(dataclasses.replace(TINY, **{name: value}), {"n": 1}) != base, name


def test_a_trial_reuses_the_shared_backbones_and_records_it(tmp_path):
    root = tmp_path / "exp"
    first = Run(str(root / "ssl" / "r0.1" / "t0"), TINY, verbose=0)
    first.start()
    assert not reuse_backbones(str(root), first)  # nothing shared yet
    first.train_backbones()
    share_backbones(str(root), first)
    other = Run(str(root / "supervised" / "r0.5" / "t0"),
                dataclasses.replace(TINY, method="supervised", label_fraction=0.5),
                verbose=0)
    other.start()
    assert reuse_backbones(str(root), other)
    with open(other.path("results.json")) as f:
        results = json.load(f)
    assert results["seconds"]["backbones"] == 0.0
    assert results["backbones_shared_from"].startswith(os.path.join("..", "..", ".."))
    for a, b in zip(_weights(first), _weights(other), strict=True):
        np.testing.assert_array_equal(a, b)
    assert not reuse_backbones(str(root), other)  # it has them now
    # Another trial number has other seeds: nothing to reuse.
    third = Run(str(root / "ssl" / "r0.1" / "t1"), dataclasses.replace(TINY, seed=4),
                verbose=0)
    third.start()
    assert not reuse_backbones(str(root), third)
