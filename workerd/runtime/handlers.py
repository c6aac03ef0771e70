"""What each control request does, on the daemon's side: parse its arguments, ask the
supervisor, and shape the reply. Requests that wait (start, stop, restart) answer
once the processes reached their target state."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from workerd.config.load import ConfigError, load
from workerd.config.model import Config
from workerd.config.preflight import problems
from workerd.config.units import parse_signal
from workerd.control.protocol import encode
from workerd.control.server import Handler
from workerd.process.log_dir_lock import LogDirBusy, LogDirLock
from workerd.process.output import ProgramLog
from workerd.runtime.program import Program
from workerd.runtime.service import ServiceManager, status_line
from workerd.runtime.status import CpuMeter, Snapshot, document, take
from workerd.runtime.supervisor import CommandError, Supervisor
from workerd.runtime.tally import Tally
from workerd.runtime.timeline import Timeline, history_document
from workerd.runtime.watcher import LimitWatcher

Reply = dict[str, Any]

#: The requests answered with one reply (`logs` streams).
REQUESTS = ("status", "history", "start", "stop", "restart", "scale", "signal", "reload", "shutdown")
#: Chunks of output queued for one `logs -f` client before new ones are dropped.
FOLLOW_BACKLOG = 1024


@dataclass(frozen=True)
class Needs:
    """What the handlers use beyond the supervisor, by the requests that use it."""

    now: Callable[[], float]
    #: status: the daemon's own part (pid, uptime, limits, sentinel, notify socket),
    #: the counts, the limits that fired.
    daemon_status: Callable[[], dict[str, Any]]
    tally: Tally
    watcher: LimitWatcher
    #: history
    timeline: Timeline
    #: reload: systemd told around it, log_dir's lock moved, then what follows the config updated
    service: ServiceManager
    log_dir_lock: LogDirLock
    reconfigured: Callable[[], None]
    #: shutdown
    request_shutdown: Callable[[], None]


class Commands:
    def __init__(self, supervisor: Supervisor, needs: Needs) -> None:
        self._supervisor = supervisor
        self._needs = needs
        self._meter = CpuMeter()
        self._reloading = asyncio.Lock()

    def handlers(self) -> dict[str, Handler]:
        def wrap(name: str) -> Handler:
            async def handler(
                request: dict[str, Any], reader: asyncio.StreamReader, writer: asyncio.StreamWriter
            ) -> Reply | None:
                return await self.call(name, request)
            return handler

        table: dict[str, Handler] = {name: wrap(name) for name in REQUESTS}
        table["logs"] = self.logs
        return table

    async def call(self, name: str, request: dict[str, Any]) -> Reply:
        """One request (one of REQUESTS) as the control socket runs it: errors become replies."""
        try:
            result = getattr(self, name)(request)
            if asyncio.iscoroutine(result):
                result = await result
            return result  # type: ignore[no-any-return]
        except (CommandError, ValueError) as exc:
            return {"ok": False, "error": str(exc)}

    def now(self) -> float:
        return self._needs.now()

    def program(self, name: str) -> Program | None:
        return self._supervisor.programs.get(name)

    def _programs(self, request: dict[str, Any]) -> list[Any]:
        return self._supervisor.select(request.get("programs") or ["all"])

    def snapshot(self, names: list[str]) -> Snapshot:
        """The status of the named programs (all for []), read once, for any view."""
        programs = self._supervisor.select(names or ["all"])
        needs = self._needs
        return take(programs, needs.now(), self._supervisor.processes(), needs.daemon_status(), needs.watcher.fired,
                    needs.tally)

    def status(self, request: dict[str, Any]) -> Reply:
        return {"ok": True, "status": document(self.snapshot(request.get("programs") or []), self._meter)}

    def history(self, request: dict[str, Any]) -> Reply:
        """The last `since` seconds (default: the hour kept) of one program."""
        (program,) = self._supervisor.select([str(request.get("program"))])
        since = request.get("since", 3600)
        if not isinstance(since, (int, float)) or isinstance(since, bool) or since <= 0:
            raise ValueError(f"invalid since: {since!r} (seconds > 0)")
        timeline = self._needs.timeline
        timeline.record()
        return {"ok": True, "history": history_document(timeline.history(program.name), program.name,
                                                        float(since), self._needs.now())}

    def _refuse_during_shutdown(self) -> None:
        """A shutdown stops everything; nothing may start anything behind its back."""
        if self._supervisor.shutting_down:
            raise CommandError("the daemon is shutting down")

    async def _act(self, request: dict[str, Any], act: Callable[[list[Any]], object], target: str) -> Reply:
        self._refuse_during_shutdown()
        programs = self._programs(request)
        act(programs)
        if not request.get("wait", True):
            return {"ok": True, "message": "requested"}
        ok, message = await self._supervisor.wait_for(programs, target)
        return {"ok": ok, "message": message} if ok else {"ok": False, "error": message}

    async def start(self, request: dict[str, Any]) -> Reply:
        return await self._act(request, self._supervisor.start_programs, "started")

    async def stop(self, request: dict[str, Any]) -> Reply:
        return await self._act(request, self._supervisor.stop_programs, "stopped")

    async def restart(self, request: dict[str, Any]) -> Reply:
        rolling = bool(request.get("rolling"))
        return await self._act(request, lambda ps: self._supervisor.restart_programs(ps, rolling), "started")

    def scale(self, request: dict[str, Any]) -> Reply:
        self._refuse_during_shutdown()
        (program,) = self._supervisor.select([str(request.get("program"))])
        count = request.get("count")
        if count == "auto":
            self._supervisor.scale(program, None)
            control = "the autoscaler" if program.scale is not None else "the config"
            return {"ok": True, "message": f"{program.name}: back to {control} ({program.target})"}
        if not isinstance(count, int) or isinstance(count, bool) or count < 0:
            raise ValueError(f"invalid count: {count!r} (a number >= 0, or 'auto')")
        self._supervisor.scale(program, count)
        return {"ok": True, "message": f"{program.name}: pinned to {count}"}

    def signal(self, request: dict[str, Any]) -> Reply:
        signo = parse_signal(str(request.get("signal", "")))
        programs = self._programs(request)
        sent = self._supervisor.signal(programs, signo)
        return {"ok": True, "message": f"signal {signo} sent to {sent} process group(s)"}

    async def reload(self, request: dict[str, Any]) -> Reply:
        """systemd hears RELOADING=1, then READY=1 whatever the outcome (a refused reload
        leaves the old config running, which is ready). One reload at a time."""
        self._refuse_during_shutdown()
        async with self._reloading:
            self._needs.service.reloading()
            try:
                return await self._reload()
            finally:
                self._needs.service.ready(status_line(self._supervisor.programs.values()))

    async def _reload(self) -> Reply:
        """The file and what it names (env files, users, directories) are read in a
        thread: a slow disk or name service must not stop the loop meanwhile."""
        try:
            loop = asyncio.get_running_loop()
            config = await loop.run_in_executor(None, _checked_config, self._supervisor.config.path)
            self._refuse_during_shutdown()
            with self._needs.log_dir_lock.moving_to(config.daemon.log_dir):
                changes = self._supervisor.reload(config)
        except (ConfigError, CommandError, LogDirBusy) as exc:
            return {"ok": False, "error": f"{exc} (the running config stays in force)"}
        self._needs.reconfigured()
        return {"ok": True, "changes": changes}

    def shutdown(self, request: dict[str, Any]) -> Reply:
        self._needs.request_shutdown()
        return {"ok": True, "message": "shutting down"}

    async def logs(
        self, request: dict[str, Any], reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> Reply | None:
        try:
            (program,) = self._supervisor.select([str(request.get("program"))])
        except CommandError as exc:
            return {"ok": False, "error": str(exc)}
        lines = int(request.get("lines", 10))
        writer.write(encode({"ok": True, "data": program.sink.tail(lines).decode("utf-8", "replace")}))
        if request.get("follow"):
            await self._follow(program.sink, reader, writer)
        return None

    async def _follow(self, sink: ProgramLog, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Stream new output until the client hangs up. A client that reads slower than
        the program writes loses lines (counted), rather than growing the daemon."""
        queue: asyncio.Queue[bytes] = asyncio.Queue(maxsize=FOLLOW_BACKLOG)
        dropped = 0

        def follower(data: bytes) -> None:
            nonlocal dropped
            try:
                queue.put_nowait(data)
            except asyncio.QueueFull:
                dropped += 1

        sink.followers.add(follower)
        hangup = asyncio.ensure_future(reader.read())
        try:
            while not hangup.done():
                getter = asyncio.ensure_future(queue.get())
                await asyncio.wait({getter, hangup}, return_when=asyncio.FIRST_COMPLETED)
                if not getter.done():
                    getter.cancel()
                    break
                if dropped:
                    note = f"[workerctl: {dropped} chunk(s) of output dropped: reader too slow]\n"
                    writer.write(encode({"data": note}))
                    dropped = 0
                writer.write(encode({"data": getter.result().decode("utf-8", "replace")}))
                await writer.drain()
        finally:
            sink.followers.discard(follower)
            hangup.cancel()


def _checked_config(path: Path) -> Config:
    """The config at `path`, refused (CommandError) where a worker's directory or command is missing."""
    config = load(path)
    missing = problems(config)
    if missing:
        raise CommandError(missing[0])
    return config
