"""Per-process settings: {program} and {instance} filled into each process's command and
environment, and programs that wait for `workerctl start` (autostart = false)."""

from __future__ import annotations

from tests.runtime.conftest import cmdline_of, environ_of

NAMED = """
    [programs.celery]
    command = "sleep 10{instance:2}"
    processes = 3
    start_seconds = "0s"
    stop_timeout = "2s"
    environment = { WORKER_NAME = "{program}-w{instance}@%h", SHELL_VAR = "${program}" }
"""


def test_each_process_gets_its_own_number_in_its_command_and_environment(daemon) -> None:
    d = daemon(NAMED)
    pids = d.wait_running("celery", 3)
    for instance, pid in enumerate(pids):
        d.wait_exec(pid, ["sleep", f"10{instance:02}"])
        env = environ_of(pid)
        assert env["WORKER_NAME"] == f"celery-w{instance}@%h"
        assert env["SHELL_VAR"] == "${program}"
        assert env["WORKERD_INSTANCE"] == str(instance)


def test_a_reload_that_changes_a_placeholder_replaces_the_processes(daemon) -> None:
    d = daemon(NAMED)
    old = d.wait_running("celery", 3)
    d.write_config(NAMED.replace("sleep 10{instance:2}", "sleep 20{instance:3}"))
    assert d.ctl("reload").returncode == 0
    d.wait_until(lambda: sorted(cmdline_of(p)[1] for p in d.pids("celery") if p not in old and cmdline_of(p))
                 == ["20000", "20001", "20002"], 15, "the new commands")


WAITING = """
    [programs.manual]
    command = "sleep 1011"
    processes = 2
    autostart = false
    start_seconds = "0s"
    stop_timeout = "2s"

    [programs.auto]
    command = "sleep 1012"
    start_seconds = "0s"
    stop_timeout = "2s"
"""


def test_autostart_false_waits_for_workerctl_start(daemon) -> None:
    d = daemon(WAITING)
    d.wait_running("auto", 1)
    manual = d.program("manual")
    assert manual is not None and manual["enabled"] is False and manual["running"] == 0, manual
    assert d.ctl("start", "manual").returncode == 0
    d.wait_running("manual", 2)


def test_a_reload_that_sets_autostart_false_leaves_a_running_program_running(daemon) -> None:
    d = daemon(WAITING.replace("autostart = false", "autostart = true"))
    pids = d.wait_running("manual", 2)
    d.write_config(WAITING)
    result = d.ctl("reload")
    assert result.returncode == 0, result.stderr
    assert "changed: manual (autostart = false: applies when the daemon starts)" in result.stdout.splitlines()
    assert d.wait_running("manual", 2) == pids
