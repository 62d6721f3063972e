"""A run reuses the models it saved instead of reading them back, only while
the file on disk is the one it wrote, and only where that cannot change a result."""

import os

import keras
import numpy as np
import pytest

from ssnas_tf.errors import RunError
from ssnas_tf.workflow.config import RunConfig
from ssnas_tf.workflow.run import Run


def _model(seed):
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((3,), name="x")
    return keras.Model(inputs, keras.layers.Dense(2, name="dense")(inputs))


def _same_weights(a, b):
    return all(np.array_equal(x, y) for x, y in zip(a.get_weights(), b.get_weights()))


@pytest.fixture
def run(tmp_path):
    return Run(str(tmp_path / "run"), RunConfig())


def test_reuse_returns_the_saved_object_while_the_file_is_unchanged(run):
    model = _model(0)
    os.makedirs(run.directory)
    run._save_model(model, "classifier.keras")
    assert run._load("classifier.keras", "finetune", reuse=True) is model
    assert run._load("classifier.keras", "finetune", reuse=True) is model  # kept
    fresh = run._load("classifier.keras", "finetune")  # not asked to reuse
    assert fresh is not model and _same_weights(fresh, model)
    # A plain load forgets the kept model.
    assert run._load("classifier.keras", "finetune", reuse=True) is not model


def test_release_hands_the_model_out_once(run):
    model = _model(0)
    os.makedirs(run.directory)
    run._save_model(model, "classifier.keras")
    assert run._load("classifier.keras", "finetune", reuse=True, release=True) is model
    again = run._load("classifier.keras", "finetune", reuse=True)
    assert again is not model and _same_weights(again, model)


def test_a_file_rewritten_since_is_read_from_disk(run, tmp_path):
    os.makedirs(run.directory)
    run._save_model(_model(0), "classifier.keras")
    # Another writer (a second Run on the same directory) replaces the file.
    other = Run(run.directory, RunConfig())
    newer = _model(1)
    other._save_model(newer, "classifier.keras")
    loaded = run._load("classifier.keras", "finetune", reuse=True)
    assert _same_weights(loaded, newer)


def test_a_missing_file_is_an_error_even_when_a_model_is_kept(run):
    os.makedirs(run.directory)
    run._save_model(_model(0), "classifier.keras")
    os.remove(run.path("classifier.keras"))
    with pytest.raises(RunError, match="classifier.keras not found: run `ssnas finetune`"):
        run._load("classifier.keras", "finetune", reuse=True)
