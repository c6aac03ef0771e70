"""supervisord.conf -> workers.toml, key by key.

A `[program:x]` becomes `[programs.x]` (numprocs -> processes, instances 0..n-1, and
`%(process_num)02d` -> `{instance:2}`); every other expansion is done here, as
supervisord would do it at its start on this box. What has no exact equivalent gets
a comment; what has none at all is listed at the end of the file.
"""

from __future__ import annotations

import grp
import platform
import pwd
import re
import shlex
import signal
from collections.abc import Callable, Mapping
from pathlib import Path

from workerd.config.units import format_duration
from workerd.migrate.draft import MIXED_ADDS, Draft, ProgramDraft
from workerd.migrate.source import MigrationError
from workerd.migrate.supervisord_ini import IniSection, env_names, expand, read, whole_number
from workerd.migrate.supervisord_logs import KEYS, Logs, log_files, place_logs

TRUE = ("yes", "true", "on", "1")
FALSE = ("no", "false", "off", "0")
#: Keys read per program; any other is kept as a comment.
PROGRAM_KEYS = frozenset("""command process_name numprocs numprocs_start priority autostart autorestart
    startsecs startretries exitcodes stopsignal stopwaitsecs stopasgroup killasgroup user directory umask
    environment redirect_stderr stdout_logfile stdout_logfile_maxbytes stdout_logfile_backups
    stderr_logfile stderr_logfile_maxbytes stderr_logfile_backups stdout_capture_maxbytes
    stderr_capture_maxbytes stdout_events_enabled stderr_events_enabled stdout_syslog stderr_syslog
    serverurl""".split())
#: Per-program keys workerd has nothing for: noted when set.
NOT_SUPPORTED = ("stdout_capture_maxbytes", "stderr_capture_maxbytes", "stdout_events_enabled",
                 "stderr_events_enabled", "stdout_syslog", "stderr_syslog", "serverurl")


def import_supervisord(path: Path, environ: Mapping[str, str]) -> Draft:
    sections, unmatched = read(path, environ)
    draft = Draft(path, "supervisord")
    draft.unsupported += [f"{at}: [include] files: {pattern} matches no file here" for at, pattern in unmatched]
    env = dict(environ)
    main = next((s for s in sections if s.name == "supervisord"), None)
    if main is not None:
        env.update(_supervisord(main, draft, env))
    groups = _groups(sections)
    logs: list[Logs] = []
    for section in sections:
        kind, _, name = section.name.partition(":")
        if kind == "program" and name:
            logs.append(_program(section, name.strip(), groups.get(name.strip()), draft, env))
        elif section.name == "unix_http_server":
            _unix_http_server(section, draft, env)
        elif section.name != "supervisord" and kind != "group":
            draft.unsupported.append(_unsupported(section))
    if not draft.programs:
        nothing = (f" (its [include] files: {', '.join(p for _, p in unmatched)} "
                   f"{'match' if len(unmatched) > 1 else 'matches'} no file here)") if unmatched else ""
        raise MigrationError(f"{path}: no [program:x] to import{nothing}")
    place_logs(draft, logs, main.values.get("childlogdir") if main is not None else None)
    if any(program.get("kill_mode") is None for program in draft.programs.values()):
        draft.defaults.set("kill_mode", "mixed", "supervisord sent stopsignal to a program's main process only and, "
                           "at stopwaitsecs, SIGKILL to it alone (without stopasgroup and killasgroup), leaving its "
                           f"children running; {MIXED_ADDS}")
    return draft


def _supervisord(section: IniSection, draft: Draft, environ: Mapping[str, str]) -> dict[str, str]:
    """[supervisord]: its environment and what its children inherit from it go to [defaults]."""
    get = _getter(section, {"here": str(section.path.parent.resolve()), "host_node_name": platform.node(),
                            **env_names(environ)})
    values = section.values
    environment = _environment(get("environment"), section.at("environment")) if "environment" in values else {}
    draft.defaults.environment.update(environment)
    if environment:
        draft.defaults.note("[supervisord] environment: every program inherited it")
    if "directory" in values:
        draft.defaults.set("directory", get("directory"), "[supervisord] directory: the daemon's own working "
                           "directory, which programs without one inherited")
    if "umask" in values:
        draft.defaults.set("umask", f"{int(get('umask'), 8):04o}", "[supervisord] umask, which programs inherited")
    for key, limit in (("minfds", "open_files"), ("minprocs", "tasks")):
        if key in values:
            draft.defaults.limits.set(limit, int(get(key)), f"[supervisord] {key} = {values[key]}: supervisord "
                                      "raised its own soft limit to it and the programs inherited it")
    kept = {"environment", "directory", "umask", "minfds", "minprocs"}
    for key, value in values.items():
        if key not in kept:
            draft.daemon.note(f"[supervisord] {key} = {value}: {_DAEMON_KEYS.get(key, 'no equivalent')}")
    return environment


_DAEMON_KEYS = {
    "logfile": "workerd logs to its stderr (journald under systemd)",
    "logfile_maxbytes": "workerd logs to its stderr (journald under systemd)",
    "logfile_backups": "workerd logs to its stderr (journald under systemd)",
    "loglevel": "workerd logs info and up (`workerd start -v` adds debug)",
    "pidfile": "workerd runs in the foreground under systemd (no pid file)",
    "nodaemon": "workerd always runs in the foreground",
    "user": "run workerd as this user: `workerd install-unit --user USER`",
    "childlogdir": "see [daemon] log_dir",
    "identifier": "no equivalent",
    "nocleanup": "no equivalent (workerd leaves no AUTO log files)",
    "strip_ansi": "no equivalent (output is kept as written)",
    "silent": "no equivalent",
}


def _groups(sections: list[IniSection]) -> dict[str, str]:
    """program name -> the [group:x] naming it."""
    programs = {s.name.partition(":")[2].strip() for s in sections if s.name.startswith("program:")}
    members = {}
    for section in sections:
        if section.name.startswith("group:"):
            group = section.name.partition(":")[2].strip()
            for name in re.split(r"[,\s]+", section.values.get("programs", "").strip()):
                if name and name not in programs:
                    raise MigrationError(f"{section.at('programs')}: [group:{group}] names {name!r}, which is no "
                                         "[program:x] here")
                if name:
                    members[name] = section.name
    return members


def _program(section: IniSection, name: str, group: str | None, draft: Draft,
             environ: Mapping[str, str]) -> Logs:
    """[program:x] -> [programs.x]; returns the program with its log files."""
    values = section.values
    numprocs = whole_number(section, "numprocs", values.get("numprocs", "1"), low=1)
    start = str(whole_number(section, "numprocs_start", values.get("numprocs_start", "0"), low=0))
    program = draft.new_program(name, f"[program:{name}]")
    names: dict[str, object] = {"program_name": name, "group_name": (group or f":{name}").partition(":")[2],
                                "host_node_name": platform.node(), "here": str(section.path.parent.resolve()),
                                "numprocs": numprocs, **env_names(environ)}
    if numprocs == 1:
        names["process_num"] = int(start)
    per_instance = start if numprocs > 1 else None
    environment = (_environment(expand(values["environment"], names, section.at("environment"), per_instance),
                                section.at("environment")) if "environment" in values else {})
    names.update(env_names(environment))

    def get(key: str, default: str | None = None) -> str | None:
        value = values.get(key, default)
        return None if value is None else expand(value, names, section.at(key), per_instance)

    def get_single(key: str) -> str | None:
        """A key workers.toml has once per program: the same for every process."""
        value = values.get(key)
        return None if value is None else expand(value, names, section.at(key))

    if "command" not in values:
        raise MigrationError(f"{section.at()}: [program:{name}] has no command")
    program.set("command", get("command") or "")
    if group is not None:
        program.note(f"in supervisord's [{group}]: workerd has no groups (`workerctl restart a b` acts on several)")
    if numprocs != 1:
        program.set("processes", numprocs)
    if values.get("process_name", "%(program_name)s") != "%(program_name)s":
        program.note(f"process_name = {values['process_name']}: workerd names each process {program.name}[N]")
    if "priority" in values:
        program.note(f"priority = {values['priority']}: workerd starts every program at once and stops them "
                     "together (a worker that needs another should retry until it answers)")
    if "autostart" in values and _bool(section, "autostart", get("autostart")) is False:
        program.set("autostart", False)
    _restart(section, program, get("autorestart", "unexpected") or "", get("exitcodes", "0") or "")
    if "startsecs" in values:
        program.set("start_seconds", format_duration(whole_number(section, "startsecs", get("startsecs"), low=0)))
    retries = whole_number(section, "startretries", get("startretries", "3"), low=0)
    program.set("max_restarts", retries + 1, f"startretries = {retries}: supervisord gives up after {retries} "
                "retries, that is after this many failed starts in a row")
    if "stopsignal" in values:
        program.set("stop_signal", _signal(section, get("stopsignal") or ""))
    stop_timeout = whole_number(section, "stopwaitsecs", get("stopwaitsecs", "10"), low=0)
    program.set("stop_timeout", format_duration(stop_timeout),
                *([] if "stopwaitsecs" in values else ["supervisord's default stopwaitsecs (workerd's is 30s)"]))
    _kill_mode(section, program, get("stopasgroup", "false"), get("killasgroup"))
    for key in ("user", "directory"):
        if key in values:
            program.set(key, get_single(key) or "")
    if "umask" in values:
        program.set("umask", f"{whole_number(section, 'umask', get('umask'), low=0, base=8):04o}")
    program.environment.update(environment)
    for key in NOT_SUPPORTED:
        if key in values:
            program.note(f"{key} = {values[key]}: not supported")
    for key in sorted(values.keys() - PROGRAM_KEYS):
        program.note(f"unknown key kept as it was: {key} = {values[key]}")
    return log_files(section, program, {key: get_single(key) or "" for key in KEYS if key in values})


def _kill_mode(section: IniSection, program: ProgramDraft, stopasgroup: str | None, killasgroup: str | None) -> None:
    """stopasgroup, killasgroup -> kill_mode, as supervisord reads them: killasgroup is
    stopasgroup's value unless set. Without either, [defaults] says what differs."""
    values = section.values
    stop_as_group = _bool(section, "stopasgroup", stopasgroup)
    kill_as_group = stop_as_group if killasgroup is None else _bool(section, "killasgroup", killasgroup)
    if stop_as_group and not kill_as_group:
        raise MigrationError(f"{section.at('killasgroup')}: killasgroup = {values['killasgroup']!r}: supervisord "
                             "refuses it with stopasgroup = true")
    if stop_as_group:
        program.set("kill_mode", "group", f"stopasgroup = {values['stopasgroup']}: supervisord sent stopsignal to "
                    "the whole process group, and SIGKILL to it at stopwaitsecs")
    elif kill_as_group:
        program.note(f"killasgroup = {values['killasgroup']}: supervisord sent SIGKILL to the whole process group at "
                     "stopwaitsecs; workerd does that at stop_timeout in either kill_mode")


def _restart(section: IniSection, program: ProgramDraft, autorestart: str, exitcodes_text: str) -> None:
    """autorestart and exitcodes -> restart."""
    values = section.values
    try:
        exitcodes = sorted({int(code) for code in re.split(r"[,\s]+", exitcodes_text.strip()) if code})
    except ValueError:
        raise MigrationError(f"{section.at('exitcodes')}: exitcodes = {exitcodes_text!r}: expected numbers "
                             "such as 0,2") from None
    autorestart = autorestart.lower()
    if autorestart in TRUE:
        program.set("restart", "always")
    elif autorestart in FALSE:
        program.set("restart", "never")
    elif autorestart == "unexpected":
        note = [] if exitcodes == [0] else [f"exitcodes = {values['exitcodes']}: workerd counts only exit 0 as "
                                            "expected; the others are restarted too"]
        program.set("restart", "on-failure", *note)
    else:
        raise MigrationError(f"{section.at('autorestart')}: autorestart = {values['autorestart']!r}: "
                             "expected true, false or unexpected")


def _unix_http_server(section: IniSection, draft: Draft, environ: Mapping[str, str]) -> None:
    get = _getter(section, {"here": str(section.path.parent.resolve()), **env_names(environ)})
    values = section.values
    if "file" in values:
        draft.daemon.set("socket", get("file"), "[unix_http_server] file")
    mode = whole_number(section, "chmod", values.get("chmod", "0700"), low=0, base=8)
    if "chown" in values:
        user, _, group = get("chown").partition(":")
        group = group or _primary_group(user)
        mode |= (mode >> 6 & 0o7) << 3  # the group gets what the owner had
        draft.daemon.set("socket_group", group, f"[unix_http_server] chown = {values['chown']}, chmod = "
                         f"{values.get('chmod', '0700')}: {user} owned the socket; workerd's belongs to its own "
                         f"user, so the group {group} gets the owner's rights and {user}, in it, can use workerctl")
    draft.daemon.set("socket_mode", f"{mode:04o}", *([] if "chmod" in values else ["supervisord's default chmod"]))
    if "username" in values or "password" in values:
        draft.daemon.note("[unix_http_server] username/password: workerd checks each peer's uid on the socket "
                          "(SO_PEERCRED) instead: root, the daemon's user and socket_group")


def _primary_group(user: str) -> str:
    """USER's primary group here; else a group of the same name, as most systems make."""
    try:
        return grp.getgrgid(pwd.getpwnam(user).pw_gid).gr_name
    except KeyError:
        return user


def _unsupported(section: IniSection) -> str:
    kind = section.name.partition(":")[0]
    why = {
        "inet_http_server": "workerd has no TCP control port, by design: its socket is local and serves only the "
                            "uids it trusts (SO_PEERCRED), where an HTTP port would rest on a password; reach "
                            "workerctl over SSH, and read /metrics for monitoring",
        "eventlistener": "event listeners are not supported: workerd exports restarts and states as Prometheus "
                         "metrics and to systemd (STATUS=)",
        "fcgi-program": "FastCGI programs (a socket shared by the processes) are not supported",
        "supervisorctl": "workerctl finds the daemon with -c workers.toml or $WORKERD_SOCKET",
        "rpcinterface": "workerd's control protocol is built in",
        "ctlplugin": "workerctl has no plugins",
    }.get(kind, "unknown section, kept here as it was: " + ", ".join(f"{k} = {v}" for k, v in
                                                                    section.values.items()))
    return f"{section.at()}: [{section.name}]: {why}"


def _getter(section: IniSection, names: Mapping[str, object]) -> Callable[[str], str]:
    """Expanded values of a section that is not a program ("" for a key it lacks)."""
    def get(key: str) -> str:
        return expand(section.values.get(key, ""), names, section.at(key))

    return get


def _environment(text: str, at: str) -> dict[str, str]:
    """`KEY="val",KEY2=val2` as supervisord splits it: shell-like words, quotes stripped."""
    lexer = shlex.shlex(text)
    lexer.wordchars += "/.+-():{}"
    try:
        tokens = list(lexer)
    except ValueError as e:
        raise MigrationError(f"{at}: environment: {e}") from None
    pairs = {}
    for i in range(0, len(tokens), 4):
        key_eq_value = tokens[i:i + 3]
        if len(key_eq_value) != 3 or key_eq_value[1] != "=" or tokens[i + 3:i + 4] not in ([], [","]):
            raise MigrationError(f"{at}: environment: expected KEY=value,KEY2=value2, got {text!r}")
        pairs[key_eq_value[0]] = key_eq_value[2].strip("'\"")
    return pairs


def _bool(section: IniSection, key: str, value: str | None) -> bool:
    text = (value or "").lower()
    if text in TRUE or text in FALSE:
        return text in TRUE
    raise MigrationError(f"{section.at(key)}: {key} = {value!r}: expected true or false")


def _signal(section: IniSection, value: str) -> str:
    name = value.strip().upper().removeprefix("SIG")
    if name.isdigit() or not hasattr(signal, f"SIG{name}"):
        raise MigrationError(f"{section.at('stopsignal')}: stopsignal = {value!r}: not a signal name")
    return name

