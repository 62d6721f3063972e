"""Acceptance check of the default configuration: `ssnas run` with no flags
but --output reaches a test weighted F1 of at least 0.85 on mfeat (ssl, label
fraction 0.1). A check that the defaults work, not a scientific claim: a
floor well under the measured score (0.887 since the genotype is selected on
held-out samples; 0.912 before), never a target to tune towards. Its stderr must also be free of TensorFlow's
notices (`test_quiet.NOISE`).

    python -m pytest tests/test_slow_default_run.py -m slow -q -s
"""

import json
import os
import subprocess
import sys
import time

import pytest

from test_quiet import NOISE

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ACCEPTANCE_F1 = 0.85


@pytest.mark.slow
def test_default_run_meets_the_acceptance_bar(tmp_path):
    output = str(tmp_path / "default")
    # As a user starts it: no TF_CPP_MIN_LOG_LEVEL of ours to hide TensorFlow's notices.
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (REPO, env.get("PYTHONPATH")) if p)
    start = time.perf_counter()
    # The `ssnas` entry point, in its own process as a user would run it.
    proc = subprocess.run([sys.executable, "-m", "ssnas_tf.cli", "run", "--output", output],
                          cwd=tmp_path, env=env, timeout=3600, capture_output=True, text=True)
    wall = time.perf_counter() - start
    assert proc.returncode == 0, proc.stderr[-3000:]
    # The whole run is quiet: none of TensorFlow's start-up or grappler notices.
    assert not [n for n in NOISE if n in proc.stderr], proc.stderr[-2000:]
    with open(os.path.join(output, "results.json")) as f:
        results = json.load(f)
    print(f"\n[default ssnas run] weighted F1 {results['weighted_f1']:.4f}, "
          f"accuracy {results.get('accuracy')}, wall time {wall:.0f} s; "
          f"seconds per step {results['seconds']}", flush=True)
    assert (results["dataset"], results["method"], results["label_fraction"],
            results["seed"]) == ("mfeat", "ssl", 0.1, 0)
    assert os.path.isfile(os.path.join(results["export_dir"], "saved_model.pb"))
    assert results["weighted_f1"] >= ACCEPTANCE_F1, results
