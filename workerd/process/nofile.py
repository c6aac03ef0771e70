"""The daemon's open-file limit: raised when it starts, given back to its workers.

systemd, and most shells, start a process with a soft RLIMIT_NOFILE of 1024 under a
far higher hard one; the daemon holds a descriptor or two per worker (see
config/descriptors.py), so it raises its soft limit to the hard one. Its workers must
not inherit that: many programs misbehave with a huge soft limit (select() cannot see
a descriptor past 1024, some close every possible descriptor at start), so a worker
without `open_files` gets back the soft limit the daemon was started with, set by
prlimit in its exec chain (process/spawn.py).
"""

from __future__ import annotations

import resource

__all__ = ["raise_soft_limit", "workers_soft_limit"]

#: The soft limit the daemon was started with, once it has raised its own; else None.
_started_with: int | None = None


def raise_soft_limit() -> None:
    """Soft RLIMIT_NOFILE up to the hard one; a refusal leaves it as it was."""
    global _started_with
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == hard:
        return
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    except (ValueError, OSError):
        return
    _started_with = soft


def workers_soft_limit() -> int | None:
    """The soft limit a worker without `open_files` gets; None: the daemon's own, as it is."""
    return _started_with
