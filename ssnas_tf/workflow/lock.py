"""One writer per run directory: an exclusive lock on `DIR/.lock`.

The lock is an `fcntl.flock` on the file, which also holds the owner's pid for
the error message. The kernel drops the lock when its process dies (also on
SIGKILL), so a stale `.lock` of a dead process is simply taken over. Release
removes the file (and the directory, if the lock created it and it is still
empty), so a failed command leaves the directory as it was.
"""

import os

from ssnas_tf.errors import RunLockedError
from ssnas_tf.filelock import FileLock


class RunLock(FileLock):
    """Context manager holding the lock of `directory` (created if needed).

    Args:
        directory: the run directory.

    Raises:
        RunLockedError: another process holds the lock; the message names its pid.

    Example:
    >>> with RunLock("runs/a"):
    ...     Run("runs/a").search()
    """

    def __init__(self, directory):
        super().__init__(os.path.join(directory, ".lock"))
        self._created = False

    def acquire(self):
        self._created = not os.path.isdir(os.path.dirname(self.path) or ".")
        return super().acquire()

    def _busy(self, fd, deadline):
        # Refuse at once, naming the holder, instead of waiting.
        holder = os.read(fd, 64).decode("ascii", "replace").strip() or "unknown"
        os.close(fd)
        directory = os.path.dirname(self.path) or "."
        raise RunLockedError(
            f"{directory} is in use by another ssnas process (pid {holder}, "
            f"lock file {self.path}); wait for it to finish or stop it") from None

    def release(self):
        if self._fd is None:
            return
        super().release()
        directory = os.path.dirname(self.path) or "."
        if self._created and not os.listdir(directory):
            os.rmdir(directory)
