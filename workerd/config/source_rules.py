"""The autoscale sources and the rules each one adds to `[programs.NAME.autoscale]`.

Which keys a source reads, and which it needs, is declared once, on the keys
themselves (`optional_for`, `required_for` in config/schema.py); the checks here are
derived from those declarations, plus what a declaration cannot say: URL schemes,
JetStream names, Redis's either-keys-or-format, and the client library to install.
"""

from __future__ import annotations

import enum
import importlib.util
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from workerd.config.tables import Key, Table


class Source(str, enum.Enum):
    """Where an autoscaled program's queue depth is read."""

    REDIS = "redis"
    RABBITMQ = "rabbitmq"
    POSTGRES = "postgres"
    SQLITE = "sqlite"
    SQS = "sqs"
    NATS = "nats"
    COMMAND = "command"
    HTTP = "http"


class RedisFormat(str, enum.Enum):
    """Job libraries whose Redis key layout workerd knows (see sources/redis.py)."""

    CELERY = "celery"
    RQ = "rq"
    BULLMQ = "bullmq"
    DRAMATIQ = "dramatiq"
    ARQ = "arq"
    SIDEKIQ = "sidekiq"


#: The URL schemes a source takes in `url`.
URL_SCHEMES = {
    Source.POSTGRES: ("postgresql", "postgres"),
    Source.RABBITMQ: ("amqp", "amqps"),
    Source.NATS: ("nats", "tls", "ws", "wss"),
    Source.HTTP: ("http", "https"),
}
#: A source's client library and the extra that installs it.
SOURCE_EXTRAS = {
    Source.REDIS: ("redis", "redis"),
    Source.POSTGRES: ("psycopg", "postgres"),
    Source.RABBITMQ: ("aiormq", "rabbitmq"),
    Source.NATS: ("nats", "nats"),
    Source.SQS: ("boto3", "sqs"),
}
#: Characters JetStream refuses in stream and consumer names.
_NATS_NAME_FORBIDDEN = frozenset(">*. /\\\t\r\n")


def client_installed(module: str) -> bool:
    """Whether a source's client library can be imported. The one place that asks, so
    the config tests can say what is installed instead of depending on the machine."""
    return importlib.util.find_spec(module) is not None


def with_source_rules(table: Table) -> Table:
    """The autoscale table with the per-source checks added after its own."""
    specific = tuple(k for k in table.fields if isinstance(k, Key) and (k.optional_for or k.required_for))

    def check(values: Mapping[str, Any]) -> tuple[str, str] | None:
        return _source_problem(values, values["source"], specific)

    return replace(table, checks=(*table.checks, check))


def _source_problem(values: Mapping[str, Any], source: Source,
                    specific: tuple[Key[Any], ...]) -> tuple[str, str] | None:
    """(key, why) for the first key the source does not read, or needs and lacks, or
    whose value it refuses; or the client library that is missing."""
    for key in specific:
        if values[key.name] not in (None, False) and source not in (*key.optional_for, *key.required_for):
            return key.name, f"not used by source {source.value!r}"
    if source is Source.REDIS and (problem := _redis_problem(values)) is not None:
        return problem
    for key in specific:
        if source in key.required_for and values[key.name] is None:
            return "source", f"source {source.value!r} needs {key.name}"
    if (problem := _value_problem(values, source)) is not None:
        return problem
    if source in SOURCE_EXTRAS:
        module, extra = SOURCE_EXTRAS[source]
        if not client_installed(module):
            return "source", f"the {source.value} client is not installed: pip install 'workerd[{extra}]'"
    return None


def _redis_problem(values: Mapping[str, Any]) -> tuple[str, str] | None:
    if (values["keys"] is None) == (values["format"] is None):
        return "keys", "give either keys or format (with queue)"
    if values["format"] is not None and values["queue"] is None:
        return "format", "needs queue (the job library's queue name)"
    if values["queue"] is not None and values["format"] is None:
        return "queue", "only used with format (give the keys themselves in keys)"
    return None


def _scheme_problem(url: str, schemes: tuple[str, ...]) -> str | None:
    scheme, sep, rest = url.partition("://")
    if sep and scheme.lower() in schemes and rest:
        return None
    return f"expected a URL starting with {' or '.join(f'{s}://' for s in schemes)}, got {url!r}"


def _value_problem(values: Mapping[str, Any], source: Source) -> tuple[str, str] | None:
    """What is wrong with the values of a source's keys, all of them given."""
    if source in URL_SCHEMES and (problem := _scheme_problem(values["url"], URL_SCHEMES[source])):
        return "url", problem
    if source is Source.NATS:
        for key in ("stream", "consumer"):
            if not values[key] or _NATS_NAME_FORBIDDEN & set(values[key]):
                return key, f"invalid JetStream name {values[key]!r} (no spaces, '.', '*', '>', '/' or '\\')"
    if source is Source.SQS:
        for key in ("queue_url", "endpoint_url"):
            if values[key] is not None and (problem := _scheme_problem(values[key], ("https", "http"))):
                return key, problem
        if not values["region"].strip():
            return "region", "must not be empty"
    if source is Source.HTTP:
        for key in ("field", "age_field"):
            if values[key] is not None and not all(values[key].split(".")):
                return key, f'expected a dotted path like "queues.email.depth", got {values[key]!r}'
    return None
