"""The daemon's wiring (`workerd.daemon.wire`) driven by a FakeClock: the timeline's
points and systemd's STATUS= follow the supervisor's feed on the Clock, no sleep."""

from __future__ import annotations

import socket

from tests.runtime.fakes import FakeClock, RecordingEffects, config
from workerd.daemon import wire
from workerd.runtime.service import STATUS_DELAY, ServiceManager, status_line
from workerd.runtime.timeline import RECORD_DELAY

TWO = """
[programs.w]
command = "sleep 1"
processes = 2
start_seconds = "1s"
"""


def received(sock: socket.socket) -> list[str]:
    """The datagrams sent to the fake systemd so far."""
    messages = []
    while True:
        try:
            messages.append(sock.recv(4096).decode())
        except BlockingIOError:
            return messages


def test_status_follows_changes_once_per_delay_and_the_timeline_takes_a_point(tmp_path):
    systemd = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    systemd.bind(str(tmp_path / "notify"))
    systemd.setblocking(False)
    clock, effects = FakeClock(), RecordingEffects()
    service = ServiceManager(str(tmp_path / "notify"), None)
    w = wire(config(tmp_path, TWO), clock, effects, service, rand=lambda: 0.5)
    w.supervisor.start()
    service.follow(clock, lambda: status_line(w.supervisor.programs.values()))
    assert received(systemd) == ["READY=1\nSTATUS=0/2 running, 2 starting"]
    clock.advance(RECORD_DELAY)
    (point,) = w.timeline.history("w").points(0)
    assert (point.at, point.desired, point.running) == (clock.now(), 2, 0)
    clock.advance(1.0)  # start_seconds: both running, one STATUS= for the two changes
    assert received(systemd) == []
    clock.advance(STATUS_DELAY)
    assert received(systemd) == ["STATUS=2/2 running"]
    clock.advance(60)
    assert received(systemd) == [], "nothing changed, nothing sent"
    service.close()
    systemd.close()


FOUR_NOTIFY = """
[programs.w]
command = "sleep 1"
processes = 4
ready = "notify"
start_timeout = "10s"
"""


def test_status_says_the_count_workerctl_status_says_during_a_rolling_restart(tmp_path):
    """STATUS= said "0/1 running" (the new generation's processes, of the one a roll may
    start now) while `workerctl status` said 4 of 4: both count every generation's running
    processes against the program's target."""
    from workerd.core.events import Notified
    from workerd.runtime.status import take

    clock, effects = FakeClock(), RecordingEffects()
    w = wire(config(tmp_path, FOUR_NOTIFY), clock, effects, ServiceManager(None, None), rand=lambda: 0.5)
    w.supervisor.start()
    for slot in list(w.supervisor.programs["w"].slots.values()):
        w.notified(Notified(slot.pid, ready=True))
    (program,) = w.supervisor.restart_programs([w.supervisor.programs["w"]], rolling=True)
    (shown,) = take([program], clock.now(), {}, {}, {}, w.tally).programs
    assert (shown.running, shown.desired) == (4, 4)
    assert status_line([program]).startswith(f"{shown.running}/{shown.desired} running")
