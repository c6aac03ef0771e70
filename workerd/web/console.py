"""The web console: one page (workerd/web/static/), its JSON, a live stream, and actions.

Routes, all on the daemon's loop (web/http.py):
  GET  /                              the page, its script and style (no data: anyone may load them)
  GET  /api/status                    exactly `workerctl status --json`
  GET  /api/history/NAME?since=S      exactly `workerctl history NAME --json`
  GET  /api/logs/NAME?lines=N         the last N (1..LOG_LINES_MAX) lines of the program's output
  GET  /api/config                    whether actions are on, whether reads are public
  GET  /api/stream                    Server-Sent Events: the status and each program's newest
                                      point and marks, sent when the timeline records (never
                                      at idle), and a comment every KEEPALIVE seconds
  POST /api/programs/NAME/ACTION      restart, stop, start, or scale with {"count": N|"auto"}

Safety: every /api/ request carries the console_token in `Authorization: Bearer`
(never a cookie: cookies are not kept apart by port, so any other server on 127.0.0.1
would be sent it; never a URL), compared in constant time; without it, 401. With
`console_public`, reads need no token. An action is also JSON (a cross-site form cannot
send that, nor the header, without a preflight, which is never answered), and with an
Origin, if any, that is this console's own. Every action is logged with the client's
address. Streams are capped in total and per client, a client being the local user
that holds the connection on this host (web/tcp_owner.py), else its address.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import math
import re
from collections import Counter
from collections.abc import Callable
from importlib import resources
from typing import Any

from workerd.config.model import DaemonConfig
from workerd.runtime.feed import Recorded
from workerd.runtime.handlers import Commands
from workerd.runtime.timeline import Timeline, news_document
from workerd.web.http import Request, Response, text
from workerd.web.tcp_owner import tcp_owner

log = logging.getLogger("workerd")

#: Live streams served at once, and to one client; one more is refused with a 429 (each
#: holds a connection open).
MAX_STREAMS = 32
STREAMS_PER_CLIENT = 8
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


class BadQuery(Exception):
    """A query parameter that is not what the route takes: a 400 naming it."""


class Console:
    def __init__(self, commands: Commands, timeline: Timeline, daemon: Callable[[], DaemonConfig]) -> None:
        self._commands = commands
        self._timeline = timeline
        #: The [daemon] settings in force now: a reload that changes the token or
        #: console_public applies at once.
        self._daemon = daemon
        #: Each open stream's queue, and its client.
        self._streams: dict[asyncio.Queue[bytes], str] = {}
        self._marks_sent = 0.0

    async def __call__(self, request: Request) -> Response:
        path = request.path
        if request.method == "GET" and path in ASSETS:
            file, kind = ASSETS[path]
            return Response(200, resources.files("workerd.web.static").joinpath(file).read_bytes(), kind,
                            dict(PAGE_HEADERS))
        if request.method == "POST" and path.startswith("/api/programs/"):
            return await self._act(request)
        if request.method != "GET":
            return text(405, "the console's only POSTs are /api/programs/NAME/ACTION")
        if not (self._daemon().console_public or self._has_token(request)):
            return _unauthorized()
        try:
            return await self._read(request)
        except BadQuery as exc:
            return _json(400, {"error": str(exc)})

    async def _read(self, request: Request) -> Response:
        path = request.path
        if path == "/api/status":
            return await self._ask("status", {}, "status")
        if path.startswith("/api/history/"):
            return await self._ask("history", {"program": path.removeprefix("/api/history/"),
                                               "since": _seconds(request.query, "since", 3600.0)}, "history")
        if path.startswith("/api/logs/"):
            return self._logs(path.removeprefix("/api/logs/"), _count(request.query, "lines", 50, LOG_LINES_MAX))
        if path == "/api/stream":
            return self._stream(_client(request))
        if path == "/api/config":
            daemon = self._daemon()
            return _json(200, {"actions": daemon.console_token is not None, "public": daemon.console_public})
        return text(404, f"not found: {path}")

    # -- reading -----------------------------------------------------------------------

    async def _ask(self, name: str, request: dict[str, Any], key: str) -> Response:
        reply = await self._commands.call(name, request)
        return _json(200, reply[key]) if reply.get("ok") else _json(404, {"error": reply.get("error")})

    def _logs(self, name: str, count: int) -> Response:
        program = self._commands.program(name)
        if program is None:
            return _json(404, {"error": f"no such program: {name}"})
        return Response(200, program.sink.tail(count), "text/plain; charset=utf-8", {"Cache-Control": "no-store"})

    def _stream(self, client: str) -> Response:
        refusal = stream_refusal(Counter(self._streams.values()), client)
        if refusal is not None:
            return _json(429, {"error": refusal})
        queue: asyncio.Queue[bytes] = asyncio.Queue(maxsize=1)
        queue.put_nowait(self._update(None))

        async def run(writer: asyncio.StreamWriter) -> None:
            if stream_refusal(Counter(self._streams.values()), client) is not None:
                return  # others took the last places since the check above: the stream ends at once
            self._streams[queue] = client
            try:
                while not writer.is_closing():
                    try:
                        event = await asyncio.wait_for(queue.get(), KEEPALIVE)
                    except asyncio.TimeoutError:
                        event = b": keepalive\n\n"
                    writer.write(event)
                    await writer.drain()
            finally:
                self._streams.pop(queue, None)

        return Response(200, content_type="text/event-stream", stream=run)

    def recorded(self, _: Recorded) -> None:
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
            return _unauthorized() if refusal == "wrong or missing token" else _json(403, {"error": refusal})
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

    def _has_token(self, request: Request) -> bool:
        """The request carries the token in force, as `Authorization: Bearer TOKEN`."""
        token = self._daemon().console_token
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        return (token is not None and scheme.lower() == "bearer"
                and hmac.compare_digest(given.strip().encode(), token.encode()))

    def _refusal(self, request: Request) -> str | None:
        if self._daemon().console_token is None:
            return "the console is read-only: set [daemon] console_token to act from it"
        if not self._has_token(request):
            return "wrong or missing token"
        origin = request.headers.get("origin")
        if origin is not None and origin != f"http://{request.headers.get('host', '')}":
            return f"a request from another origin ({origin})"
        if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
            return "actions are sent as application/json"
        return None


def stream_refusal(open_by_client: Counter[str], client: str) -> str | None:
    """Why CLIENT may not open another stream, with OPEN_BY_CLIENT open; None: it may."""
    if sum(open_by_client.values()) >= MAX_STREAMS:
        return f"{MAX_STREAMS} live streams are open already"
    if open_by_client[client] >= STREAMS_PER_CLIENT:
        return f"{client} has {STREAMS_PER_CLIENT} live streams open already"
    return None


def _client(request: Request) -> str:
    """Who opens a stream: the local user holding the connection, else its address."""
    if request.peer_address is None or request.local_address is None:
        return request.peer
    uid = tcp_owner(request.peer_address, request.local_address)
    return request.peer_address[0] if uid is None else f"uid {uid}"


def _count(query: dict[str, str], name: str, default: int, most: int) -> int:
    given = query.get(name)
    if given is None:
        return default
    if not re.fullmatch(r"[0-9]{1,9}", given) or not 1 <= int(given) <= most:
        raise BadQuery(f"{name}: a whole number from 1 to {most}, got {given[:40]!r}")
    return int(given)


def _seconds(query: dict[str, str], name: str, default: float) -> float:
    given = query.get(name)
    if given is None:
        return default
    try:
        value = float(given)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise BadQuery(f"{name}: seconds, a number > 0, got {given[:40]!r}")
    return value


def _unauthorized() -> Response:
    response = _json(401, {"error": "the console needs its token ([daemon] console_token), "
                                    "sent as Authorization: Bearer"})
    response.headers["WWW-Authenticate"] = 'Bearer realm="workerd"'
    return response


def _json(status: int, data: Any) -> Response:
    return Response(status, json.dumps(data, indent=2).encode() + b"\n", "application/json",
                    {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"})
