"""`[daemon] max_processes` against the real daemon: `workerctl scale` over it is refused
in one line and changes nothing, and a reload that pinned counts would push over it keeps
the running config. (The loader's checks are in tests/config/test_bounds.py.)"""

from __future__ import annotations

import time

from tests.runtime.conftest import DaemonFactory, one_line

TWO_SLEEPERS = """
    [programs.w]
    command = "sleep 1000"
    start_seconds = "0s"

    [programs.v]
    command = "sleep 1000"
    start_seconds = "0s"
"""


def test_scale_far_over_max_processes_is_one_line_and_the_daemon_keeps_answering(daemon: DaemonFactory) -> None:
    d = daemon(TWO_SLEEPERS, max_processes=4)
    (pid,) = d.wait_running("w", 1)
    asked = time.monotonic()
    result = d.ctl("scale", "w", "1000000", timeout=10)
    assert result.returncode == 1, result
    assert one_line(result.stderr) == "workerctl: w: 1000000 is over [daemon] max_processes (4)"
    d.status(timeout=1)
    assert time.monotonic() - asked < 5, "the daemon answers at once"
    program = d.program("w")
    assert program is not None and (program["pinned"], program["desired"]) == (None, 1), d.describe()
    assert d.wait_running("w", 1) == [pid]


def test_scale_over_max_processes_in_total_is_refused(daemon: DaemonFactory) -> None:
    d = daemon(TWO_SLEEPERS, max_processes=4)
    d.wait_running("v", 1)
    fits = d.ctl("scale", "w", "3")
    assert fits.returncode == 0, fits.stderr
    d.wait_running("w", 3)
    over = d.ctl("scale", "v", "2")
    assert over.returncode == 1, over
    assert one_line(over.stderr) == "workerctl: v: 2 makes 5 processes in all, over [daemon] max_processes (4)"
    back = d.ctl("scale", "w", "auto")
    assert back.returncode == 0, back.stderr
    now_fits = d.ctl("scale", "v", "2")
    assert now_fits.returncode == 0, now_fits.stderr
    d.wait_running("v", 2)
    d.wait_running("w", 1)


def test_a_reload_that_pinned_counts_would_push_over_max_processes_is_refused(daemon: DaemonFactory) -> None:
    d = daemon(TWO_SLEEPERS, max_processes=4)
    (v,) = d.wait_running("v", 1)
    assert d.ctl("scale", "w", "3").returncode == 0
    d.wait_running("w", 3)
    d.write_config(TWO_SLEEPERS + "    processes = 2\n", max_processes=4)  # v: 2, fine without the pin
    result = d.ctl("reload")
    assert result.returncode == 1, result
    line = one_line(result.stderr)
    assert "w is pinned to 3" in line and "5 processes in all, over [daemon] max_processes (4)" in line, line
    assert line.endswith("(the running config stays in force)"), line
    assert d.wait_running("v", 1) == [v]
    assert d.ctl("scale", "w", "auto").returncode == 0
    again = d.ctl("reload")
    assert again.returncode == 0, again.stderr
    d.wait_running("v", 2)


def test_a_count_that_is_not_a_plain_number_is_a_usage_error(daemon: DaemonFactory) -> None:
    """`isdigit()` lets "²" and 5000-digit numbers through; int() then raised a traceback."""
    d = daemon(TWO_SLEEPERS, start=False)
    for count in ("²", "9" * 5000):
        result = d.ctl("scale", "w", count)
        assert result.returncode == 2, result
        line = one_line(result.stderr)
        assert line.startswith("workerctl: Invalid value for 'COUNT|auto': "), result.stderr[:200]
        assert "a number >= 0 or 'auto'" in line and "Traceback" not in line
