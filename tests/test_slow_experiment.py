"""`ssnas experiment` end to end on tiny settings: 2 methods x 2 label fractions x
2 trials with --jobs 2, then a rerun that skips every finished trial, then a rerun
after one trial was interrupted before its evaluation, which resumes only that
one and keeps its earlier steps' artifacts.

    python -m pytest tests/test_slow_experiment.py -m slow -q
"""

import csv
import json
import os
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = ["--epochs", "1", "--backbone-epochs", "1", "--pretrain-epochs", "1",
        "--finetune-epochs", "2", "--backbone-width", "8", "--channels", "8",
        "--projection-dim", "16", "--num-cells", "1", "--num-steps", "1",
        "--multiplier", "1", "--batch-size", "64", "--max-steps-per-epoch", "3",
        "--dataset-option", 'views=["fou","mor"]']


def _experiment(output, *extra):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (REPO, env.get("PYTHONPATH")) if p)
    proc = subprocess.run(
        [sys.executable, "-m", "ssnas_tf.cli", "experiment", "--output", output,
         "--methods", "ssl,supervised", "--fractions", "0.2,1", "--trials", "2",
         *TINY, *extra], env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return [line for line in proc.stdout.splitlines() if "-> running" in line]


def _rows(path):
    with open(path) as f:
        return list(csv.DictReader(f))


@pytest.mark.slow
def test_experiment_runs_pairs_skips_and_resumes(tmp_path):
    output = str(tmp_path / "exp")
    assert len(_experiment(output, "--jobs", "2")) == 8
    results = _rows(os.path.join(output, "results.csv"))
    assert len(results) == 8
    assert all(0 <= float(r["weighted_f1"]) <= 1 and r["inputs"] for r in results)
    # Paired: trial t of both methods has the same seeds (hence splits).
    for t in ("0", "1"):
        seeds = {(r["seed"], r["split_seed"]) for r in results if r["trial"] == t}
        assert len(seeds) == 1
    # The same test split and labeled set in both methods' splits.json.
    splits = [json.load(open(os.path.join(output, m, "r0.2", "t0", "splits.json")))
              for m in ("ssl", "supervised")]
    assert splits[0]["test"] == splits[1]["test"]
    assert splits[0]["labeled"] == splits[1]["labeled"]
    # t0's last two trials start after one of its first two has finished: they
    # copy its backbones instead of training them again.
    shared = [m for m in ("ssl", "supervised") for r in ("0.2", "1")
              if "backbones_shared_from" in json.load(open(
                  os.path.join(output, m, f"r{r}", "t0", "results.json")))]
    assert len(shared) >= 2, shared
    finished = os.path.join(output, "ssl", "r1", "t0", "results.json")
    stamp = os.stat(finished).st_mtime_ns
    assert _experiment(output) == []                      # every trial skipped
    assert os.stat(finished).st_mtime_ns == stamp
    # A trial killed after its finetune step: the rerun resumes it (evaluates
    # the classifier it has) instead of starting it again.
    trial = os.path.join(output, "supervised", "r0.2", "t1")
    with open(os.path.join(trial, "results.json")) as f:
        results = json.load(f)
    for key in ("weighted_f1", "accuracy"):
        del results[key]
    del results["seconds"]["evaluate"]
    with open(os.path.join(trial, "results.json"), "w") as f:
        json.dump(results, f)
    kept = {name: os.stat(os.path.join(trial, name)).st_mtime_ns
            for name in ("splits.json", "genotype.json", "classifier.keras")}
    ran = _experiment(output)
    assert len(ran) == 1 and "supervised/r0.2/t1" in ran[0]
    assert kept == {name: os.stat(os.path.join(trial, name)).st_mtime_ns for name in kept}
    with open(os.path.join(trial, "results.json")) as f:
        assert "weighted_f1" in json.load(f)
    summary = _rows(os.path.join(output, "summary.csv"))
    diffs = [s for s in summary if s["method"] == "ssl-supervised"
             and s["metric"] == "weighted_f1"]
    assert sorted(s["fraction"] for s in diffs) == ["0.2", "1"]
    assert all(s["n"] == "2" and s["ci_low"] and s["wilcoxon_p"] for s in diffs)
    for name in ("choices.csv", "label_fraction.png", "label_fraction.svg"):
        assert os.path.getsize(os.path.join(output, name)) > 0
