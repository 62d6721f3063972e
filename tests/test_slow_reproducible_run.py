"""Two `ssnas run` processes with one seed give bit-identical results, and so
does the same run made step by step, one process per step.

Tiny settings; the runs go in parallel, each in its own process as a user
would start them (TensorFlow state cannot leak from one into the other). The
step-by-step run reads every model back from disk, where `ssnas run` reuses
the ones it saved (`Run._load`): the results must not tell them apart.

    python -m pytest tests/test_slow_reproducible_run.py -m slow -q
"""

import json
import os
import shlex
import subprocess
import sys

import numpy as np
import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = ["--epochs", "2", "--backbone-epochs", "1", "--pretrain-epochs", "1",
        "--finetune-epochs", "2", "--batch-size", "32", "--channels", "8",
        "--backbone-width", "8", "--projection-dim", "8", "--num-cells", "2",
        "--num-steps", "1", "--seed", "3",
        # two of mfeat's six views, an image and a vector: smaller graphs, both augmentations
        "--dataset-option", 'views=["pix", "fou"]']
METRICS = ("weighted_f1", "accuracy", "search_best_score", "search_best_epoch", "genotype")


def _env():
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (REPO, env.get("PYTHONPATH")) if p)
    return env


def _start(output, log):
    return subprocess.Popen([sys.executable, "-m", "ssnas_tf.cli", "run", "--output",
                             str(output), *TINY], env=_env(), stdout=log,
                            stderr=subprocess.STDOUT)


def _start_step_by_step(output, log):
    cli = f"{shlex.quote(sys.executable)} -m ssnas_tf.cli"
    out = shlex.quote(str(output))
    commands = [f"{cli} search --output {out} {shlex.join(TINY)}"] + [
        f"{cli} {step} --output {out}"
        for step in ("pretrain", "finetune", "evaluate", "export")]
    return subprocess.Popen(["sh", "-c", " && ".join(commands)], env=_env(), stdout=log,
                            stderr=subprocess.STDOUT)


def _classifier_weights(run):
    import keras
    import ssnas_tf.workflow.run  # noqa: F401  (registers the package's layers)
    return keras.models.load_model(run / "classifier.keras").get_weights()


def _read(path):
    with open(path, "rb") as f:
        return f.read()


@pytest.mark.slow
def test_two_processes_and_a_step_by_step_run_give_bit_identical_results(tmp_path):
    runs = [tmp_path / "a", tmp_path / "b", tmp_path / "steps"]
    logs = [open(tmp_path / f"{run.name}.log", "w") for run in runs]
    procs = [_start(runs[0], logs[0]), _start(runs[1], logs[1]),
             _start_step_by_step(runs[2], logs[2])]
    for proc, log in zip(procs, logs):
        assert proc.wait(timeout=900) == 0, _read(log.name).decode()[-3000:]
        log.close()
    a = runs[0]
    results = [json.loads(_read(run / "results.json")) for run in runs]
    for other, result in zip(runs[1:], results[1:]):
        assert _read(a / "genotype.json") == _read(other / "genotype.json"), other.name
        # Every epoch's alpha/beta/gamma and criterion, to the last bit.
        assert _read(a / "search_log.jsonl") == _read(other / "search_log.jsonl"), other.name
        for key in METRICS:
            assert results[0][key] == result[key], (other.name, key)
    # Pretraining and fine-tuning drew the same initial weights and batches.
    for x, y in zip(_classifier_weights(a), _classifier_weights(runs[2])):
        np.testing.assert_array_equal(x, y)
    record = results[0]["reproducibility"]
    assert record["determinism"]["deterministic"] is True
    assert record["seed_tree"] == results[1]["reproducibility"]["seed_tree"]
    assert record["seed_tree"]["root"] == 3
    assert {"splits", "search/init", "finetune/data"} <= set(record["seed_tree"]["seeds"])
