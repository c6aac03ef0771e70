"""Watched limits: is a worker's process tree over its memory or sustained CPU limit?

Pure: the shell samples /proc and passes each reading in; this module keeps nothing
but the readings it is handed back. CPU is judged over a full `cpu_window`, never
on a spike: a worker is over `cpu_percent` only when the CPU it used across at
least the whole window, divided by that time, is above the limit.

Memory is judged on the tree's PSS (proportional set size): a page shared by a
prefork parent and its children counts once across them, where the RSS sum would
count it once per process. RSS is an upper bound of PSS and cheap to read, so PSS is
read only once the RSS sum is over PSS_FRACTION of the limit (`needs_pss`).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Watch:
    """A worker's watched limits; None: no such limit."""

    memory: int | None
    cpu_percent: float | None
    cpu_window: float


#: Over this fraction of its memory limit, a tree's RSS sum is checked against its PSS.
PSS_FRACTION = 0.8


def cgroup_memory_max(memory: int) -> int:
    """The kernel's hard cap (cgroup memory.max) for a `memory` limit: a quarter above it,
    so the daemon's graceful restart at the limit (memory.high throttles there) comes
    before the OOM killer does."""
    return memory * 5 // 4


@dataclass(frozen=True)
class Reading:
    """One sample of a worker's whole process tree."""

    at: float
    rss: int
    #: CPU seconds used by the tree so far (user + system, reaped children included).
    cpu: float
    #: The tree's PSS, read when `needs_pss` says so; None: not read (or not readable).
    pss: int | None = None


@dataclass(frozen=True)
class Exceeded:
    #: "memory" or "cpu_percent": the limit that fired.
    limit: str
    #: For status and logs, e.g. "memory 612 MiB PSS > 512 MiB".
    reason: str


def check(watch: Watch, history: tuple[Reading, ...], reading: Reading) -> tuple[tuple[Reading, ...], Exceeded | None]:
    """Add `reading` to `history` (oldest first) and say whether a limit is exceeded.

    The history kept is the shortest suffix that still covers `cpu_window`, so its
    first reading is the baseline of the window.
    """
    if watch.memory is not None:
        used, measure = (reading.pss, "PSS") if reading.pss is not None else (reading.rss, "RSS")
        if used > watch.memory:
            return (), Exceeded("memory", f"memory {_mib(used)} {measure} > {_mib(watch.memory)}")
    if watch.cpu_percent is None:
        return (), None
    history = (*history, reading)
    # Drop readings while the next one still starts a full window.
    while len(history) > 2 and reading.at - history[1].at >= watch.cpu_window:
        history = history[1:]
    oldest = history[0]
    span = reading.at - oldest.at
    if span < watch.cpu_window or span <= 0:
        return history, None
    percent = 100.0 * max(reading.cpu - oldest.cpu, 0.0) / span
    if percent > watch.cpu_percent:
        reason = f"cpu {percent:.0f}% > {watch.cpu_percent:g}% over {span:.0f}s"
        return (), Exceeded("cpu_percent", reason)
    return history, None


def needs_pss(watch: Watch, rss: int) -> bool:
    """Whether a tree's RSS sum is near enough its memory limit to read its PSS."""
    return watch.memory is not None and rss > watch.memory * PSS_FRACTION


def _mib(size: int) -> str:
    """MiB with one decimal when a whole number would hide the difference (64.2 > 64)."""
    mib = size / (1024 * 1024)
    return f"{mib:.0f} MiB" if mib == int(mib) or mib >= 100 else f"{mib:.1f} MiB"
