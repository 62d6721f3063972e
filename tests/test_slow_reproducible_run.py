"""Two `ssnas run` processes with one seed give bit-identical results.

Tiny settings; the two runs go in parallel, each in its own process as a user
would start them (TensorFlow state cannot leak from one into the other).

    python -m pytest tests/test_slow_reproducible_run.py -m slow -q
"""

import json
import os
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = ["--epochs", "2", "--backbone-epochs", "1", "--pretrain-epochs", "1",
        "--finetune-epochs", "2", "--batch-size", "32", "--channels", "8",
        "--backbone-width", "8", "--projection-dim", "8", "--num-cells", "2",
        "--num-steps", "1", "--seed", "3",
        # two of mfeat's six views, an image and a vector: smaller graphs, both augmentations
        "--dataset-option", 'views=["pix", "fou"]']
METRICS = ("weighted_f1", "accuracy", "search_best_score", "search_best_epoch", "genotype")


def _start(output, log):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (REPO, env.get("PYTHONPATH")) if p)
    return subprocess.Popen([sys.executable, "-m", "ssnas_tf.cli", "run", "--output",
                             str(output), *TINY], env=env, stdout=log,
                            stderr=subprocess.STDOUT)


def _read(path):
    with open(path, "rb") as f:
        return f.read()


@pytest.mark.slow
def test_two_processes_give_bit_identical_results(tmp_path):
    runs = [tmp_path / "a", tmp_path / "b"]
    logs = [open(tmp_path / f"{run.name}.log", "w") for run in runs]
    procs = [_start(run, log) for run, log in zip(runs, logs)]
    for proc, log in zip(procs, logs):
        assert proc.wait(timeout=600) == 0, _read(log.name).decode()[-3000:]
        log.close()
    a, b = runs
    assert _read(a / "genotype.json") == _read(b / "genotype.json")
    # Every epoch's alpha/beta/gamma and criterion, to the last bit.
    assert _read(a / "search_log.jsonl") == _read(b / "search_log.jsonl")
    results = [json.loads(_read(run / "results.json")) for run in runs]
    for key in METRICS:
        assert results[0][key] == results[1][key], key
    record = results[0]["reproducibility"]
    assert record["determinism"]["deterministic"] is True
    assert record["seed_tree"] == results[1]["reproducibility"]["seed_tree"]
    assert record["seed_tree"]["root"] == 3
    assert {"splits", "search/init", "finetune/data"} <= set(record["seed_tree"]["seeds"])
