"""The life of one worker slot: `transition(slot, event, now)` -> (slot, actions).

A slot is one of a program's N places (instance 0..N-1); processes come and go in
it. Every branch below is one labelled edge of the state machine in SPEC. The
function is pure: time arrives as `now`, randomness as `rand`, and effects leave as
actions, so every edge is unit-tested with a hand-moved clock.

Restart delays: a worker that reached `running` and then died is restarted at once
the first time (like supervisord and systemd); if it keeps dying before a run of
`backoff.reset` seconds, each further restart waits `backoff.delay(k)`. A failed
start (an exit before `start_seconds`, or a failed exec) always waits.

With `ready = "notify"` a worker is running once it sends READY=1, and a failed start
when it does not within `start_timeout`; with a `watchdog`, each WATCHDOG=1 moves the
running slot's deadline, and a deadline that passes is a hang: a graceful restart, at
once unless the worker never pinged since READY=1 (then a crash, with backoff).

A stop (asked for, or forced by a limit, the watchdog or a missing READY=1) sends the
stop signal as `kill_mode` says: to the main process alone ("mixed"), whose group gets
it once the main process has exited, and SIGKILL after LEFTOVER_GRACE; or to the whole
group ("group"). At stop_timeout SIGKILL goes to the whole group either way. The exit
of a stopped process is reported by why it was stopped, when the daemon forced it, and
whether it ran out of stop_timeout; not by the exit status of the graceful exit.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass, replace

from workerd.core.actions import Action, EndGroup, KillGroup, SignalGroup, SignalMain, Spawn
from workerd.core.backoff import Backoff
from workerd.core.events import (
    Event,
    Exited,
    KillRequested,
    LimitExceeded,
    Notified,
    Spawned,
    SpawnFailed,
    StartRequested,
    StopRequested,
    TimerExpired,
)
from workerd.core.states import KillMode, RestartPolicy, State

#: At most this long between the stop signal to what is left of a stopped worker's group
#: ("mixed") and SIGKILL: what outlives its main process is a helper, not a running job
#: (a pool waits for its children before it exits); never longer than stop_timeout.
LEFTOVER_GRACE = 1.0


class Forced(str, enum.Enum):
    """Why the daemon itself stopped a worker (status and /metrics count them)."""

    LIMIT = "limit"
    WATCHDOG = "watchdog"
    NOT_READY = "not ready"


@dataclass(frozen=True)
class Policy:
    """The per-program settings that drive a slot's transitions; built from the config
    only, whose schema holds the defaults."""

    restart: RestartPolicy
    start_seconds: float
    stop_signal: int
    #: As logs and status name it: "SIGTERM".
    stop_signal_name: str
    stop_timeout: float
    kill_mode: KillMode
    max_restarts: int
    backoff: Backoff
    #: How often the daemon samples the watched limits ([daemon] sample_interval).
    sample_interval: float
    #: ready = "notify": running only once the worker sends READY=1, within start_timeout.
    notify: bool
    start_timeout: float
    #: With notify: silence (no WATCHDOG=1) longer than this is a hang; 0: off.
    watchdog: float

    @property
    def limit_grace(self) -> float:
        """A limit that fires this soon after a start counts as a crash (backoff), so a
        worker that cannot even start within its limits does not restart in a tight loop.
        "Soon" is up to the first two samples after start_seconds."""
        return self.start_seconds + 2 * self.sample_interval

    @property
    def leftover_grace(self) -> float:
        """How long what is left of a stopped worker's group has between the stop signal
        and SIGKILL ("mixed")."""
        return min(self.stop_timeout, LEFTOVER_GRACE)

    def stop(self, pid: int) -> Action:
        """The stop signal, where kill_mode sends it."""
        if self.kill_mode is KillMode.MIXED:
            return SignalMain(pid, self.stop_signal)
        return SignalGroup(pid, self.stop_signal)


@dataclass(frozen=True)
class Slot:
    instance: int
    state: State = State.STOPPED
    #: Whether the slot holds one of its program's places (running, on its way up, in
    #: backoff, or at rest as exited/fatal); a stopping slot that is occupied restarts.
    occupied: bool = False
    pid: int | None = None
    #: When the current process was spawned (monotonic seconds).
    started_at: float | None = None
    #: The slot's one deadline: start_seconds, a backoff delay or a stop timeout.
    timer_at: float | None = None
    restarts: int = 0
    #: Restarts since the last run that lasted `backoff.reset`.
    streak: int = 0
    #: Failed starts in a row, for max_restarts.
    failed_starts: int = 0
    last_exit: str | None = None
    #: Why the slot is in its state, when that is not obvious (fatal, backoff, killed).
    reason: str | None = None
    #: The last watched limit that restarted the slot, e.g. "memory 612 MiB > 512 MiB".
    last_limit: str | None = None
    #: Why the daemon itself is stopping the process, if it is: its exit follows the
    #: restart policy (with "never" the slot ends exited), unless a stop request takes over.
    forced: Forced | None = None
    #: ... and whether that exit counts as a crash (backoff) rather than a restart at once.
    forced_crash: bool = False
    #: With a watchdog: a WATCHDOG=1 arrived since READY=1 (a hang before the first one
    #: is a worker that cannot even start, handled as a crash).
    pinged: bool = False
    #: When the current job started (BUSY=1), None while idle.
    busy_since: float | None = None
    #: The worker's own words (STATUS=), and whether it said it drains (STOPPING=1).
    status_text: str | None = None
    draining: bool = False
    #: SIGKILL went to the group during this stop (stop_timeout, or a kill asked for).
    killed: bool = False
    #: The stop ran out of stop_timeout: "still running 30.0s after SIGTERM".
    overdue: str | None = None


Result = tuple[Slot, list[Action]]


def transition(slot: Slot, event: Event, now: float, policy: Policy, rand: Callable[[], float]) -> Result:
    """Apply one event to a slot. Events that do not apply to the state are ignored."""
    if isinstance(event, Notified):  # first: the most frequent (BUSY= around every job)
        return _notified(slot, event, now, policy)
    if isinstance(event, StartRequested):
        return _start_requested(slot, now)
    if isinstance(event, StopRequested):
        return _stop_requested(slot, now, policy)
    if isinstance(event, KillRequested):
        slot = replace(slot, occupied=False, forced=None, forced_crash=False)
        if slot.state in (State.STARTING, State.RUNNING, State.STOPPING) and slot.pid is not None:
            # starting|running|stopping -> stopping (killed)
            killed = replace(slot, state=State.STOPPING, timer_at=None, reason="killed", killed=True)
            return killed, [KillGroup(slot.pid)]
        if slot.state in (State.BACKOFF, State.EXITED, State.FATAL):
            # backoff|exited|fatal -> stopped
            return replace(slot, state=State.STOPPED, timer_at=None, reason=None), []
        return slot, []
    if isinstance(event, Spawned):
        return _spawned(slot, event, now, policy)
    if isinstance(event, SpawnFailed):
        return _spawn_failed(slot, event, now, policy, rand)
    if isinstance(event, Exited):
        return _exited(slot, event, now, policy, rand)
    if isinstance(event, LimitExceeded):
        return _limit_exceeded(slot, event, now, policy)
    if isinstance(event, TimerExpired):
        return _timer_expired(slot, now, policy)
    raise TypeError(f"unknown event {event!r}")


def _start_requested(slot: Slot, now: float) -> Result:
    if slot.state in (State.STOPPED, State.EXITED, State.FATAL):
        # stopped|exited|fatal -> starting: a fresh start forgets the old streak
        fresh = replace(slot, occupied=True, streak=0, failed_starts=0, reason=None)
        return _spawn(fresh)
    if slot.state is State.BACKOFF:
        # backoff -> starting: asked to start now, the streak stays
        return _spawn(replace(slot, occupied=True))
    # starting|running|stopping: already on the way; a stopping slot restarts after its exit
    return replace(slot, occupied=True), []


def _stop_requested(slot: Slot, now: float, policy: Policy) -> Result:
    if slot.state in (State.STARTING, State.RUNNING) and slot.pid is not None:
        # starting|running -> stopping
        stopping = replace(
            slot, state=State.STOPPING, occupied=False, timer_at=now + policy.stop_timeout, reason=None
        )
        return stopping, [policy.stop(slot.pid)]
    if slot.state in (State.BACKOFF, State.EXITED, State.FATAL):
        # backoff|exited|fatal -> stopped
        return replace(slot, state=State.STOPPED, occupied=False, timer_at=None, reason=None), []
    # stopping|stopped: nothing to send; a stop while stopping for a limit makes it the caller's stop
    return replace(slot, occupied=False, forced=None, forced_crash=False), []


def _spawn(slot: Slot) -> Result:
    fresh = replace(slot, state=State.STARTING, pid=None, started_at=None, timer_at=None, forced=None,
                    forced_crash=False, pinged=False, busy_since=None, status_text=None, draining=False,
                    killed=False, overdue=None)
    return fresh, [Spawn()]


def _limit_exceeded(slot: Slot, event: LimitExceeded, now: float, policy: Policy) -> Result:
    if slot.pid != event.pid or slot.state not in (State.STARTING, State.RUNNING) or not slot.occupied:
        return slot, []
    ran = now - slot.started_at if slot.started_at is not None else 0.0
    # starting|running -> stopping (a graceful restart for a limit)
    return _force_stop(replace(slot, last_limit=event.reason), Forced.LIMIT, event.reason,
                       ran < policy.limit_grace, now, policy)


def _force_stop(slot: Slot, cause: Forced, reason: str, crash: bool, now: float, policy: Policy) -> Result:
    """The daemon stops the process itself, gracefully (stop_signal, then stop_timeout)."""
    assert slot.pid is not None
    stopping = replace(slot, state=State.STOPPING, timer_at=now + policy.stop_timeout, reason=reason,
                       forced=cause, forced_crash=crash)
    return stopping, [policy.stop(slot.pid)]


def _notified(slot: Slot, event: Notified, now: float, policy: Policy) -> Result:
    if slot.pid != event.pid or slot.state not in (State.STARTING, State.RUNNING, State.STOPPING):
        return slot, []
    said: dict[str, object] = {}  # one replace: a busy worker may say BUSY= 100 times a second
    if event.busy is not None:
        said["busy_since"] = (slot.busy_since or now) if event.busy else None
    if event.status is not None:
        said["status_text"] = event.status
    if event.stopping:
        said["draining"] = True
    if said:
        slot = replace(slot, **said)  # type: ignore[arg-type]
    if event.ready and slot.state is State.STARTING and policy.notify:
        # starting -> running: READY=1; the watchdog's first deadline starts now
        return replace(slot, state=State.RUNNING, failed_starts=0, reason=None,
                       timer_at=now + policy.watchdog if policy.watchdog else None), []
    if event.watchdog and slot.state is State.RUNNING and policy.notify and policy.watchdog:
        # running -> running: WATCHDOG=1 moves the deadline
        return replace(slot, pinged=True, timer_at=now + policy.watchdog), []
    return slot, []


def _spawned(slot: Slot, event: Spawned, now: float, policy: Policy) -> Result:
    if slot.state is not State.STARTING or slot.pid is not None:
        return slot, []
    slot = replace(slot, pid=event.pid, started_at=now, reason=None)
    if not slot.occupied:
        # starting -> stopping: a stop arrived while the process was being made
        stopping = replace(slot, state=State.STOPPING, timer_at=now + policy.stop_timeout)
        return stopping, [policy.stop(event.pid)]
    if policy.notify:
        # starting -> starting: running once it sends READY=1, within start_timeout
        return replace(slot, timer_at=now + policy.start_timeout), []
    if policy.start_seconds <= 0:
        # starting -> running (no start_seconds to wait for); failed_starts is reset
        # when this run ends, as a crash after a run and not a failed start
        return replace(slot, state=State.RUNNING, timer_at=None), []
    return replace(slot, timer_at=now + policy.start_seconds), []


def _spawn_failed(slot: Slot, event: SpawnFailed, now: float, policy: Policy, rand: Callable[[], float]) -> Result:
    if slot.state is not State.STARTING or slot.pid is not None:
        return slot, []
    # starting -> backoff|fatal|exited|stopped: the process could not be made (a failed
    # fork, a missing directory or command found right before it): a failed start
    return _after_exit(slot, now, policy, rand, failed_start=True, success=False, description=event.reason)


def _timer_expired(slot: Slot, now: float, policy: Policy) -> Result:
    # The shell delivers this only for the slot's current deadline (it cancels
    # superseded timers), possibly a hair early: loop timers round to milliseconds.
    if slot.timer_at is None:
        return slot, []
    if slot.state is State.STARTING and policy.notify and slot.pid is not None:
        # starting -> stopping: no READY=1 within start_timeout, a failed start
        reason = f"no READY=1 within start_timeout ({_seconds(policy.start_timeout)})"
        return _force_stop(slot, Forced.NOT_READY, reason, True, now, policy)
    if slot.state is State.STARTING:
        # starting -> running: up for start_seconds
        return replace(slot, state=State.RUNNING, failed_starts=0, timer_at=None), []
    if slot.state is State.RUNNING and slot.pid is not None:
        # running -> stopping: no WATCHDOG=1 within watchdog, a hang; a crash if there was
        # never one since READY=1
        reason = f"watchdog: no WATCHDOG=1 for {_seconds(policy.watchdog)}"
        return _force_stop(slot, Forced.WATCHDOG, reason, not slot.pinged, now, policy)
    if slot.state is State.BACKOFF:
        # backoff -> starting
        return _spawn(slot)
    if slot.state is State.STOPPING and slot.pid is not None:
        # stopping -> stopping (stop_timeout passed: SIGKILL the group); a stop the daemon
        # forced keeps its cause as the reason (last_exit will say both)
        overdue = f"still running {_seconds(policy.stop_timeout)} after {policy.stop_signal_name}"
        why = slot.reason if slot.forced is not None else overdue
        killed = replace(slot, timer_at=None, reason=why, killed=True, overdue=overdue)
        return killed, [KillGroup(slot.pid, overdue=overdue)]
    return replace(slot, timer_at=None), []


def _exited(slot: Slot, event: Exited, now: float, policy: Policy, rand: Callable[[], float]) -> Result:
    if event.pid != slot.pid:
        return slot, []
    # Whatever the worker left in its process group goes with it: at once, but after a
    # stop the main process had the signal alone ("mixed") what is left gets it too first.
    cleanup: list[Action] = [KillGroup(event.pid)]
    ran = now - slot.started_at if slot.started_at is not None else 0.0
    slot = replace(slot, pid=None, last_exit=event.description)
    if slot.state is State.STOPPING:
        if policy.kill_mode is KillMode.MIXED and not slot.killed:
            cleanup = [EndGroup(event.pid, policy.stop_signal, policy.leftover_grace)]
        slot = replace(slot, last_exit=_stop_account(slot, event))
        if slot.occupied and slot.forced is not None and policy.restart is RestartPolicy.NEVER:
            # stopping -> exited: stopped by the daemon (a limit, the watchdog), and restart = "never"
            return replace(slot, state=State.EXITED, timer_at=None), cleanup
        if slot.occupied and slot.forced_crash:
            # stopping -> backoff|fatal|starting: no READY=1 in time is a failed start; a limit
            # or a hang right after start is a crash
            failed_start = slot.forced is Forced.NOT_READY
            slot, actions = _after_exit(slot, now, policy, rand, failed_start, False, slot.reason or event.description)
            return slot, cleanup + actions
        if slot.occupied:
            # stopping -> starting (a restart)
            slot, actions = _spawn(replace(slot, restarts=slot.restarts + 1))
            return slot, cleanup + actions
        # stopping -> stopped
        return replace(slot, state=State.STOPPED, timer_at=None), cleanup
    if slot.state not in (State.STARTING, State.RUNNING):
        return slot, cleanup
    if ran >= policy.backoff.reset:
        slot = replace(slot, streak=0)
    failed_start = slot.state is State.STARTING
    slot, actions = _after_exit(slot, now, policy, rand, failed_start, event.success, event.description)
    return slot, cleanup + actions


def _after_exit(
    slot: Slot,
    now: float,
    policy: Policy,
    rand: Callable[[], float],
    failed_start: bool,
    success: bool,
    description: str,
) -> Result:
    """Decide what follows the end of a process that nobody asked to stop."""
    slot = replace(slot, pid=None, timer_at=None, last_exit=description)
    slot = replace(slot, failed_starts=slot.failed_starts + 1 if failed_start else 0)
    if not slot.occupied:
        # starting|running -> stopped: stopped before its process existed
        return replace(slot, state=State.STOPPED, reason=None), []
    if policy.restart is RestartPolicy.NEVER or (policy.restart is RestartPolicy.ON_FAILURE and success):
        # starting|running -> exited
        return replace(slot, state=State.EXITED, occupied=True, reason=None), []
    if failed_start and 0 < policy.max_restarts <= slot.failed_starts:
        # starting -> fatal
        reason = f"gave up after {slot.failed_starts} failed starts in a row ({description})"
        return replace(slot, state=State.FATAL, reason=reason), []
    if not failed_start and slot.streak == 0:
        # running -> starting: the first crash after a good run restarts at once
        return _spawn(replace(slot, restarts=slot.restarts + 1, streak=1))
    step = slot.streak - (0 if failed_start else 1)
    delay = policy.backoff.delay(step, rand())
    # starting|running -> backoff
    slot = replace(
        slot,
        state=State.BACKOFF,
        restarts=slot.restarts + 1,
        streak=slot.streak + 1,
        timer_at=now + delay,
        reason=f"{description}; restarting in {_seconds(delay)}",
    )
    return slot, []


def _stop_account(slot: Slot, event: Exited) -> str:
    """A stopped process's last exit: why the daemon stopped it, if it did, and that its
    stop ran out of stop_timeout, if it did; else how it ended."""
    cause = slot.reason if slot.forced is not None else None
    overdue = f"{slot.overdue}: {event.description}" if slot.overdue is not None else None
    return "; ".join(part for part in (cause, overdue) if part) or event.description


def _seconds(delay: float) -> str:
    return f"{delay * 1000:.0f}ms" if delay < 1 else f"{delay:.1f}s"
