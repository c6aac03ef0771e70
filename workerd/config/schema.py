"""Every config key, declared once: name, kind, default, check and a one-line doc.

Parsing, unknown-key errors with "did you mean", the model's defaults, `workerd
check` and docs/config-reference.md all come from these declarations, so a key
cannot be documented one way and parsed another.

The rules an autoscale source adds are in `source_rules`, derived from the keys'
`optional_for` and `required_for`; `reference` renders docs/config-reference.md.
"""

from __future__ import annotations

import enum
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from workerd.config.capacity import PID_MAX_LIMIT, RULE, default_max_processes
from workerd.config.kinds import (
    ARGV,
    BOOL,
    COMMAND,
    DURATION,
    ENDPOINT,
    ENVIRONMENT,
    FLOAT,
    INT,
    MODE,
    PATH,
    SIGNAL,
    SIZE,
    STRING,
    STRINGS,
    choice,
)
from workerd.config.source_rules import RedisFormat, Source, with_source_rules
from workerd.config.tables import Key, Range, Table
from workerd.config.units import format_size
from workerd.control.protocol import default_socket
from workerd.core.states import KillMode, RestartPolicy

T = TypeVar("T")


class Readiness(str, enum.Enum):
    """When a started worker counts as running (`ready`)."""

    UPTIME = "uptime"
    NOTIFY = "notify"


def size_at_least(low: int) -> Callable[[int], str | None]:
    def check(value: int) -> str | None:
        if value >= low:
            return None
        shown = format_size(value)
        return f"must be >= {format_size(low)}, got {value if '.' in shown else shown}"

    return check


def _not_among_devices(path: Path) -> str | None:
    """/dev/stdout as a log file is an import's Docker habit: log_dir would be /dev."""
    if Path(os.path.normpath(path)).parts[1:2] in (("dev",), ("proc",)):
        return (f'"{path}" is under /dev or /proc: workerd would write <log_dir>/<program>.log files there; '
                "leave log_dir unset for output on the daemon's stderr")
    return None


def _fraction(v: float) -> str | None:
    return None if 0 <= v < 1 else f"must be >= 0 and < 1, got {v}"


def _permissions(v: int) -> str | None:
    return None if v <= 0o777 else f'must be at most 0777, got {v:04o} (write "0640", not 640)'


def _backoff_max(values: Mapping[str, Any]) -> tuple[str, str] | None:
    initial: float = values["backoff_initial"]
    if values["backoff_max"] >= initial:
        return None
    return "backoff_max", f"must be >= backoff_initial ({DURATION.show(initial)})"


#: A console token shorter than this is refused: it is all that stands before the actions.
TOKEN_MIN = 16


def token_problem(value: str) -> str | None:
    return None if len(value) >= TOKEN_MIN else f"must be {TOKEN_MIN} characters or more, got {len(value)}"


def _one_token(values: Mapping[str, Any]) -> tuple[str, str] | None:
    if values["console_token"] is not None and values["console_token_file"] is not None:
        return "console_token_file", "set console_token or console_token_file, not both"
    return None


def _console_guarded(values: Mapping[str, Any]) -> tuple[str, str] | None:
    """A console shows every program's output: only to the token's holders, unless the config says otherwise."""
    if values["console"] is None or values["console_public"]:
        return None
    if values["console_token"] is None and values["console_token_file"] is None:
        return "console", ("needs console_token or console_token_file (or console_public = true: then anyone "
                           "who reaches it reads every program's status and output)")
    return None


def _watchdog_needs_notify(values: Mapping[str, Any]) -> tuple[str, str] | None:
    if values["watchdog"] and values["ready"] is not Readiness.NOTIFY:
        return "watchdog", 'needs ready = "notify" (the worker says it is alive on the notify socket)'
    return None


MiB = 1024 * 1024
#: A rotation renames every backup: it must stay rare (a whole 64 KiB of output away)
#: and cheap (at most 100 renames), or a chatty program spins the daemon.
LOG_MAX_BYTES_MIN = 64 * 1024
LOG_BACKUPS_MAX = 100
HOUR = 3600.0
DAY = 24 * HOUR
YEAR = 365 * DAY


def _cpu_percent(value: float) -> str | None:
    cores = len(os.sched_getaffinity(0))
    if 0 < value <= 100 * cores:
        return None
    return f"must be > 0 and at most {100 * cores} (100 per core, {cores} cores)"


@dataclass(frozen=True)
class Limit(Key[T]):
    """A key of [limits] that is a limit itself (`cpu_window` is only a setting of one)."""

    #: prlimit's option when the kernel enforces it (an rlimit, set before the command
    #: starts); None: the daemon watches it every [daemon] sample_interval.
    prlimit: str | None = None


LIMITS = Table(
    "limits",
    "Resource limits of each process of the program. Kernel limits (rlimits) are set before "
    "the command starts; `memory` and `cpu_percent` are watched by the daemon every "
    "`[daemon] sample_interval` and end in a graceful restart.",
    (
        Limit("memory", SIZE, None, "PSS of the worker's whole process tree (pages shared by a prefork "
              "parent and its children count once); above it: graceful restart. The cheap RSS sum is "
              "read every sample, the PSS only once that sum is over 80 % of the limit.",
              check=size_at_least(4 * MiB)),
        Limit("cpu_percent", FLOAT, None, "CPU of the worker's tree (100 = one core) sustained "
              "over `cpu_window`; above it: graceful restart.", check=_cpu_percent),
        Key("cpu_window", DURATION, 60.0, "The window `cpu_percent` is averaged over.",
            bounds=Range(1, HOUR)),
        Limit("open_files", INT, None, "RLIMIT_NOFILE: open file descriptors per process.",
              bounds=Range(16), prlimit="--nofile"),
        Limit("tasks", INT, None, "RLIMIT_NPROC: processes and threads of the user (binds "
              "non-root users only).", bounds=Range(1), prlimit="--nproc"),
        Limit("address_space", SIZE, None, "RLIMIT_AS: virtual memory per process.",
              check=size_at_least(32 * MiB), prlimit="--as"),
        Limit("core", SIZE, None, "RLIMIT_CORE: largest core dump; 0 = none.", prlimit="--core"),
        Limit("cpu_time", DURATION, None, "RLIMIT_CPU: CPU seconds per process; then SIGXCPU, "
              "and SIGKILL one CPU second later.", bounds=Range(1, YEAR), prlimit="--cpu"),
        Limit("file_size", SIZE, None, "RLIMIT_FSIZE: largest file a process may write.",
              prlimit="--fsize"),
    ),
)
#: The keys of [limits] that are limits, in the order of the reference.
LIMIT_KEYS: tuple[Limit[Any], ...] = tuple(f for f in LIMITS.fields if isinstance(f, Limit))
#: prlimit's option for each kernel limit, by key.
RLIMITS = {f.name: f.prlimit for f in LIMIT_KEYS if f.prlimit is not None}
#: The limits the daemon watches.
WATCHED = tuple(f.name for f in LIMIT_KEYS if f.prlimit is None)

DAEMON = Table(
    "daemon",
    "The daemon: its control socket, worker output, shutdown and the limits on scaling up.",
    (
        Key("socket", PATH, None, "Control socket that `workerctl` talks to.",
            default_factory=lambda: Path(default_socket()),
            shown="`$WORKERD_SOCKET` if set; else `/run/workerd/workerd.sock` as root, else "
                  "`$XDG_RUNTIME_DIR/workerd.sock` "
                  "(`/tmp/workerd-<uid>/workerd.sock` when XDG_RUNTIME_DIR is unset)", at_start=True),
        Key("socket_mode", MODE, 0o600, 'Permissions of the socket; "0660" with '
            "`socket_group` lets a group use workerctl.", check=_permissions, at_start=True),
        Key("socket_group", STRING, None, "Group owning the socket; must exist.", at_start=True),
        Key("log_dir", PATH, None, "Worker output goes to `<log_dir>/<program>.log`; unset: to "
            'the daemon\'s stderr, each line prefixed "program[instance]: ". Not under /dev or /proc.',
            check=_not_among_devices),
        Key("log_max_bytes", SIZE, 50 * MiB, "A program's log file is rotated at this size (at least "
            "64 KiB: each rotation renames every backup); 0: never rotated (logrotate's job, say).",
            bounds=Range(LOG_MAX_BYTES_MIN, zero="no rotation")),
        Key("log_backups", INT, 5, "Rotated log files kept per program.", bounds=Range(0, LOG_BACKUPS_MAX)),
        Key("metrics", ENDPOINT, None, 'Prometheus /metrics address, "host:port" (use a loopback '
            "host unless the network is trusted; there it answers only requests addressed to "
            "localhost, 127.0.0.1 or [::1] and its port); unset: off.", at_start=True),
        Key("console", ENDPOINT, None, 'The web console\'s address, "host:port", or a port alone '
            "for the loopback address (another host only where the network is trusted; the metrics "
            "address serves both); unset: off.", at_start=True),
        Key("console_token", STRING, None, "The console answers only requests that carry it (each "
            "read and action: the status, output, history, restart, stop, start, scale). "
            "16 characters or more; a console needs it unless `console_public`.", check=token_problem),
        Key("console_token_file", PATH, None, "`console_token` read from this file's first line, "
            "which keeps it out of the config."),
        Key("console_public", BOOL, False, "The console's reads (every program's status, history and "
            "output) need no token; actions still do, and without a token there are none."),
        Key("shutdown_timeout", DURATION, 60.0, "Upper bound on a graceful shutdown.",
            bounds=Range(0, DAY)),
        Key("max_processes", INT, None, "Most processes of one program, and of all programs "
            "together (each counted at `processes`, or at its autoscale `max`); `workerctl scale` "
            "and reloads are held to it too.", bounds=Range(1, PID_MAX_LIMIT),
            default_factory=default_max_processes, shown=RULE),
        Key("reserve_memory", SIZE, 256 * MiB, "Never scale up while less memory than this is "
            "available (0 = off)."),
        Key("max_load", FLOAT, 0.0, "Never scale up while the 1-minute load average per core "
            "is above this (0 = off).", bounds=Range(0)),
        Key("sample_interval", DURATION, 1.0, "How often `memory` and `cpu_percent` limits are "
            "checked (one pass over /proc for all workers).", bounds=Range(0.1, HOUR)),
    ),
    checks=(_one_token, _console_guarded),
)  # fmt: skip

#: The [daemon] keys a reload cannot apply: they wait for the next start.
AT_START = tuple(f.name for f in DAEMON.fields if isinstance(f, Key) and f.at_start)


def _max_at_least_min(values: Mapping[str, Any]) -> tuple[str, str] | None:
    return None if values["max"] >= values["min"] else ("max", f"must be >= min ({values['min']})")


AUTOSCALE = with_source_rules(Table(
    "autoscale",
    "The process count follows the depth of the queue the program consumes: desired = "
    "ceil(depth / per_worker), clamped to [min, max]; up at once, down only to the highest "
    "desired seen in `scale_down_delay`. `processes` is ignored.",
    (
        Key("min", INT, 1, "Fewest processes (0: none while the queue is empty).",
            bounds=Range(0)),
        Key("max", INT, 8, "Most processes; at most `[daemon] max_processes`.", bounds=Range(1)),
        Key("per_worker", INT, 20, "Jobs in the queue per process.", bounds=Range(1)),
        Key("interval", DURATION, 2.0, "How often the depth is read.", bounds=Range(0.1, HOUR)),
        Key("scale_down_delay", DURATION, 60.0, "Scale down only to the highest desired seen in "
            "this window.", bounds=Range(0, DAY)),
        Key("source", choice(Source), None, "Where the depth is read.", required=True),
        Key("timeout", DURATION, None, "Limit on one reading; unset: the interval.",
            bounds=Range(0.1, HOUR)),
        Key("max_age", DURATION, None, "Where the source knows the age of the oldest job: while "
            "it is older, desired is at least running + 1.", bounds=Range(0, DAY)),
        Key("url", STRING, None, 'redis: the server, default "redis://127.0.0.1:6379/0"; postgres: '
            '"postgresql://..."; rabbitmq: "amqp://..."; nats: "nats://..."; http: the URL to GET.',
            optional_for=(Source.REDIS,),
            required_for=(Source.POSTGRES, Source.RABBITMQ, Source.NATS, Source.HTTP)),
        Key("keys", STRINGS, None, "redis: lists, streams (consumer-group lag, or length) or "
            "sorted sets whose sizes are summed.", optional_for=(Source.REDIS,)),
        Key("format", choice(RedisFormat), None, "redis: read the keys the job library uses "
            "for `queue`.", optional_for=(Source.REDIS,)),
        Key("queue", STRING, None, "redis with format: the library's queue name.",
            optional_for=(Source.REDIS,)),
        Key("path", PATH, None, "sqlite: the database file.", required_for=(Source.SQLITE,)),
        Key("query", STRING, None, "sqlite, postgres: a query returning one row: depth, and "
            "optionally the age in seconds of the oldest job.",
            required_for=(Source.SQLITE, Source.POSTGRES)),
        Key("queues", STRINGS, None, "rabbitmq: queues whose ready messages are summed (passive "
            "declare).", required_for=(Source.RABBITMQ,)),
        Key("listen", STRING, None, "postgres: a channel to LISTEN on; a NOTIFY on it makes a "
            "program at zero read its queue at once instead of at the next interval.",
            optional_for=(Source.POSTGRES,)),
        Key("dead_letter_keys", STRINGS, None, "redis: dead-letter keys, read on the same interval, "
            "shown and exported, never used for scaling.", optional_for=(Source.REDIS,)),
        Key("dead_letter_query", STRING, None, "sqlite, postgres: a query counting dead letters "
            "(shown and exported, never used for scaling).",
            optional_for=(Source.SQLITE, Source.POSTGRES)),
        Key("dead_letter_queues", STRINGS, None, "rabbitmq: dead-letter queues (shown and exported, "
            "never used for scaling).", optional_for=(Source.RABBITMQ,)),
        Key("stream", STRING, None, "nats: the JetStream stream.", required_for=(Source.NATS,)),
        Key("consumer", STRING, None, "nats: the durable consumer whose pending count is the depth.",
            required_for=(Source.NATS,)),
        Key("queue_url", STRING, None, "sqs: the queue's URL.", required_for=(Source.SQS,)),
        Key("region", STRING, None, 'sqs: the AWS region, e.g. "eu-west-1".', required_for=(Source.SQS,)),
        Key("endpoint_url", STRING, None, "sqs: another endpoint than AWS's (a local SQS, moto).",
            optional_for=(Source.SQS,)),
        Key("include_in_flight", BOOL, False, "sqs: also count messages received but not deleted "
            "yet (ApproximateNumberOfMessagesNotVisible).", optional_for=(Source.SQS,)),
        Key("command", ARGV, None, "command: prints a number, or JSON {\"depth\": N, \"age\": "
            "seconds}; a string split like a shell would (run without one) or an array.",
            required_for=(Source.COMMAND,)),
        Key("field", STRING, None, 'http: dotted path to the depth in the JSON answer, e.g. '
            '"queues.email.depth" (a number selects an array item).', required_for=(Source.HTTP,)),
        Key("age_field", STRING, None, "http: dotted path to the age in seconds of the oldest job.",
            optional_for=(Source.HTTP,)),
    ),
    checks=(_max_at_least_min,),
))  # fmt: skip

PROGRAM = Table(
    "programs.NAME",
    "One program: a command run as `processes` processes. `[defaults]` may set any of these "
    "keys; a program's own value wins, and tables (`environment`) merge variable by variable.",
    (
        Key("command", COMMAND, None, "A string split like a shell would (run without one), "
            "or an argv array. `{program}` and `{instance}` (`{instance:2}`: zero-padded to 2 digits) "
            "are replaced per process, as in `environment` values.", required=True),
        Key("shell", BOOL, False, "Run the command string with `/bin/sh -c` instead."),
        Key("directory", PATH, None, "Working directory; unset: the daemon's."),
        Key("user", STRING, None, "Run as this user, with its primary group; unset: the "
            "daemon's."),
        Key("group", STRING, None, "Run with this group instead of the user's primary group."),
        Key("umask", MODE, None, "File mode creation mask; unset: the daemon's.",
            check=_permissions),
        Key("environment", ENVIRONMENT, None, "Extra variables; numbers and booleans become "
            "strings; `{program}` and `{instance}` are replaced per process. Overrides `env_file`; "
            "merges with `[defaults]` by variable."),
        Key("env_file", PATH, None, "`KEY=VALUE` lines (`#` comments, optional `export ` and "
            "quotes), read at load and reload."),
        Key("processes", INT, 1, "How many processes to run; at most `[daemon] max_processes`.",
            bounds=Range(0)),
        Key("autostart", BOOL, True, "Start the processes when the daemon starts or a reload adds the "
            "program; false: only on `workerctl start` (a reload never stops a running program for it)."),
        Key("restart", choice(RestartPolicy), RestartPolicy.ALWAYS, "When an exited process is "
            "restarted (on-failure: after a non-zero exit or a signal)."),
        Key("start_seconds", DURATION, 1.0, "Up this long = started; an earlier exit counts "
            "as a failed start.", bounds=Range(0, HOUR)),
        Key("backoff_initial", DURATION, 1.0, "Delay before a restart that follows a short "
            "run.", bounds=Range(0, DAY)),
        Key("backoff_factor", FLOAT, 2.0, "Each further delay is the previous one times this.",
            bounds=Range(1, 10)),
        Key("backoff_max", DURATION, 300.0, "Cap on the delay.", bounds=Range(0, DAY)),
        Key("backoff_jitter", FLOAT, 0.1, "Random +- fraction applied to each delay, from 0 to "
            "less than 1.", check=_fraction),
        Key("backoff_reset", DURATION, 600.0, "A run this long resets the backoff: the next "
            "restart is immediate.", bounds=Range(0, DAY)),
        Key("max_restarts", INT, 0, "That many failed starts in a row -> state fatal; "
            "0 = never give up.", bounds=Range(0)),
        Key("stop_signal", SIGNAL, 15, "Sent to stop a process, where `kill_mode` says."),
        Key("stop_timeout", DURATION, 30.0, "Then SIGKILL to the whole process group.",
            bounds=Range(0, DAY)),
        Key("kill_mode", choice(KillMode), KillMode.MIXED, "mixed: `stop_signal` to the main "
            "process only (a pool stops its own children, finishing their jobs); once it has "
            "exited, what is left of its group gets `stop_signal`, then SIGKILL after "
            "min(`stop_timeout`, 1s). group: `stop_signal` to the whole process group."),
        Key("nice", INT, 0, "Scheduling priority; -20 is the highest.",
            bounds=Range(-20, 19)),
        Key("ready", choice(Readiness), Readiness.UPTIME, "uptime: running after "
            "`start_seconds`; notify: running when the worker sends READY=1 on `NOTIFY_SOCKET`."),
        Key("start_timeout", DURATION, 60.0, 'With ready = "notify": no READY=1 by then -> '
            "failed start.", bounds=Range(0.1, DAY)),
        Key("watchdog", DURATION, 0.0, 'With ready = "notify": no WATCHDOG=1 for this long '
            "-> hung, graceful restart; 0 = off. The worker gets it as `WATCHDOG_USEC`.",
            bounds=Range(0, DAY)),
        Key("rolling", BOOL, False, "Replace processes one at a time on restart and reload "
            "(a new one running, then an old one stopped)."),
        LIMITS,
        AUTOSCALE,
    ),
    checks=(_backoff_max, _watchdog_needs_notify),
)  # fmt: skip

