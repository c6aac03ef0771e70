"""systemd units for workerd: the two the project ships and the one `workerd
install-unit` writes for an installation. One renderer for all three, so every unit
carries the same settings and the same reasons for them.

`python -m workerd.unit DIR` rewrites the shipped units in DIR (systemd/); a test
checks that they match.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

#: Where the .deb puts the commands; the shipped units point there.
PACKAGED_WORKERD = "/usr/bin/workerd"
#: What the daemon needs after shutdown_timeout, on top: the SIGKILL grace and the
#: last output (daemon.py's KILL_GRACE and DRAIN_GRACE), with room to spare.
STOP_MARGIN = 15.0
#: LimitNOFILE=: systemd's own defaults, soft for the workers and hard for the daemon.
NOFILE_SOFT = 1024
NOFILE_HARD = 524288
#: systemd aborts the daemon after this long without a WATCHDOG=1 (sent every half of it).
WATCHDOG_SECONDS = 30


@dataclass(frozen=True)
class Unit:
    #: The command that runs workerd (an absolute path, or an interpreter and `-m workerd`).
    workerd: str
    #: The config file's absolute path (`%i` in a template).
    config: str
    description: str
    #: The daemon's own user (None: root, which can run each program as its `user`).
    user: str | None = None
    #: [daemon] shutdown_timeout of the config; the stop timeout is kept above it.
    shutdown_timeout: float = 60.0
    #: RuntimeDirectory= (relative to /run), where the control socket lives.
    runtime_directory: str | None = "workerd"
    #: A template's instances share /run/workerd: stopping one must not remove it.
    preserve_runtime_directory: bool = False
    environment: dict[str, str] = field(default_factory=dict)
    header: str = ""

    def render(self) -> str:
        lines = [
            *(f"# {line}".rstrip() for line in self.header.splitlines()),
            "[Unit]",
            f"Description={self.description}",
            "After=network-online.target",
            "Wants=network-online.target",
            "",
            "[Service]",
            "# READY=1 comes once every worker is spawned (or failed to); `systemctl status`",
            "# shows the daemon's one-line STATUS= (running/wanted, backoffs, queue depths).",
            "Type=notify",
            "# Only the daemon speaks to systemd: workers have a notify socket of their own.",
            "NotifyAccess=main",
            f"ExecStart={self.workerd} start -c {word(self.config)}",
            "# SIGHUP: reload the config, applying only what changed (a bad file changes nothing).",
            "ExecReload=/bin/kill -HUP $MAINPID",
            "# The daemon pings from its event loop; a loop stuck this long is aborted and restarted.",
            f"WatchdogSec={WATCHDOG_SECONDS}",
            "# SIGTERM goes to the daemon alone, which stops every worker gracefully, in parallel,",
            "# within shutdown_timeout; whatever is left in the cgroup after TimeoutStopSec (kept",
            "# above shutdown_timeout) is SIGKILLed.",
            "KillMode=mixed",
            f"TimeoutStopSec={_seconds(self.shutdown_timeout + STOP_MARGIN)}",
            "Restart=on-failure",
            "RestartSec=2",
            "# Exit status 2 is a bad config: restarting would only fail again.",
            "RestartPreventExitStatus=2",
            "# Open files: the daemon holds one or two per worker and raises its soft limit to this",
            "# hard one (`workerd check` refuses a config that needs more); each worker gets the",
            "# soft 1024 back unless its open_files says otherwise (select() breaks above 1024).",
            f"LimitNOFILE={NOFILE_SOFT}:{NOFILE_HARD}",
        ]
        if self.user is not None:
            lines += ["# The daemon's own user: programs cannot switch to another `user`.", f"User={self.user}"]
        for name, value in self.environment.items():
            lines.append(f"Environment={name}={value}")
        if self.runtime_directory is not None:
            lines += ["# The control socket's directory, made at start (owned by User=).",
                      f"RuntimeDirectory={self.runtime_directory}", "RuntimeDirectoryMode=0755"]
            if self.preserve_runtime_directory:
                lines += ["# Shared by every instance: one stopping must not take the others' sockets.",
                          "RuntimeDirectoryPreserve=yes"]
        lines += [
            "# /var/log/workerd, for [daemon] log_dir.",
            "LogsDirectory=workerd",
            "# workerd puts each program in a cgroup of its own (limits, and stopping a whole tree).",
            "Delegate=yes",
            "# Hardening that ordinary workers never notice: no kernel modules or kernel log, no",
            "# hostname change, no realtime scheduling, no new setuid/setgid files, one personality.",
            "ProtectKernelModules=yes",
            "ProtectKernelLogs=yes",
            "ProtectHostname=yes",
            "RestrictRealtime=yes",
            "RestrictSUIDSGID=yes",
            "LockPersonality=yes",
            "# Deliberately not set, because they break workers people run: ProtectSystem= and",
            "# ProtectHome= (apps write where they live), PrivateTmp= (the web app and its workers",
            "# share /tmp), NoNewPrivileges= (setuid helpers), PrivateDevices= and ProtectClock=",
            "# (GPUs and other devices), ProtectControlGroups= (workerd manages its delegated",
            "# cgroup), MemoryDenyWriteExecute= (JITs: PyPy, Node.js).",
            "",
            "[Install]",
            "WantedBy=multi-user.target",
        ]
        return "\n".join(lines) + "\n"


def word(value: str) -> str:
    """One argument of an Exec line: double-quoted when it holds spaces or quotes."""
    if any(c.isspace() or c in "\"'\\;" for c in value):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return value


def escape_specifiers(value: str) -> str:
    """A literal path in a unit: `%` and `$` would otherwise be expanded by systemd."""
    return value.replace("%", "%%").replace("$", "$$")


def _seconds(value: float) -> str:
    return f"{value:g}s"


def shipped() -> dict[str, Unit]:
    """The units in systemd/ (and in the .deb): one daemon, and one per app (`%i`)."""
    return {
        "workerd.service": Unit(
            workerd=PACKAGED_WORKERD, config="/etc/workerd/workers.toml",
            description="workerd: the background workers of this box",
            header="workerd as a system service; config in /etc/workerd/workers.toml.\n"
                   "Enable it: systemctl enable --now workerd\n"
                   "For an installation outside /usr/bin (pip, pipx, a venv), `workerd install-unit`\n"
                   "writes this unit with that installation's paths.",
        ),
        "workerd@.service": Unit(
            workerd=PACKAGED_WORKERD, config="/etc/workerd/%i.toml",
            description="workerd: the background workers of %i",
            environment={"WORKERD_SOCKET": "/run/workerd/%i.sock"},
            preserve_runtime_directory=True,
            header="One workerd per app: /etc/workerd/APP.toml, control socket /run/workerd/APP.sock\n"
                   "(leave [daemon] socket unset in APP.toml). Enable one: systemctl enable --now workerd@APP\n"
                   "Talk to it: workerctl -s /run/workerd/APP.sock status",
        ),
    }


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m workerd.unit DIR  (rewrites the shipped units in DIR)", file=sys.stderr)
        return 2
    for name, unit in shipped().items():
        (Path(argv[0]) / name).write_text(unit.render())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
