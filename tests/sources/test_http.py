"""The `http` source against a small HTTP server of the test's own (asyncio, 127.0.0.1,
a free port) that answers with exactly the bytes each test gives it."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest

from tests.helpers import free_port
from tests.sources.services import (
    PREFIX,
    black_hole,
    config_error,
    load_autoscale,
    read,
    read_closing,
    run,
    timed,
)
from workerd.config.model import Source as SourceKind
from workerd.core.scaling import QueueReading
from workerd.sources.base import SourceError
from workerd.sources.http import HttpSource

T = TypeVar("T")


def ok(body: bytes | str, *headers: str, status: str = "200 OK") -> bytes:
    """A response with Content-Length (unless a header says otherwise)."""
    data = body.encode() if isinstance(body, str) else body
    lines = [f"HTTP/1.1 {status}", "Content-Type: application/json", *headers]
    if not any(h.lower().startswith(("transfer-encoding", "content-length")) for h in headers):
        lines.append(f"Content-Length: {len(data)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + data


def chunked(*chunks: str) -> bytes:
    body = b"".join(f"{len(c.encode()):x}\r\n".encode() + c.encode() + b"\r\n" for c in chunks) + b"0\r\n\r\n"
    return ok(body, "Transfer-Encoding: chunked")


class Server:
    """Answers each connection with the next of `responses` (the last one repeats) and
    keeps the request heads it got."""

    def __init__(self, *responses: bytes) -> None:
        self.responses = list(responses)
        self.requests: list[str] = []
        self.port = 0

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        self.requests.append(head.decode())
        response = self.responses.pop(0) if len(self.responses) > 1 else self.responses[0]
        writer.write(response)
        await writer.drain()
        writer.close()

    def url(self, path: str = "/stats") -> str:
        return f"http://127.0.0.1:{self.port}{path}"


def serving(server: Server, body: Callable[[Server], Awaitable[T]]) -> T:
    async def main() -> T:
        listener = await asyncio.start_server(server._handle, "127.0.0.1", 0)
        server.port = listener.sockets[0].getsockname()[1]
        try:
            return await body(server)
        finally:
            listener.close()
            await listener.wait_closed()

    return run(main())


def reading_of(response: bytes, field: str = "depth", age_field: str | None = None,
               path: str = "/stats") -> QueueReading | BaseException:
    async def body(server: Server) -> QueueReading | BaseException:
        result, _ = await timed(read_closing(HttpSource(server.url(path), field, age_field, 5)))
        return result

    return serving(Server(response), body)


def test_an_empty_queue_reads_0() -> None:
    assert reading_of(ok('{"depth": 0}')) == QueueReading(0)


def test_n_jobs_read_n_again_and_again() -> None:
    async def body(server: Server) -> list[QueueReading]:
        source = HttpSource(server.url(), "depth", None, 5)
        readings = [await read(source) for _ in range(3)]
        await source.close()
        return readings

    server = Server(ok('{"depth": 0}'), ok('{"depth": 5}'), ok('{"depth": 12}'))
    assert serving(server, body) == [QueueReading(0), QueueReading(5), QueueReading(12)]


def test_a_dotted_path_and_an_age() -> None:
    document = {"queues": {"email": {"messages": 31, "oldest": 4.5}}, "other": 1}
    assert (reading_of(ok(json.dumps(document)), "queues.email.messages", "queues.email.oldest")
            == QueueReading(31, 4.5))


def test_a_number_in_the_path_selects_an_array_item() -> None:
    assert reading_of(ok('{"queues": [{"n": 1}, {"n": 9}]}'), "queues.1.n") == QueueReading(9)


def test_a_chunked_answer() -> None:
    assert reading_of(chunked('{"dep', 'th": ', "17}")) == QueueReading(17)


def test_an_answer_delimited_by_the_end_of_the_connection() -> None:
    assert reading_of(b'HTTP/1.0 200 OK\r\nContent-Type: application/json\r\n\r\n{"depth": 8}') == QueueReading(8)


def test_the_request_is_a_plain_get_with_basic_auth_from_the_url() -> None:
    async def body(server: Server) -> QueueReading:
        url = f"http://ops:p%40ss@127.0.0.1:{server.port}/api/queues?vhost=%2F"
        return await read_closing(HttpSource(url, "depth", None, 5))

    server = Server(ok('{"depth": 2}'))
    assert serving(server, body) == QueueReading(2)
    lines = server.requests[0].split("\r\n")
    assert lines[0] == "GET /api/queues?vhost=%2F HTTP/1.1"
    assert f"Host: 127.0.0.1:{server.port}" in lines
    assert "Connection: close" in lines
    assert "Authorization: Basic " + base64.b64encode(b"ops:p@ss").decode() in lines


@pytest.mark.parametrize(("response", "why"), [
    (ok('{"depth": "12"}'), "depth: not a number: '12'"),
    (ok('{"depth": -2}'), "depth: negative depth -2"),
    (ok('{"depth": null}'), "depth: not a number: None"),
    (ok('{"depth": {"n": 1}}'), "depth: not a number: {'n': 1}"),
    (ok('{"jobs": 3}'), "no 'depth' in the answer"),
    (ok("[1, 2]"), "no 'depth' in the answer"),
    (ok("<html>busy</html>"), "the answer is not JSON: b'<html>busy</html>'"),
    (ok(""), "the answer is not JSON: b''"),
    (ok('{"error": "down"}', status="503 Service Unavailable"), "HTTP 503 Service Unavailable"),
    (ok("", "Location: /elsewhere", status="302 Found"), "HTTP 302 Found to /elsewhere"),
    (b"SSH-2.0-OpenSSH_9.2\r\n", "not an HTTP answer: 'SSH-2.0-OpenSSH_9.2'"),
    (b"", "closed without answering"),
    (ok('{"depth": 1}', "Content-Length: 400"), "12 bytes read on a total of 400 expected bytes"),
    (ok('{"depth": 1}', "Content-Length: 99999999"), "an answer of 99999999 bytes (at most 1048576)"),
])
def test_garbage_is_a_source_error(response: bytes, why: str) -> None:
    async def body(server: Server) -> Any:
        result, _ = await timed(read_closing(HttpSource(server.url(), "depth", None, 5)))
        return result, server.url()

    result, url = serving(Server(response), body)
    assert isinstance(result, SourceError)
    assert str(result).startswith(f"http {url}: ")
    assert why in str(result)


def test_a_bad_age_is_a_source_error() -> None:
    result = reading_of(ok('{"depth": 1, "age": "old"}'), "depth", "age")
    assert isinstance(result, SourceError)
    assert str(result).endswith("age: not an age in seconds: 'old'")


def test_a_refused_port_is_an_error_at_once() -> None:
    source = HttpSource(f"http://127.0.0.1:{free_port()}/stats", "depth", None, 2)
    result, took = run(timed(read_closing(source)))
    assert isinstance(result, SourceError)
    assert "Connect call failed" in str(result) or "refused" in str(result).lower()
    assert took < 2


def test_a_server_that_never_answers_is_an_error_after_the_timeout() -> None:
    with black_hole() as port:
        source = HttpSource(f"http://127.0.0.1:{port}/stats", "depth", None, 1.0)
        result, took = run(timed(read_closing(source)))
    assert isinstance(result, SourceError)
    assert str(result) == f"http http://127.0.0.1:{port}/stats: no answer in 1s"
    assert 0.9 < took < 3


def test_a_password_is_not_shown() -> None:
    source = HttpSource(f"http://ops:s3cret@127.0.0.1:{free_port()}/stats", "depth", None, 2)
    result, _ = run(timed(read_closing(source)))
    assert isinstance(result, SourceError)
    assert "s3cret" not in str(result) and "ops:***@127.0.0.1" in str(result)


# -- config --------------------------------------------------------------------------------


def test_config(tmp_path: Path) -> None:
    config = load_autoscale(tmp_path, 'source = "http"\nurl = "https://ops.example/queues"\nfield = "email.depth"\n'
                                      'age_field = "email.age"\ntimeout = "1s"\n')
    assert config.source is SourceKind.HTTP
    assert (config.url, config.field, config.age_field, config.timeout) == (
        "https://ops.example/queues", "email.depth", "email.age", 1.0)


@pytest.mark.parametrize(("body", "message"), [
    ('source = "http"\nfield = "depth"\n', f"{PREFIX}.source: source 'http' needs url"),
    ('source = "http"\nurl = "http://h/"\n', f"{PREFIX}.source: source 'http' needs field"),
    ('source = "http"\nurl = "ftp://h/"\nfield = "depth"\n',
     f"{PREFIX}.url: expected a URL starting with http:// or https://, got 'ftp://h/'"),
    ('source = "http"\nurl = "http://h/"\nfield = "queues..depth"\n',
     f'{PREFIX}.field: expected a dotted path like "queues.email.depth", got \'queues..depth\''),
    ('source = "http"\nurl = "http://h/"\nfield = "depth"\nage_field = ".age"\n',
     f'{PREFIX}.age_field: expected a dotted path like "queues.email.depth", got \'.age\''),
    ('source = "http"\nurl = "http://h/"\nfield = "depth"\nstream = "s"\n',
     f"{PREFIX}.stream: not used by source 'http'"),
    ('source = "command"\ncommand = "p"\nfield = "depth"\n', f"{PREFIX}.field: not used by source 'command'"),
])
def test_config_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, body: str, message: str) -> None:
    assert config_error(tmp_path, body, monkeypatch) == message
