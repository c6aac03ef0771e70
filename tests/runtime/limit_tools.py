"""What the limit tests share (test_limits, test_prefork_memory, test_open_files and the
console's): the watcher's sample interval, a worker that grows its memory, a process's
/proc/PID/limits, and a wait for a slot's process to be replaced."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from tests.runtime.conftest import PYTHON, Daemon

#: The watcher samples this often in the limit tests, so a limit fires within a fraction of a second.
SAMPLE = "0.2s"

#: Grows by STEP MiB every 50 ms after DELAY seconds, touching every page, up to CAP MiB,
#: then holds it. Appends its pid to PIDS when given. HOG_IGNORE_TERM=1: ignores SIGTERM;
#: HOG_SETPGRP=1: leaves the worker's process group (staying in its session).
HOG = """\
import os, signal, sys, time
delay, step, cap = float(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
if os.environ.get("HOG_IGNORE_TERM"):
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
if os.environ.get("HOG_SETPGRP"):
    os.setpgrp()
if len(sys.argv) > 4:
    with open(sys.argv[4], "a") as f:
        f.write(f"{os.getpid()}\\n")
time.sleep(delay)
held = []
while len(held) * step < cap:
    held.append(b"x" * (step * 1024 * 1024))
    time.sleep(0.05)
while True:
    time.sleep(1000)
"""


def hog(d: Daemon, delay: float, step: int, cap: int, pids: Path | None = None) -> str:
    """A `command = "..."` value that runs HOG."""
    path = d.dir / "hog.py"
    path.write_text(HOG)
    return f"{PYTHON} {path} {delay} {step} {cap}" + (f" {pids}" if pids is not None else "")


def proc_limits(pid: int) -> dict[str, tuple[str, str]]:
    """/proc/PID/limits as {"Max open files": (soft, hard), ...}."""
    limits = {}
    for line in Path(f"/proc/{pid}/limits").read_text().splitlines()[1:]:
        m = re.match(r"^(Max [a-z ]+?)\s{2,}(\S+)\s+(\S+)", line)
        if m:
            limits[m.group(1)] = (m.group(2), m.group(3))
    return limits


def replaced(d: Daemon, name: str, old: int, timeout: float, what: str) -> tuple[dict[str, Any], set[str]]:
    """Wait until NAME's (only) slot runs a process other than OLD; returns that process
    as status shows it and every state the slot was seen in meanwhile. A process the
    slot's program replaces after a reload (listed as outgoing) is not the slot's."""
    seen: set[str] = set()

    def check(status: dict[str, Any]) -> dict[str, Any] | None:
        (proc,) = [p for p in d.processes(name, None, status) if not p.get("outgoing")]
        seen.add(proc["state"])
        if proc["pid"] not in (None, old) and proc["state"] in ("starting", "running"):
            return proc
        return None

    proc = d.wait_status(check, timeout, what)
    return proc, seen
