"""What results.json records to reproduce a figure, and the determinism switch."""

import numpy as np
import pytest
import tensorflow as tf
from tensorflow.python.framework import config as tf_config

from ssnas_tf.workflow import reproducibility


@pytest.fixture
def restore_determinism():
    before = tf_config.is_op_determinism_enabled()
    yield
    if before:
        tf_config.enable_op_determinism()
    else:
        tf_config.disable_op_determinism()


def test_configure_determinism_switches_tensorflow(restore_determinism):
    state = reproducibility.configure_determinism(True)
    assert state["deterministic"] is True and tf_config.is_op_determinism_enabled()
    assert state["intra_op_threads"] >= 1 and state["inter_op_threads"] >= 1
    state = reproducibility.configure_determinism(False)
    assert state["deterministic"] is False and not tf_config.is_op_determinism_enabled()


def test_thread_count_cannot_change_once_tensorflow_runs(restore_determinism):
    tf.constant(1.0) + 1.0  # the runtime has started
    current = reproducibility.configure_determinism(True)["intra_op_threads"]
    assert reproducibility.configure_determinism(True, current)["intra_op_threads"] == current
    with pytest.raises(RuntimeError, match=f"--threads {current + 1}: TensorFlow already"):
        reproducibility.configure_determinism(True, current + 1)



@pytest.mark.parametrize("cores, expected", [(1, 1), (2, 1), (3, None), (16, None)])
def test_one_thread_per_op_by_default_on_two_cores_or_fewer(cores, expected):
    assert reproducibility.default_intra_op_threads(cores) == expected


@pytest.mark.parametrize("cores, expected_calls", [(2, [1]), (8, [])])
def test_default_thread_count_is_set_before_the_runtime_starts(
        monkeypatch, restore_determinism, cores, expected_calls):
    calls = []
    monkeypatch.setattr(reproducibility, "_cores", lambda: cores)
    monkeypatch.setattr(tf.config.threading, "get_intra_op_parallelism_threads", lambda: 0)
    monkeypatch.setattr(tf.config.threading, "set_intra_op_parallelism_threads", calls.append)
    reproducibility.configure_determinism(True)
    assert calls == expected_calls


def test_default_thread_count_gives_way_to_a_running_runtime(monkeypatch, restore_determinism):
    tf.constant(1.0) + 1.0  # the runtime has started
    current = reproducibility.configure_determinism(True)["intra_op_threads"]
    # A default that differs from the count in force is a preference, not an error.
    monkeypatch.setattr(reproducibility, "default_intra_op_threads", lambda: current + 1)
    assert reproducibility.configure_determinism(True)["intra_op_threads"] == current

def test_cpu_flags_keeps_avx512_and_amx_only(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor : 0\nflags : fpu sse2 avx2 avx512f amx_tile "
                       "avx512_bf16 amx_bf16\n\nprocessor : 1\nflags : fpu\n")
    assert reproducibility.cpu_flags(str(cpuinfo)) == [
        "amx_bf16", "amx_tile", "avx512_bf16", "avx512f"]
    assert reproducibility.cpu_flags(str(tmp_path / "missing")) == []


@pytest.mark.parametrize("value, expected", [("0", False), ("1", True),
                                             ("False", False), ("true", True)])
def test_onednn_switch_is_read_from_the_environment(monkeypatch, value, expected):
    monkeypatch.setenv("TF_ENABLE_ONEDNN_OPTS", value)
    assert reproducibility.onednn_enabled() is expected
    assert reproducibility.environment_record()["TF_ENABLE_ONEDNN_OPTS"] == value


def test_environment_record_names_versions():
    record = reproducibility.environment_record()
    versions = record["versions"]
    assert versions["tensorflow"] == tf.__version__
    assert versions["numpy"] == np.__version__
    assert set(versions) == {"python", "tensorflow", "keras", "numpy", "ssnas_tf"}
