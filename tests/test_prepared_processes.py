"""Prepared-rows caches shared by processes: one prepares, the others wait.

Real processes (not threads): the old guard was a thread lock, and three
processes loading one fresh AV-MNIST folder together made two of them fail
with TFDS's `FileExistsError` on the rename of its `incomplete.*` folder.
"""

import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from ssnas_tf.data import prepared
from ssnas_tf.filelock import FileLock, FileLockTimeout

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _write_avmnist(root, n_train=6, n_test=3):
    rng = np.random.default_rng(0)
    for part, n in (("train", n_train), ("test", n_test)):
        (root / "image").mkdir(parents=True, exist_ok=True)
        (root / "audio").mkdir(exist_ok=True)
        np.save(root / "image" / f"{part}_data.npy",
                rng.integers(0, 256, size=(n, 784)).astype(np.float64))
        np.save(root / "audio" / f"{part}_data.npy",
                rng.uniform(0, 255, size=(n, 112, 112)).astype(np.float32))
        np.save(root / f"{part}_labels.npy", np.arange(n) % 10)
    return root


def _env():
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [REPO, env.get("PYTHONPATH")]))
    return env


# Each child imports everything first, says it is ready, then waits for the
# start file, so the three loads begin together (imports take seconds).
_CHILD = textwrap.dedent("""
    import os, sys, time
    from ssnas_tf.data.avmnist import load_avmnist
    import tensorflow_datasets  # noqa: F401  (imported before the race)
    root, ready, go = sys.argv[1:4]
    open(ready, "w").close()
    while not os.path.exists(go):
        time.sleep(0.01)
    data = load_avmnist(root, valid_size=2, verbose=False)
    print(int(data.inputs["audio"][:].sum()), int(data.inputs["image"][:].sum()))
""")


@pytest.mark.slow  # whole searches or fits: kept out of the fast tier
def test_three_processes_load_one_fresh_folder(tmp_path):
    root = _write_avmnist(tmp_path / "avmnist")
    go = tmp_path / "go"
    children = []
    for i in range(3):
        ready = tmp_path / f"ready{i}"
        children.append((ready, subprocess.Popen(
            [sys.executable, "-c", _CHILD, str(root), str(ready), str(go)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env())))
    deadline = time.monotonic() + 240
    while not all(ready.exists() for ready, _ in children):
        assert time.monotonic() < deadline, "children did not start"
        assert all(p.poll() is None for _, p in children), [
            p.communicate() for _, p in children if p.poll() is not None]
        time.sleep(0.05)
    go.touch()
    outputs = []
    for _, p in children:
        out, err = p.communicate(timeout=240)
        assert p.returncode == 0, err
        outputs.append(out.strip().splitlines()[-1])
    assert len(set(outputs)) == 1  # all read the same rows
    # One prepared copy per modality (beside its files), no lock files left,
    # no incomplete folders.
    for modality in ("image", "audio"):
        folder = root / modality / prepared.PREPARED_DIR
        caches = os.listdir(folder)
        assert len(caches) == 1 and caches[0].startswith(f"avmnist-{modality}-"), caches
        assert os.listdir(folder / caches[0] / "prepared_rows") == ["1.0.0"]


def _holder(lock_path, ready):
    code = (f"from ssnas_tf.filelock import FileLock\nimport time\n"
            f"FileLock({str(lock_path)!r}).acquire()\n"
            f"open({str(ready)!r}, 'w').close()\ntime.sleep(600)\n")
    return subprocess.Popen([sys.executable, "-c", code], env=_env())


def _wait_for(path, process):
    deadline = time.monotonic() + 60
    while not path.exists():
        assert process.poll() is None and time.monotonic() < deadline
        time.sleep(0.02)


def test_lock_of_a_killed_process_is_taken_over(tmp_path):
    lock_path, ready = tmp_path / "cache.lock", tmp_path / "ready"
    holder = _holder(lock_path, ready)
    try:
        _wait_for(ready, holder)
        with pytest.raises(FileLockTimeout, match="cache.lock"):
            FileLock(str(lock_path), timeout=0.3).acquire()
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    assert lock_path.exists()  # the killed holder left its file behind
    with FileLock(str(lock_path), timeout=5):
        assert lock_path.read_text().strip() == str(os.getpid())
    assert not lock_path.exists()


def test_existing_copy_is_used_and_killed_preparation_is_redone(tmp_path):
    rows = np.arange(24, dtype=np.uint8).reshape(6, 4)
    calls = []

    def read_chunk(start, stop):
        calls.append((start, stop))
        return rows[start:stop]

    path = str(tmp_path / "cache")
    # What a killed preparation leaves: an incomplete folder (and a lock file).
    os.makedirs(os.path.join(path, "prepared_rows", "incomplete.abc_1.0.0"))
    open(path + ".lock", "w").close()
    first = prepared.prepare_rows(path, 6, (4,), np.uint8, read_chunk, verbose=False)
    np.testing.assert_array_equal(first[:], rows)
    assert os.listdir(os.path.join(path, "prepared_rows")) == ["1.0.0"]
    n = len(calls)
    second = prepared.prepare_rows(path, 6, (4,), np.uint8, read_chunk, verbose=False)
    np.testing.assert_array_equal(second[:], rows)
    assert len(calls) == n  # the finished copy is read, not prepared again
