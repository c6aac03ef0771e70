"""Open files, with a real daemon under a low soft limit (as systemd starts a service:
soft 1024, hard far higher). With 1,000 programs and a log_dir only 2 ran and 998
crash-looped: the daemon never raised its soft RLIMIT_NOFILE. Here, bounded: 300
programs under soft 256 / hard 4096 all run, and each worker gets the soft limit the
daemon was started with, not the daemon's raised one."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.runtime.conftest import one_line
from tests.runtime.limit_tools import proc_limits

PRLIMIT = "prlimit"
PROGRAMS = 300


def start_limited(d, soft: int, hard: int) -> subprocess.Popen[bytes]:
    """`workerd start` under the given RLIMIT_NOFILE, as d's process (its teardown stops it)."""
    with open(d.stderr_path, "ab") as err:
        d.proc = subprocess.Popen(
            [PRLIMIT, f"--nofile={soft}:{hard}", "--", sys.executable, "-m", "workerd", "start", "-c",
             str(d.config_path)],
            stdin=subprocess.DEVNULL, stdout=err, stderr=err, cwd=d.dir, env=d.env(), start_new_session=True)
    return d.proc


def many_sleepers(count: int) -> str:
    return "[defaults]\nstart_seconds = \"0s\"\n\n" + "".join(
        f'[programs.s{n}]\ncommand = "sleep 1000"\n' for n in range(count))


def test_300_programs_with_a_log_dir_all_run_under_a_soft_limit_of_256(daemon, tmp_path: Path) -> None:
    d = daemon(many_sleepers(PROGRAMS), start=False, log_dir=str(tmp_path / "logs"))
    start_limited(d, 256, 4096)
    d.wait_ready(60)

    def all_running(status) -> bool:
        return sum(1 for p in status["programs"] for w in p["processes"] if w["state"] == "running") == PROGRAMS

    d.wait_status(all_running, 90, f"all {PROGRAMS} programs running")
    assert proc_limits(d.pid)["Max open files"] == ("4096", "4096"), "the daemon raised its soft limit"
    worker = d.pids("s0")[0]
    d.wait_exec(worker, ["sleep", "1000"])
    assert proc_limits(worker)["Max open files"] == ("256", "4096"), "a worker gets the soft limit back"
    assert "Too many open files" not in d.stderr_text()


def test_a_config_that_needs_more_than_the_hard_limit_is_refused_at_start(daemon, tmp_path: Path) -> None:
    d = daemon(many_sleepers(PROGRAMS), start=False, log_dir=str(tmp_path / "logs"))
    proc = start_limited(d, 256, 512)
    assert proc.wait(30) == 2
    line = one_line(d.stderr_text())
    assert "programs: the workers need up to " in line and "over its hard RLIMIT_NOFILE (512)" in line, line
