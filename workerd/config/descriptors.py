"""Open files: what the daemon holds for a config, against what the box lets it hold.

The daemon raises its soft RLIMIT_NOFILE to the hard one when it starts (see
process/nofile.py), so the hard limit is what binds. Per config, in the worst case,
it holds:

- `PER_WORKER` per process (counted at `processes`, or at its autoscale `max`): the
  read end of its output pipe, twice, because a reload that replaces a program runs
  its old processes beside the new ones until these run;
- `PER_LOG_FILE` per program when there is a log_dir: its open log file;
- `PER_SOURCE` per autoscaled program: a connection, or a helper's three pipes;
- `FIXED` of its own: stdio, the control and notify sockets, the event loop, the
  sentinel's pipe, the log_dir lock, web listeners, clients, a spawn in progress.

A worker's own `open_files` is set by prlimit in its exec chain: above the daemon's
hard limit only with CAP_SYS_RESOURCE, and never above the kernel's fs.nr_open.
"""

from __future__ import annotations

import resource
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from workerd.config.capacity import read_int

if TYPE_CHECKING:  # the model imports the schema; the loader imports this module
    from workerd.config.model import Config

__all__ = ["FdBox", "descriptors_needed", "descriptors_problem", "open_files_problem", "read_fd_box"]

PER_WORKER = 2
PER_LOG_FILE = 1
PER_SOURCE = 4
FIXED = 64
#: CAP_SYS_RESOURCE's bit in /proc/self/status's CapEff.
_CAP_SYS_RESOURCE = 24


@dataclass(frozen=True)
class FdBox:
    """The facts the rules read; None: unlimited or unknown."""

    #: The daemon's hard RLIMIT_NOFILE.
    hard: int | None
    #: /proc/sys/fs/nr_open: no process may have a limit above it.
    nr_open: int | None
    #: Whether this process has CAP_SYS_RESOURCE (may raise a hard limit).
    can_raise: bool


def read_fd_box(proc: Path = Path("/proc")) -> FdBox:
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    return FdBox(hard=None if hard == resource.RLIM_INFINITY else hard,
                 nr_open=read_int(proc / "sys" / "fs" / "nr_open"), can_raise=_has_cap_sys_resource(proc))


def descriptors_needed(config: Config) -> int:
    programs = config.programs.values()
    logs = PER_LOG_FILE * len(config.programs) if config.daemon.log_dir is not None else 0
    sources = PER_SOURCE * sum(1 for p in programs if p.autoscale is not None)
    return FIXED + logs + sources + PER_WORKER * sum(p.most_processes for p in programs)


def descriptors_problem(config: Config, box: FdBox) -> tuple[str, str] | None:
    """(key, why) when the config's worst case needs more descriptors than `box` allows, or None."""
    needed = descriptors_needed(config)
    if box.hard is None or needed <= box.hard:
        return None
    return "programs", (
        f"the workers need up to {needed} open files in the daemon ({PER_WORKER} per process, "
        f"{PER_LOG_FILE} per log file, {PER_SOURCE} per queue source, {FIXED} of its own), over its hard "
        f"RLIMIT_NOFILE ({box.hard}): raise LimitNOFILE= (systemd) or `ulimit -Hn`, or run fewer processes")


def open_files_problem(open_files: int, box: FdBox) -> str | None:
    """Why a worker's `open_files` cannot be granted by the daemon, or None."""
    if box.nr_open is not None and open_files > box.nr_open:
        return f"{open_files} is over the kernel's fs.nr_open ({box.nr_open}), the most any process may open"
    if box.hard is not None and open_files > box.hard and not box.can_raise:
        return (f"{open_files} is over the daemon's hard RLIMIT_NOFILE ({box.hard}), which only a daemon "
                f"with CAP_SYS_RESOURCE may raise for its workers")
    return None


def _has_cap_sys_resource(proc: Path) -> bool:
    try:
        with open(proc / "self" / "status", "rb") as f:
            for line in f:
                if line.startswith(b"CapEff:"):
                    return bool(int(line.split()[1], 16) >> _CAP_SYS_RESOURCE & 1)
    except (OSError, ValueError, IndexError):
        pass
    return False
