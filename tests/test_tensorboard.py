"""TensorBoard logs (scalars per step, alpha/beta/gamma per epoch) and
user callbacks through `Run(..., callbacks=[...])`."""

import glob
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from ssnas_tf.nas.callbacks import GenotypeTracker
from ssnas_tf.workflow.tensorboard import step_callbacks

from test_resume import STEPS, _data, _model


def _events(folder):
    """tag -> [(step, numpy value)] of every event file under `folder`."""
    out = {}
    for path in sorted(glob.glob(os.path.join(folder, "**", "events.out.*"), recursive=True)):
        for event in tf.compat.v1.train.summary_iterator(path):
            for value in event.summary.value:
                out.setdefault(value.tag, []).append(
                    (event.step, tf.make_ndarray(value.tensor)))
    return out


def test_search_logs_scalars_and_softmaxed_architecture(tmp_path):
    model = _model()
    tracker = GenotypeTracker(lambda m, logs: logs["loss"], verbose=False)
    arch_log = []
    probe = keras.callbacks.LambdaCallback(on_epoch_end=lambda e, logs: arch_log.append(
        model.network.arch_weights()))
    model.fit(_data(0)(0), epochs=2, steps_per_epoch=STEPS, verbose=0,
              callbacks=[tracker, probe, *step_callbacks(str(tmp_path), "search")])
    scalars = _events(str(tmp_path / "train"))
    assert [s for s, _ in scalars["epoch_genotype_criterion"]] == [0, 1]
    # Every training step's loss, numbered 1, 2, ... across the epochs.
    assert [s for s, _ in scalars["batch_loss"]] == list(range(1, 2 * STEPS + 1))
    np.testing.assert_allclose([float(v) for _, v in scalars["epoch_genotype_criterion"]],
                               [r["score"] for r in tracker.history], rtol=1e-6)
    arch = _events(str(tmp_path / "architecture"))
    for name in ("alpha", "beta", "gamma"):
        histograms = arch[f"{name}/softmax"]
        assert [s for s, _ in histograms][::2] == [1, 2]  # histogram, then image
        # Histogram buckets: (left, right, count); the counts cover every entry.
        counts = histograms[0][1]
        assert counts[:, 2].sum() == arch_log[0][name].size
        weights = arch_log[1][name]
        low, high = histograms[2][1][:, 0].min(), histograms[2][1][:, 1].max()
        assert low <= weights.min() and weights.max() <= high


@pytest.mark.slow
def test_run_passes_user_callbacks_and_writes_tensorboard(tmp_path):
    from ssnas_tf.workflow.config import RunConfig
    from ssnas_tf.workflow.run import Run

    class Recorder(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.epochs = []

        def on_epoch_end(self, epoch, logs=None):
            self.epochs.append((type(self.model).__name__, sorted(logs)))

    recorder = Recorder()
    config = RunConfig(search_epochs=2, backbone_epochs=0, pretrain_epochs=1,
                       finetune_epochs=1, backbone_width=8, channels=8, num_steps=1)
    Run(str(tmp_path / "run"), config, verbose=0, callbacks=[recorder],
        tensorboard=True).run_all()
    models = [m for m, _ in recorder.epochs]
    assert models == ["SearchModel", "SearchModel", "ContrastiveModel", "Functional"]
    assert "genotype_criterion" in recorder.epochs[0][1]
    for step in ("search", "pretrain", "finetune"):
        assert "epoch_loss" in _events(str(tmp_path / "run" / "tensorboard" / step / "train"))
    assert "gamma/softmax" in _events(str(tmp_path / "run" / "tensorboard" / "search"))
