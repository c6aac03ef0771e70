"""Child processes for the sources that run a command or whose client can only block.

The daemon has one thread and one reaper: a source never waits for a process itself
(only process/reaper.py calls wait*()) and never uses the loop's subprocess APIs
(uvloop's own child watcher would race the reaper for exit statuses). A source that
needs a child is given a `Launcher` instead: it starts an argv as the leader of a new
process group with three pipes and resolves a future once the child is reaped. The
daemon's launcher (process/children.py) spawns through process/spawn.py and learns
exits from its Reaper; a test injects one of its own.

`Child` turns a launched child's pipes into what a source reads: stdout as a stream,
the tail of stderr for error messages, stdin for requests, and `kill()`, which ends
the whole process group (a command's own children included).
"""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from workerd.exit_status import ExitStatus
from workerd.sources.base import SourceError

#: Longest stdout line (a helper's answer) or whole stdout (a command's) read.
OUTPUT_LIMIT = 64 * 1024
#: How much of the end of stderr is kept for an error message.
STDERR_TAIL = 4096


@dataclass(frozen=True)
class Launched:
    """A started child: its pid (= its process group), the parent's ends of its pipes
    (non-blocking, owned by the receiver) and a future set once it has been reaped."""

    pid: int
    stdin_fd: int
    stdout_fd: int
    stderr_fd: int
    exited: asyncio.Future[ExitStatus]


class Launcher(Protocol):
    def launch(self, argv: Sequence[str]) -> Launched:
        """Start argv in a new session; SourceError with the reason when it cannot."""
        ...


class _Tail(asyncio.Protocol):
    """Keeps the last STDERR_TAIL bytes of a pipe; never blocks the child."""

    def __init__(self) -> None:
        self.data = b""

    def data_received(self, data: bytes) -> None:
        self.data = (self.data + data)[-STDERR_TAIL:]


class Child:
    """A launched child's pipes as streams. Invariant: its process group is signalled
    only while the leader is not reaped yet, or right after its exit was learnt: a
    group id is not reused while the group has members, and once it is empty the
    kernel hands the number out again only after cycling through the whole pid space,
    far longer than the few loop steps in between."""

    def __init__(self, launched: Launched, stdout: asyncio.StreamReader,
                 transports: list[asyncio.BaseTransport], tail: _Tail) -> None:
        self.pid = launched.pid
        self.exited = launched.exited
        self.stdout = stdout
        self._stdin_fd: int | None = launched.stdin_fd
        self._transports = transports
        self._tail = tail

    @classmethod
    async def start(cls, launcher: Launcher, argv: Sequence[str]) -> Child:
        launched = launcher.launch(argv)
        loop = asyncio.get_running_loop()
        transports: list[asyncio.BaseTransport] = []
        try:
            stdout = asyncio.StreamReader(limit=OUTPUT_LIMIT)
            out, _ = await loop.connect_read_pipe(
                lambda: asyncio.StreamReaderProtocol(stdout), os.fdopen(launched.stdout_fd, "rb", buffering=0)
            )
            transports.append(out)
            tail = _Tail()
            err, _ = await loop.connect_read_pipe(lambda: tail, os.fdopen(launched.stderr_fd, "rb", buffering=0))
            transports.append(err)
        except BaseException:
            for transport in transports:
                transport.close()
            _kill_group(launched.pid)
            os.close(launched.stdin_fd)
            raise
        return cls(launched, stdout, transports, tail)

    def send(self, data: bytes) -> None:
        """Write a short request (far below a pipe's capacity) without waiting; a child
        that stopped reading its stdin is a broken helper."""
        if self._stdin_fd is None:
            raise SourceError("the helper's stdin is closed")
        try:
            written = os.write(self._stdin_fd, data)
        except (BlockingIOError, BrokenPipeError) as exc:
            raise SourceError(f"the helper does not read its requests ({exc.strerror})") from None
        if written != len(data):
            raise SourceError("the helper does not read its requests (its stdin is full)")

    def close_stdin(self) -> None:
        if self._stdin_fd is not None:
            os.close(self._stdin_fd)
            self._stdin_fd = None

    async def read_all(self) -> bytes:
        """stdout up to EOF; more than OUTPUT_LIMIT is an error."""
        chunks: list[bytes] = []
        size = 0
        while chunk := await self.stdout.read(OUTPUT_LIMIT):
            size += len(chunk)
            if size > OUTPUT_LIMIT:
                raise SourceError(f"printed more than {OUTPUT_LIMIT // 1024} KiB")
            chunks.append(chunk)
        return b"".join(chunks)

    def stderr_tail(self) -> str:
        """The last non-empty line the child wrote to stderr, or ""."""
        lines = self._tail.data.decode(errors="replace").strip().splitlines()
        return lines[-1].strip() if lines else ""

    def kill(self) -> None:
        """SIGKILL the child's whole process group (see the class's invariant)."""
        _kill_group(self.pid)

    def close(self) -> None:
        """Kill what is left of the group and close the daemon's ends of the pipes."""
        self.kill()
        self.close_stdin()
        for transport in self._transports:
            transport.close()
        self._transports = []


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


async def run(launcher: Launcher, argv: Sequence[str], timeout: float) -> tuple[bytes, ExitStatus, str]:
    """Run argv to its end: (stdout, how it ended, last line of stderr). Bounded by
    `timeout`; then, or when the caller is cancelled, the process group is killed."""
    child = await Child.start(launcher, argv)
    try:
        child.close_stdin()

        async def finish() -> tuple[bytes, ExitStatus]:
            output = await child.read_all()
            return output, await asyncio.shield(child.exited)

        try:
            output, status = await asyncio.wait_for(finish(), timeout)
        except asyncio.TimeoutError:
            raise SourceError(f"no answer in {timeout:g}s (killed)") from None
        return output, status, child.stderr_tail()
    finally:
        # Also ends what the command left running in its group (see Child's invariant).
        child.close()
