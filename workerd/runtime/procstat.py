"""Per-process RSS and CPU% straight from /proc/<pid>/stat: one read per process.

Read by hand rather than through psutil: `workerctl status` samples every worker,
and a single read of one file per pid keeps a status of hundreds of processes at
a few milliseconds without the library's resident cost in the daemon.
"""

from __future__ import annotations

import os
import time

_TICKS = os.sysconf("SC_CLK_TCK")
_PAGE = os.sysconf("SC_PAGE_SIZE")


def read_stat(pid: int) -> tuple[float, float, int] | None:
    """(cpu seconds, start time in seconds since boot, rss bytes), or None if gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return None
    # Fields after the command name, which may itself contain spaces and ')'.
    fields = data[data.rfind(b")") + 2:].split()
    if fields[0] == b"Z":
        return None
    cpu = (int(fields[11]) + int(fields[12])) / _TICKS
    return cpu, int(fields[19]) / _TICKS, int(fields[21]) * _PAGE


def _uptime() -> float:
    with open("/proc/uptime", "rb") as f:
        return float(f.read().split()[0])


class ProcessSampler:
    """RSS and CPU% of processes. CPU% is measured since the previous sample of the
    same pid (like top); a pid's first sample gives its lifetime average (like ps)."""

    def __init__(self) -> None:
        self._last: dict[int, tuple[float, float]] = {}

    def sample(self, pids: list[int]) -> dict[int, tuple[int, float]]:
        now = time.monotonic()
        uptime = _uptime()
        result: dict[int, tuple[int, float]] = {}
        seen: dict[int, tuple[float, float]] = {}
        for pid in pids:
            stat = read_stat(pid)
            if stat is None:
                continue
            cpu, started, rss = stat
            previous = self._last.get(pid)
            if previous is not None and now > previous[0]:
                percent = 100.0 * (cpu - previous[1]) / (now - previous[0])
            else:
                percent = 100.0 * cpu / max(uptime - started, 1e-3)
            seen[pid] = (now, cpu)
            result[pid] = (rss, round(max(percent, 0.0), 1))
        self._last = seen
        return result
