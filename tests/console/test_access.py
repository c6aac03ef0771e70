"""Who the console answers: every read and action needs the token (unless the config says
console_public), a config with a console and no token is refused, a loopback listener
(the console's and /metrics) answers only to loopback names, a bad number is a 400, and
live streams are capped per client (a local user) and in total."""

from __future__ import annotations

import http.client
import os
import subprocess
import textwrap

import pytest

from tests.console.conftest import PROGRAMS, TOKEN, act, call, check
from tests.helpers import free_port
from tests.runtime.conftest import one_line

READS = ("/api/status", "/api/history/web-mailer", "/api/logs/web-mailer", "/api/config", "/api/stream")


def open_stream(port: int, token: str | None = TOKEN) -> http.client.HTTPResponse:
    """A live stream opened with TOKEN (only its head is read; it holds the connection
    until closed)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    headers = {"Host": f"127.0.0.1:{port}"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    connection.request("GET", "/api/stream", headers=headers)
    return connection.getresponse()


def stream_status(port: int, token: str | None = TOKEN) -> int:
    with open_stream(port, token) as response:
        return response.status


def test_every_read_needs_the_token(daemon) -> None:
    port = free_port()
    d = daemon(PROGRAMS, console=f"127.0.0.1:{port}", console_token=TOKEN, log_dir="logs")
    d.wait_running("web-mailer", 2)
    d.wait_until(lambda: b"hello from the mailer" in call(port, "GET", "/api/logs/web-mailer").body, 10,
                 "the mailer's output in the tail")
    for path in READS:
        for token in (None, "", TOKEN[:-1] + "x", TOKEN.upper()):
            if path == "/api/stream":
                assert stream_status(port, token) == 401, token
                continue
            reply = call(port, "GET", path, token=token)
            assert reply.status == 401, (path, token, reply.body)
            assert b"mailer" not in reply.body and "bearer" in reply.headers["www-authenticate"].lower()
        assert call(port, "GET", f"{path}?token={TOKEN}", token=None).status == 401  # never in a URL
    for path in READS[:-1]:
        assert call(port, "GET", path).status == 200, path
    assert stream_status(port) == 200
    page = call(port, "GET", "/", token=None)  # the page holds no data: it asks for the token
    assert page.status == 200 and b"mailer" not in page.body
    assert act(port, "web-mailer", "restart", token=None).status == 401


def test_a_console_without_a_token_is_refused_at_check_start_and_reload(daemon) -> None:
    d = daemon(PROGRAMS, start=False, console="127.0.0.1:1")
    refusal = one_line(check(d).stderr)
    assert "daemon.console" in refusal and "console_token" in refusal and "console_public" in refusal
    d.start(wait=False)
    assert d.wait_exit(10) == 2
    assert one_line(d.stderr_text()).endswith(refusal.removeprefix("workerd: "))
    port = free_port()
    d.write_config(PROGRAMS, console=f"127.0.0.1:{port}", console_token=TOKEN)
    d.start()
    d.wait_running("web-mailer", 2)
    d.write_config(PROGRAMS, console=f"127.0.0.1:{port}")
    reload = d.ctl("reload")
    assert reload.returncode == 1 and "console_public" in one_line(reload.stderr)
    assert call(port, "GET", "/api/status", token=None).status == 401


def test_a_public_console_reads_without_the_token_and_acts_only_with_it(daemon) -> None:
    port = free_port()
    d = daemon(PROGRAMS, console=f"127.0.0.1:{port}", console_token=TOKEN, console_public=True)
    pids = d.wait_running("web-mailer", 2)
    assert check(d).returncode == 0
    assert call(port, "GET", "/api/status", token=None).status == 200
    assert call(port, "GET", "/api/config", token=None).json() == {"actions": True, "public": True}
    assert stream_status(port, None) == 200
    assert act(port, "web-mailer", "restart", token=None).status == 401
    assert d.pids("web-mailer") == pids
    assert act(port, "web-mailer", "restart").status == 200


@pytest.mark.parametrize("where", ["the console's address", "its own address"])
def test_a_loopback_metrics_answers_only_to_loopback_names(daemon, where: str) -> None:
    """DNS rebinding: a page at evil.example, resolved to 127.0.0.1, must not read /metrics."""
    port = free_port()
    console = f"127.0.0.1:{port}" if where == "the console's address" else f"127.0.0.1:{free_port()}"
    d = daemon(PROGRAMS, console=console, console_token=TOKEN, metrics=f"127.0.0.1:{port}")
    d.wait_running("web-mailer", 2)  # the listeners are up (the control socket answers before)
    for host in ("evil.example", f"evil.example:{port}", f"127.0.0.1.evil.example:{port}", f"127.0.0.1:{port}x"):
        reply = call(port, "GET", "/metrics", token=None, Host=host)
        assert reply.status == 403 and b"workerd_" not in reply.body, host
    for host in (f"127.0.0.1:{port}", f"localhost:{port}"):
        assert call(port, "GET", "/metrics", token=None, Host=host).status == 200, host


def test_the_host_check_reads_ports_and_brackets() -> None:
    from workerd.web.http import addressed_to

    ok = [("localhost:9809", 9809), ("127.0.0.1:9809", 9809), ("127.3.2.1:9809", 9809), ("[::1]:9809", 9809),
          ("localhost", 80), ("[::1]", 80)]
    refused = [("localhost", 9809), ("127.0.0.1:80", 9809), ("evil.example:9809", 9809), ("", 9809),
               ("[::1]x:9809", 9809), ("::1:9809", 9809), ("127.0.0.1:9809:9809", 9809)]
    assert [addressed_to(host, port) for host, port in ok] == [True] * len(ok)
    assert [addressed_to(host, port) for host, port in refused] == [False] * len(refused)


def test_a_bad_number_is_a_400_never_a_traceback(daemon) -> None:
    port = free_port()
    d = daemon(PROGRAMS, console=f"127.0.0.1:{port}", console_token=TOKEN, log_dir="logs")
    d.wait_running("web-mailer", 2)
    for query in ("lines=inf", "lines=-inf", "lines=nan", "lines=abc", "lines=", "lines=0", "lines=-3",
                  "lines=1.5", "lines=1e3", "lines=1001", "lines=" + "9" * 5000):
        reply = call(port, "GET", f"/api/logs/web-mailer?{query}")
        assert reply.status == 400 and "lines" in reply.json()["error"], (query, reply.body)
    for query in ("since=inf", "since=nan", "since=abc", "since=0", "since=-5", "since="):
        reply = call(port, "GET", f"/api/history/web-mailer?{query}")
        assert reply.status == 400 and "since" in reply.json()["error"], (query, reply.body)
    assert call(port, "GET", "/api/logs/web-mailer?lines=1000").status == 200
    assert call(port, "GET", "/api/history/web-mailer?since=2.5").status == 200
    assert "Traceback" not in d.stderr_text()


HOLDER = textwrap.dedent("""
    import http.client, sys
    port, token, count = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
    held = []
    for _ in range(count):
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        c.request("GET", "/api/stream", headers={"Host": f"127.0.0.1:{port}", "Authorization": "Bearer " + token})
        held.append(c.getresponse())  # it holds the connection
        print(held[-1].status, flush=True)
    sys.stdin.read()
""")


def hold_streams(uid: int, port: int, count: int) -> tuple[subprocess.Popen[str], list[int]]:
    """A process of user UID that opens COUNT streams and holds them until its stdin closes;
    returns it and the status each stream got."""
    proc = subprocess.Popen(["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups",
                             "/usr/bin/python3", "-c", HOLDER, str(port), TOKEN, str(count)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd="/")
    assert proc.stdout is not None
    return proc, [int(proc.stdout.readline() or 0) for _ in range(count)]


@pytest.mark.skipif(os.geteuid() != 0, reason="opens streams as other users (setpriv): needs root")
def test_live_streams_are_capped_per_local_user_and_in_total(daemon) -> None:
    """16 idle streams from `nobody` locked the owner's page out."""
    from workerd.web.console import MAX_STREAMS
    from workerd.web.console import STREAMS_PER_CLIENT as PER

    port = free_port()
    d = daemon(PROGRAMS, console=f"127.0.0.1:{port}", console_token=TOKEN)
    holders: list[subprocess.Popen[str]] = []
    page = None
    try:
        proc, statuses = hold_streams(65534, port, PER + 1)  # nobody
        holders.append(proc)
        assert statuses == [200] * PER + [429]
        page = open_stream(port)  # the owner's page still gets its stream
        assert page.status == 200
        left, uid = MAX_STREAMS - PER - 1, 60001
        while left:
            proc, statuses = hold_streams(uid, port, min(PER, left))
            holders.append(proc)
            assert statuses == [200] * min(PER, left), uid
            left, uid = left - min(PER, left), uid + 1
        assert stream_status(port) == 429  # all MAX_STREAMS are open
        holders.pop().communicate("", timeout=10)
        d.wait_until(lambda: stream_status(port) == 200, 10, "a stream's place freed when its client left")
    finally:
        if page is not None:
            page.close()
        for proc in holders:
            proc.kill()
            proc.wait(10)


@pytest.mark.parametrize("listen, connect", [("127.0.0.1", "127.0.0.1"), ("::1", "::1"), ("::", "127.0.0.1")])
def test_the_owner_of_a_local_connection_is_its_user(listen: str, connect: str) -> None:
    import socket

    from workerd.web.tcp_owner import tcp_owner

    with socket.socket(socket.AF_INET6 if ":" in listen else socket.AF_INET) as server:
        server.bind((listen, 0))
        server.listen()
        with socket.create_connection((connect, server.getsockname()[1]), timeout=5):
            accepted, peer = server.accept()
            with accepted:
                assert tcp_owner(peer[:2], accepted.getsockname()[:2]) == os.geteuid()
    assert tcp_owner(("192.0.2.1", 5000), ("127.0.0.1", 9809)) is None  # not a socket of this host
