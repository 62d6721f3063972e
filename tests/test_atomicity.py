"""Every artifact is written atomically and durably (docs/run.md, "What `ssnas run`
does"): a temporary file, fsynced, renamed over the target, the folder fsynced;
logs gain whole lines only; `Run.start` never leaves a new config beside the
previous run's artifacts."""

import json
import os

import numpy as np
import pytest

from ssnas_tf import atomic
from ssnas_tf.nas import callbacks
from ssnas_tf.nas.genotypes import Genotype, StepGenotype

GENOTYPE = Genotype(
    inputs=("a_1", "b_1"), edges=(("identity", 0), ("identity", 1)),
    steps=(StepGenotype((("identity", 0), ("identity", 1)), ("sum",), (2,)),),
    concat=(2,))


@pytest.fixture
def fsynced(monkeypatch):
    """The paths passed through os.fsync, in order."""
    paths = []
    real = os.fsync

    def record(fd):
        paths.append(os.readlink(f"/proc/self/fd/{fd}"))
        return real(fd)
    if not os.path.isdir("/proc/self/fd"):
        pytest.skip("needs /proc/self/fd to name file descriptors")
    monkeypatch.setattr(os, "fsync", record)
    return paths


def _fsynced_file_then_folder(paths, target):
    folder = os.path.dirname(os.path.realpath(target))
    temporaries = [p for p in paths if os.path.basename(p).startswith(".tmp-")]
    assert temporaries and os.path.dirname(temporaries[0]) == folder, paths
    assert folder in paths, paths
    assert paths.index(folder) > paths.index(temporaries[0]), "folder before file"


def test_atomic_write_text_fsyncs_the_file_and_its_folder(tmp_path, fsynced):
    target = tmp_path / "results.json"
    atomic.atomic_write_text(str(target), "{}")
    assert target.read_text() == "{}"
    _fsynced_file_then_folder(fsynced, target)


def test_atomic_save_model_fsyncs(tmp_path, fsynced):
    import keras
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    target = tmp_path / "m.keras"
    atomic.atomic_save_model(model, str(target))
    assert target.stat().st_size > 0
    _fsynced_file_then_folder(fsynced, target)


def test_failed_rename_keeps_the_old_file_and_no_temporary(tmp_path, monkeypatch):
    target = tmp_path / "log.jsonl"
    target.write_text('{"epoch": 1}\n')

    def crash(src, dst):
        raise OSError("disk gone")
    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="disk gone"):
        atomic.atomic_append_line(str(target), '{"epoch": 2}')
    assert target.read_text() == '{"epoch": 1}\n'
    assert os.listdir(tmp_path) == ["log.jsonl"]


def test_atomic_append_line_adds_whole_lines(tmp_path):
    target = tmp_path / "log.jsonl"
    atomic.atomic_append_line(str(target), "one")
    atomic.atomic_append_line(str(target), "two\n")
    target.write_text(target.read_text() + "torn")  # a file ending mid-line
    atomic.atomic_append_line(str(target), "three")
    assert target.read_text() == "one\ntwo\ntorn\nthree\n"


def test_genotype_save_keeps_the_old_file_when_writing_fails(tmp_path, monkeypatch):
    path = tmp_path / "genotype.json"
    GENOTYPE.save(path)
    before = path.read_bytes()

    def broken(self, indent=2):
        raise RuntimeError("serialisation failed")
    monkeypatch.setattr(Genotype, "to_json", broken)
    with pytest.raises(RuntimeError):
        GENOTYPE.save(path)
    assert path.read_bytes() == before


def test_genotype_save_is_durable(tmp_path, fsynced):
    path = tmp_path / "genotype.json"
    GENOTYPE.save(str(path))
    assert Genotype.load(path) == GENOTYPE
    _fsynced_file_then_folder(fsynced, path)


class _FakeNetwork:
    def arch_weights(self):
        return {"alpha": np.full((2, 2), 0.5), "beta": np.ones((1, 1, 2)) / 2,
                "gamma": np.ones((1, 1, 2)) / 2}


class _FakeModel:
    network = _FakeNetwork()


def test_search_log_lines_are_written_atomically(tmp_path, monkeypatch, fsynced):
    """Each epoch's line goes through a fsynced temporary file and a rename,
    so a crash cannot leave a torn line in search_log.jsonl."""
    monkeypatch.setattr(callbacks, "derive_genotype", lambda network: GENOTYPE)
    log = tmp_path / "search_log.jsonl"
    tracker = callbacks.GenotypeTracker(lambda m, logs: logs["val_loss"],
                                        log_path=str(log), verbose=False)
    tracker.set_model(_FakeModel())
    for epoch, loss in enumerate([3.0, 2.0]):
        inode = log.stat().st_ino if log.exists() else None
        tracker.on_epoch_end(epoch, {"val_loss": loss})
        assert log.stat().st_ino != inode  # replaced, not written in place
    _fsynced_file_then_folder(fsynced, log)
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    assert [r["epoch"] for r in lines] == [1, 2]
    assert [r["score"] for r in lines] == [3.0, 2.0]
    assert tracker.best_epoch == 2
