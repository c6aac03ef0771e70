"""What a worker needs from the box (its directory, its command), checked before it
starts: `workerd check` refuses a config that lacks them, one line per program."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from workerd.config.load import load
from workerd.config.preflight import chdir_problem, exec_problem, problems


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "workers.toml"
    path.write_text(text)
    return path


def test_a_good_program_has_no_problem(tmp_path):
    config = load(write(tmp_path, f'[programs.a]\ncommand = "sleep 1"\ndirectory = "{tmp_path}"\n'))
    assert problems(config) == []


def test_missing_directory_and_commands_are_named_by_key(tmp_path):
    script = tmp_path / "not-executable.sh"
    script.write_text("#!/bin/sh\n")
    script.chmod(0o644)
    path = write(tmp_path, f"""
[programs.nodir]
command = "sleep 1"
directory = "{tmp_path}/missing"

[programs.nocmd]
command = "definitely-not-a-workerd-command"

[programs.noexec]
command = "./not-executable.sh"
directory = "{tmp_path}"

[programs.shell]
command = "anything at all | wc"
shell = true
""")
    assert problems(load(path)) == [
        f"{path}: programs.nodir.directory: chdir {tmp_path}/missing: No such file or directory",
        f"{path}: programs.nocmd.command: exec definitely-not-a-workerd-command: not found in PATH",
        f"{path}: programs.noexec.command: exec ./not-executable.sh: Permission denied",
    ]


def test_the_worker_path_is_the_one_its_environment_sets(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    tool = bin_dir / "app-worker"
    tool.write_text("#!/bin/sh\n")
    tool.chmod(0o755)
    found = f'[programs.a]\ncommand = "app-worker"\nenvironment = {{ PATH = "{bin_dir}" }}\n'
    assert problems(load(write(tmp_path, found))) == []
    assert problems(load(write(tmp_path, '[programs.a]\ncommand = "app-worker"\n')), {"PATH": "/usr/bin"}) == [
        f"{tmp_path / 'workers.toml'}: programs.a.command: exec app-worker: not found in PATH"]


def test_a_file_where_a_directory_should_be(tmp_path):
    afile = tmp_path / "file"
    afile.write_text("")
    assert chdir_problem(afile) == f"chdir {afile}: Not a directory"
    assert chdir_problem(None) is None
    assert exec_problem(str(tmp_path), None, os.defpath) == f"exec {tmp_path}: Permission denied"


def test_workerd_check_refuses_with_one_line_per_program(tmp_path):
    path = write(tmp_path, '[programs.a]\ncommand = "no-such-workerd-cmd"\n[programs.b]\ncommand = "sleep 1"\n'
                           f'directory = "{tmp_path}/nope"\n')
    result = subprocess.run([sys.executable, "-m", "workerd", "check", "-c", str(path)], capture_output=True,
                            text=True, timeout=30, check=False)
    assert result.returncode == 2, result
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        f"workerd: {path}: programs.a.command: exec no-such-workerd-cmd: not found in PATH",
        f"workerd: {path}: programs.b.directory: chdir {tmp_path}/nope: No such file or directory",
    ]
