"""A PM2 ecosystem file (.js, .json, .yaml) -> workers.toml, app by app.

Each app runs the way PM2 7's fork mode runs it: the interpreter it names or PM2 picks
by the script's extension (none for a binary), the interpreter's arguments, the
script resolved against `cwd`, then `args`; stopped with SIGINT and killed after
`kill_timeout`; its number in `NODE_APP_INSTANCE`.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import signal
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from workerd.config.units import format_duration
from workerd.migrate import json5
from workerd.migrate.draft import MIXED_ADDS, Draft, ProgramDraft
from workerd.migrate.source import MigrationError, read_text, size_text

#: PM2's interpreter for a script extension (lib/API/interpreter.json).
INTERPRETERS = {".sh": "bash", ".py": "python", ".rb": "ruby", ".php": "php", ".pl": "perl", ".js": "node",
                ".coffee": "coffee", ".ls": "lsc", ".ts": "bun", ".tsx": "bun"}
#: How PM2 splits an `args` string: `k="a b"` and quoted words stay whole.
_ARGS = re.compile(r"""[^\s"'=]+="[^"]*"|[^\s"'=]+='[^']*'|"([^"]*)"|'([^']*)'|\S+""")
_SIZE = re.compile(r"(\d+)([KMG]?)")
_TIME = re.compile(r"(\d+)([hms]?)")
#: Keys read per app; any other is kept as a comment.
APP_KEYS = frozenset("""name script args interpreter exec_interpreter interpreter_args node_args instances
    exec_mode cwd env max_memory_restart kill_timeout autorestart autostart max_restarts min_uptime
    restart_delay exp_backoff_restart_delay cron_restart cron watch ignore_watch out_file error_file log_file
    output error log merge_logs combine_logs log_date_format time user uid gid instance_var stop_exit_codes
    treekill exec""".split())
#: Keys PM2 knows that have no workers.toml equivalent, and why.
NOT_TRANSLATED = {
    "wait_ready": "workerd's equivalent is ready = \"notify\" with READY=1 on the notify socket (PM2's was "
                  "process.send('ready'))",
    "listen_timeout": "the wait for wait_ready's signal: start_seconds, with ready = \"notify\", is workerd's",
    "source_map_support": "a node option PM2 passed to its wrapper: add --enable-source-maps to the command",
    "vizion": "PM2's version metadata: no equivalent",
    "pmx": "PM2's monitoring agent: workerd serves /metrics",
    "automation": "PM2's monitoring agent: workerd serves /metrics",
    "force": "lets PM2 start an app twice: workerd runs `processes` of each",
    "shutdown_with_message": "workerd stops with stop_signal",
    "increment_var": "workerd numbers processes with {instance} and {instance+N}",
}
NODE_TIMEOUT = 10.0
JS_SUFFIXES = (".js", ".cjs", ".mjs")


def import_pm2(path: Path, env_name: str | None) -> Draft:
    data = _read(path)
    apps = _apps(data, path)
    draft = Draft(path, "pm2")
    if isinstance(data, dict) and "deploy" in data:
        draft.unsupported.append(f"{path}: deploy: not translated: PM2's deploy ships code over ssh and git; "
                                 "workerd supervises what is on its box")
    for index, app in enumerate(apps):
        _app(app, index, path, env_name, draft)
    return draft


def runs_javascript(path: Path) -> bool:
    """Whether importing `path` runs it: a .js ecosystem file is read by evaluating it."""
    return path.suffix in JS_SUFFIXES


def _read(path: Path) -> Any:
    if runs_javascript(path):
        return _evaluate(path)
    text = read_text(path)
    if path.suffix in (".yaml", ".yml"):
        try:
            import yaml
        except ImportError:
            raise MigrationError(f"{path}: reading YAML needs PyYAML (pip install 'workerd[yaml]'), or "
                                 "give the JSON form") from None
        try:
            return yaml.safe_load(text)
        except yaml.MarkedYAMLError as e:
            line = e.problem_mark.line + 1 if e.problem_mark else None
            raise MigrationError(f"{path}:{line}: {e.problem or e}") from None
        except yaml.YAMLError as e:
            raise MigrationError(f"{path}: {e}") from None
    try:
        return json5.loads(text)
    except json.JSONDecodeError as e:
        raise MigrationError(f"{path}:{e.lineno}: {e.msg}") from None


def _evaluate(path: Path) -> Any:
    """module.exports of a .js ecosystem file, evaluated by node as PM2 does (require)."""
    node = shutil.which("node")
    if node is None:
        raise MigrationError(f"{path}: reading a .js ecosystem file needs node, which is not installed; "
                             "`pm2 ecosystem` or JSON.stringify gives the JSON form, which needs nothing")
    script = "process.stdout.write(JSON.stringify(require(require('path').resolve(process.argv[1]))))"
    # A session of its own, killed whole afterwards: what the file starts must not outlive
    # the import, nor hold node's output pipe open and keep the import waiting.
    proc = subprocess.Popen([node, "-e", script, str(path.resolve())], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=path.parent, start_new_session=True)
    try:
        stdout, stderr = proc.communicate(timeout=NODE_TIMEOUT)
    except subprocess.TimeoutExpired:
        raise MigrationError(f"{path}: node did not finish evaluating it in {NODE_TIMEOUT:g} s") from None
    finally:
        _kill_session(proc)
    if proc.returncode != 0:
        raise MigrationError(_node_error(path, stderr))
    return json.loads(stdout or "null")


def _kill_session(proc: subprocess.Popen[str]) -> None:
    """SIGKILL node's process group (its session's), then reap node and close its pipes."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:  # node has exited and left nothing behind
        pass
    proc.wait()
    for pipe in (proc.stdout, proc.stderr):
        if pipe is not None:
            pipe.close()


def _node_error(path: Path, stderr: str) -> str:
    """node's error as one line: `FILE:LINE: SyntaxError: ...`."""
    line = re.search(re.escape(str(path.resolve())) + r":(\d+)", stderr)
    message = next((m for m in stderr.splitlines() if re.match(r"\w*Error\b", m)), stderr.strip()[:200])
    return f"{path}:{line.group(1)}: {message}" if line else f"{path}: {message}"


def _apps(data: Any, path: Path) -> list[dict[str, Any]]:
    """PM2's shapes: {apps: [...]}, {pm2: [...]}, a list of apps, or one app."""
    apps = data
    if isinstance(data, dict) and not ("script" in data or "exec" in data):
        apps = data.get("apps", data.get("pm2"))
    if isinstance(apps, dict):
        apps = [apps]
    if not isinstance(apps, list) or not apps or not all(isinstance(a, dict) for a in apps):
        raise MigrationError(f"{path}: expected {{apps: [{{name, script, ...}}]}}, an ecosystem file")
    return apps


def _app(app: Mapping[str, Any], index: int, path: Path, env_name: str | None, draft: Draft) -> None:
    at = f"{path}: apps[{index}]"
    script = app.get("script", app.get("exec"))  # PM2 takes exec for script
    if not isinstance(script, str) or not script.strip():
        raise MigrationError(f"{at}: no script")
    name = str(app.get("name") or Path(script.split()[0]).stem)
    program = draft.new_program(name, f"apps[{index}] ({name})")
    at = f"{at} ({name})"
    cwd = Path(app.get("cwd") or path.parent.resolve()).expanduser()
    if not cwd.is_absolute():
        cwd = (path.parent.resolve() / cwd).resolve()
    if "cwd" not in app:
        program.note("no cwd: PM2 used the directory `pm2 start` ran in; this is the ecosystem file's")
    program.set("directory", str(cwd))
    command = _command(app, script, cwd, program, at)
    program.set("command", command)
    _count(app, program, at, node=Path(command[0]).name in ("node", "bun"))
    environment = _environment(app, env_name)
    program.environment.update(environment)
    instance_var = str(app.get("instance_var") or "NODE_APP_INSTANCE")
    program.environment[instance_var] = "{instance}"
    program.set("stop_signal", "INT", "PM2 stops an app with SIGINT")
    program.set("stop_timeout", format_duration(_number(app, "kill_timeout", 1600, at) / 1000),
                *([] if "kill_timeout" in app else ["PM2's default kill_timeout, 1600 ms"]))
    if app.get("treekill") is False:
        program.set("kill_mode", "mixed", "treekill = false: PM2 sent SIGINT to the main process only and, after "
                    f"kill_timeout, SIGKILL to it alone, leaving its children running; {MIXED_ADDS}")
    else:
        program.set("kill_mode", "group", "treekill (PM2's default): PM2 sent SIGINT to the app's whole process "
                    "tree, and SIGKILL to what was left of it after kill_timeout")
    _restarts(app, program, at)
    if app.get("autostart") is False:
        program.set("autostart", False)
    for key, target in (("user", "user"), ("uid", "user"), ("gid", "group")):
        if key in app:
            program.set(target, str(app[key]))
    _limits(app, program, at)
    _not_supported(app, program, draft, at)


def _command(app: Mapping[str, Any], script: str, cwd: Path, program: ProgramDraft, at: str) -> list[str]:
    args = _words(app.get("args"), at, "args")
    if " " in script.strip():  # PM2 runs such a script with bash -c
        return ["bash", "-c", script.strip(), *args]
    interpreter = app.get("interpreter") or app.get("exec_interpreter")
    target = cwd / script
    if not target.exists() and shutil.which(script):
        target = Path(shutil.which(script) or script)
    if not interpreter:
        interpreter = INTERPRETERS.get(target.suffix)
        if interpreter == "python" and shutil.which("python") is None and shutil.which("python3"):
            interpreter = "python3"
        if interpreter is None:
            interpreter = "none" if _is_binary(target) else "node"
    if interpreter == "none":
        return [str(target), *args]
    if "python" in str(interpreter):
        program.environment["PYTHONUNBUFFERED"] = "1"
    if Path(str(interpreter)).name in ("node", "bun"):
        program.note(f"PM2 ran the script inside its own {Path(str(interpreter)).name} wrapper "
                     "(ProcessContainerFork.js); workerd runs it directly")
    interpreter_args = _words(app.get("interpreter_args", app.get("node_args")), at, "interpreter_args")
    return [str(interpreter), *interpreter_args, str(target), *args]


def _count(app: Mapping[str, Any], program: ProgramDraft, at: str, node: bool) -> None:
    """instances -> processes. PM2 runs a node app with `instances` in cluster mode unless
    exec_mode says otherwise."""
    instances = app.get("instances", 1)
    cores = len(os.sched_getaffinity(0))
    if instances == "max" or instances == 0:
        count, note = cores, [f"instances = {json.dumps(instances)}: the core count of this box ({cores})"]
    elif instances == -1:
        count, note = max(cores - 1, 1), [f"instances = -1: the core count of this box less one ({cores} - 1)"]
    elif isinstance(instances, int) and instances > 0:
        count, note = instances, []
    else:
        raise MigrationError(f"{at}: instances = {instances!r}: expected a number or \"max\"")
    mode = str(app.get("exec_mode") or ("cluster" if node and "instances" in app else "fork"))
    if mode.startswith("cluster"):
        note.append("exec_mode cluster: PM2's node cluster shared one port among the processes; workerd runs "
                    "separate processes (a server among them needs SO_REUSEPORT or a port each: {instance+N})")
    if count != 1 or note:
        program.set("processes", count, *note)


def _environment(app: Mapping[str, Any], env_name: str | None) -> dict[str, str]:
    merged: dict[str, Any] = dict(app.get("env") or {})
    if env_name is not None:
        merged.update(app.get(f"env_{env_name}") or {})
    return {str(k): _text(v) for k, v in merged.items()}


def _restarts(app: Mapping[str, Any], program: ProgramDraft, at: str) -> None:
    if app.get("autorestart") is False:
        program.set("restart", "never")
    elif "stop_exit_codes" in app:
        program.set("restart", "on-failure", f"stop_exit_codes = {app['stop_exit_codes']}: workerd counts only "
                    "exit 0 as done; other codes are restarted")
    program.set("start_seconds", format_duration(_duration_ms(app.get("min_uptime", 1000), at, "min_uptime") / 1000),
                "min_uptime: a shorter run is an unstable (failed) start")
    program.set("max_restarts", int(_number(app, "max_restarts", 16, at)),
                "PM2 stops the app after this many unstable restarts")
    if "exp_backoff_restart_delay" in app:
        delay = _number(app, "exp_backoff_restart_delay", 0, at) / 1000
        program.set("backoff_initial", format_duration(delay), "exp_backoff_restart_delay: PM2 grows it by 1.5 "
                    "up to 15 s")
        program.set("backoff_factor", 1.5)
        program.set("backoff_max", format_duration(max(delay, 15)))
    elif "restart_delay" in app:
        delay = _number(app, "restart_delay", 0, at) / 1000
        program.set("backoff_initial", format_duration(delay), "restart_delay: the same delay before every restart")
        program.set("backoff_factor", 1)
        program.set("backoff_max", format_duration(delay))


def _limits(app: Mapping[str, Any], program: ProgramDraft, at: str) -> None:
    if "max_memory_restart" not in app:
        return
    raw = app["max_memory_restart"]
    match = _SIZE.fullmatch(str(raw).strip())
    if match is None:
        raise MigrationError(f"{at}: max_memory_restart = {raw!r}: expected bytes or a number with K, M or G")
    size = int(match.group(1)) * {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3}[match.group(2)]
    program.limits.set("memory", size_text(size), f"max_memory_restart = {raw}: PM2 checked the main process's "
                       "RSS every 30 s; workerd checks the PSS of its whole tree every sample_interval")


def _not_supported(app: Mapping[str, Any], program: ProgramDraft, draft: Draft, at: str) -> None:
    for key in ("cron_restart", "cron"):
        if key in app:
            draft.unsupported.append(f"{at}: {key} = {json.dumps(app[key])}: restarts on a schedule are not "
                                     "supported yet (a systemd timer running `workerctl restart` does it)")
    for key in ("watch", "ignore_watch"):
        if app.get(key):
            program.note(f"{key} = {json.dumps(app[key])}: restarting on file changes is not supported")
    for key in ("out_file", "error_file", "log_file", "output", "error", "log", "merge_logs", "combine_logs",
                "log_date_format", "time"):
        if key in app:
            program.note(f"{key} = {json.dumps(app[key])}: workerd writes one log per program, in [daemon] log_dir or "
                         "its stderr")
    for key in sorted(app.keys() - APP_KEYS):
        if key in NOT_TRANSLATED:
            program.note(f"{key} = {json.dumps(app[key])}: not translated: {NOT_TRANSLATED[key]}")
        elif not key.startswith("env_"):
            program.note(f"unknown key kept as it was: {key} = {json.dumps(app[key])}")


def _words(value: Any, at: str, key: str) -> list[str]:
    if value is None:
        return []
    if isinstance(value, list):
        return [_text(v) for v in value]
    if isinstance(value, str):
        return [next((g for g in m.groups() if g is not None), m.group(0)) for m in _ARGS.finditer(value)]
    raise MigrationError(f"{at}: {key} = {value!r}: expected a string or a list")


def _text(value: Any) -> str:
    """A value as PM2 puts it in the environment: JSON-ish for non-strings."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    return json.dumps(value)


def _number(app: Mapping[str, Any], key: str, default: float, at: str) -> float:
    value = app.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0 or math.isnan(value):
        raise MigrationError(f"{at}: {key} = {value!r}: expected a number >= 0")
    return float(value)


def _duration_ms(value: Any, at: str, key: str) -> float:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    match = _TIME.fullmatch(str(value).strip())
    if match is None:
        raise MigrationError(f"{at}: {key} = {value!r}: expected milliseconds or a number with h, m or s")
    return int(match.group(1)) * {"": 1, "s": 1000, "m": 60_000, "h": 3_600_000}[match.group(2)]


def _is_binary(path: Path) -> bool:
    """What PM2 runs without an interpreter: a file with a NUL in its first bytes."""
    try:
        with open(path, "rb") as f:
            return b"\0" in f.read(512)
    except OSError:
        return False
