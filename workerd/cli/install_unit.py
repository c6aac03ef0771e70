"""`workerd install-unit -c FILE`: a systemd unit for this installation of workerd.

What `pm2 startup` does, with the care a unit needs: the absolute path of the
workerd that runs this command (a venv's or pipx's included) and of the config, a
stop timeout above the config's shutdown_timeout, the unit checked by
`systemd-analyze verify` before it is installed, and nothing overwritten unless asked.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from workerd.config.model import Config
from workerd.control.protocol import EXIT_FAILED, EXIT_OK, default_socket
from workerd.unit import Unit, escape_specifiers, word

#: systemd-analyze reads every unit it is given; it answers in well under this.
VERIFY_TIMEOUT = 30.0


def this_workerd() -> str:
    """The command that started this process: its `workerd` script when run as one
    (kept as typed, not resolved: pipx upgrades swap what a symlink points at), else
    this interpreter with `-m workerd`."""
    script = os.path.abspath(sys.argv[0])
    if os.path.basename(script) == "workerd" and os.access(script, os.X_OK):
        return word(escape_specifiers(script))
    return f"{word(escape_specifiers(os.path.abspath(sys.executable)))} -m workerd"


def unit_for(config: Config, name: str, user: str | None) -> Unit:
    """The socket a config leaves unset goes to /run/workerd/NAME.sock (the default for
    root when NAME is workerd), which workerctl finds through $WORKERD_SOCKET or -s."""
    socket = config.daemon.socket
    environment = {}
    if str(socket) == default_socket():
        socket = Path("/run/workerd") / f"{name}.sock"
        if name != "workerd" or user is not None:
            environment["WORKERD_SOCKET"] = escape_specifiers(str(socket))
    runtime_directory = None
    if socket.parent.is_relative_to("/run") and socket.parent != Path("/run"):
        runtime_directory = escape_specifiers(str(socket.parent.relative_to("/run")))
    return Unit(
        workerd=this_workerd(),
        config=escape_specifiers(str(config.path.resolve())),
        description=escape_specifiers(f"workerd: the workers of {config.path.resolve()}"),
        user=user,
        shutdown_timeout=config.daemon.shutdown_timeout,
        runtime_directory=runtime_directory,
        preserve_runtime_directory=name != "workerd",
        environment=environment,
        header=f"Written by `workerd install-unit` for the workerd at {this_workerd()}.\n"
               f"Control socket: {socket}",
    )


def verify(text: str, name: str) -> str | None:
    """systemd-analyze's complaints about the unit, None when it has none or is absent."""
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"{name}.service"
        path.write_text(text)
        try:
            result = subprocess.run([analyze, "verify", str(path)], capture_output=True, text=True,
                                    timeout=VERIFY_TIMEOUT)
        except (OSError, subprocess.TimeoutExpired) as exc:
            return f"systemd-analyze did not answer: {exc}"
    complaints = [line for line in (result.stdout + result.stderr).splitlines() if str(path) in line
                  or line.startswith(f"{name}.service")]
    if result.returncode != 0 or complaints:
        return "; ".join(complaints or (result.stdout + result.stderr).split("\n")[:3]).strip()
    return None


def install_unit(config: Config, name: str, user: str | None, unit_dir: str, dry_run: bool, force: bool) -> int:
    text = unit_for(config, name, user).render()
    problem = verify(text, name)
    if problem is not None:
        print(f"workerd: the unit does not verify: {problem}", file=sys.stderr)
        return EXIT_FAILED
    if dry_run:
        sys.stdout.write(text)
        return EXIT_OK
    target = Path(unit_dir) / f"{name}.service"
    if target.exists() and not force:
        print(f"workerd: {target} exists; --force replaces it", file=sys.stderr)
        return EXIT_FAILED
    error = _write(target, text)
    if error is not None:
        print(f"workerd: cannot write {target}: {error}", file=sys.stderr)
        return EXIT_FAILED
    print(f"wrote {target}; enable it with:\n  systemctl daemon-reload\n  systemctl enable --now {name}")
    return EXIT_OK


def _write(target: Path, text: str) -> str | None:
    """Write through a temporary file, so systemd never reads half a unit; the OS
    error's text when it cannot."""
    try:
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
    except OSError as exc:
        return exc.strerror or str(exc)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        return exc.strerror or str(exc)
    return None
