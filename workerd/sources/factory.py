"""Makes the source an autoscale config names; each backend module (and its client
library) is imported only here, only when a program uses it."""

from __future__ import annotations

from dataclasses import replace

from workerd.config.model import AutoscaleConfig
from workerd.config.model import Source as SourceKind
from workerd.sources.base import Source
from workerd.sources.child import Launcher


def make_dead_letter_source(config: AutoscaleConfig, launcher: Launcher | None = None) -> Source | None:
    """The same source pointed at the program's dead letters, if it has any configured."""
    if config.dead_letter_keys is not None:
        return make_source(replace(config, keys=config.dead_letter_keys, format=None, queue=None), launcher)
    if config.dead_letter_query is not None:
        return make_source(replace(config, query=config.dead_letter_query), launcher)
    if config.dead_letter_queues is not None:
        return make_source(replace(config, queues=config.dead_letter_queues), launcher)
    return None


def make_source(config: AutoscaleConfig, launcher: Launcher | None = None) -> Source:
    """`launcher` starts the children of the sources that need one (command, sqs);
    the daemon passes its own (process/children.py). The schema's checks guarantee
    the keys each source needs."""
    if config.source is SourceKind.SQLITE:
        from workerd.sources.sqlite import SqliteSource

        assert config.path is not None and config.query is not None
        return SqliteSource(config.path, config.query)
    if config.source is SourceKind.REDIS:
        from workerd.sources.redis import RedisSource

        return RedisSource(config.url, config.keys, config.format, config.queue, config.timeout)
    if config.source is SourceKind.POSTGRES:
        from workerd.sources.postgres import PostgresSource

        assert config.url is not None and config.query is not None
        return PostgresSource(config.url, config.query, config.timeout, config.listen)
    if config.source is SourceKind.RABBITMQ:
        from workerd.sources.rabbitmq import RabbitmqSource

        assert config.url is not None and config.queues is not None
        return RabbitmqSource(config.url, config.queues, config.timeout)
    if config.source is SourceKind.NATS:
        from workerd.sources.nats import NatsSource

        assert config.url is not None and config.stream is not None and config.consumer is not None
        return NatsSource(config.url, config.stream, config.consumer, config.timeout)
    if config.source is SourceKind.HTTP:
        from workerd.sources.http import HttpSource

        assert config.url is not None and config.field is not None
        return HttpSource(config.url, config.field, config.age_field, config.timeout)
    if launcher is None:
        raise ValueError(f"source {config.source.value!r} runs a child process: it needs a launcher")
    if config.source is SourceKind.COMMAND:
        from workerd.sources.command import CommandSource

        assert config.command is not None
        return CommandSource(config.command, config.timeout, launcher)
    if config.source is SourceKind.SQS:
        from workerd.sources.sqs import SqsSource

        assert config.queue_url is not None and config.region is not None
        return SqsSource(config.queue_url, config.region, config.endpoint_url, config.include_in_flight,
                         config.timeout, launcher)
    raise ValueError(f"unknown source {config.source}")
