"""Quiet TensorFlow start-up for the command line.

A new user of `ssnas` otherwise sees a screenful of C++ notices before the
first line of output: oneDNN and CUDA-driver notices that TensorFlow's native
libraries print before absl logging is initialised (so `TF_CPP_MIN_LOG_LEVEL`
cannot filter them), then one grappler `PredictCost()` warning per traced
augmentation op. `quiet_tensorflow()` must run before TensorFlow is imported.
"""

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
    if "tensorflow" in sys.modules or level == "0":
        return
    with _stderr_filtered():
        import tensorflow as tf
        # Device discovery prints the CUDA-driver notice on machines without one.
        tf.config.list_physical_devices()
    try:
        from absl import logging as absl_logging
        absl_logging.set_verbosity(absl_logging.ERROR)
    except ImportError:  # pragma: no cover - absl-py comes with TensorFlow
        pass


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
