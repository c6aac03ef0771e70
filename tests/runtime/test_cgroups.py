"""cgroup v2 enforcement. This machine has cgroup v1 only, so the real hierarchy can
only show the fallback; the files the daemon writes are checked on a directory tree
laid out like a delegated cgroup (the kernel's side is not exercised here)."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

from workerd.config.model import LimitsConfig
from workerd.process.cgroups import CgroupTree, enforcement, settings

MiB = 1024 * 1024


def test_without_a_v2_hierarchy_the_fallback_says_why(tmp_path: Path) -> None:
    tree, why = CgroupTree.find(tmp_path)
    assert tree is None
    assert why == "no cgroup v2 hierarchy on this box"
    assert enforcement(tree, why) == "rlimits + watcher (no cgroup v2 hierarchy on this box)"


def test_a_v2_hierarchy_without_delegation_is_not_used(tmp_path: Path) -> None:
    (tmp_path / "cgroup.controllers").write_text("cpu memory pids\n")
    tree, why = CgroupTree.find(tmp_path)
    assert tree is None
    assert "no subtree is delegated" in why


def test_this_machine_reports_its_enforcement() -> None:
    tree, why = CgroupTree.find()
    text = enforcement(tree, why)
    assert text.startswith("cgroup v2 (") if tree else text.startswith("rlimits + watcher (")


def test_limits_become_cgroup_files() -> None:
    limits = LimitsConfig(memory=512 * MiB, tasks=64, cpu_percent=50)
    assert settings(limits) == {
        "memory.high": str(512 * MiB),
        "memory.max": str(640 * MiB),
        "pids.max": "64",
        "cpu.max": "50000 100000",
    }
    assert settings(LimitsConfig()) == {
        "memory.high": "max", "memory.max": "max", "pids.max": "max", "cpu.max": "max 100000",
    }


def test_prepare_and_place_write_the_delegated_tree(tmp_path: Path) -> None:
    tree = CgroupTree(tmp_path)
    tree.prepare()
    assert (tmp_path / "daemon" / "cgroup.procs").read_text() == str(os.getpid())
    assert (tmp_path / "cgroup.subtree_control").read_text() == "+memory +pids +cpu"
    tree.place("email", 1, 4242, LimitsConfig(memory=64 * MiB, cpu_percent=150))
    slot = tmp_path / "program-email" / "instance-1"
    assert (slot / "cgroup.procs").read_text() == "4242"
    assert (slot / "memory.high").read_text() == str(64 * MiB)
    assert (slot / "cpu.max").read_text() == "150000 100000"
    assert (tmp_path / "program-email" / "cgroup.subtree_control").read_text() == "+memory +pids +cpu"


def test_a_cgroup_that_cannot_be_written_leaves_the_worker_to_the_fallback(tmp_path: Path, caplog) -> None:
    (tmp_path / "program-email").write_text("not a directory")
    CgroupTree(tmp_path).place("email", 0, 4242, LimitsConfig(memory=64 * MiB))
    assert "cannot use its cgroup" in caplog.text


def test_killing_a_slot_uses_cgroup_kill_where_the_kernel_has_it(tmp_path: Path) -> None:
    slot = tmp_path / "program-email" / "instance-0"
    slot.mkdir(parents=True)
    (slot / "cgroup.kill").write_text("")
    CgroupTree(tmp_path).kill("email", 0)
    assert (slot / "cgroup.kill").read_text() == "1"


def test_killing_a_slot_without_cgroup_kill_signals_every_member(tmp_path: Path) -> None:
    """Everything in the slot's cgroup, even a process that left the worker's session."""
    members = [subprocess.Popen(["sleep", "1000"], start_new_session=True) for _ in range(2)]
    try:
        slot = tmp_path / "program-email" / "instance-0"
        slot.mkdir(parents=True)
        (slot / "cgroup.procs").write_text("".join(f"{p.pid}\n" for p in members))
        CgroupTree(tmp_path).kill("email", 0)
        assert [p.wait(5) for p in members] == [-signal.SIGKILL] * 2
    finally:
        for p in members:
            p.kill()
            p.wait(5)


def test_killing_a_slot_that_has_no_cgroup_does_nothing(tmp_path: Path) -> None:
    CgroupTree(tmp_path).kill("email", 0)  # placing it failed earlier, and that was logged
