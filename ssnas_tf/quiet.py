"""Quiet TensorFlow start-up for the command line.

A new user of `ssnas` otherwise sees a screenful of C++ notices before the
first line of output: oneDNN and CUDA-driver notices that TensorFlow's native
libraries print before absl logging is initialised (so `TF_CPP_MIN_LOG_LEVEL`
cannot filter them), then one grappler `PredictCost()` warning per traced
augmentation op. `quiet_tensorflow()` must run before TensorFlow is imported.

It also keeps the start-up lean. Importing TensorFlow imports Keras, which
imports scikit-learn, IPython and matplotlib whenever they are installed, for
integrations a command-line process never uses through Keras (its scikit-learn
wrapper, notebook display, image galleries); TensorFlow's own legacy Keras
(`tensorflow.python.keras`, which Keras 3 does not use) imports SciPy and
h5py. Those imports cost about 125 MB of resident memory and 2 s per process
here. They are deferred, not removed: a later `import sklearn` (keras-tuner's
Bayesian oracle), `import scipy` (the experiment statistics), `import h5py`
(the MM-IMDB reader) or `import matplotlib` (the experiment figure) loads them
as usual; Keras 3 itself imports SciPy and h5py lazily.
"""

import contextlib
import os
import re
import sys
import tempfile

# Start-up notices that carry no information for a user of the CLI.
_NOTICES = re.compile(
    r"All log messages before absl::InitializeLog|oneDNN custom operations|"
    r"cudart_stub\.cc|cpu_feature_guard\.cc|To enable the following instructions|"
    r"cuda_platform\.cc.*cuInit|cuda_executor\.cc|Unable to register cu(DNN|FFT|BLAS)|"
    r"computation placer already registered")

# Optional packages Keras imports at start-up for integrations the CLI does
# not use (see the module docstring).
DEFERRED_IMPORTS = ("sklearn", "IPython", "matplotlib", "scipy", "h5py")


def quiet_tensorflow(min_log_level="2"):
    """Sets TensorFlow's log level and imports it with start-up notices filtered.

    Does nothing beyond setting the environment when TensorFlow is already
    imported. A level the user set in `TF_CPP_MIN_LOG_LEVEL` wins; with a
    level of "0" nothing is filtered. Lines that are not known start-up
    notices (real errors) are written to stderr after the import.

    Args:
        min_log_level: `TF_CPP_MIN_LOG_LEVEL` unless already set. Defaults to
            "2" (errors only; drops the grappler `PredictCost` warnings).
    """
    level = os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", str(min_log_level))
    if "tensorflow" in sys.modules:
        return
    notices = contextlib.nullcontext() if level == "0" else _stderr_filtered()
    with notices, _imports_deferred(DEFERRED_IMPORTS):
        import tensorflow as tf
        # Device discovery prints the CUDA-driver notice on machines without one.
        tf.config.list_physical_devices()
    try:
        from absl import logging as absl_logging
        absl_logging.set_verbosity(absl_logging.ERROR)
    except ImportError:  # pragma: no cover - absl-py comes with TensorFlow
        pass


@contextlib.contextmanager
def _imports_deferred(names):
    """Makes `import name` fail inside the block, for names not yet imported.

    An import of a `None` entry of `sys.modules` raises ImportError, which
    Keras's optional imports catch. The entries are removed on exit, so later
    imports load the packages normally.
    """
    blocked = [name for name in names if name not in sys.modules]
    for name in blocked:
        sys.modules[name] = None
    try:
        yield
    finally:
        for name in blocked:
            if sys.modules.get(name, ...) is None:
                del sys.modules[name]


class _stderr_filtered:
    """Redirects file descriptor 2 to a temporary file; replays kept lines."""

    def __enter__(self):
        sys.stderr.flush()
        self._saved = os.dup(2)
        self._file = tempfile.TemporaryFile(mode="w+b")
        os.dup2(self._file.fileno(), 2)
        return self

    def __exit__(self, *exc):
        sys.stderr.flush()
        os.dup2(self._saved, 2)
        os.close(self._saved)
        self._file.seek(0)
        text = self._file.read().decode("utf-8", errors="replace")
        self._file.close()
        kept = [line for line in text.splitlines() if not _NOTICES.search(line)]
        if kept:
            sys.stderr.write("\n".join(kept) + "\n")
        return False
