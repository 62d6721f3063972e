"""The model files of a run directory, and reusing the ones this process saved.

Reading a `.keras` file back takes 0.5-1.5 s, and a run reads each model
that one step writes in the next step or two. `ModelFiles` keeps every model
it saves and hands the same object out again, while the file on disk is
still the one it wrote, to callers that ask for it (`reuse=True`).

Only a caller that neither trains the model nor draws random numbers after
getting it may reuse it: loading moves the global random state (Keras runs
the layers' initialisers before it sets the saved weights) and reusing does
not. The steps therefore reuse before they seed (`Run._begin`) or where
nothing random follows (evaluate, export), so a run made in one process and
one made step by step in several give the same bits
(tests/test_slow_reproducible_run.py).
"""

import os

import keras

from ssnas_tf.atomic import atomic_save_model
from ssnas_tf.errors import RunError


def _file_state(path):
    """What tells one write of `path` from another: inode, size, mtime."""
    stat = os.stat(path)
    return stat.st_ino, stat.st_size, stat.st_mtime_ns


class ModelFiles:
    """Saves and loads the models of the run directory `directory`."""

    def __init__(self, directory):
        self.directory = directory
        self._kept = {}  # file name -> (file state when saved, model)

    def save(self, model, name):
        """Saves `model` as `name` atomically, and keeps it for `load`."""
        path = os.path.join(self.directory, name)
        atomic_save_model(model, path)
        self._kept[name] = (_file_state(path), model)

    def load(self, name, step, reuse=False, release=False):
        """The model in file `name`, which step `step` writes.

        Args:
            name: the file name in the run directory.
            step: the step that writes it (named in the error).
            reuse: the model this process saved there, while the file is
                unchanged (see the module docstring for who may ask).
            release: forget the kept model after handing it out (a caller
                that builds a new model on its layers).

        Raises:
            RunError: the file does not exist.
        """
        path = os.path.join(self.directory, name)
        if not os.path.exists(path):
            raise RunError(f"{path} not found: run `ssnas {step}` first")
        state, model = self._kept.get(name, (None, None))
        current = state == _file_state(path)
        if not (reuse and current) or release:
            self._kept.pop(name, None)  # a fresh load replaces what was kept
        if reuse and current:
            return model
        return keras.models.load_model(path)


__all__ = ["ModelFiles"]
