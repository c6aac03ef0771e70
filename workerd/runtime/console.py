"""The web console: one page (workerd/console/), its JSON, a live stream, and actions.

Routes, all on the daemon's loop (runtime/http.py):
  GET  /                              the page, its script and style (no request leaves the box)
  GET  /api/status                    exactly `workerctl status --json`
  GET  /api/history/NAME?since=S      exactly `workerctl history NAME --json`
  GET  /api/logs/NAME?lines=N         the last lines of the program's output
  GET  /api/config                    whether actions are on
  GET  /api/stream                    Server-Sent Events: the status and each program's newest
                                      point and marks, sent when the timeline records (never
                                      at idle), and a comment every KEEPALIVE seconds
  POST /api/programs/NAME/ACTION      restart, stop, start, or scale with {"count": N|"auto"}

Safety: a loopback console answers only requests whose Host is a loopback name (a DNS
rebinding page cannot read it). Actions exist only with a console_token; each carries it
in `Authorization: Bearer`, compared in constant time, as JSON (a cross-site form cannot
send that without a preflight, which is never answered), and with an Origin, if any,
that is this console's own. Every action is logged with the client's address.
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import json
import logging
import math
from collections.abc import Callable
from importlib import resources
from typing import Any

from workerd.runtime.commands import Commands
from workerd.runtime.http import Request, Response, text
from workerd.runtime.timeline import Timeline, news_document

log = logging.getLogger("workerd")

#: Live streams served at once; one more is refused (each holds a connection open).
MAX_STREAMS = 16
#: Seconds between keep-alive comments on an idle stream.
KEEPALIVE = 15.0
ACTIONS = ("restart", "stop", "start", "scale")
#: Most log lines one request returns.
LOG_LINES_MAX = 1000
ASSETS = {"/": ("index.html", "text/html; charset=utf-8"),
          "/console.js": ("console.js", "text/javascript; charset=utf-8"),
          "/console.css": ("console.css", "text/css; charset=utf-8")}
PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
                               "img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


class Console:
    def __init__(self, commands: Commands, timeline: Timeline, address: tuple[str, int],
                 token: Callable[[], str | None]) -> None:
        self._commands = commands
        self._timeline = timeline
        self._host, self._port = address
        #: The token in force now (a reload that changes it applies at once); None: read-only.
        self._token = token
        self._streams: set[asyncio.Queue[bytes]] = set()
        self._marks_sent = 0.0
        timeline.recorded = self._publish

    async def __call__(self, request: Request) -> Response:
        if not self._host_allowed(request.headers.get("host", "")):
            return _json(403, {"error": "this console answers only to its own address"})
        path = request.path
        if request.method == "POST" and path.startswith("/api/programs/"):
            return await self._act(request)
        if request.method != "GET":
            return text(405, "the console's only POSTs are /api/programs/NAME/ACTION")
        if path in ASSETS:
            file, kind = ASSETS[path]
            return Response(200, resources.files("workerd.console").joinpath(file).read_bytes(), kind,
                            dict(PAGE_HEADERS))
        if path == "/api/status":
            return await self._ask("status", {}, "status")
        if path.startswith("/api/history/"):
            return await self._ask("history", {"program": path.removeprefix("/api/history/"),
                                               "since": _number(request.query.get("since", "3600"))}, "history")
        if path.startswith("/api/logs/"):
            return self._logs(path.removeprefix("/api/logs/"), request.query.get("lines", "50"))
        if path == "/api/stream":
            return self._stream()
        if path == "/api/config":
            return _json(200, {"actions": self._token() is not None})
        return text(404, f"not found: {path}")

    # -- reading -----------------------------------------------------------------------

    async def _ask(self, name: str, request: dict[str, Any], key: str) -> Response:
        reply = await self._commands.call(name, request)
        return _json(200, reply[key]) if reply.get("ok") else _json(404, {"error": reply.get("error")})

    def _logs(self, name: str, lines: str) -> Response:
        program = self._commands.program(name)
        if program is None:
            return _json(404, {"error": f"no such program: {name}"})
        count = max(1, min(int(_number(lines)), LOG_LINES_MAX))
        return Response(200, program.sink.tail(count), "text/plain; charset=utf-8", {"Cache-Control": "no-store"})

    def _stream(self) -> Response:
        if len(self._streams) >= MAX_STREAMS:
            return _json(409, {"error": f"{MAX_STREAMS} live streams are open already"})
        queue: asyncio.Queue[bytes] = asyncio.Queue(maxsize=1)
        queue.put_nowait(self._update(None))

        async def run(writer: asyncio.StreamWriter) -> None:
            self._streams.add(queue)
            try:
                while not writer.is_closing():
                    try:
                        event = await asyncio.wait_for(queue.get(), KEEPALIVE)
                    except asyncio.TimeoutError:
                        event = b": keepalive\n\n"
                    writer.write(event)
                    await writer.drain()
            finally:
                self._streams.discard(queue)

        return Response(200, content_type="text/event-stream", stream=run)

    def _publish(self) -> None:
        """The timeline recorded: one event for every open stream (a slow reader gets the
        newest, never a backlog). Nothing is built while no page is open."""
        if not self._streams:
            return
        event = self._update(self._marks_sent)
        for queue in self._streams:
            if queue.full():
                queue.get_nowait()
            queue.put_nowait(event)

    def _update(self, marks_since: float | None) -> bytes:
        """`event: update`: the status, each program's newest point, its marks since
        MARKS_SINCE (None: the whole hour)."""
        now = self._commands.now()
        status = self._commands.status({})["status"]
        points, marks = {}, {}
        for name, history in self._timeline.histories.items():
            news = news_document(history, -math.inf if marks_since is None else marks_since, now)
            points[name], marks[name] = news["points"], news["marks"]
        if marks_since is not None:
            self._marks_sent = now
        data = json.dumps({"status": status, "points": points, "marks": marks}, separators=(",", ":"))
        return f"event: update\ndata: {data}\n\n".encode()

    # -- acting ------------------------------------------------------------------------

    async def _act(self, request: Request) -> Response:
        name, _, action = request.path.removeprefix("/api/programs/").partition("/")
        refusal = self._refusal(request)
        if refusal is not None:
            log.warning("console: %s %s from %s refused: %s", action, name, request.peer, refusal)
            return _json(403, {"error": refusal})
        if action not in ACTIONS:
            return _json(404, {"error": f"no such action: {action!r} ({', '.join(ACTIONS)})"})
        try:
            body = json.loads(request.body or b"{}")
        except ValueError:
            return _json(400, {"error": "the body is not JSON"})
        ask: dict[str, Any] = {"programs": [name], "wait": False}
        if action == "scale":
            ask = {"program": name, "count": body.get("count") if isinstance(body, dict) else None}
        reply = await self._commands.call(action, ask)
        log.info("console: %s %s from %s: %s", action, name, request.peer, reply.get("message") or reply.get("error"))
        return _json(200 if reply.get("ok") else 409, reply)

    def _refusal(self, request: Request) -> str | None:
        token = self._token()
        if token is None:
            return "the console is read-only: set [daemon] console_token to act from it"
        given = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
        if not hmac.compare_digest(given.encode(), token.encode()):
            return "wrong or missing token"
        origin = request.headers.get("origin")
        if origin is not None and origin != f"http://{request.headers.get('host', '')}":
            return f"a request from another origin ({origin})"
        if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
            return "actions are sent as application/json"
        return None

    def _host_allowed(self, host: str) -> bool:
        """Any Host for a console on the network; a loopback one only for a loopback name."""
        if not _loopback(self._host):
            return True
        name, _, port = host.rpartition(":")
        return _loopback(name.strip("[]")) and port == str(self._port)


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _number(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        return 0.0
    return value if value == value else 0.0


def _json(status: int, data: Any) -> Response:
    return Response(status, json.dumps(data, indent=2).encode() + b"\n", "application/json",
                    {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"})
