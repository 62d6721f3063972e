"""Atomic file writes: a temporary file beside the target, then a rename.

A failed or interrupted write leaves the previous file (or none), never a
half-written one. The temporary file is fsynced before the rename and the
folder after it, so a crash (power loss included) also leaves the old or the
new file, never an empty or torn one.
"""

import contextlib
import os
import tempfile


def _fsync_path(path):
    """fsyncs the file (or folder) at `path`; folders where the OS allows it."""
    flags = os.O_RDONLY
    if os.path.isdir(path):
        flags |= getattr(os, "O_DIRECTORY", 0)
    try:
        fd = os.open(path, flags)
    except OSError:  # some platforms cannot open a folder (Windows)
        if os.path.isdir(path):
            return
        raise
    try:
        os.fsync(fd)
    except OSError:  # fsync of a folder is not supported everywhere
        if not os.path.isdir(path):
            raise
    finally:
        os.close(fd)


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
        _fsync_path(tmp)  # the data reaches the disk before the name does
        os.replace(tmp, path)
        _fsync_path(directory)  # and the rename itself is durable
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def atomic_write_text(path, text):
    """Writes `text` to `path` atomically."""
    with atomic_output(path) as tmp:
        with open(tmp, "w") as f:
            f.write(text)


def atomic_append_line(path, line):
    """Appends one line to a text file atomically (the file is rewritten).

    An in-place append can leave a torn last line when the process dies
    mid-write; this leaves the file with or without the new line. Meant for
    small logs (one line per epoch): the cost grows with the file.
    """
    previous = ""
    if os.path.exists(path):
        with open(path) as f:
            previous = f.read()
        if previous and not previous.endswith("\n"):
            previous += "\n"
    atomic_write_text(path, previous + line.rstrip("\n") + "\n")


def atomic_save_model(model, path):
    """`model.save(path)` atomically (path ends in .keras)."""
    with atomic_output(path, suffix=".keras") as tmp:
        model.save(tmp)
