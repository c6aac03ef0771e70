"""Real services for the source contract suite.

`redis_url` is the Redis at 127.0.0.1:6379 (db 0). When it does not answer, the
tests that need it skip with the reason, except when CI=true, where a missing
service is a failure (CI starts every service). `redis_prefix` is a random key
prefix; every key under it is deleted after the test.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest

from tests.sources.services import delete_tagged

#: TEST_REDIS_URL points the suite at another server (e.g. to check the skip/fail path).
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def _missing(service: str, why: str) -> None:
    message = f"{service} is not reachable ({why}); start it to run these tests"
    if os.environ.get("CI") == "true":
        pytest.fail(f"{message} (CI=true: a missing service is a failure)", pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="session")
def redis_url() -> str:
    try:
        import redis
    except ImportError as exc:  # the test extra installs it
        _missing("Redis", f"redis-py is not installed: {exc}")
    try:
        client = redis.Redis.from_url(REDIS_URL, socket_timeout=1, socket_connect_timeout=1)
        client.ping()
        client.close()
    except redis.RedisError as exc:
        _missing(f"Redis at {REDIS_URL}", str(exc))
    return REDIS_URL


@pytest.fixture
def redis_prefix(redis_url: str) -> Iterator[str]:
    """A random prefix, e.g. `wdtest-1a2b3c4d:`; its keys are deleted afterwards."""
    import redis

    prefix = f"wdtest-{uuid.uuid4().hex[:8]}:"
    yield prefix
    delete_tagged(redis.Redis.from_url(redis_url), prefix[:-1])


@pytest.fixture
def own_redis(tmp_path):  # type: ignore[no-untyped-def]
    """A redis-server of this test's own (not started yet); killed by pid at teardown."""
    from tests.sources.redis_server import RedisServer

    server = RedisServer(tmp_path)
    yield server
    server.stop()
