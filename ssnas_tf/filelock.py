"""A lock shared by processes: `fcntl.flock` on a file beside what it guards.

`FileLock` blocks until the lock is free (with an optional timeout), unlike
`ssnas_tf.workflow.lock.RunLock`, which refuses at once. It guards work that
one process does and the others wait for, such as preparing an on-disk cache
(`ssnas_tf.data.prepared`, the clipart image cache). The kernel drops a flock
when its process dies (SIGKILL included), so the lock of a killed process
never blocks anyone: the next process takes it over. Release removes the file;
a waiter whose file was removed meanwhile locks the new one instead.

A leaf module: it imports nothing from ssnas_tf, so every layer may use it.
"""

import fcntl
import os
import time


class FileLockTimeout(TimeoutError):
    """The lock stayed held by another process for longer than the timeout."""


class FileLock:
    """Context manager holding an exclusive lock on the file `path`.

    Args:
        path: the lock file (created if needed; its folder too).
        timeout: seconds to wait before `FileLockTimeout`. Defaults to None
            (wait as long as the holder lives).
        poll: seconds between tries while waiting. Defaults to 0.1.

    Example:
    >>> with FileLock(cache + ".lock"):
    ...     if not os.path.exists(cache):
    ...         prepare(cache)
    """

    def __init__(self, path, timeout=None, poll=0.1):
        self.path = path
        self.timeout, self.poll = timeout, poll
        self._fd = None

    def acquire(self):
        os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
        deadline = None if self.timeout is None else time.monotonic() + self.timeout
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                self._busy(fd, deadline)
                os.close(fd)
                time.sleep(self.poll)
                continue
            # The holder may have removed the file after we opened it: then
            # our lock is on a dead inode, and we try again on the new file.
            if same_file(fd, self.path):
                break
            os.close(fd)
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode("ascii"))
        self._fd = fd
        return self

    def _busy(self, fd, deadline):
        """Called while another process holds the lock (`fd` is our open,
        unlocked file): raises to stop waiting. Subclasses may refuse at once."""
        if deadline is not None and time.monotonic() > deadline:
            os.close(fd)
            raise FileLockTimeout(f"{self.path} is still locked by another process "
                                  f"after {self.timeout} s") from None

    def release(self):
        if self._fd is None:
            return
        try:
            os.remove(self.path)
        except FileNotFoundError:
            pass
        os.close(self._fd)  # closing drops the flock
        self._fd = None

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc):
        self.release()
        return False


def same_file(fd, path):
    """Whether the open file `fd` is still the file at `path` (not removed or
    replaced by another process's lock file)."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return False
    own = os.fstat(fd)
    return (st.st_dev, st.st_ino) == (own.st_dev, own.st_ino)


__all__ = ["FileLock", "FileLockTimeout", "same_file"]
