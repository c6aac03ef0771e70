"""Depth from a URL that answers JSON: the number at `field` (and the age at `age_field`).

A GET over asyncio streams, written here rather than taken from a client library:
urllib only blocks, and one GET of a small JSON document per interval needs little
of HTTP/1.1 — the status line, the headers, and a body delimited by Content-Length,
chunked encoding or the end of the connection (`Connection: close`: nothing is kept
between readings). So the source needs no extra and costs no import. https uses
the system's CA store; user:password in the URL becomes Basic authentication.
Redirects are not followed (an error names the Location). The whole exchange is
bounded by `timeout`, and an answer larger than BODY_LIMIT is refused.
"""

from __future__ import annotations

import asyncio
import base64
import json
import ssl
from urllib.parse import unquote, urlsplit

from workerd import __version__
from workerd.core.scaling import QueueReading
from workerd.sources.base import SourceError, check_age, check_depth, one_line, redact

BODY_LIMIT = 1024 * 1024
MAX_HEADERS = 100


class HttpSource:
    def __init__(self, url: str, field: str, age_field: str | None, timeout: float) -> None:
        parts = urlsplit(url)
        self._what = f"http {redact(url)}"
        self._field = field
        self._age_field = age_field
        self._timeout = timeout
        self._host = parts.hostname or ""
        self._port = parts.port or (443 if parts.scheme == "https" else 80)
        self._tls = ssl.create_default_context() if parts.scheme == "https" else None
        host = f"[{self._host}]" if ":" in self._host else self._host
        if parts.port is not None:
            host += f":{parts.port}"
        lines = [
            f"GET {parts.path or '/'}{'?' + parts.query if parts.query else ''} HTTP/1.1",
            f"Host: {host}",
            f"User-Agent: workerd/{__version__}",
            "Accept: application/json",
            "Connection: close",
        ]
        if parts.username is not None:
            credentials = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
            lines.append("Authorization: Basic " + base64.b64encode(credentials.encode()).decode())
        self._request = ("\r\n".join(lines) + "\r\n\r\n").encode()

    async def read(self) -> QueueReading:
        try:
            body = await asyncio.wait_for(self._get(), self._timeout)
        except asyncio.TimeoutError:
            raise SourceError(f"{self._what}: no answer in {self._timeout:g}s") from None
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError) as exc:
            raise SourceError(f"{self._what}: {one_line(exc)}") from None
        except SourceError as exc:
            raise SourceError(f"{self._what}: {exc}") from None
        try:
            document = json.loads(body)
        except ValueError:
            raise SourceError(f"{self._what}: the answer is not JSON: {body[:80]!r}") from None
        depth = check_depth(lookup(document, self._field, self._what), f"{self._what}: {self._field}")
        age = None
        if self._age_field is not None:
            age = check_age(lookup(document, self._age_field, self._what), f"{self._what}: {self._age_field}")
        return QueueReading(depth, age)

    async def _get(self) -> bytes:
        reader, writer = await asyncio.open_connection(
            self._host, self._port, ssl=self._tls, limit=BODY_LIMIT
        )
        try:
            writer.write(self._request)
            await writer.drain()
            return await read_response(reader)
        finally:
            writer.close()

    async def close(self) -> None:
        """Nothing is kept between readings."""


async def read_response(reader: asyncio.StreamReader) -> bytes:
    """The body of a 2xx response; SourceError for another status."""
    status_line = (await reader.readline()).decode("latin-1").strip()
    version, _, rest = status_line.partition(" ")
    code, _, reason = rest.partition(" ")
    if not version.startswith("HTTP/1.") or not (code.isdigit() and len(code) == 3):
        raise SourceError(f"not an HTTP answer: {status_line[:80]!r}" if status_line else "closed without answering")
    headers: dict[str, str] = {}
    for _ in range(MAX_HEADERS):
        line = (await reader.readline()).decode("latin-1")
        if not line.strip():
            break
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    else:
        raise SourceError(f"more than {MAX_HEADERS} headers")
    if not code.startswith("2"):
        where = f" to {headers['location']}" if code.startswith("3") and "location" in headers else ""
        raise SourceError(f"HTTP {code} {reason}".rstrip() + where)
    if "chunked" in headers.get("transfer-encoding", "").lower():
        return await _chunked(reader)
    if "content-length" in headers:
        length = int(headers["content-length"])
        if not 0 <= length <= BODY_LIMIT:
            raise SourceError(f"an answer of {length} bytes (at most {BODY_LIMIT})")
        return await reader.readexactly(length)
    body = await reader.read(BODY_LIMIT + 1)
    while len(body) <= BODY_LIMIT and (more := await reader.read(BODY_LIMIT + 1 - len(body))):
        body += more
    if len(body) > BODY_LIMIT:
        raise SourceError(f"an answer over {BODY_LIMIT} bytes")
    return body


async def _chunked(reader: asyncio.StreamReader) -> bytes:
    body = b""
    while True:
        size = int((await reader.readline()).split(b";")[0].strip() or b"x", 16)
        if size == 0:
            break
        if len(body) + size > BODY_LIMIT:
            raise SourceError(f"an answer over {BODY_LIMIT} bytes")
        body += await reader.readexactly(size)
        await reader.readline()  # the CRLF after each chunk
    while (await reader.readline()).strip():  # trailers
        pass
    return body


def lookup(document: object, path: str, what: str) -> object:
    """The value at a dotted path; a segment of digits indexes an array."""
    value = document
    for segment in path.split("."):
        if isinstance(value, dict) and segment in value:
            value = value[segment]
        elif isinstance(value, list) and segment.isdigit() and int(segment) < len(value):
            value = value[int(segment)]
        else:
            raise SourceError(f"{what}: no {path!r} in the answer")
    return value
