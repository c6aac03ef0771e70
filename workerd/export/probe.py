"""`--probe`: what a config cannot say about Redis keys, asked of the server itself.

A key in `keys` may be a list, a stream (whose consumer groups KEDA's redis-streams
trigger names) or a sorted set; the workerd source finds out at each reading, an
export must know beforehand. Any failure answers "unknown", and the export says
what it assumed.
"""

from __future__ import annotations

from workerd.export.keda import KeyTypes

#: The source's own default server.
DEFAULT_URL = "redis://127.0.0.1:6379/0"
#: Each question to Redis is bounded by this.
PROBE_TIMEOUT = 3.0


def redis_key_types() -> KeyTypes:
    """Ask each server once per key, with one client per URL."""
    import redis
    from redis.exceptions import RedisError

    clients: dict[str, redis.Redis] = {}

    def key_type(url: str | None, key: str) -> tuple[str, list[str]] | None:
        url = url or DEFAULT_URL
        if url not in clients:
            clients[url] = redis.Redis.from_url(url, socket_timeout=PROBE_TIMEOUT,
                                                socket_connect_timeout=PROBE_TIMEOUT)
        try:
            answer = clients[url].type(key)
            kind = answer.decode() if isinstance(answer, bytes) else answer
            if kind == "none":
                return None
            groups = [g["name"].decode() for g in clients[url].xinfo_groups(key)] if kind == "stream" else []
        except (RedisError, OSError, UnicodeDecodeError):
            return None
        return kind, groups

    return key_type
