"""A reload reads the files the config names without ever blocking the daemon: an
env_file replaced by a FIFO froze it (status timed out, a killed worker was not
restarted). Now the reload is refused in one line and the daemon keeps serving."""

from __future__ import annotations

import os
import signal

from tests.runtime.conftest import one_line


def test_an_env_file_that_became_a_fifo_refuses_the_reload_and_the_daemon_keeps_serving(daemon, tmp_path):
    env = tmp_path / "app.env"
    env.write_text("A=1\n")
    d = daemon(f"""
        [programs.w]
        command = "sleep 1000"
        env_file = "{env}"
        start_seconds = "0s"
        backoff_initial = "0s"
    """)
    (pid,) = d.wait_running("w", 1)
    env.unlink()
    os.mkfifo(env)

    result = d.ctl("reload", timeout=10)
    assert result.returncode == 1, result
    line = one_line(result.stderr)
    assert f"cannot read {env}: not a regular file (a FIFO)" in line, line
    d.send(signal.SIGHUP)
    d.wait_until(lambda: "reload refused" in d.stderr_text(), 5, "the SIGHUP reload refused")

    os.kill(pid, signal.SIGKILL)
    d.wait_until(lambda: d.pids("w") not in ([], [pid]), 10, "the killed worker restarted")
