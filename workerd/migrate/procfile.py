"""Procfile -> workers.toml, as foreman and honcho run one.

Each `name: command` line is a process type, run by the shell in the Procfile's
directory with the `.env` beside it, and with `$PORT` set: 5000 (or the .env's PORT)
for the first type, 100 more for each next one, plus the instance number, as both
tools do. The `web` type is left out unless asked for (workerd runs the workers
beside a web app that something else serves), and so is `release`, which Heroku runs
once per deploy rather than keeps running.
"""

from __future__ import annotations

import re
from pathlib import Path

from workerd.config.envfile import EnvFileError, read_env_file
from workerd.migrate.draft import Draft
from workerd.migrate.source import MigrationError, read_text

#: foreman's and honcho's: a name of word characters and dashes, then a colon.
_LINE = re.compile(r"(?P<name>[A-Za-z0-9_-]+):\s*(?P<command>.*)")
BASE_PORT = 5000
PORT_STEP = 100
#: Process types that are not workers, and why they are left out.
LEFT_OUT = {
    "web": "left out: the web server is not a worker; --include-web keeps it",
    "release": "left out: Heroku runs it once per deploy; a worker would run it again each time it exits",
}


def import_procfile(path: Path, include_web: bool) -> Draft:
    draft = Draft(path, "procfile")
    directory = path.parent.resolve()
    draft.defaults.set("directory", str(directory), "foreman and honcho run the commands in the Procfile's "
                       "directory")
    draft.defaults.set("kill_mode", "group", "honcho sent SIGTERM to each process's whole process group (each ran in "
                       "a session of its own), and SIGKILL to it 5 s later (foreman sent both to each main process "
                       "only)")
    env_file = directory / ".env"
    base_port = BASE_PORT
    if env_file.is_file():
        draft.defaults.set("env_file", str(env_file), "the .env beside the Procfile, as foreman and honcho read it")
        try:
            base_port = int(read_env_file(env_file).get("PORT", BASE_PORT))
        except (EnvFileError, ValueError) as e:
            raise MigrationError(f"{env_file}: {e}") from None
    for index, (number, name, command) in enumerate(_entries(path)):
        if name in LEFT_OUT and not (name == "web" and include_web):
            draft.unsupported.append(f"{path}:{number}: {name}: {command} ({LEFT_OUT[name]})")
            continue
        program = draft.new_program(name, f"the {name} process type")
        program.set("command", command)
        program.set("shell", True, "run by the shell, as a Procfile line is")
        port = base_port + index * PORT_STEP
        program.environment["PORT"] = f"{{instance+{port}}}"
        program.note(f"PORT = {port} + the instance number, as foreman and honcho set it for the "
                     f"{_ordinal(index + 1)} process type")
    if not draft.programs:
        left = [name for _, name, _ in _entries(path)]
        why = {"web": "web is left out (--include-web keeps it)", "release": "release always"}
        said = ", ".join(why[name] for name in why if name in left)
        raise MigrationError(f"{path}: no process type to import" + (f": {said}" if said else
                                                                     " (a Procfile line is `name: command`)"))
    return draft


def _entries(path: Path) -> list[tuple[int, str, str]]:
    entries = []
    seen: dict[str, int] = {}
    for number, line in enumerate(read_text(path).splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        match = _LINE.fullmatch(line.strip())
        if match is None or not match.group("command").strip():
            raise MigrationError(f"{path}:{number}: expected `name: command`, got {line.strip()!r}")
        name = match.group("name")
        if name in seen:
            raise MigrationError(f"{path}:{number}: {name} is already defined on line {seen[name]}")
        seen[name] = number
        entries.append((number, name, match.group("command").strip()))
    return entries


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"
