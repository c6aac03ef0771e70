"""Which worker a process that left its worker's session came from.

A worker leads a session, so its tree is that session — until a descendant calls
setsid() (daemonising libraries do): it then leads a session of its own, outside the
worker's process group and session, a *stray*. Its worker is still found:

- while its ancestors live, by following ppid links up to a worker or a member of a
  worker's session;
- once they are gone, it is an *orphan*: a child of the daemon (the subreaper) that the
  daemon did not make. Its session may be known from an earlier look; if not, its
  environment names the slot it came from (WORKERD_PROGRAM, WORKERD_INSTANCE), and its
  start time (and pid, within one clock tick) tells the slot's current worker from an
  earlier one that is gone.

An orphan that names no slot, or whose worker is gone, is *abandoned*: the caller kills
its session. Sessions are the unit: every member of a session descends from its leader,
so a session made in a worker's tree holds nothing but that tree.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Proc:
    """One live process, as /proc/PID/stat shows it."""

    ppid: int
    pgid: int
    sid: int
    #: When it started, in clock ticks since boot.
    start: int


@dataclass(frozen=True)
class Worker:
    """A worker's main process (it leads the session whose id is its pid)."""

    program: str
    instance: int
    start: int


@dataclass
class Found:
    #: Stray sessions, by the pid of the live worker they came from.
    strays: dict[int, int] = field(default_factory=dict)
    #: Sessions of orphans whose worker is gone or unknown.
    abandoned: set[int] = field(default_factory=set)


#: An owner meaning "a worker that is gone".
_GONE = -1


def attribute(
    procs: Mapping[int, Proc],
    daemon: int,
    workers: Mapping[int, Worker],
    made: Callable[[int], bool],
    known: Mapping[int, int],
    slot_of: Callable[[int], tuple[str, int] | None],
) -> Found:
    """Sort the processes outside every worker's session.

    `made(pid)`: the daemon made that child itself (a worker, a source's helper, the
    sentinel); `known`: stray sessions found before, by worker; `slot_of(pid)`: the
    (program, instance) an orphan's environment names, if any.
    """
    owners: dict[int, int | None] = {}  # pid -> worker pid, _GONE, or None (not from a worker)

    def orphan_owner(pid: int, proc: Proc) -> int:
        if proc.sid in workers:
            return proc.sid
        if known.get(proc.sid) in workers:
            return known[proc.sid]
        slot = slot_of(pid)
        # Made after the orphan: (start, pid) orders two processes started in the same
        # clock tick (10 ms) too, since pids are handed out in increasing order.
        candidates = [w for w, info in workers.items()
                      if (info.program, info.instance) == slot and (info.start, w) <= (proc.start, pid)]
        return max(candidates, key=lambda w: workers[w].start) if candidates else _GONE

    for pid in procs:
        path: list[int] = []
        owner: int | None = None
        current = pid
        while True:
            if current in owners:
                owner = owners[current]
                break
            proc = procs.get(current)
            if proc is None:
                break  # past the top of a tree that is not the daemon's
            path.append(current)
            if current in workers:
                owner = current
                break
            if proc.ppid == daemon:
                owner = None if made(current) else orphan_owner(current, proc)
                break
            current = proc.ppid
        for visited in path:
            owners[visited] = owner

    found = Found()
    for pid, proc in procs.items():
        owner = owners[pid]
        if owner is None or proc.sid == owner:
            continue
        if owner == _GONE:
            found.abandoned.add(proc.sid)
        else:
            found.strays[proc.sid] = owner
    # A member that cleared its environment must not condemn a session its leader ties to a worker.
    found.abandoned.difference_update(found.strays)
    return found
