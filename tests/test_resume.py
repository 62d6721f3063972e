"""Resuming interrupted runs: per-epoch checkpoints of both optimizers, the run
lock, finished steps skipped, and a real SIGKILL mid-search."""

import json
import os
import signal
import subprocess
import sys
import time

import keras
import numpy as np
import pytest
import tensorflow as tf

from ssnas_tf.nas.architect import SearchModel
from ssnas_tf.nas.callbacks import GenotypeTracker
from ssnas_tf.nas.model_search import SearchNetwork
from ssnas_tf.ssl.heads import ProjectionHead
from ssnas_tf.workflow.checkpoint import CheckpointError, restore_checkpoint
from ssnas_tf.workflow.config import RunConfig
from ssnas_tf.workflow.lock import RunLock, RunLockedError
from ssnas_tf.workflow.resume import StepCheckpoint
from ssnas_tf.workflow.run import Run, RunError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EPOCHS, STEPS = 4, 3


def _data(seed):
    rng = np.random.default_rng(seed)

    def features():
        return {"a": rng.normal(size=(8, 3)).astype("float32"),
                "b": rng.normal(size=(8, 5, 2)).astype("float32")}
    batches = [((features(), features()), (features(), features()))
               for _ in range(EPOCHS * STEPS)]
    return lambda epoch: tf.data.Dataset.from_generator(
        lambda: iter(batches[epoch * STEPS:]),
        output_signature=tf.nest.map_structure(
            lambda x: tf.TensorSpec(x.shape, tf.float32), batches[0]))


def _model():
    keras.utils.set_random_seed(5)
    network = SearchNetwork(["a", "b"], num_cells=1, num_steps=1, multiplier=1,
                            channels=8, length=4, dropout=0.3,
                            primitives=("zero", "sum", "concat_fc"))
    model = SearchModel(network, ProjectionHead(8), temperature=0.5)
    model(next(iter(_data(0)(0)))[0][0])
    # Adam for both: their moment slots must come back, not only the weights.
    model.compile(keras.optimizers.Adam(0.01), keras.optimizers.Adam(0.05))
    model.build_optimizers()
    return model


def _state(model):
    return [v.numpy() for v in model.variables + model.optimizer.variables
            + model.arch_optimizer.variables]


def _fit(model, tmp_path, epochs, initial_epoch=0):
    tracker = GenotypeTracker(lambda m, logs: logs["loss"], log_path=str(tmp_path / "log"),
                              verbose=False)
    checkpoint = StepCheckpoint(str(tmp_path), "search", model,
                                {"optimizer": model.optimizer,
                                 "arch_optimizer": model.arch_optimizer}, tracker=tracker)
    start = checkpoint.restore() if initial_epoch is None else initial_epoch
    model.fit(_data(0)(start), epochs=epochs, initial_epoch=start, steps_per_epoch=STEPS,
              callbacks=[tracker, checkpoint.callback()], verbose=0)
    return tracker, start


@pytest.mark.slow  # whole searches or fits: kept out of the fast tier
def test_interrupted_search_resumes_to_the_same_state(tmp_path):
    whole, _ = _fit(_model(), tmp_path / "whole", EPOCHS)
    reference = _state(whole.model)
    _fit(_model(), tmp_path / "cut", 2)  # "killed" after epoch 2
    with open(tmp_path / "cut" / "log", "a") as f:
        f.write('{"epoch": 3, "half-written": true}\n')  # logged, never checkpointed
    resumed, start = _fit(_model(), tmp_path / "cut", EPOCHS, initial_epoch=None)
    assert start == 2
    for got, want in zip(_state(resumed.model), reference):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    assert resumed.best_genotype == whole.best_genotype
    assert resumed.best_epoch == whole.best_epoch
    logged = [json.loads(line) for line in open(tmp_path / "cut" / "log")]
    assert [r["epoch"] for r in logged] == [1, 2, 3, 4]
    assert logged == [json.loads(line) for line in open(tmp_path / "whole" / "log")]


def test_restore_refuses_an_unbuilt_architecture_optimizer(tmp_path):
    _fit(_model(), tmp_path, 1)
    fresh = _model()
    unbuilt = keras.optimizers.Adam(0.05)  # what BackupAndRestore would skip
    with pytest.raises(CheckpointError, match="arch_optimizer.*not built"):
        restore_checkpoint(str(tmp_path / "checkpoints" / "search.npz"), fresh,
                           {"optimizer": fresh.optimizer, "arch_optimizer": unbuilt})


def test_tracker_criterion_reaches_later_callbacks(tmp_path):
    seen = []
    model = _model()
    tracker = GenotypeTracker(lambda m, logs: 2 * logs["loss"], verbose=False)
    probe = keras.callbacks.LambdaCallback(
        on_epoch_end=lambda epoch, logs: seen.append(dict(logs)))
    history = model.fit(_data(0)(0), epochs=2, steps_per_epoch=STEPS, verbose=0,
                        callbacks=[tracker, probe])
    assert [s["genotype_criterion"] for s in seen] == pytest.approx(
        [2 * s["loss"] for s in seen])
    assert history.history["genotype_criterion"] == pytest.approx(
        [r["score"] for r in tracker.history])


# -- the lock -------------------------------------------------------------------

def test_second_writer_gets_the_holders_pid(tmp_path):
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from ssnas_tf.workflow.lock import "
         "RunLock; RunLock(sys.argv[1]).acquire(); print('locked', flush=True); "
         "time.sleep(60)", str(tmp_path)],
        env={**os.environ, "PYTHONPATH": ROOT}, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(RunLockedError, match=f"pid {holder.pid}"):
            RunLock(str(tmp_path)).acquire()
    finally:
        holder.kill()
        holder.wait()
    # The kernel dropped the dead holder's lock: its stale file is taken over.
    assert os.path.exists(tmp_path / ".lock")
    with RunLock(str(tmp_path)):
        assert open(tmp_path / ".lock").read().strip() == str(os.getpid())
    assert not os.path.exists(tmp_path / ".lock")


def test_lock_leaves_no_new_directory_behind(tmp_path):
    with RunLock(str(tmp_path / "new")):
        pass
    assert not os.path.exists(tmp_path / "new")


def test_run_with_other_settings_is_not_resumed(tmp_path):
    Run(str(tmp_path), RunConfig(search_epochs=1)).start()
    with pytest.raises(RunError, match="search_epochs.*--overwrite"):
        Run(str(tmp_path), RunConfig(search_epochs=2)).start()
    assert Run(str(tmp_path), RunConfig(search_epochs=1)).start() is True


# -- a real SIGKILL ---------------------------------------------------------------

FLAGS = ["--epochs", "3", "--backbone-epochs", "0", "--pretrain-epochs", "1",
         "--finetune-epochs", "1", "--batch-size", "128", "--backbone-width", "8",
         "--channels", "8", "--num-cells", "2", "--num-steps", "1", "--seed", "3",
         # two of mfeat's six views, an image and a vector: smaller graphs, same resume path
         "--dataset-option", 'views=["pix", "fou"]']


def _cli(output):
    """The CLI in a subprocess; its output goes to `output`.log."""
    log = open(f"{output}.log", "a")
    return subprocess.Popen([sys.executable, "-m", "ssnas_tf.cli", "run", "--output",
                             str(output), *FLAGS], env={**os.environ, "PYTHONPATH": ROOT},
                            stdout=log, stderr=subprocess.STDOUT)


@pytest.mark.slow
def test_sigkill_mid_search_then_rerun_gives_the_same_result(tmp_path):
    whole = _cli(tmp_path / "whole")
    killed = _cli(tmp_path / "killed")
    checkpoint = tmp_path / "killed" / "checkpoints" / "search.npz"
    deadline = time.time() + 300
    while not checkpoint.exists():  # an epoch of the search has finished
        assert killed.poll() is None and time.time() < deadline
        time.sleep(0.2)
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    assert not (tmp_path / "killed" / "genotype.json").exists()
    assert _cli(tmp_path / "killed").wait(timeout=300) == 0
    out = (tmp_path / "killed.log").read_text()
    assert "[ssnas] search: resuming after epoch" in out, out[-3000:]
    assert whole.wait(timeout=300) == 0, (tmp_path / "whole.log").read_text()[-3000:]
    for name in ("genotype.json", "classifier_genotype.json"):
        assert (tmp_path / "killed" / name).read_text() == (tmp_path / "whole" / name).read_text()
    a, b = (json.loads((tmp_path / d / "results.json").read_text()) for d in ("killed", "whole"))
    assert abs(a["weighted_f1"] - b["weighted_f1"]) < 0.005
    assert a["search_best_epoch"] == b["search_best_epoch"]
    logs = [(tmp_path / d / "search_log.jsonl").read_text().splitlines()
            for d in ("killed", "whole")]
    assert [json.loads(r)["epoch"] for r in logs[0]] == [1, 2, 3]
    assert not (tmp_path / "killed" / "checkpoints").exists()


def test_finished_steps_need_their_artifacts(tmp_path):
    from ssnas_tf.workflow.resume import finished_steps
    results = tmp_path / "results.json"
    assert finished_steps(str(results)) == set()
    results.write_text(json.dumps({"seconds": {"backbones": 3.0, "search": 5.0,
                                               "pretrain": 0.0, "evaluate": 1.0}}))
    (tmp_path / "backbones.keras").write_text("")
    # search's genotype.json is gone: it reruns; a skipped pretrain has no encoder.
    assert finished_steps(str(results)) == {"backbones", "pretrain", "evaluate"}


class _Killed(Exception):
    pass


@pytest.mark.slow  # whole searches or fits: kept out of the fast tier
def test_checkpoints_every_min_seconds_and_a_resume_from_an_earlier_epoch(tmp_path,
                                                                         monkeypatch):
    """With a long interval only the first and last epochs are saved; killed
    after epoch 3, the run resumes from epoch 1 and ends as an uninterrupted one."""
    from ssnas_tf.workflow import checkpoint as checkpoint_lib, resume
    saved = []
    real_save = checkpoint_lib.save_checkpoint

    def recording_save(path, model, optimizers, state, exclude=()):
        saved.append(state["epoch"])
        real_save(path, model, optimizers, state, exclude)
    monkeypatch.setattr(checkpoint_lib, "save_checkpoint", recording_save)
    monkeypatch.setattr(resume, "CHECKPOINT_SECONDS", 3600.0)
    whole, _ = _fit(_model(), tmp_path / "whole", EPOCHS)
    assert saved == [1, EPOCHS]
    reference = _state(whole.model)

    def kill(epoch, logs):
        if epoch + 1 == 3:
            raise _Killed
    model, saved[:] = _model(), []
    tracker = GenotypeTracker(lambda m, logs: logs["loss"],
                              log_path=str(tmp_path / "cut" / "log"), verbose=False)
    checkpoint = StepCheckpoint(str(tmp_path / "cut"), "search", model,
                                {"optimizer": model.optimizer,
                                 "arch_optimizer": model.arch_optimizer}, tracker=tracker)
    with pytest.raises(_Killed):
        model.fit(_data(0)(0), epochs=EPOCHS, steps_per_epoch=STEPS, verbose=0,
                  callbacks=[tracker, checkpoint.callback(),
                             keras.callbacks.LambdaCallback(on_epoch_end=kill)])
    assert saved == [1]
    resumed, start = _fit(_model(), tmp_path / "cut", EPOCHS, initial_epoch=None)
    assert start == 1
    for got, want in zip(_state(resumed.model), reference):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    assert resumed.best_genotype == whole.best_genotype


def test_checkpoints_every_epoch_without_an_interval(tmp_path, monkeypatch):
    from ssnas_tf.workflow import checkpoint as checkpoint_lib, resume
    saved = []
    real_save = checkpoint_lib.save_checkpoint
    monkeypatch.setattr(checkpoint_lib, "save_checkpoint",
                        lambda path, model, optimizers, state, exclude=():
                        saved.append(state["epoch"]) or real_save(path, model, optimizers,
                                                                  state, exclude))
    monkeypatch.setattr(resume, "CHECKPOINT_SECONDS", 0.0)
    _fit(_model(), tmp_path, EPOCHS)
    assert saved == [1, 2, 3, 4]
