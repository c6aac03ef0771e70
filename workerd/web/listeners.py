"""The daemon's HTTP listeners: /metrics and the console, one server per address (the
same address serves both). Each is imported only when it is on: a daemon without them
does not pay for prometheus-client, the HTTP server or the console."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TYPE_CHECKING

from workerd.config.model import DaemonConfig

if TYPE_CHECKING:
    from workerd.runtime.feed import Feed
    from workerd.runtime.handlers import Commands
    from workerd.runtime.timeline import Timeline
    from workerd.web.http import HttpServer


class WebError(Exception):
    """A listener could not start: `cannot serve the console on 127.0.0.1:9809: ...`."""


async def start_web(daemon: DaemonConfig, commands: Commands, timeline: Timeline, feed: Feed,
                    current: Callable[[], DaemonConfig]) -> list[HttpServer]:
    """Serve what DAEMON turns on; the console reads its token from CURRENT(), the
    settings in force after any reload, and streams each point the timeline records."""
    if daemon.metrics is None and daemon.console is None:
        return []
    from workerd.web.http import HttpServer

    servers: dict[tuple[str, int], HttpServer] = {}
    what: dict[tuple[str, int], list[str]] = {}
    if daemon.metrics is not None:
        from workerd.web.metrics import MetricsPage, StatusCollector

        server = servers.setdefault(daemon.metrics, HttpServer())
        server.route("/metrics", MetricsPage(StatusCollector(lambda: commands.snapshot([]))))
        what.setdefault(daemon.metrics, []).append("metrics")
    if daemon.console is not None:
        from workerd.runtime.feed import Recorded
        from workerd.web.console import Console

        server = servers.setdefault(daemon.console, HttpServer())
        console = Console(commands, timeline, current)
        feed.subscribe(Recorded, console.recorded)
        server.route("/", console)
        what.setdefault(daemon.console, []).append("the console")
    started: list[HttpServer] = []
    for address, server in servers.items():
        try:
            await server.start(*address)
        except OSError as exc:
            for running in started:
                await running.close()
            raise WebError(f"cannot serve {' and '.join(what[address])} on {address[0]}:{address[1]}: "
                           f"{os.strerror(exc.errno) if exc.errno else exc}") from None
        started.append(server)
    return started
