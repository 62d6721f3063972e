"""The CLI's TensorFlow start-up is quiet: no oneDNN/CUDA notices, no PredictCost.

A whole run's stderr is checked for the same `NOISE` by
`tests/test_slow_default_run.py` (the default `ssnas run`, started without
TF_CPP_MIN_LOG_LEVEL), which replaced a separate tiny run here.
"""

import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NOISE = ("oneDNN", "cudart_stub", "cpu_feature_guard", "absl::InitializeLog",
         "cuInit", "PredictCost")


def _cli(args, tmp_path, **env):
    environ = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    environ.update(PYTHONPATH=ROOT, **env)
    return subprocess.run([sys.executable, "-m", "ssnas_tf.cli", *args], cwd=tmp_path,
                          env=environ, capture_output=True, text=True, timeout=600)


def test_cli_error_is_the_only_stderr_line(tmp_path):
    # evaluate imports TensorFlow and the whole workflow, then fails on the missing run.
    proc = _cli(["evaluate", "--output", "missing"], tmp_path)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "config.json not found" in lines[0], proc.stderr


def test_user_log_level_zero_keeps_the_notices(tmp_path):
    proc = _cli(["evaluate", "--output", "missing"], tmp_path, TF_CPP_MIN_LOG_LEVEL="0")
    assert len(proc.stderr.strip().splitlines()) > 1


def test_filter_replays_real_errors(capfd):
    from ssnas_tf.quiet import _stderr_filtered
    with _stderr_filtered():
        os.write(2, b"I0000 port.cc:153] oneDNN custom operations are on.\n")
        os.write(2, b"E0000 something real broke\n")
    err = capfd.readouterr().err
    assert "something real broke" in err and "oneDNN" not in err


def test_start_up_defers_kerass_optional_imports_without_breaking_them():
    # Keras would import these at start-up (about 125 MB, 2 s); a later import still works.
    code = ("import sys; from ssnas_tf.quiet import quiet_tensorflow, DEFERRED_IMPORTS; "
            "quiet_tensorflow(); import keras; "
            "print(sorted(n for n in DEFERRED_IMPORTS if n in sys.modules)); "
            "from keras_tuner.src.tuners import bayesian; import matplotlib; "
            "from keras.src.utils.module_utils import h5py, scipy; "
            "print(bayesian.sklearn is not None, 'matplotlib' in sys.modules, "
            "h5py.File is not None, scipy.stats.wilcoxon is not None)")
    proc = subprocess.run([sys.executable, "-c", code], env=dict(os.environ, PYTHONPATH=ROOT),
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.split("\n")[:2] == ["[]", "True True True True"], proc.stdout
