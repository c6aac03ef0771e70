"""The two daemons under test, driven the same way: write a config, Popen, kill.

Program is the daemon-neutral description of one program; each Daemon renders it
into its own config language. supervisord always gets its most favourable settings
(SUPERVISORD_FAVOURABLE) unless a test asks for its defaults.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from procs import BenchError, descendants, kill_tree, read_cmdline, read_stat, scan_all

SUPERVISORD_FAVOURABLE = {
    "startsecs": "0",
    "stopasgroup": "true",
    "killasgroup": "true",
    "autorestart": "true",
}


@dataclass(frozen=True)
class Program:
    name: str
    command: str               # argv split like a shell would; no shell metacharacters
    processes: int = 1
    restart: str = "always"    # always | never
    start_seconds: float | None = 0.0   # None: the daemon's default
    daemon_defaults: bool = False       # supervisord: no favourable overrides at all
    # workerd only: [programs.NAME.limits] as (key, TOML value) pairs, e.g. ("memory", '"64MiB"');
    # supervisord has no equivalent, so its config refuses them
    limits: tuple[tuple[str, str], ...] = ()
    # workerd only: [programs.NAME.autoscale] as (key, TOML value) pairs, e.g. ("min", "0");
    # `processes` is then left out (workerd ignores it); supervisord refuses them
    autoscale: tuple[tuple[str, str], ...] = ()
    # workerd only: more [programs.NAME] keys as (key, TOML value) pairs, e.g. ("ready", '"notify"')
    keys: tuple[tuple[str, str], ...] = ()


@dataclass
class Daemon:
    """One run of one daemon in its own temp dir. Always call kill() (try/finally)."""

    kind: str
    dir: Path
    bin: Path
    programs: list[Program]
    extra: dict[str, str] = field(default_factory=dict)
    #: Variables added to the daemon's environment (systemd's, in the service metric).
    env: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen | None = None
    started_at: float = 0.0            # perf_counter just before Popen
    starttime: int | None = None       # /proc starttime of the daemon, guards kill by pid
    known_pgrps: set[int] = field(default_factory=set)

    # -- config ---------------------------------------------------------------
    @property
    def config_path(self) -> Path:
        return self.dir / ("workerd.toml" if self.kind == "workerd" else "supervisord.conf")

    @property
    def socket(self) -> Path:
        return self.dir / ("w.sock" if self.kind == "workerd" else "s.sock")

    @property
    def log_dir(self) -> Path:
        return self.dir / "logs"

    def program_log(self, program: str) -> Path:
        return self.log_dir / f"{program}.log"

    def write_config(self) -> str:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        text = self._workerd_toml() if self.kind == "workerd" else self._supervisord_conf()
        self.config_path.write_text(text)
        return text

    def _workerd_toml(self) -> str:
        q = json.dumps  # a JSON string is a valid TOML basic string
        lines = ["[daemon]", f"socket = {q(str(self.socket))}", f"log_dir = {q(str(self.log_dir))}"]
        lines += [f"{k} = {v}" for k, v in self.extra.items()]
        for p in self.programs:
            lines += ["", f"[programs.{p.name}]", f"command = {q(p.command)}"]
            if not p.autoscale:
                lines.append(f"processes = {p.processes}")
            if p.restart != "always":
                lines.append(f"restart = {q(p.restart)}")
            if p.start_seconds is not None:
                lines.append(f"start_seconds = {q(f'{p.start_seconds:g}s')}")
            lines += [f"{k} = {v}" for k, v in p.keys]
            if p.limits:
                lines += ["", f"[programs.{p.name}.limits]"] + [f"{k} = {v}" for k, v in p.limits]
            if p.autoscale:
                lines += ["", f"[programs.{p.name}.autoscale]"] + [f"{k} = {v}" for k, v in p.autoscale]
        return "\n".join(lines) + "\n"

    def _supervisord_conf(self) -> str:
        d = self.dir
        out = [
            "[unix_http_server]", f"file={d}/s.sock", "chmod=0700", "",
            "[supervisord]", "nodaemon=true", f"logfile={d}/supervisord.log",
            "logfile_maxbytes=0", f"pidfile={d}/supervisord.pid", f"childlogdir={d}/childlog",
            "loglevel=info", "",
            "[rpcinterface:supervisor]",
            "supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface", "",
            "[supervisorctl]", f"serverurl=unix://{d}/s.sock", "",
        ]
        (d / "childlog").mkdir(exist_ok=True)
        for p in self.programs:
            if p.limits:
                raise BenchError(f"program {p.name}: supervisord has no [limits] equivalent")
            if p.autoscale:
                raise BenchError(f"program {p.name}: supervisord has no [autoscale] equivalent")
            if p.keys:
                raise BenchError(f"program {p.name}: workerd-only keys {p.keys}")
            out += [f"[program:{p.name}]", f"command={p.command.replace('%', '%%')}",
                    f"numprocs={p.processes}"]
            if p.processes > 1:
                out.append("process_name=%(program_name)s_%(process_num)03d")
            out += ["redirect_stderr=true", f"stdout_logfile={self.program_log(p.name)}",
                    "stdout_logfile_maxbytes=0", "stdout_logfile_backups=0"]
            if not p.daemon_defaults:
                settings = dict(SUPERVISORD_FAVOURABLE)
                if p.start_seconds is not None:
                    settings["startsecs"] = f"{p.start_seconds:g}"
                if p.restart == "never":
                    settings["autorestart"] = "false"
                out += [f"{k}={v}" for k, v in settings.items()]
            out.append("")
        return "\n".join(out)

    # -- lifecycle --------------------------------------------------------------
    def argv(self) -> list[str]:
        if self.kind == "workerd":
            return [str(self.bin / "workerd"), "start", "-c", str(self.config_path)]
        return [str(self.bin / "supervisord"), "-n", "-c", str(self.config_path)]

    def start(self) -> float:
        """Popen the daemon in the foreground; returns perf_counter taken just before."""
        if not self.config_path.exists():
            self.write_config()
        with open(self.dir / "daemon.out", "ab") as out:
            self.started_at = time.perf_counter()
            self.proc = subprocess.Popen(self.argv(), stdin=subprocess.DEVNULL, stdout=out,
                                         stderr=subprocess.STDOUT, start_new_session=True,
                                         cwd=self.dir, env={**os.environ, **self.env})
        st = read_stat(self.proc.pid)
        self.starttime = st.starttime if st else None
        return self.started_at

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def output_tail(self, n: int = 2000) -> str:
        parts = []
        for name in ("daemon.out", "supervisord.log"):
            p = self.dir / name
            if p.exists():
                parts.append(p.read_text(errors="replace")[-n:])
        return "\n".join(parts).strip()

    def check_alive(self) -> None:
        if not self.alive():
            rc = self.proc.returncode if self.proc else None
            raise BenchError(f"{self.kind} exited (rc={rc}): {self.output_tail(600)}")

    def note_tree(self) -> None:
        """Remember the process groups of the daemon's tree, for kill()."""
        if self.alive():
            self.known_pgrps |= {p.pgrp for p in descendants(self.pid, scan_all())}

    def kill(self) -> None:
        """SIGKILL the daemon and every process group it started. Idempotent."""
        if self.proc is None:
            return
        self.proc.poll()
        kill_tree(self.pid, self.starttime, self.known_pgrps)
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass

    def terminate(self) -> None:
        os.kill(self.pid, signal.SIGTERM)

    # -- control client ---------------------------------------------------------
    def status_argv(self, as_json: bool = False) -> list[str]:
        if self.kind == "workerd":
            return [str(self.bin / "workerctl"), "-s", str(self.socket), "status"] + (
                ["--json"] if as_json else [])
        return [str(self.bin / "supervisorctl"), "-c", str(self.config_path), "status"]

    def ctl(self, *args: str, timeout: float = 15.0) -> subprocess.CompletedProcess:
        if self.kind == "workerd":
            argv = [str(self.bin / "workerctl"), "-s", str(self.socket), *args]
        else:
            argv = [str(self.bin / "supervisorctl"), "-c", str(self.config_path), *args]
        return subprocess.run(argv, capture_output=True, text=True, check=False, timeout=timeout,
                              stdin=subprocess.DEVNULL)

    def status_json(self) -> dict:
        r = self.ctl("status", "--json")
        if r.returncode != 0:
            raise BenchError(f"workerctl status --json: rc={r.returncode}: {r.stderr.strip()[:300]}")
        return json.loads(r.stdout)

    def helpers(self, worker_comms: set[str], min_age: float = 0.5) -> list[int]:
        """The daemon's children that are not workers: a helper of the daemon itself
        (workerd's sentinel, say), recognised by 'workerd'/'supervisor' in its cmdline.
        Children younger than min_age are skipped: a worker between fork and exec
        has the daemon's cmdline too."""
        with open("/proc/uptime") as f:
            uptime = float(f.read().split()[0])
        hz = os.sysconf("SC_CLK_TCK")
        out = []
        for p in scan_all().values():
            if p.ppid != self.pid or p.comm in worker_comms or p.state == "Z":
                continue
            if uptime - p.starttime / hz < min_age:
                continue
            cmd = read_cmdline(p.pid)
            if "workerd" in cmd or "supervisor" in cmd:
                out.append(p.pid)
        return out
