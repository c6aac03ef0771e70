"""Open files: the loader refuses a config whose worst case needs more descriptors in
the daemon than its hard RLIMIT_NOFILE allows (1,000 programs with a log_dir under
systemd's soft limit of 1024: 2 ran, 998 crash-looped), and an `open_files` above
the hard limit that the daemon cannot raise (no CAP_SYS_RESOURCE): that was a crash
loop showing "exit status 1" (prlimit's refusal)."""

from __future__ import annotations

import resource
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from workerd.config.descriptors import (
    FIXED,
    PER_LOG_FILE,
    PER_SOURCE,
    PER_WORKER,
    FdBox,
    descriptors_problem,
    open_files_problem,
)
from workerd.config.model import Config

Loads = Callable[[str], Config]


def programs(count: int, processes: int = 1) -> str:
    return "".join(f'[programs.p{n}]\ncommand = "sleep 1"\nprocesses = {processes}\n' for n in range(count))


def test_the_count_per_worker_log_file_and_source(loads: Loads) -> None:
    config = loads('[daemon]\nlog_dir = "logs"\n' + programs(3, processes=2) + '[programs.q]\ncommand = "sleep 1"\n'
                   '[programs.q.autoscale]\nsource = "redis"\nkeys = ["jobs"]\nmax = 5\n')
    needed = FIXED + 4 * PER_LOG_FILE + (3 * 2 + 5) * PER_WORKER + PER_SOURCE
    assert descriptors_problem(config, FdBox(hard=needed, nr_open=1 << 20, can_raise=False)) is None
    problem = descriptors_problem(config, FdBox(hard=needed - 1, nr_open=1 << 20, can_raise=False))
    assert problem is not None
    key, why = problem
    assert key == "programs"
    assert why.startswith(f"the workers need up to {needed} open files in the daemon (")
    assert why.endswith(f"over its hard RLIMIT_NOFILE ({needed - 1}): raise LimitNOFILE= (systemd) or "
                        "`ulimit -Hn`, or run fewer processes")


def test_an_unlimited_hard_limit_never_binds(loads: Loads) -> None:
    config = loads(programs(50, processes=20))
    assert descriptors_problem(config, FdBox(hard=None, nr_open=None, can_raise=False)) is None


def test_open_files_above_the_hard_limit_needs_cap_sys_resource() -> None:
    box = FdBox(hard=4096, nr_open=1 << 20, can_raise=False)
    assert open_files_problem(4096, box) is None
    assert open_files_problem(4097, box) == (
        "4097 is over the daemon's hard RLIMIT_NOFILE (4096), which only a daemon with CAP_SYS_RESOURCE "
        "may raise for its workers")
    assert open_files_problem(4097, FdBox(hard=4096, nr_open=1 << 20, can_raise=True)) is None
    assert open_files_problem(2_000_000, FdBox(hard=4096, nr_open=1 << 20, can_raise=True)) == (
        "2000000 is over the kernel's fs.nr_open (1048576), the most any process may open")


def check(workdir: Path, text: str, hard: int, prefix: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:
    (workdir / "workers.toml").write_text(text)

    def limited() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 256), hard))

    return subprocess.run([*prefix, sys.executable, "-m", "workerd", "check", "-c", "workers.toml"], cwd=workdir,
                          capture_output=True, text=True, timeout=30, preexec_fn=limited)


def test_workerd_check_refuses_too_many_workers_for_the_hard_limit_in_one_line(workdir: Path) -> None:
    text = '[daemon]\nlog_dir = "logs"\n' + programs(300)
    refused = check(workdir, text, hard=512)
    assert refused.returncode == 2, refused
    assert refused.stderr.count("\n") == 1, refused.stderr
    assert refused.stderr.startswith("workerd: workers.toml: programs: the workers need up to ")
    assert "over its hard RLIMIT_NOFILE (512)" in refused.stderr
    accepted = check(workdir, text, hard=4096)
    assert accepted.returncode == 0, accepted.stderr


@pytest.mark.skipif(shutil.which("setpriv") is None, reason="setpriv (util-linux) is not installed")
def test_workerd_check_refuses_open_files_it_could_not_grant(workdir: Path) -> None:
    """Without CAP_SYS_RESOURCE (dropped from the bounding set, so root loses it too)."""
    text = '[programs.w]\ncommand = "sleep 1"\n[programs.w.limits]\nopen_files = 8192\n'
    without = ("setpriv", "--inh-caps=-sys_resource", "--bounding-set=-sys_resource", "--")
    refused = check(workdir, text, hard=4096, prefix=without)
    assert refused.returncode == 2, refused
    assert refused.stderr == ("workerd: workers.toml: programs.w.limits.open_files: 8192 is over the daemon's "
                              "hard RLIMIT_NOFILE (4096), which only a daemon with CAP_SYS_RESOURCE may raise "
                              "for its workers\n")
    assert check(workdir, text.replace("8192", "4096"), hard=4096, prefix=without).returncode == 0
