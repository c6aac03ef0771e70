"""The Supervisor as event sequences: a fake clock, a recording Effects, no process.

Each test is what the daemon does between the OS and the core — start, crash, stop
then start, reload, scale, limits — checked as the actions it asks for, in
milliseconds. The real daemon's behaviour is tested end to end in the other files.
"""

from __future__ import annotations

import pytest

from tests.runtime.fakes import FakeClock, RecordingEffects, config, killed, signalled
from workerd.core.events import LimitExceeded
from workerd.core.states import State
from workerd.daemon import Wired, wire
from workerd.runtime.service import ServiceManager
from workerd.runtime.supervisor import Supervisor

ONE = """
[programs.w]
command = "sleep 1"
processes = 2
start_seconds = "1s"
stop_timeout = "5s"
backoff_initial = "2s"
"""


@pytest.fixture
def clock():
    return FakeClock()


@pytest.fixture
def effects():
    return RecordingEffects()


def wired(tmp_path, clock, effects, programs=ONE, service=None) -> Wired:
    """The supervisor with the daemon's listeners on its feed (tally, workers, timeline, STATUS=)."""
    w = wire(config(tmp_path, programs), clock, effects, service or ServiceManager(None, None), rand=lambda: 0.5)
    w.supervisor.start()
    return w


def supervisor(tmp_path, clock, effects, programs=ONE) -> Supervisor:
    return wired(tmp_path, clock, effects, programs).supervisor


def states(s: Supervisor, name: str = "w") -> dict[int, str]:
    return {i: slot.state.value for i, slot in sorted(s.programs[name].slots.items())}


def pids(s: Supervisor, name: str = "w") -> list[int]:
    return [slot.pid for _, slot in sorted(s.programs[name].slots.items()) if slot.pid is not None]


def test_start_spawns_every_slot_and_running_comes_after_start_seconds(tmp_path, clock, effects):
    s = supervisor(tmp_path, clock, effects)
    assert effects.spawned() == [("w", 0), ("w", 1)]
    assert states(s) == {0: "starting", 1: "starting"}
    clock.advance(0.9)
    assert states(s) == {0: "starting", 1: "starting"}
    clock.advance(0.2)
    assert states(s) == {0: "running", 1: "running"}


def test_a_crash_after_a_good_run_restarts_at_once_then_backs_off(tmp_path, clock, effects):
    s = supervisor(tmp_path, clock, effects)
    clock.advance(1.5)
    first = pids(s)[0]
    effects.take()
    effects.exit(first)
    actions = effects.take()
    assert killed(actions) == [first]  # what the worker left in its group goes with it
    assert [(p, i) for p, i, a in actions if type(a).__name__ == "Spawn"] == [("w", 0)]
    # the replacement dies before start_seconds: a failed start in a streak, which waits
    # backoff_initial x factor (2 s x 2)
    effects.exit(pids(s)[0])
    assert states(s)[0] == "backoff" and not effects.spawned()
    clock.advance(3.9)
    assert not effects.spawned()
    clock.advance(0.2)
    assert effects.spawned() == [("w", 0)]


def test_restart_stops_first_and_starts_once_the_old_process_exited(tmp_path, clock, effects):
    s = supervisor(tmp_path, clock, effects)
    clock.advance(1.5)
    old = pids(s)
    effects.take()
    s.restart_programs([s.programs["w"]])
    assert signalled(effects.actions) == old
    assert not effects.spawned()
    effects.exit(old[0], success=True, description="exit status 0")
    assert effects.spawned() == [("w", 0)]
    # the other one ignores its stop signal: SIGKILL after stop_timeout, then the new one
    clock.advance(5.1)
    assert killed(effects.actions) == [old[1]]
    effects.exit(old[1], description="killed by SIGKILL")
    assert ("w", 1) in effects.spawned()


def test_scale_down_stops_the_most_recently_started(tmp_path, clock, effects):
    s = supervisor(tmp_path, clock, effects)
    clock.advance(1.5)
    effects.take()
    s.scale(s.programs["w"], 4)
    assert effects.spawned() == [("w", 2), ("w", 3)]
    clock.advance(1.5)
    newest = s.programs["w"].slots[3].pid
    s.scale(s.programs["w"], 3)
    assert signalled(effects.take()) == [newest]


def test_reload_replaces_old_processes_only_as_new_ones_run(tmp_path, clock, effects):
    s = supervisor(tmp_path, clock, effects)
    clock.advance(1.5)
    old = pids(s)
    effects.take()
    assert s.reload(config(tmp_path, ONE.replace("sleep 1", "sleep 2"))) == [
        "changed: w (new processes start; each old one stops once a new one runs)"]
    assert effects.spawned() == [("w", 0), ("w", 1)]
    assert signalled(effects.actions) == []  # the old ones serve while the new ones start
    clock.advance(1.1)  # the new ones run: each old one is stopped
    assert sorted(signalled(effects.take())) == sorted(old)
    for pid in old:
        effects.exit(pid, success=True, description="exit status 0")
    assert s.programs["w"].outgoing == []
    assert states(s) == {0: "running", 1: "running"}


def test_reload_to_a_config_that_cannot_start_keeps_the_old_processes(tmp_path, clock, effects):
    s = supervisor(tmp_path, clock, effects)
    clock.advance(1.5)
    old = pids(s)
    s.reload(config(tmp_path, ONE.replace("sleep 1", "false")))
    for _ in range(60):  # for 30 s, every new process fails its start at once
        for pid in pids(s):
            effects.exit(pid)
        clock.advance(0.5)
    assert s.programs["w"].slots[0].restarts >= 3
    assert signalled(effects.actions) == []
    (outgoing,) = s.programs["w"].outgoing
    assert [slot.pid for slot in outgoing.slots.values()] == old
    assert all(slot.state is State.RUNNING for slot in outgoing.slots.values())
    # stopping the program stops the old processes too
    s.stop_programs([s.programs["w"]])
    assert set(old) <= set(signalled(effects.take()))


def test_a_reload_that_only_rescales_restarts_nothing(tmp_path, clock, effects):
    s = supervisor(tmp_path, clock, effects)
    clock.advance(1.5)
    effects.take()
    assert s.reload(config(tmp_path, ONE.replace("processes = 2", "processes = 3"))) == ["scaled: w 2 -> 3"]
    assert effects.spawned() == [("w", 2)]
    assert signalled(effects.actions) == []


def test_a_limit_restart_is_immediate_unless_right_after_start(tmp_path, clock, effects):
    s = supervisor(tmp_path, clock, effects)
    program = s.programs["w"]
    clock.advance(10)
    pid = program.slots[0].pid
    effects.take()
    s.deliver(program, 0, LimitExceeded(pid, "memory 70 MiB > 64 MiB"))
    assert signalled(effects.take()) == [pid]
    effects.exit(pid, description="killed by SIGTERM")
    assert effects.spawned() == [("w", 0)]
    assert program.slots[0].last_limit == "memory 70 MiB > 64 MiB"
    # the new ones are over their limit at once: crashes, restarted at once the first
    # time (as any crash after a good run), then backing off
    for _ in range(2):
        fresh = program.slots[0].pid
        s.deliver(program, 0, LimitExceeded(fresh, "memory 70 MiB > 64 MiB"))
        effects.exit(fresh, description="killed by SIGTERM")
    assert program.slots[0].state is State.BACKOFF


def test_a_removed_program_goes_once_its_processes_are_stopped(tmp_path, clock, effects):
    s = supervisor(tmp_path, clock, effects, ONE + '\n[programs.other]\ncommand = "sleep 1"\n')
    clock.advance(1.5)
    effects.take()
    assert s.reload(config(tmp_path, ONE)) == ["removed: other"]
    (pid,) = signalled(effects.take())
    assert "other" in s.programs
    effects.exit(pid, success=True, description="exit status 0")
    assert "other" not in s.programs


AUTOSCALED = """
[programs.q]
command = "sleep 1"
start_seconds = "0s"

[programs.q.autoscale]
source = "sqlite"
path = "jobs.db"
query = "SELECT 1"
min = 0
max = 4
per_worker = 10
scale_down_delay = "30s"
"""


def test_queue_readings_scale_up_at_once_and_down_after_the_delay(tmp_path, clock, effects):
    from workerd.core.scaling import Depth, QueueReading, ReadFailed

    w = wired(tmp_path, clock, effects, AUTOSCALED)
    s = w.supervisor
    assert effects.spawned() == []
    s.on_queue("q", Depth(QueueReading(35)))
    assert effects.spawned() == [("q", 0), ("q", 1), ("q", 2), ("q", 3)]
    assert w.tally.decisions == {("q", "up"): 1}
    # the source fails for a while, then answers with an empty queue: nothing stops yet
    for _ in range(5):
        clock.advance(2)
        s.on_queue("q", ReadFailed("connection refused"))
    clock.advance(2)
    s.on_queue("q", Depth(QueueReading(0)))
    assert signalled(effects.take()) == []
    # a full scale_down_delay after the last failure, down to 0, newest first
    clock.advance(29)
    s.on_queue("q", Depth(QueueReading(0)))
    assert len(signalled(effects.take())) == 4
    assert w.tally.decisions == {("q", "up"): 1, ("q", "down"): 1}


def test_a_pin_overrides_the_queue(tmp_path, clock, effects):
    from workerd.core.scaling import Depth, QueueReading

    s = supervisor(tmp_path, clock, effects, AUTOSCALED)
    s.scale(s.programs["q"], 1)
    assert effects.spawned() == [("q", 0)]
    s.on_queue("q", Depth(QueueReading(35)))
    assert effects.spawned() == [] and s.programs["q"].scale.desired == 4
    s.scale(s.programs["q"], None)
    assert effects.spawned() == [("q", 1), ("q", 2), ("q", 3)]


def test_starting_many_slots_applies_a_few_events_each(tmp_path, clock, effects, monkeypatch):
    """Reconcile runs once the queue is empty, not after every event: with it after every
    event, each of 100 pending starts was asked for again and again (10,000 events)."""
    import workerd.runtime.supervisor as supervisor_module

    applied = []
    real = supervisor_module.transition

    def counting(*args, **kwargs):
        applied.append(args[1])
        return real(*args, **kwargs)

    monkeypatch.setattr(supervisor_module, "transition", counting)
    s = supervisor(tmp_path, clock, effects, ONE.replace("processes = 2", "processes = 100"))
    assert len(effects.spawned()) == 100
    assert len(applied) <= 3 * 100, f"{len(applied)} events to start 100 slots"
    assert states(s) == {i: "starting" for i in range(100)}


NOTIFY = """
[programs.w]
command = "sleep 1"
processes = 4
ready = "notify"
start_timeout = "10s"
stop_timeout = "5s"
watchdog = "3s"
"""


def ready_all(w: Wired, clock: FakeClock, name: str = "w") -> list[int]:
    from workerd.core.events import Notified

    for slot in list(w.supervisor.programs[name].slots.values()):
        if slot.pid is not None and slot.state is State.STARTING:
            w.notified(Notified(slot.pid, ready=True))
    return pids(w.supervisor, name)


def test_a_worker_is_running_only_once_it_says_ready(tmp_path, clock, effects):
    from workerd.core.events import Notified

    w = wired(tmp_path, clock, effects, NOTIFY)
    s = w.supervisor
    clock.advance(5)
    assert set(states(s).values()) == {"starting"}
    first = s.programs["w"].slots[0].pid
    w.notified(Notified(first, ready=True))
    assert states(s)[0] == "running"
    w.notified(Notified(999_999, ready=True))  # nobody's: ignored


def test_a_hung_worker_is_restarted_and_counted(tmp_path, clock, effects):
    from workerd.core.events import Notified

    w = wired(tmp_path, clock, effects, NOTIFY)
    s = w.supervisor
    ready_all(w, clock)
    for pid in pids(s):
        w.notified(Notified(pid, watchdog=True))
    effects.take()
    clock.advance(2.0)
    for pid in pids(s)[1:]:  # instance 0 goes silent
        w.notified(Notified(pid, watchdog=True))
    clock.advance(1.5)
    hung = s.programs["w"].slots[0]
    assert signalled(effects.take()) == [hung.pid]
    assert hung.reason == "watchdog: no WATCHDOG=1 for 3.0s"
    assert w.tally.forced == {("w", "watchdog"): 1}


def test_pings_waiting_when_a_watchdog_deadline_comes_count_before_it(tmp_path, clock, effects):
    """A stalled daemon finds the deadlines past and the workers' pings unread: the timer
    path reads them first (`deadlines.before`), so no healthy worker is restarted."""
    from workerd.core.events import Notified

    w = wired(tmp_path, clock, effects, NOTIFY)
    s = w.supervisor
    workers = ready_all(w, clock)
    effects.take()
    waiting = [Notified(pid, watchdog=True) for pid in workers]  # sent during the stall

    def drain() -> None:
        while waiting:
            w.notified(waiting.pop())

    s.deadlines.before = drain
    clock.t += 10  # the stall: every deadline is past when the loop turns again
    clock.advance(0)
    assert signalled(effects.take()) == []
    assert set(states(s).values()) == {"running"}
    clock.advance(3.5)  # silent since: hung now
    assert sorted(signalled(effects.take())) == sorted(workers)


def test_job_durations_are_counted_when_a_job_ends(tmp_path, clock, effects):
    from workerd.core.events import Notified

    w = wired(tmp_path, clock, effects, NOTIFY.replace('watchdog = "3s"', ""))
    pid = ready_all(w, clock)[0]
    w.notified(Notified(pid, busy=True))
    clock.advance(0.7)
    w.notified(Notified(pid, busy=False))
    jobs = w.tally.jobs["w"]
    assert jobs.done == 1 and jobs.total == pytest.approx(0.7)


def test_scale_down_stops_idle_workers_first(tmp_path, clock, effects):
    from workerd.core.events import Notified

    w = wired(tmp_path, clock, effects, NOTIFY.replace('watchdog = "3s"', "").replace("processes = 4",
                                                                                           "processes = 5"))
    s = w.supervisor
    all_pids = ready_all(w, clock)
    busy = all_pids[2:]
    for pid in busy:
        w.notified(Notified(pid, busy=True))
    effects.take()
    s.scale(s.programs["w"], 3)
    assert sorted(signalled(effects.take())) == sorted(all_pids[:2])


def test_a_rolling_restart_replaces_one_process_at_a_time(tmp_path, clock, effects):
    from workerd.core.events import Notified

    w = wired(tmp_path, clock, effects, NOTIFY.replace('watchdog = "3s"', ""))
    s = w.supervisor
    old = ready_all(w, clock)
    effects.take()
    s.restart_programs([s.programs["w"]], rolling=True)
    actions = effects.take()
    for step in range(4):
        spawned = [a for _, _, a in actions if type(a).__name__ == "Spawn"]
        assert len(spawned) == 1, f"step {step}: one new process at a time, got {actions}"
        program = s.programs["w"]
        running = program.running + sum(g.running for g in program.outgoing)
        assert running >= 4, "never fewer running than the count"
        (new,) = [slot.pid for slot in program.slots.values() if slot.state is State.STARTING]
        w.notified(Notified(new, ready=True))  # an old one is stopped, the next new one starts
        actions = effects.take()
        (stopped,) = signalled(actions)
        assert stopped in old
        effects.exit(stopped, success=True, description="exit status 0")
        actions += effects.take()
    assert [a for _, _, a in actions if type(a).__name__ == "Spawn"] == [] and s.programs["w"].outgoing == []
    assert not set(pids(s)) & set(old)


def test_a_rolling_restart_holds_when_a_new_process_fails_to_get_ready(tmp_path, clock, effects):
    w = wired(tmp_path, clock, effects, NOTIFY.replace('watchdog = "3s"', ""))
    s = w.supervisor
    old = ready_all(w, clock)
    effects.take()
    s.restart_programs([s.programs["w"]], rolling=True)
    assert len(effects.spawned()) == 1
    clock.advance(10.1)  # no READY=1 within start_timeout: stopped, a failed start
    (failed,) = signalled(effects.take())
    effects.exit(failed, description="killed by SIGTERM")
    assert s.programs["w"].slots[0].state is State.BACKOFF
    (outgoing,) = s.programs["w"].outgoing
    assert sorted(slot.pid for slot in outgoing.slots.values() if slot.state is State.RUNNING) == sorted(old)
    assert effects.spawned() == [], "the roll holds: no second new process"


def test_restarts_are_counted_by_reason(tmp_path, clock, effects):
    w = wired(tmp_path, clock, effects, ONE + 'restart = "always"\n')
    s = w.supervisor
    program = s.programs["w"]
    clock.advance(1.5)
    effects.exit(program.slots[0].pid)  # a crash after a good run
    effects.exit(program.slots[0].pid)  # dead before start_seconds: a failed start
    clock.advance(10)
    effects.exit(program.slots[1].pid, success=True, description="exit status 0")
    clock.advance(10)
    pid = program.slots[1].pid
    s.deliver(program, 1, LimitExceeded(pid, "memory 70 MiB > 64 MiB"))
    effects.exit(pid, description="killed by SIGTERM")
    clock.advance(10)
    s.restart_programs([program])
    for slot in program.slots.values():
        effects.exit(slot.pid, description="killed by SIGTERM")
    assert w.tally.restarts == {("w", "crash"): 1, ("w", "failed start"): 1, ("w", "exit"): 1, ("w", "limit"): 1,
                                ("w", "manual"): 2}
