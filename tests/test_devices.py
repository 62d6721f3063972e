"""--distribute settings: strategy names, TF_CONFIG checks, synchronised batch norm."""

import json

import keras
import pytest
import tensorflow as tf

from ssnas_tf import devices


def test_unknown_name_is_refused():
    with pytest.raises(devices.DeviceError, match="--distribute must be one of"):
        devices.make_strategy("tpu")


def test_none_is_the_default_strategy():
    strategy = devices.make_strategy("none")
    assert strategy is tf.distribute.get_strategy()
    assert strategy.num_replicas_in_sync == 1


@pytest.mark.parametrize("tf_config, message", [
    (None, "needs the TF_CONFIG environment variable"),
    ("{not json", "TF_CONFIG: expected cluster.worker"),
    (json.dumps({"cluster": {"worker": ["localhost:1"]}}), "TF_CONFIG: expected"),
    (json.dumps({"cluster": {"worker": ["localhost:1"]},
                 "task": {"type": "worker", "index": 1}}), "task.index 1 is not a position"),
])
def test_multi_worker_needs_a_valid_tf_config(monkeypatch, tf_config, message):
    if tf_config is None:
        monkeypatch.delenv("TF_CONFIG", raising=False)
    else:
        monkeypatch.setenv("TF_CONFIG", tf_config)
    with pytest.raises(devices.DeviceError, match=message):
        devices.make_strategy("multi-worker")


def test_synchronize_batch_norm_reaches_nested_layers():
    inner = keras.Sequential([keras.layers.Dense(3), keras.layers.BatchNormalization()])
    outer = keras.Sequential([keras.Input((4,)), inner, keras.layers.BatchNormalization(),
                              keras.layers.Dense(2)])
    assert devices.synchronize_batch_norm(outer) == 2
    norms = [l for l in outer._flatten_layers() if isinstance(l, keras.layers.BatchNormalization)]
    assert len(norms) == 2 and all(l.synchronized for l in norms)
    assert all(l.get_config()["synchronized"] for l in norms)


def test_run_config_checks_distribute_and_threads():
    from ssnas_tf.workflow.config import RunConfig
    with pytest.raises(ValueError, match="--distribute must be one of"):
        RunConfig(distribute="tpu")
    with pytest.raises(ValueError, match="--threads must be >= 1, got 0"):
        RunConfig(threads=0)
    config = RunConfig(distribute="multi-worker", sync_batch_norm=True, threads=2)
    assert RunConfig.from_json(config.to_json()) == config


def test_private_keras_function_is_the_one_the_patch_was_checked_against():
    """Fails when Keras changes the private function the multi-worker patch
    wraps: read the new source, check the patch still fits (or is no longer
    needed), then record the version and digest in devices.KERAS_PATCH_CHECKED."""
    digest = devices.keras_patch_digest()
    assert digest is not None, f"{devices.KERAS_PATCH_TARGET} is gone"
    assert keras.__version__ in devices.KERAS_PATCH_CHECKED, (
        f"Keras {keras.__version__} not checked against the patch (digest {digest})")
    assert devices.KERAS_PATCH_CHECKED[keras.__version__] == digest


def test_patch_applies_to_the_installed_keras_and_is_idempotent():
    from keras.src.backend.tensorflow import trainer
    original = trainer.reduce_per_replica
    try:
        assert devices._keras_patch_applies() == (True, "")
        assert devices._patch_keras_multi_worker_reduce() is True
        patched = trainer.reduce_per_replica
        assert patched.ssnas_patched
        assert devices._patch_keras_multi_worker_reduce() is True
        assert trainer.reduce_per_replica is patched  # not wrapped twice
    finally:
        trainer.reduce_per_replica = original


@pytest.mark.parametrize("change, reason", [
    ("version", "is not Keras 3"),
    ("signature", "takes"),
    ("missing", "has no"),
])
def test_patch_is_left_out_when_keras_does_not_fit(change, reason, monkeypatch):
    from keras.src.backend.tensorflow import trainer
    original = trainer.reduce_per_replica
    if change == "version":
        monkeypatch.setattr(keras, "__version__", "4.0.0")
    elif change == "signature":
        monkeypatch.setattr(trainer, "reduce_per_replica", lambda values, strategy: values)
    else:
        monkeypatch.delattr(trainer, "_collective_all_reduce_multi_worker")
    applies, why = devices._keras_patch_applies()
    assert not applies and reason in why
    with pytest.warns(RuntimeWarning, match="not patching"):
        assert devices._patch_keras_multi_worker_reduce() is False
    assert not getattr(trainer.reduce_per_replica, "ssnas_patched", False)
    monkeypatch.undo()
    assert trainer.reduce_per_replica is original
