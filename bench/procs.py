"""What the OS sees: /proc scanning, bounded waits and cleanup by pid/pgid.

Stdlib only, except for psutil in the CPU/memory helpers. Nothing here trusts a
daemon's own status: processes are counted from /proc/<pid>/stat.
"""
from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable, Iterable
from typing import NamedTuple, TypeVar

POLL = 0.001  # seconds between two /proc polls while timing something

T = TypeVar("T")


class BenchError(RuntimeError):
    """A measurement could not be made (timeout, daemon died, bad output)."""


class Proc(NamedTuple):
    pid: int
    comm: str
    state: str
    ppid: int
    pgrp: int
    starttime: int  # clock ticks since boot (field 22 of /proc/pid/stat)


def read_stat(pid: int) -> Proc | None:
    try:
        fd = os.open(f"/proc/{pid}/stat", os.O_RDONLY)
    except OSError:
        return None
    try:
        data = os.read(fd, 2048)
    except OSError:
        return None
    finally:
        os.close(fd)
    r = data.rfind(b")")
    if r < 0:
        return None
    fields = data[r + 2:].split(b" ", 20)
    try:
        return Proc(pid, data[data.find(b"(") + 1:r].decode("utf-8", "replace"),
                    fields[0].decode(), int(fields[1]), int(fields[2]), int(fields[19]))
    except (IndexError, ValueError):
        return None


def list_pids() -> set[int]:
    return {int(n) for n in os.listdir("/proc") if n[0].isdigit()}


def scan_all() -> dict[int, Proc]:
    out: dict[int, Proc] = {}
    for pid in list_pids():
        p = read_stat(pid)
        if p is not None:
            out[pid] = p
    return out


def read_cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode("utf-8", "replace").strip()
    except OSError:
        return ""


def descendants(root: int, procs: dict[int, Proc]) -> list[Proc]:
    kids: dict[int, list[Proc]] = {}
    for p in procs.values():
        kids.setdefault(p.ppid, []).append(p)
    out: list[Proc] = []
    stack = [root]
    while stack:
        for p in kids.get(stack.pop(), []):
            out.append(p)
            stack.append(p.pid)
    return out


class ChildWatcher:
    """Incremental view of one parent's live children, cheap enough to poll every ms.

    Each poll lists /proc and re-reads the stat of new pids and of the parent's
    children (a child changes comm when it execs, and state when it dies), so a
    poll costs one listdir plus ~10 us per child re-read. A pid whose parent vanished is
    re-read too, since a subreaper daemon may adopt it.
    """

    def __init__(self, ppid: int, settled_comm: str | None = None) -> None:
        self.ppid = ppid
        # children already seen with this comm are not re-read (cheaper polls; a
        # zombie among them is then noticed only once it is reaped)
        self.settled_comm = settled_comm
        self.cache: dict[int, Proc] = {}

    def poll(self) -> dict[int, Proc]:
        pids = list_pids()
        cache = self.cache
        for pid in [p for p in cache if p not in pids]:
            del cache[pid]
        kids: dict[int, Proc] = {}
        for pid in pids:
            p = cache.get(pid)
            if p is None or p.ppid not in pids or (
                    p.ppid == self.ppid and p.comm != self.settled_comm):
                p = read_stat(pid)
                if p is None:
                    continue
                cache[pid] = p
            if p.ppid == self.ppid and p.state != "Z":
                kids[pid] = p
        return kids

    def workers(self, comm: str) -> dict[int, Proc]:
        return {pid: p for pid, p in self.poll().items() if p.comm == comm}


def wait_for(what: str, fn: Callable[[], T | None], timeout: float,
             interval: float = POLL, alive: Callable[[], bool] | None = None) -> tuple[T, float]:
    """Poll fn until it returns something not None/False; return (value, perf_counter at success)."""
    deadline = time.perf_counter() + timeout
    while True:
        v = fn()
        now = time.perf_counter()
        if v is not None and v is not False:
            return v, now
        if alive is not None and not alive():
            raise BenchError(f"daemon exited while waiting for {what}")
        if now > deadline:
            raise BenchError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(interval)


def kill_tree(root_pid: int, root_starttime: int | None, extra_pgrps: Iterable[int] = ()) -> int:
    """SIGKILL a daemon and everything it started, by pid and process group.

    The daemon is stopped first so it cannot spawn while its tree is collected;
    then it is killed, then every process group seen in its tree, then anything
    left in those groups that started after the daemon (so a pgid that was freed
    and reused by an unrelated process is never touched). Returns how many
    processes were signalled.
    """
    me = os.getpid()
    mine = {os.getpgrp(), 0, 1}
    procs = scan_all()
    root = procs.get(root_pid)
    alive = root is not None and (root_starttime is None or root.starttime == root_starttime)
    if alive:
        try:
            os.kill(root_pid, signal.SIGSTOP)
        except OSError:
            pass
        procs = scan_all()
    tree = descendants(root_pid, procs) if alive else []
    since = root_starttime if root_starttime is not None else 0
    pgrps = {p.pgrp for p in tree} | set(extra_pgrps)
    pgrps.add(root_pid)  # started with start_new_session: the daemon's own group
    pgrps -= mine
    signalled = 0
    if alive:
        try:
            os.kill(root_pid, signal.SIGKILL)
            signalled += 1
        except OSError:
            pass
    for p in tree:
        if p.pid != me:
            try:
                os.kill(p.pid, signal.SIGKILL)
                signalled += 1
            except OSError:
                pass
    deadline = time.monotonic() + 3.0
    while True:
        left = [p for p in scan_all().values()
                if p.pgrp in pgrps and p.starttime >= since and p.pid != me and p.state != "Z"]
        if not left or time.monotonic() > deadline:
            break
        for pg in {p.pgrp for p in left}:
            try:
                os.killpg(pg, signal.SIGKILL)
                signalled += 1
            except OSError:
                pass
        time.sleep(0.02)
    return signalled


def cpu_seconds(pid: int) -> float:
    import psutil
    t = psutil.Process(pid).cpu_times()
    return t.user + t.system


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100)."""
    if not values:
        raise ValueError("no values")
    s = sorted(values)
    k = max(0, min(len(s) - 1, -(-len(s) * q // 100) - 1))
    return s[int(k)]


def median(values: list[float]) -> float:
    s = sorted(values)
    n = len(s)
    if n == 0:
        raise ValueError("no values")
    return s[n // 2] if n % 2 else (s[n // 2 - 1] + s[n // 2]) / 2
