"""Reload: only what changed is started, stopped or restarted; an invalid file keeps
the old config; SIGHUP does the same as `workerctl reload`."""

from __future__ import annotations

import re
import signal
import time

from tests.runtime.conftest import TOML_POS, alive, gone, one_line, read_pids

BEFORE = """
    [defaults]
    start_seconds = "0s"
    stop_timeout = "2s"

    [programs.same]
    command = "sleep 1001"

    [programs.cmd]
    command = "sleep 1002"

    [programs.grow]
    command = "sleep 1003"

    [programs.gone]
    command = "sleep 1004"
"""

AFTER = """
    [defaults]
    start_seconds = "0s"
    stop_timeout = "2s"

    [programs.same]
    command = "sleep 1001"

    [programs.cmd]
    command = "sleep 2002"

    [programs.grow]
    command = "sleep 1003"
    processes = 3

    [programs.new]
    command = "sleep 1005"
"""


def test_reload_applies_only_the_difference(daemon):
    d = daemon(BEFORE)
    same, cmd, grow, removed = (d.wait_running(name, 1)[0] for name in ("same", "cmd", "grow", "gone"))

    d.write_config(AFTER)
    result = d.ctl("reload", timeout=30)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert "changed: cmd (new processes start; each old one stops once a new one runs)" in lines
    assert "scaled: grow 1 -> 3" in lines
    assert "removed: gone" in lines
    assert "added: new" in lines
    assert not [line for line in lines if "same" in line], f"an unchanged program is not mentioned: {lines}"
    assert len(lines) == 4, lines

    # unchanged: same process
    assert d.wait_running("same", 1) == [same] and alive(same)
    # changed command: a new process running the new command; the old one gone
    (new_cmd,) = d.wait_running("cmd", 1)
    assert new_cmd != cmd
    d.wait_exec(new_cmd, ["sleep", "2002"])
    d.wait_until(lambda: gone(cmd), 5, f"old cmd process {cmd} gone")
    # 1 -> 3: the old process is kept, two more start
    grown = d.wait_running("grow", 3)
    assert grow in grown and alive(grow)
    assert len(set(grown)) == 3
    # removed: stopped and no longer listed
    d.wait_status(lambda s: d.program("gone", s) is None, 5, "'gone' removed from the status")
    d.wait_until(lambda: gone(removed), 5, f"removed program's process {removed} gone")
    # added: started
    (added,) = d.wait_running("new", 1)
    d.wait_exec(added, ["sleep", "1005"])

    # The same file again: nothing to do.
    again = d.ctl("reload")
    assert again.returncode == 0, again.stderr
    assert again.stdout.strip() == "no changes"
    assert d.wait_running("same", 1) == [same]
    assert d.wait_running("cmd", 1) == [new_cmd]

    # 3 -> 1: scaled down, the oldest process is the one kept.
    d.write_config(AFTER.replace("processes = 3", "processes = 1"))
    down = d.ctl("reload")
    assert down.returncode == 0, down.stderr
    assert down.stdout.splitlines() == ["scaled: grow 3 -> 1"]
    assert d.wait_running("grow", 1) == [grow]
    for pid in grown:
        if pid != grow:
            d.wait_until(lambda pid=pid: gone(pid), 5, f"scaled-away process {pid} gone")


def test_an_invalid_file_is_refused_and_the_old_config_stays(daemon):
    d = daemon("""
        [programs.w]
        command = "sleep 1000"
        processes = 2
        start_seconds = "0s"
    """)
    pids = d.wait_running("w", 2)

    # A syntax error: file:line:col on one line, exit 1.
    d.config_path.write_text(d.config_path.read_text() + "\n[programs.broken\ncommand = 'x'\n")
    result = d.ctl("reload")
    assert result.returncode == 1, result
    line = one_line(result.stderr)
    assert TOML_POS.search(line), f"no file:line:col in {line!r}"
    assert d.config_path.name in line
    assert d.wait_running("w", 2) == pids and all(alive(p) for p in pids)

    # A bad key: the key path and a suggestion, exit 1.
    d.write_config("""
        [programs.w]
        command = "sleep 1000"
        procesess = 3
        start_seconds = "0s"
    """)
    result = d.ctl("reload")
    assert result.returncode == 1, result
    line = one_line(result.stderr)
    assert "programs.w.procesess" in line and "processes" in line, line
    assert d.wait_running("w", 2) == pids

    # Fixed: applies.
    d.write_config("""
        [programs.w]
        command = "sleep 1000"
        processes = 3
        start_seconds = "0s"
    """)
    result = d.ctl("reload")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["scaled: w 2 -> 3"]
    assert set(pids) <= set(d.wait_running("w", 3))


def test_sighup_reloads(daemon):
    d = daemon("""
        [programs.w]
        command = "sleep 1000"
        start_seconds = "0s"
    """)
    (pid,) = d.wait_running("w", 1)
    d.write_config("""
        [programs.w]
        command = "sleep 1000"
        start_seconds = "0s"

        [programs.extra]
        command = "sleep 1000"
        processes = 2
        start_seconds = "0s"
    """)
    d.send(signal.SIGHUP)
    d.wait_running("extra", 2, timeout=5)
    assert d.wait_running("w", 1) == [pid]

    # An invalid file on SIGHUP: logged, nothing changes, the daemon keeps running.
    d.config_path.write_text("[programs.w\n")
    d.send(signal.SIGHUP)
    d.wait_until(lambda: re.search(r"reload.*\.toml:\d+:\d+", d.stderr_text()), 5,
                 "the refused reload logged with file:line:col")
    assert d.running()
    assert d.wait_running("w", 1) == [pid]
    assert len(d.wait_running("extra", 2)) == 2


def test_a_program_re_added_while_its_old_process_is_stopping_leaves_no_orphan(daemon, tmp_path):
    """Remove a program whose worker ignores SIGTERM, then add it back before that worker
    is gone: the old worker must still be killed after its stop_timeout."""
    d = daemon(start=False)
    stubborn = d.script("stubborn.sh", """
        trap '' TERM
        echo $$ >> "$D/pids"
        exec sleep 1000
    """)
    with_it = f"""
        [programs.keep]
        command = "sleep 1000"
        start_seconds = "0s"

        [programs.stubborn]
        command = "{stubborn}"
        start_seconds = "0s"
        stop_timeout = "1s"
    """
    without_it = """
        [programs.keep]
        command = "sleep 1000"
        start_seconds = "0s"
    """
    d.write_config(with_it)
    d.start()
    (old,) = d.wait_running("stubborn", 1)
    d.wait_until(lambda: read_pids(tmp_path / "pids") == [old], 5, "the trap set")
    d.write_config(without_it)
    assert d.ctl("reload").stdout.splitlines() == ["removed: stubborn"]
    d.write_config(with_it)
    assert d.ctl("reload").stdout.splitlines() == ["added: stubborn"]
    (new,) = d.wait_running("stubborn", 1)
    assert new != old
    # stop_timeout = 1s: the removed worker is SIGKILLed well within 5 s.
    d.wait_until(lambda: gone(old), 5, f"the removed worker {old} killed after its stop_timeout")
    assert d.wait_running("stubborn", 1) == [new]


def _kept(d, name, status):
    """Pids of the program's outgoing (previous config's) processes still running."""
    return sorted(p["pid"] for p in d.processes(name, "running", status) if p.get("outgoing"))


def test_old_processes_stop_only_once_new_ones_run(daemon):
    d = daemon("""
        [programs.w]
        command = "sleep 1001"
        processes = 2
        start_seconds = "0s"
        stop_timeout = "2s"
    """)
    old = d.wait_running("w", 2)
    d.write_config("""
        [programs.w]
        command = "sleep 2002"
        processes = 2
        start_seconds = "1s"
        stop_timeout = "2s"
    """)
    result = d.ctl("reload")
    assert result.returncode == 0, result.stderr
    # While the new processes are starting (start_seconds = 1s), the old ones still serve.
    status = d.status()
    starting = [p for p in d.processes("w", "starting", status) if not p.get("outgoing")]
    assert len(starting) == 2, d.describe()
    assert _kept(d, "w", status) == sorted(old) and all(alive(p) for p in old)
    assert "new config; 2 old process(es) kept until new ones run" in d.ctl("status").stdout
    # Once they run, the old ones are stopped and the program is back to 2.
    new = d.wait_running("w", 2, timeout=10)
    assert not set(new) & set(old)
    for pid in old:
        d.wait_until(lambda pid=pid: gone(pid), 5, f"old process {pid} gone")
    for pid in new:
        d.wait_exec(pid, ["sleep", "2002"])
    d.wait_until(lambda: "previous config have all been replaced" in d.stderr_text(), 5, "the handover logged")


def test_a_changed_program_that_cannot_start_keeps_the_old_processes(daemon):
    d = daemon("""
        [programs.w]
        command = "sleep 1001"
        processes = 2
        start_seconds = "0s"
    """)
    old = d.wait_running("w", 2)
    broken = """
        [programs.w]
        command = "echo cannot connect; exit 1"
        shell = true
        processes = 2
        start_seconds = "0.5s"
        backoff_initial = "0.2s"
    """
    d.write_config(broken)
    assert d.ctl("reload").returncode == 0
    # The new config crash-loops; the old processes keep running, and status says so.
    d.wait_status(lambda s: [p for p in d.processes("w", None, s) if not p.get("outgoing")
                             and p["restarts"] >= 2 and p["last_exit"] == "exit status 1"], 10,
                  "the new processes failing")
    status = d.status()
    assert _kept(d, "w", status) == sorted(old) and all(alive(p) for p in old)
    assert d.program("w", status)["running"] == 2
    table = d.ctl("status").stdout
    assert "0 old" in table and "kept until new ones run" in table and "backoff" in table, table

    # Fixed by another reload: the old processes are replaced by working ones.
    d.write_config("""
        [programs.w]
        command = "sleep 3003"
        processes = 2
        start_seconds = "0s"
    """)
    assert d.ctl("reload").returncode == 0
    new = d.wait_running("w", 2)
    assert not set(new) & set(old)
    for pid in old:
        d.wait_until(lambda pid=pid: gone(pid), 5, f"old process {pid} gone")


def test_a_reload_back_to_the_config_that_runs_keeps_its_processes(daemon):
    """A runs; a reload to B (which cannot start) keeps A's processes; a reload back to A
    makes them the program again: the same pids, no new process, B's stopped."""
    a = """
        [programs.w]
        command = "sleep 1001"
        processes = 2
        start_seconds = "0s"
        backoff_initial = "0.2s"
    """
    d = daemon(a)
    old = d.wait_running("w", 2)
    d.write_config(a.replace('command = "sleep 1001"', 'command = "false"').replace('"0s"', '"0.5s"'))
    assert d.ctl("reload").returncode == 0
    d.wait_status(lambda s: [p for p in d.processes("w", None, s) if not p.get("outgoing") and p["restarts"] >= 1],
                  10, "the new processes failing")
    d.write_config(a)
    result = d.ctl("reload")
    assert result.returncode == 0, result.stderr
    assert "back to" in result.stdout, result.stdout
    status = d.wait_status(lambda s: not [p for p in d.processes("w", None, s) if p.get("outgoing")] and s,
                           10, "no outgoing process left")
    assert sorted(p["pid"] for p in d.processes("w", None, status)) == sorted(old)
    assert all(alive(p) for p in old)
    time.sleep(1)  # and nothing replaces them later
    assert sorted(p["pid"] for p in d.processes("w", None)) == sorted(old), d.describe()


def test_a_reload_to_a_missing_directory_or_command_is_refused(daemon, tmp_path):
    good = """
        [programs.w]
        command = "sleep 1000"
        start_seconds = "0s"
    """
    d = daemon(good)
    (pid,) = d.wait_running("w", 1)
    for bad, expected in (
        ('directory = "/nonexistent-workerd-dir"', "programs.w.directory: chdir /nonexistent-workerd-dir: "
                                                   "No such file or directory"),
        ('command = "no-such-workerd-command --x"', "programs.w.command: exec no-such-workerd-command: "
                                                    "not found in PATH"),
        (f'command = "{tmp_path}/missing.sh"', f"programs.w.command: exec {tmp_path}/missing.sh: "
                                               "No such file or directory"),
    ):
        d.write_config(good.replace('start_seconds = "0s"', 'start_seconds = "0s"\n' + bad)
                       if bad.startswith("directory") else good.replace('command = "sleep 1000"', bad))
        result = d.ctl("reload")
        assert result.returncode == 1, result
        line = one_line(result.stderr)
        assert expected in line and "the running config stays in force" in line, line
        assert d.wait_running("w", 1) == [pid] and alive(pid)


def test_a_reload_that_moves_the_logs_keeps_the_running_workers_writing(daemon, tmp_path):
    programs = """
        [programs.w]
        command = "sh -c 'i=0; while :; do echo line $i; i=$((i+1)); sleep 0.05; done'"
        start_seconds = "0s"
    """
    d = daemon(programs, log_dir=str(tmp_path / "old"))
    (pid,) = d.wait_running("w", 1)
    d.wait_until(lambda: "line 2" in (tmp_path / "old" / "w.log").read_text(), 5, "lines in the old log")
    d.write_config(programs, log_dir=str(tmp_path / "new"))
    result = d.ctl("reload")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["daemon: log settings changed; logs reopened"]
    new_log = tmp_path / "new" / "w.log"
    d.wait_until(lambda: new_log.exists() and new_log.read_text().count("\n") >= 3, 5, "lines in the new log")
    assert d.pids("w") == [pid], "the worker was not restarted"
    # every line went to one file or the other, none lost between them
    numbers = [int(line.split()[1]) for f in ("old", "new")
               for line in (tmp_path / f / "w.log").read_text().splitlines()]
    assert numbers == list(range(len(numbers)))
