"""supervisord's log keys -> [daemon] log_dir, log_max_bytes and log_backups.

supervisord names a file per program and stream; workerd has one directory for all
and one file per program, stdout and stderr in order. So every program whose log moves
gets one note with its new path, and the Docker habit (`stdout_logfile = /dev/stdout`,
`maxbytes = 0`) becomes what workerd does without a log_dir: the output on the
daemon's own stderr, each line prefixed with the program's name.
"""

from __future__ import annotations

import re
from pathlib import Path

from workerd.config.schema import LOG_MAX_BYTES_MIN
from workerd.migrate.draft import Draft, ProgramDraft
from workerd.migrate.source import MigrationError, size_text
from workerd.migrate.supervisord_ini import IniSection, whole_number

KEYS = ("stdout_logfile", "stderr_logfile")
#: The daemon's own output, as a container's supervisord.conf names it.
CONSOLE = frozenset({"/dev/stdout", "/dev/stderr", "/dev/fd/1", "/dev/fd/2", "/proc/self/fd/1",
                     "/proc/self/fd/2"})
_NONE = ("none", "off", "syslog")
_SIZE = re.compile(r"(\d+)\s*(kb|mb|gb)?", re.IGNORECASE)
#: A program, its section and its log keys that name a file (key -> the path, expanded).
Logs = tuple[ProgramDraft, IniSection, dict[str, str]]


def log_files(section: IniSection, program: ProgramDraft, paths: dict[str, str]) -> Logs:
    """PATHS: the program's log keys, expanded. Notes those that keep no file."""
    files = {}
    for key, path in paths.items():
        if path.lower() in _NONE:
            program.note(f"{key} = {path}: workerd keeps the output (in [daemon] log_dir, or its stderr)")
        elif path.upper() != "AUTO":
            files[key] = path
    if not files and ("stderr_logfile" in section.values or "redirect_stderr" in section.values):
        program.note("workerd writes stdout and stderr to one log, in order (as redirect_stderr = true)")
    return program, section, files


def place_logs(draft: Draft, logs: list[Logs], childlogdir: str | None) -> None:
    """One [daemon] log_dir for all: the directory of the first log file that is a file,
    else [supervisord] childlogdir, else none (output on the daemon's stderr)."""
    real = [(section, key, path) for _, section, files in logs for key, path in files.items()
            if path not in CONSOLE]
    log_dir = str(Path(real[0][2]).parent) if real else childlogdir
    if real:
        draft.daemon.set("log_dir", str(Path(real[0][2]).parent))
        _rotation(draft, real)
    elif childlogdir is not None:
        draft.daemon.set("log_dir", childlogdir, "[supervisord] childlogdir, where the AUTO logs went")
    for program, _, files in logs:
        if not files:
            continue
        said = ", ".join(f"{key} = {path}" for key, path in files.items())
        if log_dir is None:
            program.note(f"{said}: workerd writes the output to its own stderr, each line prefixed with the "
                         "program's name (no [daemon] log_dir)")
        else:
            both = "both, in order, to " if len(files) > 1 else ""
            program.note(f"{said}: workerd writes {both}{log_dir}/{program.name}.log")


def _rotation(draft: Draft, real: list[tuple[IniSection, str, str]]) -> None:
    sizes = [_size(section, f"{key}_maxbytes") for section, key, _ in real]
    backups = [whole_number(section, f"{key}_backups", section.values.get(f"{key}_backups", "10"), low=0)
               for section, key, _ in real]
    if 0 in sizes:
        draft.daemon.set("log_max_bytes", 0, "stdout_logfile_maxbytes = 0: never rotated, as supervisord did")
    elif max(sizes) < LOG_MAX_BYTES_MIN:
        draft.daemon.set("log_max_bytes", size_text(LOG_MAX_BYTES_MIN), f"the largest *_logfile_maxbytes is "
                         f"{max(sizes)} bytes: workerd rotates at 64 KiB or more")
    else:
        draft.daemon.set("log_max_bytes", size_text(max(sizes)), "the largest *_logfile_maxbytes")
    draft.daemon.set("log_backups", min(max(backups), 100), "the most *_logfile_backups (workerd keeps 100 at most)")


def _size(section: IniSection, key: str) -> int:
    """supervisord's byte sizes: KB, MB and GB are powers of 1024."""
    value = section.values.get(key, "50MB")
    match = _SIZE.fullmatch(value.strip())
    if match is None:
        raise MigrationError(f"{section.at(key)}: {key} = {value}: expected a size such as 50MB")
    number, unit = match.groups()
    return int(number) * {"kb": 1024, "mb": 1024**2, "gb": 1024**3}.get((unit or "").lower(), 1)
