"""Process facts: one read of /proc/PID/stat per process, and PSS through psutil.

The pass over every process (RSS, CPU times, threads, start time, tree) is read by
hand: the daemon makes it each `sample_interval` and for every `workerctl status`,
and `psutil.process_iter()` asking the same facts takes 4x as long (8.4 ms against
1.9 ms for 187 processes, 100 of them workers: `python3 bench/run.py --only
proc_readers`). PSS (smaps_rollup) comes from psutil's memory_full_info(): 6 ms for
100 trees, read each sample only for the trees near their memory limit (and for
every tree on `workerctl status`).

Every worker leads a session of its own (the spawner starts it with setsid), so
its process tree is the set of processes whose session id is the worker's pid:
one pass over /proc groups every process under its worker.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
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


@dataclass(frozen=True)
class ProcStat(Proc):
    """One live process: its place in the tree (what strays need) and its usage."""

    rss: int = 0
    #: CPU seconds: user + system, plus its reaped children's.
    cpu: float = 0.0
    threads: int = 0


def processes() -> dict[int, ProcStat]:
    """Every live process, in one pass over /proc: the one read that status, the limit
    watcher and the stray finder share."""
    table = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            f = _fields(entry)
            if f is not None and f[0] != b"Z":
                table[int(entry)] = ProcStat(
                    ppid=int(f[1]), pgid=int(f[2]), sid=int(f[3]), start=int(f[19]), rss=int(f[21]) * _PAGE,
                    cpu=sum(int(f[i]) for i in (11, 12, 13, 14)) / _TICKS, threads=int(f[17]))
    return table


def tree_usage(table: Mapping[int, ProcStat], sessions: set[int]) -> dict[int, TreeUsage]:
    """The usage of each given session leader's tree (its whole session), summed."""
    usage = {sid: TreeUsage() for sid in sessions}
    for proc in table.values():
        tree = usage.get(proc.sid)
        if tree is not None:
            tree.rss += proc.rss
            tree.cpu += proc.cpu
            tree.threads += proc.threads
            tree.processes += 1
    return usage


def session_of(pid: int) -> int | None:
    """The session a process is in (None if it is gone)."""
    fields = _fields(pid)
    return None if fields is None else int(fields[3])


def environment(pid: int) -> dict[bytes, bytes]:
    """The environment the process was started with (empty if it is gone or not ours to read)."""
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            data = f.read()
    except OSError:
        return {}
    return dict(item.partition(b"=")[::2] for item in data.split(b"\0") if b"=" in item)


def open_files(pid: int) -> int | None:
    """How many descriptors the process has open (None if it is gone or not ours to see).
    By hand: psutil's num_fds() is 5x slower (1.36 against 0.26 ms for 100 workers,
    bench metric proc_readers)."""
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return None


def trees_pss(table: Mapping[int, ProcStat], sessions: set[int]) -> dict[int, int | None]:
    """The PSS of each given session leader's tree, summed; None for a tree where a
    process could not be read (another user's, without the privilege). A process
    that exited since `table` was read counts for nothing."""
    import psutil

    pss: dict[int, int | None] = {sid: 0 for sid in sessions}
    for pid, proc in table.items():
        total = pss.get(proc.sid)
        if proc.sid not in pss or total is None:
            continue
        try:
            pss[proc.sid] = total + psutil.Process(pid).memory_full_info().pss
        except psutil.NoSuchProcess:
            pass
        except psutil.Error:
            pss[proc.sid] = None
    return pss
