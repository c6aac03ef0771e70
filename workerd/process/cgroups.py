"""cgroup v2 enforcement, where the box delegates a subtree to the daemon.

Under systemd with `Delegate=yes` the daemon owns its cgroup. It then moves itself
into a leaf (`daemon/`; cgroup v2 allows processes only in leaves), enables the
memory, pids and cpu controllers for its children, and puts each worker in a cgroup
of its own, `program-<program>/instance-<instance>`, where its limits are the kernel's:

    memory      -> memory.high = the limit (reclaim and throttle above it) and
                   memory.max = 125 % (the hard stop); the watcher still restarts
                   the worker gracefully as soon as it is over the limit
    tasks       -> pids.max (unlike RLIMIT_NPROC, it binds root too)
    cpu_percent -> cpu.max: a true throttle at that share of a core

Everywhere else (cgroup v1, no delegation, containers) the rlimits and the watcher
do the job alone; `enforcement()` says which is in use, for `workerd check` and status.
A worker joins its cgroup right after it is made, so it runs outside it for the few
microseconds before; its children are all made after that.
"""

from __future__ import annotations

import logging
import os
import signal
from pathlib import Path

from workerd.config.model import LimitsConfig
from workerd.core.limits import cgroup_memory_max

log = logging.getLogger("workerd")

ROOT = Path("/sys/fs/cgroup")
_CONTROLLERS = ("memory", "pids", "cpu")
_CPU_PERIOD = 100_000


def _own_cgroup(root: Path) -> Path | None:
    try:
        with open("/proc/self/cgroup") as f:
            for line in f:
                if line.startswith("0::"):
                    return root / line[3:].strip().lstrip("/")
    except OSError:
        pass
    return None


def enforcement(tree: CgroupTree | None, why: str) -> str:
    """One line: how limits are enforced here, and why (from CgroupTree.find)."""
    if tree is not None:
        return f"cgroup v2 ({tree.base}) + rlimits + watcher"
    return f"rlimits + watcher ({why})"


class CgroupTree:
    def __init__(self, base: Path) -> None:
        self.base = base

    @classmethod
    def find(cls, root: Path = ROOT) -> tuple[CgroupTree | None, str]:
        """The delegated subtree, or None and why there is none."""
        if not (root / "cgroup.controllers").exists():
            return None, "no cgroup v2 hierarchy on this box"
        own = _own_cgroup(root)
        if own is None or own == root or not os.access(own / "cgroup.procs", os.W_OK):
            return None, "cgroup v2 present, but no subtree is delegated to workerd"
        available = (own / "cgroup.controllers").read_text().split()
        missing = [c for c in _CONTROLLERS if c not in available]
        if missing:
            return None, f"the delegated cgroup lacks the {', '.join(missing)} controller(s)"
        return cls(own), ""

    def prepare(self) -> None:
        """Move the daemon into a leaf and let its children use the controllers."""
        leaf = self.base / "daemon"
        leaf.mkdir(exist_ok=True)
        (leaf / "cgroup.procs").write_text(str(os.getpid()))
        (self.base / "cgroup.subtree_control").write_text(" ".join(f"+{c}" for c in _CONTROLLERS))

    def place(self, program: str, instance: int, pid: int, limits: LimitsConfig) -> None:
        """Put a new worker in `program-<program>/instance-<instance>` with its limits. A failure is logged
        and leaves the worker to the rlimits and the watcher."""
        try:
            group = self.base / f"program-{program}"
            if not group.exists():
                group.mkdir()
                (group / "cgroup.subtree_control").write_text(" ".join(f"+{c}" for c in _CONTROLLERS))
            slot = group / f"instance-{instance}"
            slot.mkdir(exist_ok=True)
            for name, value in settings(limits).items():
                (slot / name).write_text(value)
            (slot / "cgroup.procs").write_text(str(pid))
        except OSError as exc:
            log.warning("%s[%d]: cannot use its cgroup (%s); rlimits and the watcher still apply",
                        program, instance, exc.strerror)

    def kill(self, program: str, instance: int) -> None:
        """SIGKILL everything in the slot's cgroup: whatever left the worker's session is
        still in it. cgroup.kill (Linux 5.14) does it in one write; before it, each pid in
        cgroup.procs gets the signal."""
        slot = self.base / f"program-{program}" / f"instance-{instance}"
        try:
            if (slot / "cgroup.kill").exists():
                (slot / "cgroup.kill").write_text("1")
                return
            pids = (slot / "cgroup.procs").read_text().split()
        except OSError:
            return  # no cgroup for the slot: placing it failed, and that was logged
        for pid in pids:
            try:
                os.kill(int(pid), signal.SIGKILL)
            except ProcessLookupError:
                pass


def settings(limits: LimitsConfig) -> dict[str, str]:
    """The cgroup files and values for a worker's limits."""
    values = {
        "memory.high": str(limits.memory) if limits.memory else "max",
        "memory.max": str(cgroup_memory_max(limits.memory)) if limits.memory else "max",
        "pids.max": str(limits.tasks) if limits.tasks else "max",
        "cpu.max": f"{int(limits.cpu_percent / 100 * _CPU_PERIOD)} {_CPU_PERIOD}" if limits.cpu_percent
        else f"max {_CPU_PERIOD}",
    }
    return values
