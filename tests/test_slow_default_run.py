"""Acceptance check of the default configuration: `ssnas run` with no flags
but --output reaches a test weighted F1 of at least 0.85 on mfeat (ssl, label
fraction 0.1). A check that the defaults work, not a scientific claim: a
floor well under the measured score (0.887 since the genotype is selected on
held-out samples; 0.912 before), never a target to tune towards.

    python -m pytest tests/test_slow_default_run.py -m slow -q -s
"""

import json
import os
import subprocess
import sys
import time

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ACCEPTANCE_F1 = 0.85


@pytest.mark.slow
def test_default_run_meets_the_acceptance_bar(tmp_path):
    output = str(tmp_path / "default")
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (REPO, env.get("PYTHONPATH")) if p)
    start = time.perf_counter()
    # The `ssnas` entry point, in its own process as a user would run it.
    proc = subprocess.run([sys.executable, "-m", "ssnas_tf.cli", "run", "--output", output],
                          cwd=tmp_path, env=env, timeout=3600)
    wall = time.perf_counter() - start
    assert proc.returncode == 0
    with open(os.path.join(output, "results.json")) as f:
        results = json.load(f)
    print(f"\n[default ssnas run] weighted F1 {results['weighted_f1']:.4f}, "
          f"accuracy {results.get('accuracy')}, wall time {wall:.0f} s; "
          f"seconds per step {results['seconds']}", flush=True)
    assert (results["dataset"], results["method"], results["label_fraction"],
            results["seed"]) == ("mfeat", "ssl", 0.1, 0)
    assert os.path.isfile(os.path.join(results["export_dir"], "saved_model.pb"))
    assert results["weighted_f1"] >= ACCEPTANCE_F1, results
