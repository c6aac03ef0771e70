"""A minimal HTTP/1.1 server on the daemon's own loop, for /metrics and the console.

One request per connection (`Connection: close`), bounded in size and time: no web
framework, no thread. Each address gets one server; /metrics and the console share it
when they are given the same address. A handler's exception is logged and answered
with a 500: a bad request never reaches the daemon. A server on a loopback address
answers only requests addressed to a loopback name and its port: a page elsewhere whose
name resolves to 127.0.0.1 (DNS rebinding) reads nothing from it.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, unquote, urlsplit

log = logging.getLogger("workerd")

#: A client has this long to send its request.
REQUEST_TIMEOUT = 5.0
#: Largest request head and body accepted.
HEAD_MAX = 16 * 1024
BODY_MAX = 16 * 1024
REASONS = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
           405: "Method Not Allowed", 409: "Conflict", 413: "Payload Too Large", 429: "Too Many Requests",
           500: "Internal Server Error"}


@dataclass(frozen=True)
class Request:
    method: str
    #: The decoded path, without the query.
    path: str
    query: dict[str, str]
    #: Lower-cased names.
    headers: dict[str, str]
    body: bytes
    #: "host:port" of the client, for the log.
    peer: str
    #: The client's (host, port) and this server's, as the socket gives them.
    peer_address: tuple[str, int] | None = None
    local_address: tuple[str, int] | None = None


@dataclass
class Response:
    status: int
    body: bytes = b""
    content_type: str = "text/plain; charset=utf-8"
    headers: dict[str, str] = field(default_factory=dict)
    #: Set for a stream (Server-Sent Events): writes to the client until it goes (it is
    #: cancelled when the client closes its side).
    stream: Callable[[asyncio.StreamWriter], Awaitable[None]] | None = None


Handler = Callable[[Request], Awaitable[Response]]


def text(status: int, message: str) -> Response:
    return Response(status, (message + "\n").encode())


class HttpServer:
    def __init__(self) -> None:
        #: (path prefix, handler); the longest matching prefix wins.
        self._routes: list[tuple[str, Handler]] = []
        self._server: asyncio.base_events.Server | None = None
        self._streams: set[asyncio.Task[None]] = set()
        #: The port to find in Host, on a loopback address; None: any Host.
        self._loopback_port: int | None = None

    def route(self, prefix: str, handler: Handler) -> None:
        self._routes.append((prefix, handler))
        self._routes.sort(key=lambda route: -len(route[0]))

    async def start(self, host: str, port: int) -> None:
        self._server = await asyncio.start_server(self._serve, host, port, limit=HEAD_MAX)
        self._loopback_port = self._server.sockets[0].getsockname()[1] if _loopback(host) else None

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._streams):
            task.cancel()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = await asyncio.wait_for(_read(reader, writer), REQUEST_TIMEOUT)
            response = await self._answer(request) if isinstance(request, Request) else request
            writer.write(_head(response) + (b"" if response.stream else response.body))
            if response.stream is None:
                await writer.drain()
            else:  # the stream drains its own writes
                task = asyncio.current_task()
                assert task is not None
                self._streams.add(task)
                try:
                    await _until_closed(response.stream(writer), reader)
                finally:
                    self._streams.discard(task)
        except (asyncio.TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            pass
        except asyncio.CancelledError:
            pass
        finally:
            writer.close()

    async def _answer(self, request: Request) -> Response:
        if self._loopback_port is not None and not addressed_to(request.headers.get("host", ""),
                                                                self._loopback_port):
            return text(403, "this address answers only to its own name (localhost, 127.0.0.1, [::1])")
        handler = next((h for prefix, h in self._routes if request.path.startswith(prefix)), None)
        if handler is None:
            return text(404, f"not found: {request.path}")
        try:
            return await handler(request)
        except Exception:  # a bug in a page must not take the daemon down
            log.exception("http: %s %s failed", request.method, request.path)
            return text(500, "internal error (see the daemon's log)")


async def _read(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> Request | Response:
    head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
    request_line, *lines = head.split("\r\n")
    parts = request_line.split(" ")
    if len(parts) != 3:
        return text(400, "bad request line")
    headers = {}
    for line in lines:
        name, sep, value = line.partition(":")
        if sep:
            headers[name.strip().lower()] = value.strip()
    try:
        length = int(headers.get("content-length", "0"))
    except ValueError:
        return text(400, "bad Content-Length")
    if not 0 <= length <= BODY_MAX:
        return text(413, f"a body is at most {BODY_MAX} bytes")
    body = await reader.readexactly(length) if length else b""
    url = urlsplit(parts[1])
    peer, local = writer.get_extra_info("peername"), writer.get_extra_info("sockname")
    return Request(parts[0], unquote(url.path), dict(parse_qsl(url.query, keep_blank_values=True)), headers, body,
                   f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer),
                   peer[:2] if isinstance(peer, tuple) else None, local[:2] if isinstance(local, tuple) else None)


async def _until_closed(stream: Awaitable[None], reader: asyncio.StreamReader) -> None:
    """Run STREAM until it ends or the client closes its side (a stream that only writes
    would notice that at its next write, a keep-alive later, holding its place till then)."""
    writing = asyncio.ensure_future(stream)
    try:
        while not writing.done():
            closed = asyncio.ensure_future(reader.read(HEAD_MAX))
            try:
                await asyncio.wait({writing, closed}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                closed.cancel()
            gone = closed.done() and not closed.cancelled() and (closed.exception() is not None or not closed.result())
            if gone and not writing.done():
                return
        writing.result()
    finally:
        writing.cancel()
        # Its end is not awaited (it may be writing still); what it raised is read, not reported.
        writing.add_done_callback(lambda task: task.cancelled() or task.exception())


def addressed_to(host: str, port: int) -> bool:
    """HOST (a Host header) is a loopback name with PORT (or none, for port 80)."""
    if host.startswith("["):
        name, bracket, given = host[1:].partition("]")
        if not bracket or (given and not given.startswith(":")):
            return False
        given = given[1:]
    else:
        name, _, given = host.partition(":")
    return _loopback(name) and given == ("" if port == 80 and not given else str(port))


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _head(response: Response) -> bytes:
    headers = {"Content-Type": response.content_type, **response.headers}
    if response.stream is None:
        headers["Content-Length"] = str(len(response.body))
        headers["Connection"] = "close"
    else:
        headers["Cache-Control"] = "no-store"
    lines = [f"HTTP/1.1 {response.status} {REASONS.get(response.status, 'Unknown')}",
             *(f"{k}: {v}" for k, v in headers.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
