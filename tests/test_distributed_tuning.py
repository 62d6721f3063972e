"""keras-tuner's distributed mode on RandomNet: a chief (the oracle) and two
workers on localhost, three processes configured only by the environment
variables keras-tuner documents, share one search and end with one best trial."""

import json
import os
import socket
import subprocess
import sys
import textwrap

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

SCRIPT = textwrap.dedent("""
    import json, os, sys
    import numpy as np
    from ssnas_tf.data.base import MultimodalDataset
    from ssnas_tf.tuners import search

    ran = []
    fit = search.RandomNetHyperModel.fit
    search.RandomNetHyperModel.fit = lambda self, hp, *a, **k: ran.append(1) or fit(self, hp, *a, **k)
    rng = np.random.default_rng(0)
    labels = np.arange(40) % 2
    data = MultimodalDataset(
        "tiny", {"vec": rng.normal(size=(40, 4)).astype("float32") + labels[:, None],
                 "img": rng.integers(0, 256, size=(40, 6, 6, 1)).astype("uint8")},
        {"vec": "vector", "img": "image"}, labels, ["a", "b"])
    tuner = search.randomnet_search(data, np.arange(0, 40, 2), np.arange(1, 40, 2),
                                    sys.argv[1], trials=4, batch_size=8,
                                    trial_fraction=0.5, min_trial_steps=1)
    if os.environ["KERASTUNER_TUNER_ID"] == "chief":
        best = search.best_trial(tuner)
        print("BEST " + json.dumps({"trial_id": best.trial_id, "score": best.score,
                                    "trials": len(tuner.oracle.trials)}))
    print(f"RAN {len(ran)}")
""")


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_chief_and_two_workers_share_one_search(tmp_path):
    script = tmp_path / "tune.py"
    script.write_text(SCRIPT)
    port = str(_free_port())
    directory = str(tmp_path / "tuner")
    procs = {}
    for tuner_id in ("chief", "tuner0", "tuner1"):
        env = dict(os.environ, KERASTUNER_TUNER_ID=tuner_id,
                   KERASTUNER_ORACLE_IP="127.0.0.1", KERASTUNER_ORACLE_PORT=port,
                   PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""),
                   TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")
        procs[tuner_id] = subprocess.Popen(
            [sys.executable, str(script), directory], env=env, cwd=str(tmp_path),
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    outputs = {}
    try:
        for tuner_id, proc in procs.items():
            outputs[tuner_id] = proc.communicate(timeout=170)[0]
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
    for tuner_id, proc in procs.items():
        assert proc.returncode == 0, f"{tuner_id}:\n{outputs.get(tuner_id, '')[-3000:]}"
    best_lines = [l for l in outputs["chief"].splitlines() if l.startswith("BEST ")]
    assert len(best_lines) == 1, outputs["chief"][-3000:]
    best = json.loads(best_lines[0][5:])
    assert best["trials"] == 4
    project = os.path.join(directory, "randomnet_tuner")
    trials = []
    for name in os.listdir(project):
        path = os.path.join(project, name, "trial.json")
        if os.path.exists(path):
            with open(path) as f:
                trials.append(json.load(f))
    assert len(trials) == 4 and all(t["status"] == "COMPLETED" for t in trials)
    assert best["score"] == max(t["score"] for t in trials)
    # the workers trained every trial once between them; the chief trained none
    ran = {i: int(next(l for l in out.splitlines() if l.startswith("RAN "))[4:])
           for i, out in outputs.items()}
    assert ran["chief"] == 0 and ran["tuner0"] + ran["tuner1"] == 4, ran
