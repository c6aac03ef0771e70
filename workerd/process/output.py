"""Worker output: pipes in, whole lines out to a program's log.

Each worker's stdout and stderr share one pipe (so their order is kept). The loop
reads a pipe only when it is readable and writes what it read before reading again,
so a worker that floods its output is slowed by the full pipe instead of growing the
daemon's memory. Only whole lines are written, so the instances of a program can
share one log file without cutting each other's lines; a partial line is held until
its newline arrives, the worker exits, or it passes MAX_LINE.

A write that fails (a full disk: ENOSPC; EIO, EFBIG) drops whole lines and counts them.
If it got only part of a line out, that part is cut off the file again (ftruncate: the
log file is this daemon's alone), so the file ends with a whole
line and the next write starts a line of its own; where it cannot be cut (stderr, an
append-only file), the next write that succeeds ends it with a newline first.
"""

from __future__ import annotations

import asyncio
import collections
import fcntl
import logging
import mmap
import os
from collections.abc import Callable, Iterable
from pathlib import Path

log = logging.getLogger("workerd")

#: Bytes read per wakeup; a pipe holds 64 KiB unless grown (see _grow_pipe).
READ_SIZE = 1 << 20
#: One read buffer for every pipe: the loop reads one pipe at a time. An anonymous
#: mapping, not a bytearray (which is zero-filled, so all resident at once): its pages
#: become resident only as far as the largest read so far.
_BUFFER = mmap.mmap(-1, READ_SIZE)
_VIEW = memoryview(_BUFFER)
#: A line longer than this is written in pieces rather than held.
MAX_LINE = 64 * 1024
#: Output kept in memory per program for `workerctl logs` when there is no log file.
RECENT_BYTES = 256 * 1024

_F_SETPIPE_SZ = 1031
_BIG_PIPE = 1 << 20

Follower = Callable[[bytes], None]


class ProgramLog:
    """Where one program's output goes: a rotating file under log_dir, or the daemon's
    stderr with a `program[instance]: ` prefix on each line. Also feeds `logs -f`."""

    def __init__(self, program: str, log_dir: Path | None, max_bytes: int, backups: int) -> None:
        self.program = program
        self.path = log_dir / f"{program}.log" if log_dir is not None else None
        self._max_bytes = max_bytes
        self._backups = backups
        self._fd = -1
        self._size = 0
        self._recent: collections.deque[bytes] = collections.deque()
        self._recent_size = 0
        self.followers: set[Follower] = set()
        #: Lines dropped because they could not be written (status, /metrics).
        self.dropped_lines = 0
        #: The lines dropped in the current run of failed writes (None: writing works).
        self._dropping: int | None = None
        #: The last write left part of a line at the end of the output.
        self._torn = False
        self._rotate_error: str | None = None
        if self.path is not None:
            self._switch_file()

    def _switch_file(self) -> None:
        """Write to a freshly opened file at path from now on. The old descriptor is
        closed only once the new one is open: when the open fails (OSError), nothing
        has changed and output keeps going where it went."""
        fd = self._open()
        old, self._fd, self._size = self._fd, fd, os.fstat(fd).st_size
        if old >= 0:
            os.close(old)

    def _open(self) -> int:
        """Open the file at path for appending; a deleted log_dir is created again (once)."""
        assert self.path is not None
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC
        try:
            return os.open(self.path, flags, 0o640)
        except FileNotFoundError:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            log.warning("%s was missing: recreated it", self.path.parent)
            return os.open(self.path, flags, 0o640)

    def write(self, instance: int, chunks: list[bytes | memoryview]) -> None:
        """Write whole lines of one instance's output, given as consecutive buffers."""
        if self.path is None:
            prefix = f"{self.program}[{instance}]: ".encode()
            data = b"".join(chunks)
            data = prefix + data[:-1].replace(b"\n", b"\n" + prefix) + b"\n"
            chunks = [data]
            if not self._append(2, chunks):
                return
            self._remember(data)
        else:
            if not self._append(self._fd, chunks):
                return
            if self._max_bytes and self._size >= self._max_bytes:
                self._rotate()
        if self.followers:
            data = b"".join(chunks)
            for follower in list(self.followers):
                follower(data)

    def _append(self, fd: int, chunks: list[bytes | memoryview]) -> bool:
        """Write whole lines to fd; False when they were dropped. Logged once when
        writing stops and once when it works again, not once per write."""
        lead: list[bytes | memoryview] = [b"\n"] if self._torn else []
        written, error = _write_out(fd, lead + chunks if lead else chunks)
        if error is None:
            self._size += written
            self._torn = False
            if self._dropping is not None:
                log.warning("%s: writing %s again; %d line(s) dropped meanwhile",
                            self.program, self.where, self._dropping)
                self._dropping = None
            return True
        self._torn = self._torn and not written
        data = b"".join(chunks)
        done = max(written - len(lead), 0)
        kept = data.rfind(b"\n", 0, done) + 1
        lost = data.count(b"\n", kept)
        self._size += len(lead) + kept if written else 0
        if done > kept and not (fd != 2 and _cut(fd, done - kept)):
            self._torn = True
        self.dropped_lines += lost
        if self._dropping is None:
            self._dropping = 0
            log.error("%s: cannot write %s: %s; dropping output lines until it can",
                      self.program, self.where, error.strerror)
        self._dropping += lost
        return False

    @property
    def where(self) -> str:
        return str(self.path) if self.path is not None else "stderr"

    def _remember(self, data: bytes) -> None:
        self._recent.append(data)
        self._recent_size += len(data)
        while self._recent_size > RECENT_BYTES and len(self._recent) > 1:
            self._recent_size -= len(self._recent.popleft())

    def _rotate(self) -> None:
        """Shift the backups and start a new file. If the new file cannot be opened,
        output keeps going to the old one and the next try is another log_max_bytes
        away; each distinct failure is logged once, not once per write."""
        assert self.path is not None
        try:
            if self._backups == 0:
                self.path.unlink(missing_ok=True)
            else:
                for n in range(self._backups - 1, 0, -1):
                    older = self.path.with_name(f"{self.path.name}.{n}")
                    if older.exists():
                        os.replace(older, self.path.with_name(f"{self.path.name}.{n + 1}"))
                if self.path.exists():  # else it was deleted: there is nothing to keep
                    os.replace(self.path, self.path.with_name(f"{self.path.name}.1"))
            self._switch_file()
        except OSError as exc:
            self._size = 0
            if self._rotate_error != exc.strerror:
                self._rotate_error = exc.strerror
                log.error("%s: cannot rotate %s: %s; still writing to the old file",
                          self.program, self.path, exc.strerror)
            return
        self._rotate_error = None

    def reopen(self) -> None:
        """After logrotate moved the file away: write to a new file at the same path.
        Raises OSError, still writing to the old file, when the new one cannot be opened."""
        if self.path is not None and self._fd >= 0:
            self._switch_file()

    def adopt(self, other: ProgramLog) -> None:
        """Write where `other` was opened from now on (a reload moved the logs): its file
        and rotation settings become ours and our old file is closed. The object stays,
        so every pipe and follower writing to it follows without being told."""
        old = self._fd
        self.path, self._max_bytes, self._backups = other.path, other._max_bytes, other._backups
        self._fd, self._size, other._fd = other._fd, other._size, -1
        if old >= 0 and old != self._fd:
            os.close(old)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def tail(self, lines: int) -> bytes:
        """The last `lines` lines of output, from the log file (and its first backup) or memory."""
        if self.path is None:
            data = b"".join(self._recent)
        else:
            data = _read_tail(self.path, lines)
            if data.count(b"\n") < lines:
                data = _read_tail(self.path.with_name(self.path.name + ".1"), lines) + data
        kept = data.split(b"\n")
        if kept and kept[-1] == b"":
            kept.pop()
        return b"".join(line + b"\n" for line in kept[-lines:]) if lines > 0 else b""


class LogError(Exception):
    """A log that cannot be opened; one line naming the file and why."""


def open_logs(names: Iterable[str], log_dir: Path | None, max_bytes: int, backups: int) -> dict[str, ProgramLog]:
    """Open the logs of the named programs, all or none (LogError)."""
    logs: dict[str, ProgramLog] = {}
    try:
        if log_dir is not None:
            log_dir.mkdir(parents=True, exist_ok=True)
        for name in names:
            logs[name] = ProgramLog(name, log_dir, max_bytes, backups)
    except OSError as exc:
        for opened in logs.values():
            opened.close()
        raise LogError(f"cannot open the log {exc.filename or log_dir}: {exc.strerror}") from None
    return logs


def reopen_logs(logs: Iterable[ProgramLog], log_dir: Path | None) -> None:
    """SIGUSR1. A log that cannot be reopened keeps its old file (a later SIGUSR1
    retries); one error line per cause, however many programs share it."""
    failed: dict[str, list[str]] = {}
    for program_log in logs:
        try:
            program_log.reopen()
        except OSError as exc:
            failed.setdefault(exc.strerror or str(exc), []).append(program_log.program)
    for why, names in failed.items():
        log.error("cannot reopen the log(s) of %s in %s: %s; still writing to the old file(s)",
                  ", ".join(names), log_dir, why)


def _read_tail(path: Path, lines: int) -> bytes:
    """Read backwards from the end until `lines` newlines are found (each block read
    and counted once: a large `lines` costs linear time, not quadratic)."""
    try:
        with open(path, "rb") as f:
            pos = f.seek(0, os.SEEK_END)
            blocks: list[bytes] = []
            found = 0
            while pos > 0 and found <= lines:
                step = min(1 << 20, pos)
                pos -= step
                f.seek(pos)
                blocks.append(f.read(step))
                found += blocks[-1].count(b"\n")
            return b"".join(reversed(blocks))
    except FileNotFoundError:
        return b""


def _write_out(fd: int, chunks: list[bytes | memoryview]) -> tuple[int, OSError | None]:
    """writev until every byte is out or a write fails; returns the bytes written and
    the failure, if any."""
    total = sum(len(c) for c in chunks)
    try:
        written = os.writev(fd, chunks)
    except OSError as exc:
        return 0, exc
    if written < total:  # rare (a signal, a disk filling up): try the rest plainly
        rest = memoryview(b"".join(chunks))[written:]
        while rest:
            try:
                step = os.write(fd, rest)
            except OSError as exc:
                return total - len(rest), exc
            rest = rest[step:]
    return total, None


def _cut(fd: int, tail: int) -> bool:
    """Take the last `tail` bytes (part of a line) off the file again; False if it cannot be."""
    try:
        os.ftruncate(fd, os.fstat(fd).st_size - tail)
    except OSError:
        return False
    return True


class OutputPipe:
    """Reads one worker's output pipe until EOF, then closes it.

    It outlives the worker's slot on purpose: the worker's last lines are still in
    the pipe when its exit is reaped, and they must reach the log.
    """

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        fd: int,
        instance: int,
        sink: ProgramLog,
        on_close: Callable[[OutputPipe], None],
    ) -> None:
        self._loop = loop
        self._on_close = on_close
        self._fd = fd
        self._instance = instance
        self.sink = sink
        self._partial = b""
        self._grown = False
        loop.add_reader(fd, self._on_readable)

    def _on_readable(self) -> None:
        try:
            size = os.readv(self._fd, [_BUFFER])
        except BlockingIOError:
            return
        except OSError:
            size = 0
        if not size:
            self._finish()
            return
        if not self._grown and size >= 65536:
            self._grow_pipe()
        cut = _BUFFER.rfind(b"\n", 0, size) + 1
        if cut:
            lines = _VIEW[:cut]
            self.sink.write(self._instance, [self._partial, lines] if self._partial else [lines])
            self._partial = bytes(_VIEW[cut:size])
        else:
            self._partial += _VIEW[:size]
        if len(self._partial) > MAX_LINE:
            self.sink.write(self._instance, [self._partial, b"\n"])
            self._partial = b""

    def _grow_pipe(self) -> None:
        """A worker that fills the default 64 KiB pipe gets a 1 MiB one: fewer wakeups
        per megabyte. Quiet workers keep the small default, so kernel memory stays low."""
        self._grown = True
        try:
            fcntl.fcntl(self._fd, _F_SETPIPE_SZ, _BIG_PIPE)
        except OSError:
            pass  # over the user's pipe quota: the small pipe still works

    def _finish(self) -> None:
        if self._partial:
            self.sink.write(self._instance, [self._partial, b"\n"])
            self._partial = b""
        self._loop.remove_reader(self._fd)
        os.close(self._fd)
        self._fd = -1
        self._on_close(self)

    def close(self) -> None:
        """Stop reading without waiting for EOF (daemon exit)."""
        if self._fd >= 0:
            self._finish()
