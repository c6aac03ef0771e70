"""Process facts straight from /proc: one read of /proc/PID/stat per process.

Read by hand rather than through psutil: the daemon samples every worker each
`sample_interval` and for every `workerctl status`, and one read of one file per
pid keeps a pass over hundreds of processes at a few milliseconds, without the
library's resident cost in the daemon.

Every worker leads a session of its own (the spawner starts it with setsid), so
its process tree is the set of processes whose session id is the worker's pid:
one pass over /proc groups every process under its worker.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from workerd.core.strays import Proc

_TICKS = os.sysconf("SC_CLK_TCK")
_PAGE = os.sysconf("SC_PAGE_SIZE")


@dataclass
class TreeUsage:
    """A worker's process tree, summed."""

    rss: int = 0
    #: CPU seconds: user + system of every live process, plus their reaped children.
    cpu: float = 0.0
    threads: int = 0
    processes: int = 0


def _fields(pid: int | str) -> list[bytes] | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return None
    # The fields after the command name, which may itself contain spaces and ')':
    # [0] state, [1] ppid, [2] pgrp, [3] session, ... [11] utime, [12] stime,
    # [13] cutime, [14] cstime, [17] num_threads, [19] starttime, [21] rss.
    return data[data.rfind(b")") + 2:].split()


def scan(sessions: set[int]) -> dict[int, TreeUsage]:
    """Usage of the process trees of the given session leaders, in one pass over /proc."""
    usage = {sid: TreeUsage() for sid in sessions}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        fields = _fields(entry)
        if fields is None or fields[0] == b"Z":
            continue
        tree = usage.get(int(fields[3]))
        if tree is None:
            continue
        tree.rss += int(fields[21]) * _PAGE
        tree.cpu += sum(int(fields[i]) for i in (11, 12, 13, 14)) / _TICKS
        tree.threads += int(fields[17])
        tree.processes += 1
    return usage


def processes() -> dict[int, Proc]:
    """Every live process: its parent, group, session and start, in one pass."""
    table = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            fields = _fields(entry)
            if fields is not None and fields[0] != b"Z":
                table[int(entry)] = Proc(int(fields[1]), int(fields[2]), int(fields[3]), int(fields[19]))
    return table


def start_time(pid: int) -> int | None:
    """When the process started, in clock ticks since boot (None if it is gone)."""
    fields = _fields(pid)
    return None if fields is None else int(fields[19])


def environment(pid: int) -> dict[bytes, bytes]:
    """The environment the process was started with (empty if it is gone or not ours to read)."""
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            data = f.read()
    except OSError:
        return {}
    return dict(item.partition(b"=")[::2] for item in data.split(b"\0") if b"=" in item)


def open_files(pid: int) -> int | None:
    """How many descriptors the process has open (None if it is gone or not ours to see)."""
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return None


def uptime() -> float:
    """Seconds since boot, the clock of /proc's start times."""
    with open("/proc/uptime", "rb") as f:
        return float(f.read().split()[0])
