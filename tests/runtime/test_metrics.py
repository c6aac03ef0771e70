"""Prometheus /metrics from the real daemon: the same facts as `workerctl status`."""

from __future__ import annotations

import os
import signal
import socket
import time
import urllib.error
import urllib.request

from tests.helpers import free_port, scrape


def test_metrics_show_programs_processes_and_restarts(daemon):
    port = free_port()
    d = daemon("""
        [programs.w]
        command = "sleep 1000"
        processes = 2
        start_seconds = "0s"
    """, metrics=f"127.0.0.1:{port}")
    pids = d.wait_running("w", 2)
    text = scrape(port)
    assert 'workerd_program_desired{program="w"} 2.0' in text
    assert 'workerd_program_running{program="w"} 2.0' in text
    assert 'workerd_process_state{instance="0",program="w",state="running"} 1.0' in text
    assert 'workerd_process_rss_bytes{instance="1",program="w"}' in text
    d.track(*pids)
    os.kill(pids[0], signal.SIGKILL)
    d.wait_until(lambda: 'workerd_process_restarts_total{instance="0",program="w"} 1.0' in scrape(port),
                 10, "the restart to be counted")
    assert 'workerd_restarts_total{program="w",reason="crash"} 1.0' in scrape(port)


def test_metrics_show_the_daemon_s_own_process(daemon):
    port = free_port()
    daemon("""
        [programs.w]
        command = "sleep 1000"
    """, metrics=f"127.0.0.1:{port}")
    text = scrape(port)
    for name in ("process_resident_memory_bytes", "process_cpu_seconds_total", "process_open_fds"):
        value = next((line.split()[1] for line in text.splitlines() if line.startswith(name + " ")), None)
        assert value is not None and float(value) > 0, f"{name} missing or 0 in:\n{text}"
    start = next(line for line in text.splitlines() if line.startswith("process_start_time_seconds "))
    assert 0 <= time.time() - float(start.split()[1]) < 120  # this daemon's, started by this test


def test_an_unknown_path_is_404_and_the_daemon_keeps_serving(daemon):
    port = free_port()
    d = daemon("""
        [programs.w]
        command = "sleep 1000"
        start_seconds = "0s"
    """, metrics=f"127.0.0.1:{port}")
    d.wait_running("w", 1)
    try:
        urllib.request.urlopen(f"http://127.0.0.1:{port}/nope", timeout=5)
        raise AssertionError("expected a 404")
    except urllib.error.HTTPError as exc:
        assert exc.code == 404
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(b"garbage\r\n\r\n")
    assert "workerd_program_desired" in scrape(port)
    assert d.status()["programs"][0]["running"] == 1


def test_a_taken_metrics_port_is_one_error_line_and_exit_2(daemon):
    """A config that names a busy address is the user's to fix, like any bad value."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        d = daemon("""
            [programs.w]
            command = "sleep 1000"
        """, start=False, metrics=f"127.0.0.1:{port}")
        d.start(wait=False)
        assert d.wait_exit(10) == 2
        err = d.stderr_text().strip().splitlines()
        assert any("cannot serve metrics on" in line for line in err), err
        assert "Traceback" not in d.stderr_text()


def test_a_status_call_does_not_reset_the_cpu_since_the_previous_scrape(daemon, tmp_path):
    port = free_port()
    d = daemon(start=False)
    worker = d.script("burst.sh", """
        while [ ! -f "$D/go" ]; do sleep 0.01; done
        end=$(($(date +%s%N) + 800000000))
        while [ "$(date +%s%N)" -lt "$end" ]; do :; done
        touch "$D/done"
        exec sleep 1000
    """)
    d.write_config(f"""
        [programs.w]
        command = "{worker}"
        start_seconds = "0s"
    """, metrics=f"127.0.0.1:{port}")
    d.start()
    d.wait_running("w", 1)

    def cpu(text: str) -> float:
        (line,) = [x for x in text.splitlines() if x.startswith('workerd_process_cpu_percent{instance="0"')]
        return float(line.split()[-1])

    scrape(port)  # the scrape's baseline
    (tmp_path / "go").touch()
    d.wait_until(lambda: (tmp_path / "done").exists(), 10, "the worker's 0.8 s of CPU")
    d.status()  # workerctl's own baseline: it must not move the scrape's
    assert cpu(scrape(port)) > 20, "the burst since the previous scrape"
