"""One daemon per log_dir: two daemons writing (and rotating) the same files lost lines."""

from __future__ import annotations

from tests.runtime.conftest import one_line

PROGRAM = """
    [programs.w]
    command = "sleep 1000"
    start_seconds = "0s"
"""


def refused(d) -> str:
    """Start d, which must refuse at once; returns its one error line."""
    d.start(wait=False)
    assert d.wait_exit(15) != 0
    return one_line(d.stderr_text())


def test_a_second_daemon_on_the_same_log_dir_refuses_to_start(daemon, tmp_path):
    logs = tmp_path / "logs"
    first = daemon(PROGRAM, name="first", log_dir=str(logs))
    second = daemon(PROGRAM, name="second", start=False, log_dir=str(logs))
    line = refused(second)
    assert str(logs) in line and f"pid {first.pid}" in line, line
    assert not second.socket.exists(), "the refused daemon leaves no socket behind"
    first.wait_running("w", 1)

    first.ctl("shutdown")
    assert first.wait_exit(15) == 0
    second.stderr_path.unlink()
    second.start()  # the lock went with the first daemon
    second.wait_running("w", 1)


def test_a_reload_takes_the_new_log_dir_before_it_lets_the_old_one_go(daemon, tmp_path):
    a, b, taken = tmp_path / "a", tmp_path / "b", tmp_path / "taken"
    d = daemon(PROGRAM, log_dir=str(a))
    other = daemon(PROGRAM, name="other", log_dir=str(taken))

    d.write_config(PROGRAM, log_dir=str(taken))
    result = d.ctl("reload")
    assert result.returncode == 1
    assert str(taken) in one_line(result.stderr) and f"pid {other.pid}" in result.stderr
    late = daemon(PROGRAM, name="late", start=False, log_dir=str(a))
    assert str(a) in refused(late), "after a refused reload the old log_dir is still held"

    d.write_config(PROGRAM, log_dir=str(b))
    assert d.ctl("reload").returncode == 0
    late.stderr_path.unlink()
    late.start()  # a is free now
    again = daemon(PROGRAM, name="again", start=False, log_dir=str(b))
    assert f"pid {d.pid}" in refused(again), "b is held by the reloaded daemon"
