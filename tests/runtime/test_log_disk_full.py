"""A full disk under log_dir: whole lines are dropped and counted, never cut or glued.

The disk is real: a 64 KiB tmpfs mounted on log_dir (root only; skipped with the reason
otherwise, except under CI=true where it must work)."""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import free_port, scrape

LINES_BEFORE, LINES_AFTER = 2000, 100
PAD = "x" * 92  # each line is 100 bytes and a newline
WHOLE_LINE = re.compile(rf"^[01]-\d{{5}}-{PAD}$")


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 64 KiB tmpfs, half taken by a file the test deletes to free space again."""
    mount = tmp_path / "logs"
    mount.mkdir()
    why = None
    if os.geteuid() != 0:
        why = "mounting a small tmpfs needs root"
    else:
        result = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mount)],
                                capture_output=True, text=True, timeout=10, check=False)
        if result.returncode != 0:
            why = f"cannot mount a tmpfs: {result.stderr.strip()}"
    if why is not None:
        if os.environ.get("CI") == "true":
            pytest.fail(why)
        pytest.skip(why)
    try:
        (mount / "filler").write_bytes(b"f" * 32 * 1024)
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True, timeout=10, check=False)


def lines_of(path: Path) -> list[str]:
    try:
        return path.read_text().splitlines()
    except FileNotFoundError:
        return []


def dropped(d) -> int:
    program = d.program("w")
    assert program is not None
    return int(program.get("log_lines_dropped", 0))


def test_a_full_disk_drops_whole_lines_counts_them_and_writing_resumes(daemon, tmp_path, small_disk):
    port = free_port()
    d = daemon("", start=False, log_dir=str(small_disk), metrics=f"127.0.0.1:{port}")
    worker = d.script("lines.sh", f"""
        seq -f "$WORKERD_INSTANCE-%05g-{PAD}" 1 {LINES_BEFORE}
        n=0
        while [ ! -e "$D/go" ] && [ $n -lt 3000 ]; do sleep 0.01; n=$((n+1)); done
        seq -f "$WORKERD_INSTANCE-%05g-{PAD}" {LINES_BEFORE + 1} {LINES_BEFORE + LINES_AFTER}
        exec sleep 1000
    """)
    d.write_config(f"""
        [programs.w]
        command = "{worker}"
        processes = 2
        start_seconds = "0s"
    """, log_dir=str(small_disk), metrics=f"127.0.0.1:{port}")
    d.start()
    log = small_disk / "w.log"
    d.wait_until(lambda: len(lines_of(log)) + dropped(d) == 2 * LINES_BEFORE, 15,
                 "every line of the first burst written or counted as dropped")
    assert dropped(d) > 0, "the disk was full: some lines were dropped"
    stopped = [line for line in d.stderr_text().splitlines() if "cannot write" in line]
    assert len(stopped) == 1 and str(log) in stopped[0] and "No space left" in stopped[0], stopped

    (small_disk / "filler").unlink()
    (tmp_path / "go").touch()
    total = 2 * (LINES_BEFORE + LINES_AFTER)
    d.wait_until(lambda: len(lines_of(log)) + dropped(d) == total, 15, "the second burst written")
    lines = lines_of(log)
    assert [line for line in lines if not WHOLE_LINE.match(line)] == [], "a cut or glued line"
    for instance in "01":
        numbers = [int(line[2:7]) for line in lines if line[0] == instance]
        assert numbers == sorted(numbers), f"instance {instance}: lines out of order"
        assert numbers[-LINES_AFTER:] == list(range(LINES_BEFORE + 1, LINES_BEFORE + LINES_AFTER + 1)), \
            f"instance {instance}: lines lost after space came back"
    resumed = [line for line in d.stderr_text().splitlines() if "writing" in line and "again" in line]
    assert len(resumed) == 1 and str(log) in resumed[0], resumed
    assert f"{dropped(d)} line(s) dropped" in resumed[0]
    assert f"{dropped(d)} log line(s) dropped" in d.ctl("status").stdout
    assert f'workerd_log_lines_dropped_total{{program="w"}} {float(dropped(d))}' in scrape(port)
    assert "Traceback" not in d.stderr_text()
