"""Resuming an interrupted run: which steps are finished, and mid-step checkpoints.

A step is finished when its entry is in `results.json`'s `seconds` (written
after its artifacts) and its artifact still exists. A step that was interrupted
continues from its last saved epoch: `StepCheckpoint` saves the whole
training state after the first epoch, then at most every `CHECKPOINT_SECONDS`
and after the last epoch, into `DIR/checkpoints/<step>.npz` and removes
it when the step finishes. The backbone step pretrains one modality after the
other: `BackboneCheckpoints` keeps the backbones of the finished modalities
and a `StepCheckpoint` per epoch of the one in training.
"""

import dataclasses
import json
import os

from ssnas_tf.workflow.checkpoint import (EpochCheckpoint, restore_checkpoint,
                                          save_checkpoint)

CHECKPOINT_DIR = "checkpoints"
# Saving every epoch cost 2 of the default finetune's 9.5 s (60 short epochs);
# a resume repeats at most this much training, seeded as before.
CHECKPOINT_SECONDS = 5.0


def config_differences(old, new):
    """Names of the `RunConfig` fields whose values differ."""
    a, b = dataclasses.asdict(old), dataclasses.asdict(new)
    return sorted(k for k in a if json.dumps(a[k]) != json.dumps(b.get(k)))


# The artifact each step leaves; a finished step whose artifact is gone reruns.
STEP_OUTPUTS = {"backbones": "backbones.keras", "search": "genotype.json",
                "pretrain": "encoder.keras", "finetune": "classifier.keras"}


def finished_steps(results_path):
    """The steps recorded as finished in `results.json` whose artifacts exist."""
    if not os.path.exists(results_path):
        return set()
    with open(results_path) as f:
        seconds = json.load(f).get("seconds", {})
    directory = os.path.dirname(results_path)
    # A skipped pretrain (supervised) records 0 seconds and writes no encoder.
    return {step for step, spent in seconds.items()
            if step not in STEP_OUTPUTS or (step == "pretrain" and not spent)
            or os.path.exists(os.path.join(directory, STEP_OUTPUTS[step]))}


class StepCheckpoint:
    """The per-epoch checkpoint of one step of a run.

    Args:
        directory: the run directory.
        step: the step name ("search", "pretrain", "finetune").
        model: the built, compiled model.
        optimizers: name -> optimizer; all must be built already.
        exclude: frozen layers whose variables need no saving. Defaults to ().
        identity: JSON-able description of what is trained (e.g. the genotype);
            a checkpoint of something else is discarded. Defaults to None.
        tracker: an object with `get_state()`/`set_state()` (the genotype
            tracker) saved and restored too. Defaults to None.
    """

    def __init__(self, directory, step, model, optimizers, exclude=(), identity=None,
                 tracker=None):
        self.path = os.path.join(directory, CHECKPOINT_DIR, f"{step}.npz")
        self.step, self.model, self.optimizers = step, model, dict(optimizers)
        self.exclude, self.identity, self.tracker = tuple(exclude), identity, tracker

    def restore(self):
        """Restores the last finished epoch, if any; returns the epoch to start at."""
        state = restore_checkpoint(self.path, self.model, self.optimizers, self.exclude)
        if state is None:
            return 0
        if state.get("identity") != self.identity:
            print(f"[ssnas] {self.step}: {self.path} belongs to another model; "
                  f"starting the step afresh", flush=True)
            os.remove(self.path)
            return 0
        if self.tracker is not None:
            self.tracker.set_state(state["tracker"])
        print(f"[ssnas] {self.step}: resuming after epoch {state['epoch']} "
              f"({self.path})", flush=True)
        return int(state["epoch"])

    def _state(self):
        state = {"identity": self.identity}
        if self.tracker is not None:
            state["tracker"] = self.tracker.get_state()
        return state

    def callback(self):
        """The Keras callback that writes the checkpoint; put it last in the list."""
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        return EpochCheckpoint(self.path, self.optimizers, self._state, self.exclude,
                               min_seconds=CHECKPOINT_SECONDS)

    def finish(self):
        """Removes the checkpoint once the step's artifacts are written."""
        if os.path.exists(self.path):
            os.remove(self.path)
        folder = os.path.dirname(self.path)
        if os.path.isdir(folder) and not os.listdir(folder):
            os.rmdir(folder)


class BackboneCheckpoints:
    """Resume points of the backbone step (`backbones.pretrain_backbones`).

    After each modality: every backbone's variables and the list of finished
    modalities (`DIR/checkpoints/backbones.npz`); during a modality: its
    contrastive model and optimizer after each epoch
    (`DIR/checkpoints/backbones-<modality>.npz`).

    Args:
        directory: the run directory.
        backbones: the backbones model being pretrained (updated in place).
    """

    def __init__(self, directory, backbones):
        self.directory, self.backbones = directory, backbones
        self.path = os.path.join(directory, CHECKPOINT_DIR, "backbones.npz")
        self._epoch_checkpoints = {}

    def done(self):
        """The modalities already pretrained; restores their backbones."""
        state = restore_checkpoint(self.path, self.backbones, {})
        if state is None:
            return []
        print(f"[ssnas] backbones: resuming after {state['done']} ({self.path})",
              flush=True)
        return list(state["done"])

    def begin(self, modality, model):
        """Restores `model` (compiled, optimizer built) to the modality's last
        finished epoch; returns the epoch to start at."""
        checkpoint = StepCheckpoint(self.directory, f"backbones-{modality}", model,
                                    {"optimizer": model.optimizer}, identity=modality)
        self._epoch_checkpoints[modality] = checkpoint
        return checkpoint.restore()

    def callback(self, modality):
        """The per-epoch Keras callback of the modality in training."""
        return self._epoch_checkpoints[modality].callback()

    def finish(self, modality, done):
        """Records `done` (the finished modalities, `modality` last)."""
        save_checkpoint(self.path, self.backbones, {}, {"done": list(done)})
        checkpoint = self._epoch_checkpoints.pop(modality)
        if os.path.exists(checkpoint.path):
            os.remove(checkpoint.path)

    def clear(self):
        """Removes every backbone checkpoint (the step's artifact is written)."""
        if os.path.exists(self.path):
            os.remove(self.path)
        folder = os.path.dirname(self.path)
        if os.path.isdir(folder) and not os.listdir(folder):
            os.rmdir(folder)
