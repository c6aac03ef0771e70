"""One daemon per log_dir: a lock file in it, held (flock) for as long as the daemon writes there.

Two daemons given the same log_dir appended to the same files and rotated each other's
away (one kept 488 of 80,000 lines). The lock goes with its descriptor, so a daemon that
dies, however it dies, lets it go; the file holds the holder's pid so that a refusal can
name it. The file stays when the lock is let go: unlinking it would let a third daemon
lock a fresh file while a second still waits on the old one.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

LOCK_NAME = ".workerd.lock"


class LogDirBusy(Exception):
    """log_dir belongs to another daemon, or cannot be locked; one line. `taken`
    tells the two apart (a usage error, not a failure to set up)."""

    def __init__(self, message: str, taken: bool = False) -> None:
        super().__init__(message)
        self.taken = taken


class LogDirLock:
    """The lock on one log_dir (or on none, when output goes to stderr)."""

    def __init__(self, directory: Path | None, fd: int) -> None:
        self.directory = directory
        self._fd = fd

    @classmethod
    def take(cls, directory: Path | None) -> LogDirLock:
        """Lock `directory` (created if missing); raises LogDirBusy."""
        if directory is None:
            return cls(None, -1)
        try:
            directory.mkdir(parents=True, exist_ok=True)
            fd = os.open(directory / LOCK_NAME, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            raise LogDirBusy(f"cannot lock log_dir {directory}: {exc.strerror}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            holder = _holder(fd)
            os.close(fd)
            if isinstance(exc, BlockingIOError):
                raise LogDirBusy(f"log_dir {directory} is used by another workerd{holder}; "
                                 "one daemon per log_dir", taken=True) from None
            raise LogDirBusy(f"cannot lock log_dir {directory}: {exc.strerror}") from None
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        except OSError:
            pass  # a full disk: the lock holds all the same, only the pid goes unnamed
        return cls(directory, fd)

    @contextlib.contextmanager
    def moving_to(self, directory: Path | None) -> Iterator[None]:
        """A reload to `directory`: the new lock is taken first (LogDirBusy: nothing
        changed), the old one let go only when the body succeeds."""
        if _same(directory, self.directory):
            yield
            return
        new = LogDirLock.take(directory)
        try:
            yield
        except BaseException:
            new.release()
            raise
        self.release()
        self.directory, self._fd = new.directory, new._fd

    def release(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


def _holder(fd: int) -> str:
    """` (pid N)` from the lock file, or nothing when it names no pid."""
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    except OSError:
        return ""
    return f" (pid {text})" if text.isdigit() else ""


def _same(a: Path | None, b: Path | None) -> bool:
    if a is None or b is None:
        return a is b
    return a.resolve() == b.resolve()
