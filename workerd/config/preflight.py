"""What the box must offer a program before its workers can start: a working directory
that exists and a command that can be executed with the PATH the worker will get.

The loader checks what the file alone decides (and users, groups, env files); this
checks the files a worker needs, which can appear or vanish at any time. `workerd
check` and a reload refuse a config that fails it, so a typo never replaces working
processes; `workerd start` only warns, because a missing file may yet appear (the
worker's start then fails with the OS error and is retried with backoff, as SPEC
says). The spawner asks the same questions right before each start.
"""

from __future__ import annotations

import os
import shutil
import stat
from collections.abc import Mapping
from pathlib import Path

from workerd.config.model import Config, ProgramConfig
from workerd.config.tables import key_path

__all__ = ["chdir_problem", "exec_problem", "problems"]


def chdir_problem(directory: Path | None) -> str | None:
    """Why a worker could not change into `directory`, as the OS would say it."""
    if directory is None:
        return None
    try:
        mode = os.stat(directory).st_mode
    except OSError as exc:
        return f"chdir {directory}: {exc.strerror}"
    if not stat.S_ISDIR(mode):
        return f"chdir {directory}: Not a directory"
    if not os.access(directory, os.X_OK):
        return f"chdir {directory}: Permission denied"
    return None


def exec_problem(command: str, directory: Path | None, path: str) -> str | None:
    """Why `command` could not be executed from `directory` with `path` as PATH, as the
    exec would say it (a relative command with a '/' is relative to the directory)."""
    if "/" not in command:
        return None if shutil.which(command, path=path) is not None else f"exec {command}: not found in PATH"
    full = Path(command) if os.path.isabs(command) else (directory or Path.cwd()) / command
    if not full.exists():
        return f"exec {command}: No such file or directory"
    if full.is_dir() or not os.access(full, os.X_OK):
        return f"exec {command}: Permission denied"
    return None


def worker_path(program: ProgramConfig, environ: Mapping[str, str]) -> str:
    """The PATH a worker gets: its own `environment`'s, else the daemon's."""
    return program.environment.get("PATH") or environ.get("PATH") or os.defpath


def problems(config: Config, environ: Mapping[str, str] = os.environ) -> list[str]:
    """One line per program whose directory or command is missing, `FILE: KEY: why`."""
    found = []
    for name, program in config.programs.items():
        where = key_path("programs", name)
        problem = chdir_problem(program.directory)
        if problem is not None:
            found.append(f"{config.path}: {where}.directory: {problem}")
            continue
        problem = exec_problem(program.command[0], program.directory, worker_path(program, environ))
        if problem is not None:
            found.append(f"{config.path}: {where}.command: {problem}")
    return found
