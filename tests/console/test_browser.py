"""The console in a real browser (headless Chromium over the DevTools protocol) against a
live daemon: the page shows nothing until the token is entered, then the table lists every
program, each program has a chart, and the autoscaled one's queue-depth line follows a
depth the test drives through the SQLite source over the live stream."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest

from tests.console.browser import browser, chromium
from tests.console.conftest import TOKEN
from tests.helpers import free_port

pytestmark = pytest.mark.skipif(chromium() is None and os.environ.get("CI") != "true",
                                reason="chromium is not installed (Debian's chromium package; .ci/run installs it)")

PROGRAMS = """
    [programs.steady]
    command = "sleep 1000"
    processes = 2
    start_seconds = "0s"
    stop_timeout = "2s"

    [programs.mailer]
    command = "sleep 1001"
    start_seconds = "0s"
    stop_timeout = "2s"

    [programs.mailer.autoscale]
    source = "sqlite"
    path = "{db}"
    query = "SELECT count(*) FROM jobs"
    min = 0
    max = 3
    per_worker = 2
    interval = "500ms"
    scale_down_delay = "0s"
"""
DEPTH = "document.querySelector('svg[data-program=mailer] polyline[data-series=depth]')?.dataset.values || ''"
ROWS = "document.querySelectorAll('#status tbody tr').length"


def enter_token(page, token: str) -> None:
    """Type TOKEN into the page's form and send it, as a user would."""
    page.wait_for("document.getElementById('login')?.hidden === false", 20, "the token form")
    page.evaluate(f"document.querySelector('#login input').value = {token!r}; "
                  "document.getElementById('login').requestSubmit()")


def set_depth(db: Path, depth: int) -> None:
    with sqlite3.connect(db) as connection:
        connection.execute("DELETE FROM jobs")
        connection.executemany("INSERT INTO jobs DEFAULT VALUES", [()] * depth)


def test_the_page_lists_every_program_and_charts_the_depth_it_is_driven_to(daemon, tmp_path: Path) -> None:
    db = tmp_path / "jobs.db"
    with sqlite3.connect(db) as connection:
        connection.execute("CREATE TABLE jobs (id INTEGER PRIMARY KEY)")
    port = free_port()
    d = daemon(PROGRAMS.replace("{db}", str(db)), console=f"127.0.0.1:{port}", console_token=TOKEN)
    d.wait_running("steady", 2)
    with browser(f"http://127.0.0.1:{port}/", tmp_path / "profile") as page:
        enter_token(page, "a-wrong-token-0123456789")
        page.wait_for("document.getElementById('login-why').innerText.startsWith('Wrong token')", 20,
                      "the wrong token refused")
        assert page.evaluate(ROWS) == 0 and "steady" not in page.evaluate("document.body.innerText")
        enter_token(page, TOKEN)
        page.wait_for(f"{ROWS} === 2", 20, "the status table")
        rows = page.evaluate("[...document.querySelectorAll('#status tbody tr')].map(r => r.dataset.program)")
        assert rows == ["steady", "steady"]  # mailer is at 0 processes: no row, a summary line
        summary = page.evaluate("document.querySelector('#summary').innerText")
        assert "steady: 2/2 running" in summary and "mailer: 0/0 running (autoscale sqlite: depth 0" in summary
        charts = page.evaluate("[...document.querySelectorAll('svg[data-program]')].map(s => s.dataset.program)")
        assert charts == ["steady", "mailer"]
        assert page.evaluate("document.querySelector('svg[data-program=steady] polyline[data-series=depth]')") \
            is None
        for depth in (6, 2, 0):
            set_depth(db, depth)
            page.wait_for(f"({DEPTH}).split(',').pop() === '{depth}'", 20, f"the depth line reaching {depth}")
        values = [int(v) for v in page.evaluate(DEPTH).split(",")]
        assert _in_order(values, [0, 6, 2, 0]), values
        page.wait_for("document.querySelectorAll('#status tbody tr[data-program=mailer]').length === 0", 20,
                      "the mailer scaled back to 0")
        assert "Actions are on" in page.evaluate("document.getElementById('mode').innerText")
        assert page.evaluate("document.querySelectorAll('#summary button[data-action=restart]').length") == 2
        assert TOKEN not in page.evaluate("document.cookie + location.href")
        page.screenshot(tmp_path / "console.png")
        page.evaluate("window.old = true; location.reload()")  # the same tab: the token is not asked again
        page.wait_for(f"!window.old && document.getElementById('live')?.innerText === 'live' && {ROWS} === 2",
                      20, "the table and the stream after a reload")
        assert page.evaluate("document.getElementById('login').hidden")
    assert (tmp_path / "console.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def _in_order(values: list[int], wanted: list[int]) -> bool:
    """WANTED appears in VALUES as a subsequence."""
    it = iter(values)
    return all(any(v == w for v in it) for w in wanted)
