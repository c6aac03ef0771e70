"""Run a supervisor (the original tool, or workerd on the imported file) and read what it
started from /proc: each worker's argv, working directory, user and environment.

Only processes this module started are signalled, by pid or by the process group of a
worker it saw; every wait is bounded.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.runtime.conftest import cmdline_of, environ_of, ppid_of

START_TIMEOUT = 30.0
STOP_TIMEOUT = 15.0
#: Variables each tool adds of its own, left out of the comparison.
OWN_VARIABLES = ("SUPERVISOR_", "WORKERD_", "HONCHO_", "NOTIFY_SOCKET", "WATCHDOG_")


@dataclass(frozen=True)
class Worker:
    argv: tuple[str, ...]
    cwd: str
    uid: int
    #: The environment, less OWN_VARIABLES (or only `keep`'s names, when given).
    env: tuple[tuple[str, str], ...]


def workers(parent: int, marker: str, keep: frozenset[str] | None = None, depth: int = 1) -> Counter[Worker]:
    """The descendants of PARENT, DEPTH levels down, that run in or name MARKER (the
    test's app directory). Depth 2 for honcho, which runs each command from a fork."""
    found: Counter[Worker] = Counter()
    level = [parent]
    for _ in range(depth):
        level = [child for pid in level for child in children(pid)]
    for pid in level:
        argv = cmdline_of(pid)
        try:
            env = environ_of(pid)
            cwd = os.readlink(f"/proc/{pid}/cwd")
            uid = os.stat(f"/proc/{pid}").st_uid
        except (FileNotFoundError, ProcessLookupError):
            continue
        if not any(marker in arg for arg in [cwd, *argv]):
            continue
        kept = {k: v for k, v in env.items()
                if (k in keep if keep is not None else not k.startswith(OWN_VARIABLES))}
        found[Worker(tuple(argv), cwd, uid, tuple(sorted(kept.items())))] += 1
    return found


def leftovers(marker: str) -> list[tuple[int, list[str]]]:
    """Any live process, anywhere, that runs in or names MARKER: what a run left behind."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        argv = cmdline_of(int(entry))
        try:
            cwd = os.readlink(f"/proc/{entry}/cwd")
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
        if argv and any(marker in arg for arg in [cwd, *argv]):
            found.append((int(entry), argv))
    return found


def children(parent: int) -> list[int]:
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if ppid_of(int(entry)) == parent:
                    pids.append(int(entry))
            except (FileNotFoundError, ProcessLookupError):
                pass
    return pids


def settled(parent: int, marker: str, count: int, keep: frozenset[str] | None = None,
            depth: int = 1) -> Counter[Worker]:
    """The workers once COUNT of them run and two reads 0.3 s apart agree."""
    deadline = time.monotonic() + START_TIMEOUT
    previous: Counter[Worker] | None = None
    while time.monotonic() < deadline:
        now = workers(parent, marker, keep, depth)
        if sum(now.values()) == count and now == previous:
            return now
        previous = now
        time.sleep(0.3)
    raise AssertionError(f"{count} workers of pid {parent} did not settle in {START_TIMEOUT:g} s; last seen: "
                         f"{previous}")


@contextmanager
def running(argv: list[str], env: Mapping[str, str], cwd: Path, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """A supervisor in the foreground; at the end SIGTERM, then SIGKILL to it and to the
    process groups of its children."""
    with open(log, "wb") as out:
        proc = subprocess.Popen(argv, env=dict(env), cwd=cwd, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
    try:
        yield proc
    finally:
        groups = {proc.pid} | _groups([c for child in children(proc.pid) for c in [child, *children(child)]])
        stop(proc.pid, lambda: proc.poll() is not None, groups - {os.getpgrp()})
        if proc.poll() is None:
            proc.kill()
        proc.wait(STOP_TIMEOUT)


def stop(pid: int, exited: Callable[[], bool], groups: set[int]) -> None:
    """SIGTERM PID and wait; then SIGKILL what is left of it and of GROUPS."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    deadline = time.monotonic() + STOP_TIMEOUT
    while not exited() and time.monotonic() < deadline:
        time.sleep(0.05)
    for group in groups:
        try:
            os.killpg(group, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


def _groups(pids: list[int]) -> set[int]:
    groups = set()
    for pid in pids:
        try:
            groups.add(os.getpgid(pid))
        except ProcessLookupError:
            pass
    return groups


def differences(original: Counter[Worker], imported: Counter[Worker]) -> str:
    """What one side started that the other did not, for an assertion message."""
    lines = [f"only under the original tool ({n}×): {w}" for w, n in (original - imported).items()]
    lines += [f"only under workerd ({n}×): {w}" for w, n in (imported - original).items()]
    return "\n".join(lines)
