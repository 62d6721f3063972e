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
