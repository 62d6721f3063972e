"""Resuming an interrupted run: which steps are finished, and mid-step checkpoints.

A step is finished when its entry is in `results.json`'s `seconds` (written
after its artifacts) and its artifact still exists. A step that was interrupted
continues from its last saved epoch: `StepCheckpoint` saves the whole
training state after the first epoch, then at most every `CHECKPOINT_SECONDS`
and after the last epoch, into `DIR/checkpoints/<step>.npz` and removes it
when the step finishes. The backbone step trains all modalities in one fit
and checkpoints it the same way (`BackboneCheckpoint`); the per-modality
checkpoints of older versions are discarded.
"""

import dataclasses
import glob
import json
import os

from ssnas_tf.workflow.checkpoint import (EpochCheckpoint, checkpoint_state,
                                          restore_checkpoint)

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
        _remove_checkpoint(self.path)


def _remove_checkpoint(path):
    """Removes `path`, and its folder when that is left empty."""
    if os.path.exists(path):
        os.remove(path)
    folder = os.path.dirname(path)
    if os.path.isdir(folder) and not os.listdir(folder):
        os.rmdir(folder)


class BackboneCheckpoint:
    """The resume point of the backbone step, which pretrains every backbone in
    one fit (`backbones.pretrain_backbones`, which calls this with its joint
    model): a `StepCheckpoint` of that model and its optimizer. Per-modality
    checkpoints of an older version are discarded when it is made.

    Args:
        directory: the run directory.
        exclude: `exclude(model)` gives the frozen layers not to save.
            Defaults to none.
    """

    def __init__(self, directory, exclude=lambda model: ()):
        self.directory, self.exclude = directory, exclude
        self.path = os.path.join(directory, CHECKPOINT_DIR, "backbones.npz")
        discard_per_modality_checkpoints(directory)

    def __call__(self, model):
        """The `StepCheckpoint` of `model` (compiled, its optimizer built)."""
        return StepCheckpoint(self.directory, "backbones", model,
                              {"optimizer": model.optimizer}, list(self.exclude(model)),
                              identity=model.names)

    def finish(self):
        """Removes the checkpoint once backbones.keras is written."""
        _remove_checkpoint(self.path)


def discard_per_modality_checkpoints(directory):
    """Removes the backbone checkpoints of a version that pretrained one modality
    after the other (`backbones-<modality>.npz`, and `backbones.npz` listing the
    finished modalities); the backbone step then starts afresh.

    Returns:
        whether there were any.
    """
    folder = os.path.join(directory, CHECKPOINT_DIR)
    old = sorted(glob.glob(os.path.join(folder, "backbones-*.npz")))
    joint = os.path.join(folder, "backbones.npz")
    if os.path.exists(joint) and "done" in (checkpoint_state(joint) or {}):
        old.append(joint)
    if not old:
        return False
    print(f"[ssnas] backbones: {', '.join(old)} hold per-modality checkpoints of an "
          f"older version; restarting the backbone step", flush=True)
    for path in old:
        os.remove(path)
    return True
