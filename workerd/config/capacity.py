"""How many processes this box can hold: the default of `[daemon] max_processes`.

The rule is the least of three bounds, so that a typo (`processes = 100000`) is a
config error instead of a daemon forking until the OOM killer takes it:

- `HARD_CEILING` (1024): more workers than that on one box is a typo, not a plan;
  a box that really runs more sets `max_processes` itself;
- one process per `MEMORY_PER_PROCESS` (8 MiB) of MemTotal: the least a real worker
  (an interpreter with its imports) needs to be resident;
- half of the pids the daemon's user may have (kernel.pid_max, RLIMIT_NPROC): the
  other half is left to the app the workers share the box with.

A fact that cannot be read (no /proc, no limit) does not bind; the result is at least 1.
"""

from __future__ import annotations

import resource
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Box", "default_max_processes", "max_processes_for", "over_max_processes", "pins_problem", "read_box",
           "read_int"]

HARD_CEILING = 1024
MEMORY_PER_PROCESS = 8 << 20
#: Linux's PID_MAX_LIMIT: no box can ever run more processes than this.
PID_MAX_LIMIT = 4194304
#: The rule, as the reference and `workerd check` state it.
RULE = (
    "the least of 1024, one per 8 MiB of RAM (MemTotal) and half of the pids the daemon's user "
    "may have (kernel.pid_max, RLIMIT_NPROC); at least 1"
)


@dataclass(frozen=True)
class Box:
    """The facts the rule reads; None: unknown (or unlimited)."""

    #: MemTotal, in bytes.
    memory: int | None
    #: /proc/sys/kernel/pid_max.
    pid_max: int | None
    #: The soft RLIMIT_NPROC of the daemon's user.
    nproc: int | None


def max_processes_for(box: Box) -> int:
    bounds = [HARD_CEILING]
    if box.memory is not None:
        bounds.append(box.memory // MEMORY_PER_PROCESS)
    bounds += [pids // 2 for pids in (box.pid_max, box.nproc) if pids is not None]
    return max(1, min(bounds))


def read_box(proc: Path = Path("/proc")) -> Box:
    nproc = resource.getrlimit(resource.RLIMIT_NPROC)[0]
    return Box(
        memory=_mem_total(proc / "meminfo"),
        pid_max=read_int(proc / "sys" / "kernel" / "pid_max"),
        nproc=None if nproc == resource.RLIM_INFINITY else nproc,
    )


def default_max_processes() -> int:
    """The rule applied to this box."""
    return max_processes_for(read_box())


def over_max_processes(count: int, total: int, limit: int) -> str | None:
    """Why `count` processes of one program, making `total` in all, break `limit`; or None."""
    if count > limit:
        return f"{count} is over [daemon] max_processes ({limit})"
    if total > limit:
        return f"{count} makes {total} processes in all, over [daemon] max_processes ({limit})"
    return None


def pins_problem(counts: Mapping[str, int], limit: int, pins: Mapping[str, int]) -> str | None:
    """Why the counts pinned by `workerctl scale` (they survive a reload) would take a new
    config (`counts`: each program's most processes) past its max_processes, or None; the
    config's own counts were checked when it was loaded. Counts, not the Config: the model
    imports this module."""
    pins = {name: count for name, count in pins.items() if name in counts}
    total = sum(pins.get(name, count) for name, count in counts.items())
    if not pins or total <= limit:
        return None
    pinned = ", ".join(f"{name} is pinned to {count}" for name, count in pins.items())
    return (f"{pinned}: with the new config that makes {total} processes in all, over "
            f"[daemon] max_processes ({limit}); `workerctl scale NAME auto` first")


def _mem_total(path: Path) -> int | None:
    try:
        with open(path, "rb") as f:
            for line in f:
                if line.startswith(b"MemTotal:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def read_int(path: Path) -> int | None:
    """A /proc file holding one number; None when it cannot be read."""
    try:
        return int(path.read_text())
    except (OSError, ValueError):
        return None
