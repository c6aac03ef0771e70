"""Memory limits on a real prefork tree: a parent touches 200 MiB, then forks four
children. Children that only read it share its pages (RSS summed: ~1 GiB, PSS: ~200
MiB) and are left alone under a 400 MiB limit; children that each write their own
copy (PSS ~1 GiB) get the tree restarted, with PSS named in the reason."""

from __future__ import annotations

import re
from pathlib import Path

from tests.runtime.conftest import PYTHON, Daemon
from tests.runtime.limit_tools import SAMPLE, replaced

MiB = 1024 * 1024

#: argv: read|write, the file to create once every child has done its part.
PREFORK_PY = """\
import os, sys, time
mode, ready = sys.argv[1], sys.argv[2]
size = 200 * 1024 * 1024
buf = bytearray(size)
for i in range(0, size, 4096):
    buf[i] = 1
children = []
for n in range(4):
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        total = 0
        for i in range(0, size, 4096):
            if mode == "write":
                buf[i] = 2
            else:
                total += buf[i]
        os.write(w, b"x")
        while True:
            time.sleep(1)
    os.read(r, 1)
with open(ready, "w") as f:
    f.write("ready")
while True:
    time.sleep(1)
"""


def start_prefork(daemon, tmp_path: Path, mode: str) -> tuple[Daemon, int, Path]:
    """A daemon running the prefork tree as program `celery` under a 400 MiB limit:
    the daemon, the tree's leader pid, and the file the tree writes once forked."""
    script = tmp_path / "prefork.py"
    script.write_text(PREFORK_PY)
    ready = tmp_path / f"{mode}.ready"
    d = daemon(start=False)
    d.write_config(f"""
        [programs.celery]
        command = "{PYTHON} {script} {mode} {ready}"
        start_seconds = "0.2s"
        stop_timeout = "2s"

        [programs.celery.limits]
        memory = "400MiB"
    """, sample_interval=SAMPLE)
    d.start()
    (pid,) = d.wait_running("celery", 1)
    return d, pid, ready


def test_children_that_share_the_parent_s_pages_stay_under_a_pss_limit(daemon, tmp_path: Path) -> None:
    d, pid, ready = start_prefork(daemon, tmp_path, "read")
    d.wait_until(ready.exists, 30, "the four children to have read the parent's pages")
    samples = d.status()["daemon"]["limit_samples"]
    status = d.wait_status(lambda s: s if s["daemon"]["limit_samples"] >= samples + 10 else None, 15,
                           "ten samples past the children's start")
    (proc,) = d.processes("celery", None, status)
    assert (proc["pid"], proc["restarts"], proc["last_limit"]) == (pid, 0, None), proc
    assert proc["tree_processes"] == 5
    assert proc["rss"] > 900 * MiB, proc  # what an RSS sum would have judged
    assert proc["pss"] < 400 * MiB, proc


def test_children_with_their_own_copies_cross_the_limit_by_pss(daemon, tmp_path: Path) -> None:
    d, pid, _ = start_prefork(daemon, tmp_path, "write")
    proc, _ = replaced(d, "celery", pid, 30, "the tree restarted for its memory")
    match = re.fullmatch(r"memory (\d+) MiB PSS > 400 MiB", proc["last_limit"] or "")
    assert match, proc
    assert int(match.group(1)) > 400
