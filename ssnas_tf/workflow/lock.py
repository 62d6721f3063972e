"""One writer per run directory: an exclusive lock on `DIR/.lock`.

The lock is an `fcntl.flock` on the file, which also holds the owner's pid for
the error message. The kernel drops the lock when its process dies (also on
SIGKILL), so a stale `.lock` of a dead process is simply taken over. Release
removes the file (and the directory, if the lock created it and it is still
empty), so a failed command leaves the directory as it was.
"""

import fcntl
import os

from ssnas_tf.errors import RunLockedError
from ssnas_tf.filelock import same_file


class RunLock:
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
        self.path = os.path.join(directory, ".lock")
        self._fd = None
        self._created = False

    def acquire(self):
        directory = os.path.dirname(self.path) or "."
        self._created = not os.path.isdir(directory)
        os.makedirs(directory, exist_ok=True)
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.read(fd, 64).decode("ascii", "replace").strip() or "unknown"
                os.close(fd)
                raise RunLockedError(
                    f"{directory} is in use by another ssnas process (pid {holder}, "
                    f"lock file {self.path}); wait for it to finish or stop it") from None
            # The holder we waited on may have removed the file meanwhile: then
            # our lock is on a dead inode, and we try again on the new file.
            if same_file(fd, self.path):
                break
            os.close(fd)
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode("ascii"))
        self._fd = fd
        return self

    def release(self):
        if self._fd is None:
            return
        os.remove(self.path)
        os.close(self._fd)  # closing drops the flock
        self._fd = None
        directory = os.path.dirname(self.path) or "."
        if self._created and not os.listdir(directory):
            os.rmdir(directory)

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc):
        self.release()
        return False

