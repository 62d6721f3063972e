"""Per-epoch checkpoints of a training step, for resuming an interrupted run.

`keras.callbacks.BackupAndRestore` restores only `model.optimizer` and skips an
unbuilt second optimizer without a word, so the architecture optimizer of
`SearchModel` would restart from zero. `EpochCheckpoint` instead saves, after
every epoch (or every `min_seconds`) and in one atomically replaced `.npz` file: the model's variables
(weights, alpha/beta/gamma, BatchNorm statistics, dropout seed states), the
variables of every optimizer it is given (step counts and slots), and a JSON
state from the caller (e.g. the genotype tracker's best-so-far).
`restore_checkpoint` puts all of it back and refuses a file that does not fit.
"""

import json
import os
import time

import keras
import numpy as np

from ssnas_tf.atomic import atomic_output
from ssnas_tf.errors import CheckpointError

_STATE_KEY = "__state__"


def _variables(model, optimizers, exclude):
    """name -> list of variables; `exclude`'s (frozen) variables are left out."""
    skip = {id(v) for layer in exclude for v in layer.variables}
    groups = {"model": [v for v in model.variables if id(v) not in skip]}
    for name, optimizer in optimizers.items():
        groups[name] = list(optimizer.variables)
    return groups


class EpochCheckpoint(keras.callbacks.Callback):
    """Saves the whole training state after every epoch, atomically.

    Put it after callbacks whose state it saves (they run in list order).

    Args:
        path: the `.npz` file.
        optimizers: name -> optimizer to save, e.g. `{"optimizer":
            model.optimizer, "arch_optimizer": model.arch_optimizer}`.
        state_fn: optional `state_fn() -> dict` (JSON-able), saved alongside.
        exclude: layers whose variables are not saved (frozen backbones).
            Defaults to ().
        min_seconds: after the first epoch of a `fit`, skip saving until this
            many seconds have passed since the last save; the last epoch is
            always saved. A resume then repeats at most that much training.
            Defaults to 0 (every epoch).

    Example:
    >>> ckpt = EpochCheckpoint("ckpt.npz", {"optimizer": model.optimizer})
    >>> state = restore_checkpoint("ckpt.npz", model, {"optimizer": model.optimizer})
    >>> model.fit(data, epochs=10, initial_epoch=state["epoch"] if state else 0,
    ...           callbacks=[ckpt])
    """

    def __init__(self, path, optimizers, state_fn=None, exclude=(), min_seconds=0.0):
        super().__init__()
        self.path = path
        self.optimizers = dict(optimizers)
        self.state_fn = state_fn
        self.exclude = tuple(exclude)
        self.min_seconds = min_seconds
        self._last_save = None

    def on_train_begin(self, logs=None):
        self._last_save = None  # the first epoch of every fit is saved

    def on_epoch_end(self, epoch, logs=None):
        total = (self.params or {}).get("epochs")  # unknown: save every epoch
        last = total is None or epoch + 1 >= total
        now = time.monotonic()
        if (self._last_save is not None and not last
                and now - self._last_save < self.min_seconds):
            return
        state = {"epoch": epoch + 1, **(self.state_fn() if self.state_fn else {})}
        save_checkpoint(self.path, self.model, self.optimizers, state, self.exclude)
        self._last_save = time.monotonic()


def save_checkpoint(path, model, optimizers, state, exclude=()):
    """Writes the variables of `model` and `optimizers` and the JSON-able
    `state` to the `.npz` file `path`, atomically (`restore_checkpoint` reads it)."""
    arrays = {}
    for group, variables in _variables(model, optimizers, exclude).items():
        for i, variable in enumerate(variables):
            arrays[f"{group}/{i}"] = np.asarray(keras.ops.convert_to_numpy(variable))
    arrays[_STATE_KEY] = np.array(json.dumps(state))
    with atomic_output(path, suffix=".npz") as tmp:
        np.savez(tmp, **arrays)


def checkpoint_state(path):
    """The JSON state saved in the checkpoint `path`; None if it is absent or
    unreadable (`restore_checkpoint` then says why)."""
    try:
        with np.load(path, allow_pickle=False) as data:
            return json.loads(str(data[_STATE_KEY]))
    except (OSError, ValueError, KeyError):
        return None


def restore_checkpoint(path, model, optimizers, exclude=()):
    """Restores an `EpochCheckpoint` file; returns its state, or None if absent.

    Build the model and every optimizer first (`optimizer.build(variables)`):
    an unbuilt optimizer has fewer variables than the file and is refused.

    Raises:
        CheckpointError: the file does not match the model or an optimizer
            (another configuration, or an unbuilt optimizer).
    """
    if not os.path.exists(path):
        return None
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
    except (OSError, ValueError) as err:
        raise CheckpointError(f"{path}: unreadable checkpoint ({err})") from None
    groups = _variables(model, optimizers, exclude)
    for group, variables in groups.items():
        saved = sorted((k for k in arrays if k.startswith(group + "/")),
                       key=lambda k: int(k.split("/")[1]))
        if len(saved) != len(variables):
            raise CheckpointError(
                f"{path}: '{group}' has {len(variables)} variables but the checkpoint "
                f"holds {len(saved)} (another configuration, or an optimizer not "
                f"built before restoring)")
        for key, variable in zip(saved, variables):
            if tuple(arrays[key].shape) != tuple(variable.shape):
                raise CheckpointError(
                    f"{path}: '{key}' has shape {arrays[key].shape}, the model's "
                    f"'{variable.path}' {tuple(variable.shape)}")
    for group, variables in groups.items():
        for i, variable in enumerate(variables):
            variable.assign(arrays[f"{group}/{i}"])
    return json.loads(str(arrays[_STATE_KEY]))
