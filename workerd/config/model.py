"""The validated, immutable configuration that the rest of workerd reads.

Only `config.load` builds these; every value here has already been checked and
converted (durations to float seconds, sizes to int bytes, signals to numbers,
users to uids, relative paths to absolute ones), so the runtime never
re-validates. Defaults come from `config.schema`, where each key is declared once.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from workerd.config.capacity import default_max_processes
from workerd.config.schema import (
    AUTOSCALE,
    DAEMON,
    LIMITS,
    PROGRAM,
    WATCHED,
    Limit,
    Readiness,
)
from workerd.config.source_rules import RedisFormat, Source
from workerd.core.states import KillMode, RestartPolicy

__all__ = [
    "AutoscaleConfig", "Config", "DaemonConfig", "KillMode", "LimitsConfig", "ProgramConfig", "Readiness",
    "RedisFormat", "RestartPolicy", "Source",
]

_DAEMON: Mapping[str, Any] = DAEMON.defaults()
#: The notify socket's path is the control socket's with this added.
NOTIFY_SUFFIX = ".notify"
_PROGRAM: Mapping[str, Any] = PROGRAM.defaults()
_LIMITS: Mapping[str, Any] = LIMITS.defaults()
_AUTOSCALE: Mapping[str, Any] = AUTOSCALE.defaults()


@dataclass(frozen=True)
class DaemonConfig:
    #: Default: see control.protocol.default_socket.
    socket: Path
    socket_mode: int = _DAEMON["socket_mode"]
    socket_group: str | None = _DAEMON["socket_group"]
    #: socket_group's gid.
    socket_gid: int | None = None
    log_dir: Path | None = _DAEMON["log_dir"]
    log_max_bytes: int = _DAEMON["log_max_bytes"]
    log_backups: int = _DAEMON["log_backups"]
    #: (host, port) of the /metrics listener; None: off.
    metrics: tuple[str, int] | None = _DAEMON["metrics"]
    #: (host, port) of the web console; None: off.
    console: tuple[str, int] | None = _DAEMON["console"]
    #: console_token, or the first line of console_token_file; None: no actions (and, unless
    #: console_public, no reads either).
    console_token: str | None = field(default=_DAEMON["console_token"], repr=False)
    console_token_file: Path | None = _DAEMON["console_token_file"]
    #: The console's reads need no token.
    console_public: bool = _DAEMON["console_public"]
    shutdown_timeout: float = _DAEMON["shutdown_timeout"]
    #: Default: see config.capacity.
    max_processes: int = field(default_factory=default_max_processes)
    reserve_memory: int = _DAEMON["reserve_memory"]
    max_load: float = _DAEMON["max_load"]
    sample_interval: float = _DAEMON["sample_interval"]


    @property
    def notify_socket(self) -> Path:
        """Where the workers' sd_notify datagrams go (NOTIFY_SOCKET): next to the control socket."""
        return self.socket.with_name(self.socket.name + NOTIFY_SUFFIX)

@dataclass(frozen=True)
class LimitsConfig:
    """None: no such limit. Sizes in bytes, durations in seconds."""

    memory: int | None = _LIMITS["memory"]
    cpu_percent: float | None = _LIMITS["cpu_percent"]
    cpu_window: float = _LIMITS["cpu_window"]
    open_files: int | None = _LIMITS["open_files"]
    tasks: int | None = _LIMITS["tasks"]
    address_space: int | None = _LIMITS["address_space"]
    core: int | None = _LIMITS["core"]
    cpu_time: float | None = _LIMITS["cpu_time"]
    file_size: int | None = _LIMITS["file_size"]

    @property
    def watched(self) -> bool:
        """Whether the daemon must sample this program's workers."""
        return any(getattr(self, name) is not None for name in WATCHED)

    def given(self) -> dict[str, Any]:
        """The limits set, by key in the schema's order, and cpu_window with cpu_percent."""
        return {
            f.name: getattr(self, f.name) for f in LIMITS.fields
            if getattr(self, f.name) is not None and (isinstance(f, Limit) or self.cpu_percent is not None)
        }


@dataclass(frozen=True)
class AutoscaleConfig:
    """`[programs.X.autoscale]`; only the keys of `source` are set (see schema)."""

    source: Source
    #: The limit on one reading; unset in the file: the interval (see load).
    timeout: float
    min: int = _AUTOSCALE["min"]
    max: int = _AUTOSCALE["max"]
    per_worker: int = _AUTOSCALE["per_worker"]
    interval: float = _AUTOSCALE["interval"]
    scale_down_delay: float = _AUTOSCALE["scale_down_delay"]
    max_age: float | None = _AUTOSCALE["max_age"]
    url: str | None = _AUTOSCALE["url"]
    keys: tuple[str, ...] | None = _AUTOSCALE["keys"]
    format: RedisFormat | None = _AUTOSCALE["format"]
    queue: str | None = _AUTOSCALE["queue"]
    path: Path | None = _AUTOSCALE["path"]
    query: str | None = _AUTOSCALE["query"]
    queues: tuple[str, ...] | None = _AUTOSCALE["queues"]
    stream: str | None = _AUTOSCALE["stream"]
    consumer: str | None = _AUTOSCALE["consumer"]
    queue_url: str | None = _AUTOSCALE["queue_url"]
    region: str | None = _AUTOSCALE["region"]
    endpoint_url: str | None = _AUTOSCALE["endpoint_url"]
    include_in_flight: bool = _AUTOSCALE["include_in_flight"]
    #: argv, already split.
    command: tuple[str, ...] | None = _AUTOSCALE["command"]
    field: str | None = _AUTOSCALE["field"]
    age_field: str | None = _AUTOSCALE["age_field"]
    dead_letter_keys: tuple[str, ...] | None = _AUTOSCALE["dead_letter_keys"]
    dead_letter_query: str | None = _AUTOSCALE["dead_letter_query"]
    dead_letter_queues: tuple[str, ...] | None = _AUTOSCALE["dead_letter_queues"]
    listen: str | None = _AUTOSCALE["listen"]


@dataclass(frozen=True)
class ProgramConfig:
    name: str
    #: argv, already split; with shell = true it is ("/bin/sh", "-c", text).
    command: tuple[str, ...]
    shell: bool = _PROGRAM["shell"]
    directory: Path | None = _PROGRAM["directory"]
    user: str | None = _PROGRAM["user"]
    #: user's uid.
    uid: int | None = None
    group: str | None = _PROGRAM["group"]
    #: group's gid, else user's primary gid.
    gid: int | None = None
    umask: int | None = _PROGRAM["umask"]
    #: env_file's variables overridden by the `environment` table.
    environment: Mapping[str, str] = field(default_factory=dict)
    env_file: Path | None = _PROGRAM["env_file"]
    processes: int = _PROGRAM["processes"]
    autostart: bool = _PROGRAM["autostart"]
    restart: RestartPolicy = _PROGRAM["restart"]
    start_seconds: float = _PROGRAM["start_seconds"]
    backoff_initial: float = _PROGRAM["backoff_initial"]
    backoff_factor: float = _PROGRAM["backoff_factor"]
    backoff_max: float = _PROGRAM["backoff_max"]
    backoff_jitter: float = _PROGRAM["backoff_jitter"]
    backoff_reset: float = _PROGRAM["backoff_reset"]
    max_restarts: int = _PROGRAM["max_restarts"]
    stop_signal: int = _PROGRAM["stop_signal"]
    stop_timeout: float = _PROGRAM["stop_timeout"]
    kill_mode: KillMode = _PROGRAM["kill_mode"]
    nice: int = _PROGRAM["nice"]
    ready: Readiness = _PROGRAM["ready"]
    start_timeout: float = _PROGRAM["start_timeout"]
    watchdog: float = _PROGRAM["watchdog"]
    rolling: bool = _PROGRAM["rolling"]
    limits: LimitsConfig = LimitsConfig()
    #: None: a fixed count, `processes`.
    autoscale: AutoscaleConfig | None = None

    @property
    def most_processes(self) -> int:
        """What [daemon] max_processes counts: the autoscale max, else `processes`."""
        return self.autoscale.max if self.autoscale is not None else self.processes


@dataclass(frozen=True)
class Config:
    #: Absolute, so a reload finds the file whatever the working directory.
    path: Path
    daemon: DaemonConfig
    programs: Mapping[str, ProgramConfig]
