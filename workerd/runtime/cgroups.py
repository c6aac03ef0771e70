"""What resource enforcement this box offers the daemon.

cgroup v2 enforcement (memory.max, pids.max, cpu.max per program) needs a unified
hierarchy and a subtree delegated to the daemon (systemd `Delegate=yes`). This
version detects and reports it; limits are enforced everywhere by kernel rlimits
plus the daemon's watcher, which is what `describe()` says.
"""

from __future__ import annotations

import os

_ROOT = "/sys/fs/cgroup"


def describe() -> str:
    """One line for `workerd check` and status: how limits are enforced, and why."""
    if not os.path.exists(f"{_ROOT}/cgroup.controllers"):
        return "rlimits + watcher (no cgroup v2 hierarchy on this box)"
    own = _own_cgroup()
    if own is None or not os.access(f"{_ROOT}{own}", os.W_OK):
        return "rlimits + watcher (cgroup v2 present, but no subtree is delegated to workerd)"
    return "rlimits + watcher (a delegated cgroup v2 subtree is present; cgroup enforcement is not built yet)"


def _own_cgroup() -> str | None:
    try:
        with open("/proc/self/cgroup") as f:
            for line in f:
                if line.startswith("0::"):
                    return line[3:].strip()
    except OSError:
        pass
    return None
