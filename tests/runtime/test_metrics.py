"""Prometheus /metrics from the real daemon: the same facts as `workerctl status`."""

from __future__ import annotations

import os
import signal
import socket
import urllib.error
import urllib.request


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as reply:
        assert reply.status == 200
        return reply.read().decode()


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


def test_a_taken_metrics_port_is_one_error_line_and_exit_1(daemon):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        d = daemon("""
            [programs.w]
            command = "sleep 1000"
        """, start=False, metrics=f"127.0.0.1:{port}")
        d.start(wait=False)
        assert d.wait_exit(10) == 1
        err = d.stderr_text().strip().splitlines()
        assert any("cannot serve metrics on" in line for line in err), err
        assert "Traceback" not in d.stderr_text()
