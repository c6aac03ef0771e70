"""Talking to workers, end to end: real workers send sd_notify datagrams to the real
daemon's NOTIFY_SOCKET (through the `sdnotify` library, as an app would, or a raw
socket), and the daemon's readiness, watchdog, busy/idle, STATUS and rolling restarts
follow. What runs is read from the OS where it matters, not from workerd's status."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import struct
import time
from pathlib import Path

import pytest

from tests.helpers import free_port, scrape
from tests.runtime.conftest import PYTHON, alive, gone, read_pids

#: A worker in Python that reads what to say from its argv: `ready-after SECONDS`,
#: `status TEXT`, `pings N` (then silence), `busy`, and writes its pid when READY is sent.
WORKER = r"""
import os, sys, time
import sdnotify

n = sdnotify.SystemdNotifier()
args = sys.argv[1:]
d = os.environ["D"]
opts = dict(zip(args[::2], args[1::2]))
time.sleep(float(opts.get("ready-after", "0")))
if opts.get("ready", "yes") == "yes":
    n.notify("READY=1" + ("\nSTATUS=" + opts["status"] if "status" in opts else ""))
    with open(os.path.join(d, "ready"), "a") as f:
        f.write(f"{os.getpid()}\n")
if "busy" in opts and int(os.environ["WORKERD_INSTANCE"]) in {int(i) for i in opts["busy"].split(",")}:
    n.notify("BUSY=1")
for _ in range(int(opts.get("pings", "0"))):
    n.notify("WATCHDOG=1")
    time.sleep(0.2)
time.sleep(1000)
"""


def write_worker(d, tmp_path: Path) -> str:
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    return f"{PYTHON} {script}"


def notify_program(d, tmp_path: Path, args: str, extra: str = "", processes: int = 1) -> str:
    return f"""
        [programs.w]
        command = "{write_worker(d, tmp_path)} {args}"
        processes = {processes}
        ready = "notify"
        start_timeout = "5s"
        stop_timeout = "2s"
        backoff_initial = "0.2s"
        environment = {{ D = "{tmp_path}" }}
        {extra}
    """


def test_a_worker_counts_as_running_only_once_it_says_ready(daemon, tmp_path):
    d = daemon(start=False)
    d.write_config(notify_program(d, tmp_path, "ready-after 1.0 status warming-up-done"))
    started = time.monotonic()
    d.start()
    (pid,) = d.wait_running("w", 1, timeout=10)
    assert time.monotonic() - started >= 0.9, "running before READY=1"
    assert read_pids(tmp_path / "ready") == [pid]
    (proc,) = d.processes("w")
    assert proc["status_text"] == "warming-up-done"
    assert "warming-up-done" in d.ctl("status").stdout
    # workerctl start waits for READY=1 too
    assert d.ctl("stop", "w").returncode == 0
    t0 = time.monotonic()
    result = d.ctl("start", "w")
    assert result.returncode == 0, result.stderr
    assert time.monotonic() - t0 >= 0.9, "workerctl start answered before READY=1"


def test_no_ready_within_start_timeout_is_a_failed_start(daemon, tmp_path):
    d = daemon(start=False)
    d.write_config(notify_program(d, tmp_path, "ready no").replace('start_timeout = "5s"', 'start_timeout = "0.5s"'))
    d.start()
    (proc,) = d.wait_status(lambda s: [p for p in d.processes("w", None, s) if p["restarts"] >= 1], 10,
                            "a failed start for want of READY=1")
    assert proc["state"] in ("backoff", "starting")
    assert proc["last_exit"] == "no READY=1 within start_timeout (500ms)", proc
    assert "no READY=1 within start_timeout (500ms)" in d.stderr_text()
    result = d.ctl("start", "w")
    assert result.returncode == 1 and "start_timeout" in result.stderr


def test_a_worker_that_stops_pinging_is_restarted_for_the_watchdog(daemon, tmp_path):
    port = free_port()
    d = daemon(start=False)
    d.write_config(notify_program(d, tmp_path, "pings 3", 'watchdog = "1s"'), metrics=f"127.0.0.1:{port}")
    d.start()
    (first,) = d.wait_running("w", 1)
    (proc,) = d.wait_status(lambda s: [p for p in d.processes("w", None, s)
                                       if p["pid"] not in (None, first) and p["state"] == "running"], 10,
                            "a new worker after the hang")
    assert proc["restarts"] == 1
    d.wait_until(lambda: gone(first), 5, "the hung worker gone")
    assert "watchdog: no WATCHDOG=1 for 1.0s" in d.stderr_text()
    assert proc["last_exit"] == "watchdog: no WATCHDOG=1 for 1.0s", "not the exit of the stop that followed"
    assert 'workerd_forced_stops_total{cause="watchdog",program="w"} 1.0' in scrape(port)


def test_a_stalled_daemon_reads_the_pings_it_missed_before_judging_the_watchdog(daemon, tmp_path):
    """SIGSTOP the daemon past the watchdog of 10 healthy workers: on SIGCONT the expired
    deadlines and the pings sent meanwhile are all due. The socket holds only a few
    datagrams (net.unix.max_dgram_qlen): the other workers wait in send() until the
    daemon reads, and their pings must count before any deadline does."""
    d = daemon(start=False)
    d.write_config(notify_program(d, tmp_path, "pings 100000", 'watchdog = "1s"', processes=10))
    d.start()
    pids = d.wait_running("w", 10, timeout=20)
    os.kill(d.pid, signal.SIGSTOP)
    try:
        time.sleep(3)
    finally:
        os.kill(d.pid, signal.SIGCONT)
    time.sleep(1.5)  # past the watchdog again: healthy workers are still pinging
    procs = sorted(d.processes("w", None), key=lambda p: p["instance"])
    assert [(p["pid"], p["state"], p["restarts"]) for p in procs] == [(pid, "running", 0) for pid in pids]
    assert "watchdog" not in d.stderr_text()


def test_scale_down_stops_idle_workers_before_busy_ones(daemon, tmp_path):
    d = daemon(start=False)
    d.write_config(notify_program(d, tmp_path, "busy 0,2,4", processes=5))
    d.start()
    pids = d.wait_running("w", 5)
    d.wait_status(lambda s: sum(p["busy"] for p in d.processes("w", None, s)) == 3, 5, "3 busy workers")
    assert d.ctl("scale", "w", "3").returncode == 0
    idle = [pids[1], pids[3]]
    for pid in idle:
        d.wait_until(lambda pid=pid: gone(pid), 5, f"idle worker {pid} stopped")
    assert all(alive(pids[i]) for i in (0, 2, 4)), "busy workers kept"
    table = d.ctl("status").stdout
    assert "busy" in table


def test_a_rolling_restart_never_has_fewer_ready_workers_than_its_count(daemon, tmp_path):
    d = daemon(start=False)
    d.write_config(notify_program(d, tmp_path, "ready-after 0.3", processes=4))
    d.start()
    old = d.wait_running("w", 4)

    def ready_alive() -> int:
        return sum(1 for pid in set(read_pids(tmp_path / "ready")) if alive(pid))

    lowest = ready_alive()
    restart = d.ctl_async("restart", "--rolling", "w")
    while restart.poll() is None:
        lowest = min(lowest, ready_alive())
        time.sleep(0.01)
    assert restart.returncode == 0, restart.stderr.read()
    new = d.wait_running("w", 4)
    assert not set(new) & set(old)
    assert lowest >= 4, f"only {lowest} ready workers at one point of the roll"


def test_foreign_and_oversized_datagrams_are_dropped_and_counted(daemon, tmp_path):
    d = daemon(start=False)
    d.write_config(notify_program(d, tmp_path, ""))
    d.start()
    d.wait_running("w", 1)
    path = str(d.socket) + ".notify"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
        s.sendto(b"READY=1", path)  # the test process is no worker
        s.sendto(b"STATUS=" + b"x" * 10_000, path)
    notify = d.wait_status(lambda s: s["daemon"]["notify"]["dropped"].get("oversized") and s["daemon"]["notify"], 5,
                           "both datagrams dropped")
    assert notify["dropped"] == {"foreign": 1, "oversized": 1}, json.dumps(notify)
    assert d.running()
    assert os.stat(path).st_mode & 0o777 == 0o666


#: Sends READY=1, then BARRIER=1 with the write end of a pipe (as sd_notify_barrier(3)
#: does), and records whether the daemon closed it: the read end then sees POLLHUP.
BARRIER_WORKER = r"""
import os, select, socket, sys
path, d = os.environ["NOTIFY_SOCKET"], os.environ["D"]
with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
    s.sendto(b"READY=1", path)
    r, w = os.pipe()
    s.sendmsg([b"BARRIER=1"], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, w.to_bytes(4, sys.byteorder))], 0, path)
    os.close(w)
    poller = select.poll()
    poller.register(r, select.POLLHUP)
    answered = bool(poller.poll(5000))
with open(os.path.join(d, "barrier"), "w") as f:
    f.write("answered" if answered else "no answer")
os.execvp("sleep", ["sleep", "1000"])
"""


def barrier_program(command: str, tmp_path: Path) -> str:
    return f"""
        [programs.w]
        command = "{command}"
        ready = "notify"
        start_timeout = "5s"
        stop_timeout = "2s"
        environment = {{ D = "{tmp_path}" }}
    """


def assert_barrier_answered_quietly(d, tmp_path: Path) -> None:
    d.wait_running("w", 1)
    answer = d.wait_until(lambda: (tmp_path / "barrier").exists() and (tmp_path / "barrier").read_text().strip(), 10,
                          "the worker's barrier answered or timed out")
    assert answer == "answered", "the daemon kept the barrier's descriptor open"
    notify = d.status()["daemon"]["notify"]
    assert notify["dropped"] == {}, json.dumps(notify)
    assert "dropping" not in d.stderr_text()


def test_a_barrier_is_answered_by_closing_its_descriptor(daemon, tmp_path):
    script = tmp_path / "barrier.py"
    script.write_text(BARRIER_WORKER)
    d = daemon(barrier_program(f"{PYTHON} {script}", tmp_path))
    assert_barrier_answered_quietly(d, tmp_path)


@pytest.mark.skipif(shutil.which("systemd-notify") is None, reason="no systemd-notify binary")
def test_systemd_notify_ready_is_understood_barrier_and_all(daemon, tmp_path):
    """`systemd-notify --ready` sends READY=1, then BARRIER=1 with a descriptor, and waits
    (up to 5 s) for it to be closed; it fails if it never is."""
    d = daemon(start=False)
    worker = d.script("notify.sh", """
        systemd-notify --ready --status=warm
        echo $? > "$D/rc"
        if [ "$(cat "$D/rc")" = 0 ]; then echo answered > "$D/barrier"; else echo "no answer" > "$D/barrier"; fi
        exec sleep 1000
    """)
    d.write_config(barrier_program(worker, tmp_path))
    t0 = time.monotonic()
    d.start()
    assert_barrier_answered_quietly(d, tmp_path)
    assert time.monotonic() - t0 < 4, "systemd-notify waited for its barrier"
    (proc,) = d.processes("w")
    assert proc["status_text"] == "warm"


def test_a_root_process_claiming_a_workers_pid_for_another_user_is_refused(daemon, tmp_path):
    """Root (CAP_SYS_ADMIN) may put any pid in a datagram's credentials: the test, not in
    the worker's session, claims the pid of a worker that runs as `nobody`, with its own
    uid 0 (as `systemd-notify --pid` does). The credentials do not match that process."""
    d = daemon("""
        [programs.w]
        command = "sleep 1000"
        user = "nobody"
        start_seconds = "0s"
    """)
    (pid,) = d.wait_running("w", 1)
    path = str(d.socket) + ".notify"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
        s.sendmsg([b"STATUS=spoofed"], [(socket.SOL_SOCKET, socket.SCM_CREDENTIALS, struct.pack("3i", pid, 0, 0))],
                  0, path)
    notify = d.wait_status(lambda s: s["daemon"]["notify"]["dropped"] and s["daemon"]["notify"], 5,
                           "the datagram dropped")
    assert notify["dropped"] == {"foreign": 1}, json.dumps(notify)
    (proc,) = d.processes("w")
    assert proc["status_text"] != "spoofed"
