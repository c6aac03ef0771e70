"""TOML file -> frozen `Config`, or a `ConfigError` that is one line of text.

The schema parses and checks each table; this module walks the file's shape
([daemon], [defaults], [programs.NAME]), merges [defaults] under each program,
and derives what needs the system: absolute paths (relative ones are relative to
the config file's directory), uids and gids, argv, and the environment.
"""

from __future__ import annotations

import dataclasses
import grp
import os
import pwd
import re
import shlex
import sys
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

from workerd.config.capacity import over_max_processes
from workerd.config.descriptors import descriptors_problem, open_files_problem, read_fd_box
from workerd.config.envfile import EnvFileError, read_env_file
from workerd.config.exec_size import argument_problem, total_problem, variable_problem
from workerd.config.kinds import toml_repr
from workerd.config.model import (
    NOTIFY_SUFFIX,
    AutoscaleConfig,
    Config,
    DaemonConfig,
    LimitsConfig,
    ProgramConfig,
)
from workerd.config.schema import AUTOSCALE, DAEMON, LIMITS, PROGRAM, token_problem
from workerd.config.small_file import UnreadableFile, read_small_text
from workerd.config.tables import (
    Invalid,
    Setting,
    complete,
    key_path,
    overlay,
    parse_table,
    unknown_key,
)

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib  # type: ignore[import-not-found,unused-ignore]

__all__ = ["ConfigError", "load"]


class ConfigError(Exception):
    """Why a config file is unusable, as `FILE: KEY.PATH: why` or `FILE:LINE:COL: why`."""


_TOP_LEVEL = ["daemon", "defaults", "programs"]
_PROGRAM_NAME = re.compile(r"[A-Za-z0-9_.-]+")
#: sun_path holds 108 bytes, the last one a NUL.
_SOCKET_PATH_MAX = 107
#: A config file is read whole: far more than 1,000 programs take, far less than /dev/zero.
CONFIG_LIMIT = 16 << 20
_SYNTAX = re.compile(r"(.*) \(at (?:line (\d+), column (\d+)|end of document)\)", re.DOTALL)


def load(path: str | Path, host_checks: bool = True) -> Config:
    """Read, parse and validate the config file at `path`; raises only ConfigError.
    Without `host_checks` (an export, for another box) users and groups are not looked
    up (uid and gid stay None) and this box's open-file limits are not applied."""
    shown = str(path)
    text = _read(shown, Path(path))
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(_syntax_error(shown, text, str(e))) from None
    try:
        return _config(document, Path(path).absolute(), host_checks)
    except Invalid as e:
        raise ConfigError(f"{shown}: {e}") from None


def _read(shown: str, path: Path) -> str:
    try:
        return read_small_text(path, CONFIG_LIMIT)
    except UnreadableFile as e:
        raise ConfigError(f"{shown}: cannot read: {e}") from None


def _syntax_error(shown: str, text: str, message: str) -> str:
    """tomllib's "Msg (at line L, column C)" -> "FILE:L:C: msg", like a compiler."""
    match = _SYNTAX.fullmatch(message)
    if match is None:
        return f"{shown}: {message}"
    what, line, column = match.groups()
    if line is None:  # "at end of document": the position just past the last character
        line, column = str(text.count("\n") + 1), str(len(text) - text.rfind("\n"))
    return f"{shown}:{line}:{column}: {what[:1].lower()}{what[1:]}"


def _config(document: Mapping[str, object], path: Path, host_checks: bool) -> Config:
    for name in document:
        if name not in _TOP_LEVEL:
            raise Invalid(key_path("", name), unknown_key(name, _TOP_LEVEL))
    base = path.parent
    daemon = _daemon(_table(document, "daemon"), base, host_checks)
    defaults = parse_table(PROGRAM, _table(document, "defaults"), "defaults")
    programs: dict[str, ProgramConfig] = {}
    counts: list[Setting] = []
    for name, raw in _table(document, "programs").items():
        where = key_path("programs", name)
        if not _PROGRAM_NAME.fullmatch(name):
            raise Invalid(where, "invalid program name (use letters, digits, '_', '.' and '-')")
        if name == "all":
            raise Invalid(where, "reserved name: `workerctl start all` means every program")
        if not isinstance(raw, dict):
            raise Invalid(where, f"expected a table, got {toml_repr(raw)}")
        settings = complete(PROGRAM, overlay(defaults, parse_table(PROGRAM, raw, where)), where)
        programs[name] = _program(name, settings, base, host_checks)
        counts.append(_most_processes(settings, programs[name]))
    _check_max_processes(counts, daemon.max_processes)
    config = Config(path, daemon, MappingProxyType(programs))
    problem = descriptors_problem(config, read_fd_box()) if host_checks else None  # the daemon's, or check's
    if problem is not None:
        raise Invalid(*problem)
    return config


def _most_processes(settings: Mapping[str, Setting], program: ProgramConfig) -> Setting:
    """The program's most_processes, at the key that sets it (for the error's path)."""
    if program.autoscale is None:
        return settings["processes"]
    autoscale = settings["autoscale"]
    given = autoscale.value.get("max")
    return Setting(program.most_processes, given.path if given else key_path(autoscale.path, "max"))


def _check_max_processes(counts: list[Setting], limit: int) -> None:
    """Each program, and all of them together, within [daemon] max_processes; the total
    blames the first count that goes over it."""
    total = 0
    for count in counts:
        total += count.value
        problem = over_max_processes(count.value, total, limit)
        if problem is not None:
            raise Invalid(count.path, problem)


def _table(document: Mapping[str, object], name: str) -> Mapping[str, object]:
    value = document.get(name, {})
    if not isinstance(value, dict):
        raise Invalid(name, f"expected a table, got {toml_repr(value)}")
    return value


def _values(settings: Mapping[str, Setting], base: Path, model: type) -> dict[str, Any]:
    """The settings that are fields of `model`, relative paths made absolute."""
    names = {f.name for f in dataclasses.fields(model)}
    return {
        name: base / s.value if isinstance(s.value, Path) else s.value
        for name, s in settings.items()
        if name in names
    }


def _daemon(raw: Mapping[str, object], base: Path, host_checks: bool) -> DaemonConfig:
    settings = complete(DAEMON, parse_table(DAEMON, raw, "daemon"), "daemon")
    values = _values(settings, base, DaemonConfig)
    # The notify socket's path is this one's plus a suffix: both must fit.
    length = len(os.fsencode(values["socket"]))
    most = _SOCKET_PATH_MAX - len(NOTIFY_SUFFIX)
    if length > most:
        raise Invalid(settings["socket"].path, f"too long for a Unix socket ({length} bytes, at most {most})")
    values["socket_gid"] = _gid(settings["socket_group"]) if host_checks else None
    if values["console_token_file"] is not None:
        values["console_token"] = _token_from(values["console_token_file"], settings["console_token_file"].path)
    return DaemonConfig(**values)


def _token_from(path: Path, key: str) -> str:
    """The first line of a token file, held to console_token's own rule."""
    try:
        token = read_small_text(path).split("\n", 1)[0].strip()
    except UnreadableFile as e:
        raise Invalid(key, f"cannot read {path}: {e}") from None
    problem = token_problem(token)
    if problem is not None:
        raise Invalid(key, f"{path}: the token {problem}")
    return token


def _program(name: str, settings: Mapping[str, Setting], base: Path, host_checks: bool) -> ProgramConfig:
    values = _values(settings, base, ProgramConfig)
    values["uid"], values["gid"] = _identity(settings["user"], settings["group"]) if host_checks else (None, None)
    values["command"] = _argv(settings["command"], values["shell"])
    values["environment"] = _environment(settings, values["env_file"])
    _check_exec_size(name, settings, values["command"], values["environment"])
    values["limits"] = _limits(settings["limits"])
    if host_checks:
        _check_open_files(settings["limits"], values["limits"].open_files)
    values["autoscale"] = _autoscale(settings["autoscale"], base)
    return ProgramConfig(name=name, **values)


def _limits(limits: Setting) -> LimitsConfig:
    given = limits.value or {}
    settings = complete(LIMITS, given, limits.path)
    return LimitsConfig(**{name: s.value for name, s in settings.items()})


def _check_open_files(limits: Setting, open_files: int | None) -> None:
    """An open_files the daemon could not grant would be a crash loop (prlimit refusing)."""
    problem = None if open_files is None else open_files_problem(open_files, read_fd_box())
    if problem is not None:
        raise Invalid(limits.value["open_files"].path, problem)


def _autoscale(autoscale: Setting, base: Path) -> AutoscaleConfig | None:
    if autoscale.value is None:
        return None
    settings = complete(AUTOSCALE, autoscale.value, autoscale.path)
    values = _values(settings, base, AutoscaleConfig)
    if values["timeout"] is None:
        values["timeout"] = values["interval"]
    return AutoscaleConfig(**values)


def _gid(group: Setting) -> int | None:
    if group.value is None:
        return None
    try:
        return grp.getgrnam(group.value).gr_gid
    except KeyError:
        raise Invalid(group.path, f"no such group {group.value!r}") from None


def _identity(user: Setting, group: Setting) -> tuple[int | None, int | None]:
    """(uid, gid): the user's uid and primary gid, the gid replaced by `group`'s."""
    uid = gid = None
    if user.value is not None:
        try:
            entry = pwd.getpwnam(user.value)
        except KeyError:
            raise Invalid(user.path, f"no such user {user.value!r}") from None
        uid, gid = entry.pw_uid, entry.pw_gid
    group_gid = _gid(group)
    return uid, gid if group_gid is None else group_gid


def _argv(command: Setting, shell: bool) -> tuple[str, ...]:
    """A string is split like a shell would, or given to /bin/sh -c with shell = true."""
    if shell:
        if not isinstance(command.value, str):
            raise Invalid(command.path, "with shell = true, command must be a string")
        return ("/bin/sh", "-c", command.value)
    if isinstance(command.value, tuple):
        return command.value
    try:
        argv = tuple(shlex.split(command.value))
    except ValueError as e:  # shlex says only "No closing quotation" / "No escaped character"
        raise Invalid(command.path, f"cannot split: {str(e).lower()}") from None
    if not argv or not argv[0]:
        raise Invalid(command.path, "empty command")
    return argv


def _environment(settings: Mapping[str, Setting], env_file: Path | None) -> Mapping[str, str]:
    """env_file's variables, overridden by the `environment` table's."""
    env: dict[str, str] = {}
    if env_file is not None:
        try:
            env.update(read_env_file(env_file))
        except EnvFileError as e:
            raise Invalid(settings["env_file"].path, str(e)) from None
    env.update(settings["environment"].value or {})
    return MappingProxyType(env)


def _check_exec_size(name: str, settings: Mapping[str, Setting], argv: tuple[str, ...],
                     environment: Mapping[str, str]) -> None:
    """Refuse what execve would refuse at every start (E2BIG), naming the key."""
    problem = argument_problem(argv)
    if problem is not None:
        raise Invalid(settings["command"].path, problem)
    table = settings["environment"].value or {}
    for variable, value in environment.items():
        problem = variable_problem(variable, value)
        if problem is None:
            continue
        if variable in table:
            raise Invalid(key_path(settings["environment"].path, variable), problem)
        raise Invalid(settings["env_file"].path, f"{variable}: {problem}")
    problem = total_problem(argv, environment, os.environ)
    if problem is not None:
        raise Invalid(key_path("programs", name), problem)
