"""The backbone step resumes too: the joint fit of all modalities continues from
its last finished epoch, and the backbones equal those of an uninterrupted step
(in-process interruption, and a real SIGKILL). Per-modality checkpoints of an
older version are discarded with a message, and the step starts afresh."""

import dataclasses
import os
import signal
import subprocess
import sys
import time

import keras
import numpy as np
import pytest

from ssnas_tf.workflow.config import RunConfig
from ssnas_tf.workflow.checkpoint import save_checkpoint
from ssnas_tf.workflow.resume import StepCheckpoint
from ssnas_tf.workflow.run import Run

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG = RunConfig(backbone_epochs=3, backbone_width=8, batch_size=64, seed=2,
                   max_steps_per_epoch=3,
                   dataset_options={"views": ["fou", "pix", "mor"]})


class Interrupted(Exception):
    pass


def _weights(directory):
    model = keras.saving.load_model(os.path.join(directory, "backbones.keras"),
                                    compile=False)
    return [np.asarray(w) for w in model.get_weights()]


def _train(directory):
    run = Run(str(directory), CONFIG, verbose=0)
    run.start()
    run.train_backbones()
    return run


def _interrupt_backbones_after_epoch_2(monkeypatch):
    original = StepCheckpoint.callback

    def interrupting(self):
        checkpoint = original(self)
        if self.step != "backbones":
            return checkpoint

        class Stop(keras.callbacks.Callback):
            def on_epoch_end(self, epoch, logs=None):
                if epoch == 1:  # epoch 2 of the joint fit is saved
                    raise Interrupted
        return _Chain(checkpoint, Stop())
    monkeypatch.setattr(StepCheckpoint, "callback", interrupting)
    return original


def _count_fits(monkeypatch):
    fits = []
    fit = keras.Model.fit
    monkeypatch.setattr(keras.Model, "fit", lambda self, *a, **k: fits.append(
        k.get("initial_epoch")) or fit(self, *a, **k))
    return fits


@pytest.mark.slow  # whole searches or fits: kept out of the fast tier
def test_interrupted_backbone_step_resumes_to_the_same_backbones(tmp_path, monkeypatch,
                                                                 capsys):
    whole = _train(tmp_path / "whole")
    original = _interrupt_backbones_after_epoch_2(monkeypatch)
    with pytest.raises(Interrupted):
        _train(tmp_path / "killed")
    checkpoints = tmp_path / "killed" / "checkpoints"
    assert sorted(os.listdir(checkpoints)) == ["backbones.npz"]
    assert not (tmp_path / "killed" / "backbones.keras").exists()
    monkeypatch.setattr(StepCheckpoint, "callback", original)
    fits = _count_fits(monkeypatch)
    run = Run(str(tmp_path / "killed"), verbose=0)
    assert run.start() is True  # resumed
    capsys.readouterr()
    run.train_backbones()
    assert fits == [2]  # one fit of all modalities, from its third epoch
    assert "backbones: resuming after epoch 2" in capsys.readouterr().out
    for a, b in zip(_weights(whole.directory), _weights(run.directory), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    assert not checkpoints.exists()


def test_per_modality_checkpoints_of_an_older_version_restart_the_step(
        tmp_path, monkeypatch, capsys):
    whole = _train(tmp_path / "whole")
    _interrupt_backbones_after_epoch_2(monkeypatch)
    with pytest.raises(Interrupted):
        _train(tmp_path / "old")
    monkeypatch.undo()
    # What the per-modality version left: the finished modalities' backbones
    # and the epoch checkpoint of the one in training.
    checkpoints = tmp_path / "old" / "checkpoints"
    os.remove(checkpoints / "backbones.npz")
    backbones = keras.saving.load_model(whole.path("backbones.keras"), compile=False)
    save_checkpoint(str(checkpoints / "backbones.npz"), backbones, {}, {"done": ["fou"]})
    save_checkpoint(str(checkpoints / "backbones-pix.npz"), backbones, {},
                    {"epoch": 2, "identity": "pix"})
    fits = _count_fits(monkeypatch)
    run = Run(str(tmp_path / "old"), verbose=0)
    assert run.start() is True
    capsys.readouterr()
    run.train_backbones()
    out = capsys.readouterr().out
    assert "per-modality checkpoints of an older version; restarting the backbone step" in out
    assert fits == [0]
    for a, b in zip(_weights(whole.directory), _weights(run.directory), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    assert not checkpoints.exists()


class _Chain(keras.callbacks.Callback):
    """Runs `first` then `second` at each epoch end (the checkpoint, then the stop)."""

    def __init__(self, first, second):
        super().__init__()
        self.first, self.second = first, second

    def set_model(self, model):
        super().set_model(model)
        self.first.set_model(model)
        self.second.set_model(model)

    def on_epoch_end(self, epoch, logs=None):
        self.first.on_epoch_end(epoch, logs)
        self.second.on_epoch_end(epoch, logs)


@pytest.mark.slow
def test_sigkill_mid_backbone_step_then_rerun_gives_the_same_backbones(tmp_path):
    script = (f"from ssnas_tf.workflow.run import Run\n"
              f"from ssnas_tf.workflow.config import RunConfig\n"
              f"import sys\nrun = Run(sys.argv[1], RunConfig.from_json({CONFIG.to_json()!r}),"
              f" verbose=0)\nrun.start()\nrun.train_backbones()\n")
    env = {**os.environ, "PYTHONPATH": ROOT, "TF_CPP_MIN_LOG_LEVEL": "2"}

    def child(name):
        return subprocess.Popen([sys.executable, "-c", script, str(tmp_path / name)],
                                env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    whole, killed = child("whole"), child("killed")
    mark = tmp_path / "killed" / "checkpoints" / "backbones.npz"  # an epoch is done
    deadline = time.time() + 300
    while not mark.exists():
        assert killed.poll() is None and time.time() < deadline
        time.sleep(0.1)
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    assert not (tmp_path / "killed" / "backbones.keras").exists()
    again = child("killed")
    assert again.wait(timeout=300) == 0, again.stderr.read().decode()[-3000:]
    assert whole.wait(timeout=300) == 0, whole.stderr.read().decode()[-3000:]
    for a, b in zip(_weights(tmp_path / "whole"), _weights(tmp_path / "killed"), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
