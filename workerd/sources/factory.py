"""Makes the source an autoscale config names; each backend module (and its client
library) is imported only here, only when a program uses it."""

from __future__ import annotations

from workerd.config.model import AutoscaleConfig
from workerd.config.model import Source as SourceKind
from workerd.sources.base import Source


def make_source(config: AutoscaleConfig) -> Source:
    timeout = config.timeout or config.interval
    if config.source is SourceKind.SQLITE:
        from workerd.sources.sqlite import SqliteSource

        assert config.path is not None and config.query is not None  # the schema's check
        return SqliteSource(config.path, config.query)
    if config.source is SourceKind.REDIS:
        from workerd.sources.redis import RedisSource

        return RedisSource(config.url, config.keys, config.format, config.queue, timeout)
    raise ValueError(f"unknown source {config.source}")
