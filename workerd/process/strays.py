"""A worker's strays (see core/strays.py): found, stopped and killed with their worker,
and handed to the sentinel.

The daemon looks for them only when it has a reason to read /proc anyway: every status
(and so every metrics scrape), every limit sample, every stop of a worker (before its
stop signal, while the strays' ancestry is intact), every kill of a worker's group and
the sweep after it; never on a timer of its own. A stray is a session: it gets its
worker's stop signal on each of its process groups, SIGKILL when the worker's group is
killed, and from the time it is found the sentinel kills it if the daemon dies.
"""

from __future__ import annotations

import logging
import os
import signal
from collections.abc import Iterable, Mapping
from dataclasses import replace

from workerd.core.strays import Proc, Worker, attribute
from workerd.process.procstat import environment
from workerd.process.reaper import Reaper
from workerd.process.sentinel import Sentinel

log = logging.getLogger("workerd")


class Strays:
    def __init__(self, reaper: Reaper, sentinel: Sentinel | None) -> None:
        self._daemon = os.getpid()
        self._reaper = reaper
        self._sentinel = sentinel
        self._workers: dict[int, Worker] = {}
        #: Stray sessions found, by the worker (pid) they came from.
        self._sessions: dict[int, int] = {}
        #: Workers whose start time is not read yet.
        self._unstarted: set[int] = set()

    def started(self, pid: int, program: str, instance: int) -> None:
        """A new worker. Its start time is read from the next look at /proc (`find`), not
        now: this is on the path of every restart."""
        self._workers[pid] = Worker(program, instance, 0)
        self._unstarted.add(pid)

    def exited(self, pid: int) -> set[int]:
        """The worker is gone; returns the sessions of its strays still listed, SIGKILLed
        (normally none: they went when its group was killed)."""
        sessions = self.kill(pid)
        del self._workers[pid]
        self._unstarted.discard(pid)
        return sessions

    def find(self, procs: Mapping[int, Proc]) -> set[int]:
        """Record the strays of live workers in `procs`; returns the sessions of orphans
        whose worker is gone, for the caller to kill."""
        seen = self._unstarted & procs.keys()
        for pid in seen:
            self._workers[pid] = replace(self._workers[pid], start=procs[pid].start)
        self._unstarted -= seen
        found = attribute(procs, self._daemon, self._workers, self._reaper.watches, self._sessions, _slot_of)
        new: dict[int, list[int]] = {}
        for sid, worker in found.strays.items():
            if sid not in self._sessions:
                self._sessions[sid] = worker
                if self._sentinel is not None:
                    self._sentinel.track(sid)
                new.setdefault(worker, []).append(sid)
        for worker, sids in new.items():  # one line per worker and look, however many sessions
            info = self._workers[worker]
            log.info("%s[%d]: %d session(s) left the worker's session (%s); they stop and die with the worker",
                     info.program, info.instance, len(sids), few(sids))
        return found.abandoned

    def sessions_of(self, worker: int) -> set[int]:
        """The sessions of the worker's strays found so far."""
        return {sid for sid, owner in self._sessions.items() if owner == worker}

    def signal(self, worker: int, signo: int, procs: Mapping[int, Proc]) -> None:
        """Send `signo` to every process group of the worker's strays."""
        sessions = self.sessions_of(worker)
        for pgid in {proc.pgid for proc in procs.values() if proc.sid in sessions}:
            try:
                os.killpg(pgid, signo)
            except ProcessLookupError:
                pass

    def kill(self, worker: int) -> set[int]:
        """SIGKILL the group of each stray session's leader; returns the sessions, for the
        sweep to kill their other members."""
        sessions = self.sessions_of(worker)
        for sid in sessions:
            del self._sessions[sid]
            try:
                os.killpg(sid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            if self._sentinel is not None:
                self._sentinel.forget(sid)
        return sessions


def few(sids: Iterable[int], most: int = 5) -> str:
    """A log line's list of session ids: the first few, then how many more."""
    ordered = sorted(sids)
    shown = ", ".join(map(str, ordered[:most]))
    return shown if len(ordered) <= most else f"{shown} and {len(ordered) - most} more"


def _slot_of(pid: int) -> tuple[str, int] | None:
    """The (program, instance) an orphan's environment names, if it still has it."""
    env = environment(pid)
    try:
        return env[b"WORKERD_PROGRAM"].decode(), int(env[b"WORKERD_INSTANCE"])
    except (KeyError, ValueError):
        return None
