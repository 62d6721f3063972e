"""Atomic file writes: a temporary file beside the target, then a rename.

A failed or interrupted write leaves the previous file (or none), never a
half-written one.
"""

import contextlib
import os
import tempfile


@contextlib.contextmanager
def atomic_output(path, suffix=""):
    """Yields a temporary path beside `path`; renames it onto `path` on success.

    Example:
    >>> with atomic_output("model.keras", suffix=".keras") as tmp:
    ...     model.save(tmp)
    """
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-", suffix=suffix)
    os.close(fd)
    try:
        yield tmp
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600 files
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def atomic_write_text(path, text):
    """Writes `text` to `path` atomically."""
    with atomic_output(path) as tmp:
        with open(tmp, "w") as f:
            f.write(text)


def atomic_save_model(model, path):
    """`model.save(path)` atomically (path ends in .keras)."""
    with atomic_output(path, suffix=".keras") as tmp:
        model.save(tmp)
