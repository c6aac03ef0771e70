"""The console served by a real daemon: the same JSON as workerctl, the live stream, the
log tail, and actions only with the token, from its own origin and address."""

from __future__ import annotations

import http.client
import json
import socket

from tests.console.conftest import PROGRAMS, TOKEN, act, call, check
from tests.helpers import free_port
from tests.runtime.conftest import one_line

#: What moves between two reads of the same status.
VOLATILE = {"uptime", "cpu_percent", "rss", "pss", "open_files", "threads", "tree_processes", "job_age"}


def steady(document: object) -> object:
    """A status document without the values that move on their own."""
    if isinstance(document, dict):
        return {k: steady(v) for k, v in document.items() if k not in VOLATILE}
    if isinstance(document, list):
        return [steady(v) for v in document]
    return document


def test_the_status_and_history_are_workerctl_s_json(daemon) -> None:
    port = free_port()
    d = daemon(PROGRAMS, console=f"127.0.0.1:{port}", console_token=TOKEN)
    d.wait_running("web-mailer", 2)
    page = call(port, "GET", "/api/status")
    assert page.status == 200 and page.headers["content-type"] == "application/json"
    cli = d.ctl("status", "--json")
    assert steady(page.json()) == steady(json.loads(cli.stdout))
    history = call(port, "GET", "/api/history/web-mailer?since=600").json()
    cli_history = json.loads(d.ctl("history", "web-mailer", "--since", "10m", "--json").stdout)
    assert history["program"] == cli_history["program"] == "web-mailer"
    assert history["bound"] == {"points": 3600, "marks": 500}
    assert history["points"] and history["points"][-1][2:] == [2, 2]  # desired, running
    assert call(port, "GET", "/api/history/nope").status == 404


def test_the_page_and_its_assets_come_from_the_daemon_with_a_strict_policy(daemon) -> None:
    port = free_port()
    daemon(PROGRAMS, console=f"127.0.0.1:{port}", console_token=TOKEN).wait_running("web-mailer", 2)
    page = call(port, "GET", "/")
    assert page.status == 200 and b'<script src="/console.js"' in page.body
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert call(port, "GET", "/console.js").headers["content-type"].startswith("text/javascript")
    assert call(port, "GET", "/nope").status == 404


def test_the_log_tail_of_a_program(daemon) -> None:
    port = free_port()
    d = daemon(PROGRAMS, console=f"127.0.0.1:{port}", console_token=TOKEN, log_dir="logs")
    d.wait_running("web-mailer", 2)
    d.wait_until(lambda: call(port, "GET", "/api/logs/web-mailer?lines=5").body.count(b"hello from the mailer") == 2,
                 10, "both processes' first line in the tail")
    assert call(port, "GET", "/api/logs/nope").status == 404


def test_a_public_console_without_a_token_refuses_every_action(daemon) -> None:
    port = free_port()
    d = daemon(PROGRAMS, console=f"127.0.0.1:{port}", console_public=True)
    pids = d.wait_running("web-mailer", 2)
    assert call(port, "GET", "/api/config", token=None).json() == {"actions": False, "public": True}
    reply = act(port, "web-mailer", "restart")
    assert reply.status == 403 and "read-only" in reply.json()["error"]
    assert d.pids("web-mailer") == pids


def test_actions_need_the_token_the_console_s_own_origin_and_json(daemon) -> None:
    port = free_port()
    d = daemon(PROGRAMS, console=f"127.0.0.1:{port}", console_token=TOKEN)
    pids = d.wait_running("web-mailer", 2)
    refused = [
        act(port, "web-mailer", "restart", token=""),
        act(port, "web-mailer", "restart", token=TOKEN[:-1] + "x"),
        act(port, "web-mailer", "restart", Origin="http://evil.example"),
        act(port, "web-mailer", "restart", Content_Type="text/plain"),
        act(port, "web-mailer", "restart", Host=f"evil.example:{port}"),
    ]
    assert [r.status for r in refused] == [401, 401, 403, 403, 403], [r.body for r in refused]
    assert d.pids("web-mailer") == pids
    done = act(port, "web-mailer", "restart", Origin=f"http://127.0.0.1:{port}")
    assert done.status == 200 and done.json() == {"ok": True, "message": "requested"}
    d.wait_until(lambda: len(set(d.pids("web-mailer")) - set(pids)) == 2, 10, "two new processes")
    marks = json.loads(d.ctl("history", "web-mailer", "--json").stdout)["marks"]
    assert [m[1:] for m in marks] == [["restart", "manual: 2 process(es) restarted by hand"]]
    assert "restart: manual: 2 process(es) restarted by hand" in d.ctl("history", "web-mailer").stdout
    scaled = act(port, "web-mailer", "scale", {"count": 3})
    assert scaled.json() == {"ok": True, "message": "web-mailer: pinned to 3"}
    d.wait_running("web-mailer", 3)
    assert act(port, "web-mailer", "scale", {"count": -1}).status == 409
    assert act(port, "web-mailer", "explode").status == 404
    log = d.stderr_text()
    assert "console: restart web-mailer from 127.0.0.1:" in log and "refused: wrong or missing token" in log
    assert TOKEN not in log


def test_a_loopback_console_answers_only_to_loopback_names(daemon) -> None:
    """A page on another site whose name resolves to 127.0.0.1 (DNS rebinding) is refused."""
    port = free_port()
    daemon(PROGRAMS, console=f"127.0.0.1:{port}", console_token=TOKEN).wait_running("web-mailer", 2)
    assert call(port, "GET", "/api/status", Host=f"rebind.example:{port}").status == 403
    assert call(port, "GET", "/api/status", Host=f"localhost:{port}").status == 200
    assert call(port, "GET", "/api/status", Host="127.0.0.1:1").status == 403


def test_the_stream_sends_the_status_at_once_and_again_on_a_change(daemon) -> None:
    port = free_port()
    d = daemon(PROGRAMS, console=f"127.0.0.1:{port}", console_token=TOKEN)
    d.wait_running("web-mailer", 2)
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request("GET", "/api/stream",
                           headers={"Host": f"127.0.0.1:{port}", "Authorization": f"Bearer {TOKEN}"})
        response = connection.getresponse()
        assert response.getheader("Content-Type") == "text/event-stream"
        first = _event(response)
        assert [p["running"] for p in first["status"]["programs"]] == [2]
        assert d.ctl("scale", "web-mailer", "1").returncode == 0
        while True:  # bounded by the connection's 10 s timeout
            update = _event(response)
            if update["status"]["programs"][0]["running"] == 1:
                break
        assert update["points"]["web-mailer"][-1][2:] == [1, 1]
    finally:
        connection.close()


def _event(response: http.client.HTTPResponse) -> dict:
    lines = []
    while True:
        line = response.readline().decode().rstrip("\n")
        if line == "" and lines:
            break
        if line.startswith("data: "):
            lines.append(line[6:])
    return json.loads("".join(lines))


def test_the_console_and_metrics_share_one_address(daemon) -> None:
    port = free_port()
    daemon(PROGRAMS, console=f"127.0.0.1:{port}", metrics=f"127.0.0.1:{port}", console_token=TOKEN) \
        .wait_running("web-mailer", 2)  # the listeners are up (the control socket answers before)
    assert b"workerd_program_desired{program=\"web-mailer\"} 2.0" in call(port, "GET", "/metrics").body
    assert call(port, "GET", "/api/status").status == 200


def test_a_taken_console_address_is_one_line_and_exit_2(daemon) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        d = daemon(PROGRAMS, start=False, console=f"127.0.0.1:{port}", console_token=TOKEN)
        d.start(wait=False)
        assert d.wait_exit(10) == 2
        assert one_line(d.stderr_text()) == f"workerd: cannot serve the console on 127.0.0.1:{port}: " \
                                           "Address already in use"


def test_token_settings_are_checked_at_load(daemon, tmp_path) -> None:
    d = daemon(PROGRAMS, start=False, console="127.0.0.1:1", console_token="short")
    assert one_line(check(d).stderr).endswith("daemon.console_token: must be 16 characters or more, got 5")
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    d.write_config(PROGRAMS, console="127.0.0.1:1", console_token=TOKEN, console_token_file=str(token_file))
    assert one_line(check(d).stderr).endswith("set console_token or console_token_file, not both")
    d.write_config(PROGRAMS, console="127.0.0.1:1", console_token_file=str(tmp_path / "missing"))
    assert "cannot read" in one_line(check(d).stderr)


def test_a_crash_is_marked_in_the_history_with_its_reason(daemon) -> None:
    d = daemon("""
        [programs.crasher]
        command = "sh -c 'sleep 0.3; exit 3'"
        start_seconds = "0s"
        backoff_initial = "0.2s"
    """)
    d.wait_until(lambda: json.loads(d.ctl("history", "crasher", "--json").stdout)["marks"], 10, "a restart mark")
    (mark, *_) = json.loads(d.ctl("history", "crasher", "--json").stdout)["marks"]
    assert mark[1:] == ["restart", "crash: crasher[0]: exit status 3"]


def test_a_port_alone_is_the_loopback_address(tmp_path) -> None:
    from workerd.config.load import load

    for value, expected in (("9809", ("127.0.0.1", 9809)), ('":9809"', ("127.0.0.1", 9809)),
                            ('"9809"', ("127.0.0.1", 9809)), ('"[::1]:9809"', ("::1", 9809)),
                            ('"0.0.0.0:9809"', ("0.0.0.0", 9809))):
        config = tmp_path / "w.toml"
        config.write_text(f'[daemon]\nconsole = {value}\nconsole_public = true\n[programs.w]\ncommand = "sleep 1"\n')
        assert load(config).daemon.console == expected, value


def test_a_limit_restart_is_marked_as_a_limit_with_its_message(daemon) -> None:
    from tests.runtime.limit_tools import SAMPLE, hog, replaced

    d = daemon(start=False)
    d.write_config(f"""
        [programs.hog]
        command = "{hog(d, delay=1.0, step=16, cap=512)}"
        start_seconds = "0.2s"
        stop_timeout = "2s"
        backoff_initial = "5s"

        [programs.hog.limits]
        memory = "64MiB"
    """, sample_interval=SAMPLE)
    d.start()
    (old,) = d.wait_running("hog", 1)
    replaced(d, "hog", old, 10, "the hog restarted for its memory limit")
    (mark, *_) = json.loads(d.ctl("history", "hog", "--json").stdout)["marks"]
    assert mark[1] == "limit" and mark[2].startswith("limit: hog[0]: memory "), mark
    assert mark[2].endswith(" > 64 MiB"), mark
