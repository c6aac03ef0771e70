"""The Redis key layouts of the job libraries workerd knows (`format` + `queue`).

Kept apart from the Redis source so that what does not read Redis (the Kubernetes
export) can resolve the same names without the client. The names are the libraries'
own, with their default prefixes:

- celery (kombu's Redis transport): the list named after the queue, plus its
  priority lists `<queue>\\x06\\x16<n>` for n in 3, 6, 9;
- rq: the list `rq:queue:<queue>`;
- bullmq: `bull:<queue>:wait` (list) and `bull:<queue>:prioritized` (sorted set);
- dramatiq (RedisBroker): the list `dramatiq:<queue>` (messages live in `<queue>.msgs`);
- arq: the sorted set named after the queue (`arq:queue` by default);
- sidekiq: the list `queue:<queue>`.
"""

from __future__ import annotations

from workerd.config.source_rules import RedisFormat


def library_keys(library: RedisFormat, queue: str) -> list[str]:
    """The keys whose sizes make up the backlog of `queue` in that library."""
    return [key for key, _ in typed_keys(library, queue)]


def typed_keys(library: RedisFormat, queue: str) -> list[tuple[str, str]]:
    """The same keys with their Redis type, "list" or "zset"."""
    if library is RedisFormat.CELERY:
        return [(queue, "list"), *((f"{queue}\x06\x16{n}", "list") for n in (3, 6, 9))]
    if library is RedisFormat.RQ:
        return [(f"rq:queue:{queue}", "list")]
    if library is RedisFormat.BULLMQ:
        return [(f"bull:{queue}:wait", "list"), (f"bull:{queue}:prioritized", "zset")]
    if library is RedisFormat.DRAMATIQ:
        return [(f"dramatiq:{queue}", "list")]
    if library is RedisFormat.ARQ:
        return [(queue, "zset")]
    return [(f"queue:{queue}", "list")]  # sidekiq
