"""The daemon's lifetime: set up the loop, serve until asked to stop, stop cleanly.

Order matters at start: the control socket is bound first (a live daemon on it is
a refusal before anything else happens), log_dir is locked (one daemon per log_dir),
then the daemon moves into its cgroup leaf
(where delegated), starts the sentinel, becomes a subreaper, and the loop runs.
`wire` is the one place the supervisor's feed gets its listeners.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import signal
import socket
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import uvloop

from workerd import __version__
from workerd.config.model import Config
from workerd.control.protocol import EXIT_FAILED, EXIT_OK, EXIT_USAGE
from workerd.control.server import ControlServer, SocketInUse, bind_socket
from workerd.core.events import Notified
from workerd.exit_status import ExitStatus
from workerd.process import cgroups
from workerd.process.children import ReapedLauncher
from workerd.process.clock import Clock, LoopClock
from workerd.process.effects import Effects
from workerd.process.log_dir_lock import LogDirBusy, LogDirLock
from workerd.process.nofile import raise_soft_limit
from workerd.process.prctl import become_subreaper
from workerd.process.procstat import session_of
from workerd.process.reaper import Reaper
from workerd.process.sentinel import Sentinel
from workerd.runtime import journal
from workerd.runtime.autoscaler import Autoscaler
from workerd.runtime.feed import QueueRead, RestartCounted, Settled, SlotChanged
from workerd.runtime.handlers import Commands, Needs
from workerd.runtime.notify import NotifySocket
from workerd.runtime.service import ServiceManager, status_line
from workerd.runtime.supervisor import CommandError, Supervisor
from workerd.runtime.tally import Tally
from workerd.runtime.timeline import Timeline
from workerd.runtime.watcher import LimitWatcher
from workerd.runtime.workers import WorkerIndex
from workerd.web.listeners import WebError, start_web

if TYPE_CHECKING:
    from workerd.web.http import HttpServer

log = logging.getLogger("workerd")

#: After SIGKILLing what outlived shutdown_timeout, how long to wait for the kernel.
KILL_GRACE = 5.0
#: How long to wait for the last lines of output after every worker has exited.
DRAIN_GRACE = 2.0
#: How long the autoscaler's loops get to close their queue sources' connections.
SOURCE_CLOSE_GRACE = 2.0


@dataclass(frozen=True)
class Wired:
    """The supervisor and what listens to its feed (a test drives the same with a FakeClock)."""

    supervisor: Supervisor
    tally: Tally
    workers: WorkerIndex
    timeline: Timeline
    #: A worker's sd_notify datagram, to its slot.
    notified: Callable[[Notified], None]


def wire(config: Config, clock: Clock, effects: Effects, service: ServiceManager,
         rand: Callable[[], float] = random.random) -> Wired:
    """Every listener of the supervisor's feed, subscribed here and nowhere else; raises
    CommandError when the config's logs cannot be opened."""
    supervisor = Supervisor(config, clock, effects, rand)
    feed = supervisor.feed
    tally, workers = Tally(), WorkerIndex()
    timeline = Timeline(supervisor, clock, feed)
    feed.subscribe(SlotChanged, journal.slot_changed)
    feed.subscribe(SlotChanged, workers.slot_changed)
    feed.subscribe(SlotChanged, tally.slot_changed)
    feed.subscribe(RestartCounted, tally.restart_counted)
    feed.subscribe(RestartCounted, timeline.marked)
    feed.subscribe(QueueRead, journal.queue_read)
    feed.subscribe(QueueRead, tally.queue_read)
    feed.subscribe(Settled, timeline.changed)
    feed.subscribe(Settled, service.changed)
    return Wired(supervisor, tally, workers, timeline, workers.route(supervisor.deliver))


class StartFailed(Exception):
    """The daemon cannot start: the one line said, and the exit code."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


def run(config: Config) -> int:
    """Run the daemon in the foreground; returns the process exit code."""
    raise_soft_limit()  # a descriptor or two per worker: the hard limit is what binds (config/descriptors.py)
    d = config.daemon
    service = ServiceManager.from_environ(os.environ)
    try:
        sock = bind_socket(d.socket, d.socket_mode, d.socket_gid)
    except SocketInUse as exc:
        print(f"workerd: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as exc:
        print(f"workerd: cannot create the control socket: {exc.strerror}", file=sys.stderr)
        return EXIT_FAILED
    try:
        log_dir_lock = LogDirLock.take(d.log_dir)
    except LogDirBusy as exc:
        print(f"workerd: {exc}", file=sys.stderr)
        sock.close()
        d.socket.unlink(missing_ok=True)
        return EXIT_USAGE if exc.taken else EXIT_FAILED
    # Into the cgroup leaf before the sentinel is made: a cgroup v2 parent may not
    # hold processes once its children have controllers.
    cgroup_tree, why = cgroups.CgroupTree.find()
    if cgroup_tree is not None:
        try:
            cgroup_tree.prepare()
        except OSError as exc:
            cgroup_tree, why = None, f"cannot set up the delegated cgroup: {exc.strerror}"
    enforcement = cgroups.enforcement(cgroup_tree, why)
    loop = uvloop.new_event_loop()
    asyncio.set_event_loop(loop)
    clock = LoopClock(loop)
    sentinel = Sentinel(clock)
    become_subreaper()
    try:
        return loop.run_until_complete(Daemon(config, clock, sock, sentinel, cgroup_tree, enforcement,
                                                   service, log_dir_lock).serve())
    finally:
        # No more SIGCHLD callbacks into a loop that is going away (the sentinel and
        # the last orphans may still exit now).
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        loop.close()


class Daemon:
    def __init__(self, config: Config, clock: Clock, sock: socket.socket, sentinel: Sentinel,
                 cgroup_tree: cgroups.CgroupTree | None, enforcement: str, service: ServiceManager,
                 log_dir_lock: LogDirLock) -> None:
        self._config = config
        self._log_dir_lock = log_dir_lock
        self._service = service
        self._clock = clock
        self._cgroup_tree = cgroup_tree
        self._enforcement = enforcement
        self._sock = sock
        self._sentinel = sentinel
        self._shutdown: asyncio.Task[None] | None = None
        self._sentinel_released = False
        self._sentinel_restart: asyncio.TimerHandle | None = None
        self._web: list[HttpServer] = []
        self._done: asyncio.Future[None] | None = None
        self._exit_code = EXIT_OK
        #: SIGHUP reloads under way (held: the loop keeps only weak references to tasks).
        self._reloads: set[asyncio.Task[dict[str, Any]]] = set()

    async def serve(self) -> int:
        loop = asyncio.get_running_loop()
        self._done = loop.create_future()
        self._notify: NotifySocket | None = None
        try:
            await self._start(loop)
        except StartFailed as exc:
            print(f"workerd: {exc}", file=sys.stderr)
            self._sock.close()
            if self._notify is not None:
                self._notify.close()
            self._config.daemon.socket.unlink(missing_ok=True)
            self._close_sentinel()
            return exc.code
        await self._done
        return self._exit_code

    async def _start(self, loop: asyncio.AbstractEventLoop) -> None:
        """Everything up, in order; a StartFailed leaves what serve() cleans up."""
        reaper = self._reaper = Reaper(loop)
        reaper.install()
        self._watch_sentinel()
        self._effects = Effects(loop, self._clock, reaper, self._sentinel, self._cgroup_tree)
        try:
            wired = wire(self._config, self._clock, self._effects, self._service)
        except CommandError as exc:
            raise StartFailed(str(exc), EXIT_FAILED) from None
        supervisor = self._supervisor = wired.supervisor
        self._timeline = wired.timeline
        notify = NotifySocket(self._config.daemon.notify_socket,
                              lambda pid: wired.workers.owner(pid, session_of), wired.notified)
        try:
            notify.open(loop)
        except OSError as exc:
            raise StartFailed(f"cannot create the notify socket {notify.path}: {exc.strerror}", EXIT_FAILED) from None
        self._notify = notify
        supervisor.deadlines.before = notify.drain
        watcher = LimitWatcher(supervisor, self._clock)
        self._autoscaler = Autoscaler(supervisor, ReapedLauncher(loop, reaper, self._sentinel))
        self._started_at = self._clock.now()
        self._commands = Commands(supervisor, Needs(
            now=self._clock.now, daemon_status=lambda: self._daemon_status(watcher, notify), tally=wired.tally,
            watcher=watcher, timeline=self._timeline, service=self._service, log_dir_lock=self._log_dir_lock,
            reconfigured=lambda: self._reconfigured(watcher),
            request_shutdown=self.request_shutdown,
        ))
        for signo in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signo, self.request_shutdown)
        loop.add_signal_handler(signal.SIGHUP, self._reload)
        loop.add_signal_handler(signal.SIGUSR1, supervisor.reopen_logs)
        self._server = ControlServer(self._sock, self._config.daemon.socket_gid, self._commands.handlers())
        # The web listeners first: once the control socket answers, every address the
        # config names answers too (a script that waited for `workerctl status` may scrape).
        try:
            self._web = await self._serve_web()
        except WebError as exc:
            raise StartFailed(str(exc), EXIT_USAGE) from None
        await self._server.start()
        supervisor.start()
        watcher.update()
        self._autoscaler.update()
        log.info("started %d program(s); control socket %s", len(supervisor.programs), self._config.daemon.socket)
        if self._service.active:  # READY=1 now that every slot is spawned or failed; then STATUS= follows
            self._service.follow(self._clock, lambda: status_line(supervisor.programs.values()))

    def _reconfigured(self, watcher: LimitWatcher) -> None:
        """After a reload: the limits watched and the queues read follow the new config."""
        watcher.update()
        self._autoscaler.update()

    def _daemon_status(self, watcher: LimitWatcher, notify: NotifySocket) -> dict[str, Any]:
        """The daemon's own part of `workerctl status`."""
        return {
            "pid": os.getpid(),
            "version": __version__,
            "uptime": round(self._clock.now() - self._started_at, 3),
            "limits": self._enforcement,
            "limit_samples": watcher.samples,
            # pid None: dead and not yet replaced (a crash of the daemon now would leave children)
            "sentinel": {"pid": self._sentinel.pid, "restarts": self._sentinel.restarts},
            "notify": {"received": notify.received, "dropped": dict(notify.dropped)},
        }

    async def _serve_web(self) -> list[HttpServer]:
        daemon = self._config.daemon
        servers = await start_web(daemon, self._commands, self._timeline, self._supervisor.feed,
                                  lambda: self._supervisor.config.daemon)
        if daemon.metrics is not None:
            log.info("metrics on http://%s:%d/metrics", *daemon.metrics)
        if daemon.console is not None:
            log.info("console on http://%s:%d/ (%s)", *daemon.console,
                     "reads and actions need the token" if not daemon.console_public else
                     "public reads, actions need the token" if daemon.console_token else
                     "public and read-only: no console_token")
        return servers

    def request_shutdown(self) -> None:
        """First request: graceful stop of everything; a second one kills at once."""
        if self._shutdown is None:
            log.info("shutting down")
            self._service.stopping()
            self._shutdown = asyncio.ensure_future(self._stop_everything())
        else:
            log.warning("second shutdown request: killing every worker now")
            self._supervisor.kill_all()

    async def _stop_everything(self) -> None:
        """Whatever fails on the way (a bug), serve() returns: a daemon that has stopped
        its workers must not hang on, deaf to a second SIGTERM."""
        try:
            await self._stop_and_release()
        except Exception:
            log.exception("shutdown failed; exiting anyway")
            self._exit_code = EXIT_FAILED
        finally:
            assert self._done is not None
            self._done.set_result(None)

    async def _stop_and_release(self) -> None:
        supervisor = self._supervisor
        self._autoscaler.stop()
        supervisor.shutdown()
        everything = supervisor.select(["all"])
        try:
            await asyncio.wait_for(supervisor.wait_for(everything, "stopped"), self._config.daemon.shutdown_timeout)
        except asyncio.TimeoutError:
            log.warning("shutdown_timeout passed: killing what is left")
            supervisor.kill_all()
            try:
                await asyncio.wait_for(supervisor.wait_for(everything, "stopped"), KILL_GRACE)
            except asyncio.TimeoutError:
                log.error("some workers did not exit after SIGKILL")
        try:
            await asyncio.wait_for(self._effects.pipes_drained.wait(), DRAIN_GRACE)
        except asyncio.TimeoutError:
            pass  # a grandchild outside the process group still holds a pipe open
        if not await self._autoscaler.wait_closed(SOURCE_CLOSE_GRACE):
            log.warning("a queue source did not close within %gs", SOURCE_CLOSE_GRACE)
        await self._server.close()
        for server in self._web:
            await server.close()
        self._timeline.close()
        assert self._notify is not None
        self._notify.close()
        self._config.daemon.socket.unlink(missing_ok=True)
        self._service.close()
        for program in supervisor.programs.values():
            program.sink.close()
        self._effects.finish()  # what the last exits left, now: the loop ends before a timer would
        self._close_sentinel()
        log.info("stopped")

    def _reload(self) -> None:
        """SIGHUP: reload as `workerctl reload` does (the file is read off the loop), then log the outcome."""
        task = asyncio.ensure_future(self._commands.call("reload", {}))
        self._reloads.add(task)
        task.add_done_callback(self._reloaded)

    def _reloaded(self, task: asyncio.Task[dict[str, Any]]) -> None:
        self._reloads.discard(task)
        reply = task.result()
        if reply["ok"]:
            for change in reply["changes"]:
                log.info("reload: %s", change)
        else:
            log.error("reload refused: %s", reply["error"])

    def _close_sentinel(self) -> None:
        """With nothing left to guard, let the sentinel go (EOF on its pipe)."""
        self._sentinel_released = True
        if self._sentinel_restart is not None:
            self._sentinel_restart.cancel()
        self._sentinel.close()

    def _watch_sentinel(self) -> None:
        assert self._sentinel.pid is not None
        self._reaper.watch(self._sentinel.pid, self._sentinel_died)

    def _sentinel_died(self, status: ExitStatus) -> None:
        if self._sentinel_released:
            return
        delay = self._sentinel.lost()
        log.error("the sentinel (pid %d) exited (%s): starting a new one %s", status.pid, status.describe(),
                  f"in {delay:g}s" if delay else "now")
        self._restart_sentinel_in(delay)

    def _restart_sentinel_in(self, delay: float) -> None:
        """Until then, a crash of the daemon would leave the workers' children running."""
        if delay:
            self._sentinel_restart = self._clock.call_at(self._clock.now() + delay, self._restart_sentinel)
        else:
            self._restart_sentinel()

    def _restart_sentinel(self) -> None:
        self._sentinel_restart = None
        try:
            self._sentinel.restart()
        except OSError as exc:
            delay = self._sentinel.lost()
            log.error("cannot start a new sentinel (%s): trying again in %gs", exc.strerror, delay)
            self._restart_sentinel_in(delay)
            return
        self._watch_sentinel()
        log.info("sentinel restarted (pid %d), handed %d process group(s)", self._sentinel.pid,
                 self._sentinel.tracked)
