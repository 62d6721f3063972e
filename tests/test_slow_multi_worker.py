"""A 2-worker MultiWorkerMirroredStrategy search on localhost finishes, and both
workers derive the same genotype.

Two `ssnas search --distribute multi-worker` processes, each with its own
TF_CONFIG task index and run directory; tiny settings.

    python -m pytest tests/test_slow_multi_worker.py -m slow -q
"""

import json
import os
import socket
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = ["--epochs", "2", "--backbone-epochs", "1", "--batch-size", "32",
        "--channels", "8", "--backbone-width", "8", "--projection-dim", "8",
        "--num-cells", "2", "--num-steps", "1", "--seed", "5",
        # two of mfeat's six views, an image and a vector: smaller graphs
        "--dataset-option", 'views=["pix", "fou"]']


def _free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("localhost", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


@pytest.mark.slow
def test_two_workers_agree_on_the_genotype(tmp_path):
    workers = [f"localhost:{port}" for port in _free_ports(2)]
    procs, logs = [], []
    for index in range(2):
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", TF_CONFIG=json.dumps(
            {"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}}))
        env["PYTHONPATH"] = os.pathsep.join(p for p in (REPO, env.get("PYTHONPATH")) if p)
        log = open(tmp_path / f"worker{index}.log", "w")
        logs.append(log)
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "ssnas_tf.cli", "search", "--output",
             str(tmp_path / f"worker{index}"), "--distribute", "multi-worker", *TINY],
            env=env, stdout=log, stderr=subprocess.STDOUT))
    try:
        codes = [proc.wait(timeout=900) for proc in procs]
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
        for log in logs:
            log.close()
    for index, code in enumerate(codes):
        assert code == 0, (tmp_path / f"worker{index}.log").read_text()[-3000:]
    genotypes = [(tmp_path / f"worker{i}" / "genotype.json").read_text() for i in range(2)]
    assert genotypes[0] == genotypes[1]
    results = json.loads((tmp_path / "worker0" / "results.json").read_text())
    assert results["reproducibility"]["distribute"] == {
        "strategy": "multi-worker", "replicas": 2, "workers": 2, "sync_batch_norm": False}
