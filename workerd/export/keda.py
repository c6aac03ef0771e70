"""An autoscaled program as a KEDA ScaledObject: its source as KEDA triggers, its
connection secrets as a Secret and a TriggerAuthentication (never in the
ScaledObject itself).

workerd sums a program's keys or queues; KEDA scales on the largest of a
ScaledObject's triggers: for one key or queue (the usual case) they agree.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlsplit

from workerd.config.model import AutoscaleConfig
from workerd.config.source_rules import Source
from workerd.export.credentials import split_url
from workerd.sources.layouts import typed_keys

API_VERSION = "keda.sh/v1alpha1"
#: The sources that read something on this box only.
LOCAL_SOURCES = {Source.SQLITE: "reads a file on this box", Source.COMMAND: "runs a command on this box"}


@dataclass
class Triggers:
    """What one source becomes: its triggers, the secret values they authenticate
    with (parameter -> value), and what could not be carried over."""

    triggers: list[dict[str, Any]] = field(default_factory=list)
    secrets: dict[str, str] = field(default_factory=dict)
    #: TriggerAuthentication spec entries other than secretTargetRef (e.g. podIdentity).
    auth: dict[str, Any] = field(default_factory=dict)
    dropped: list[str] = field(default_factory=list)


#: A Redis key's type and, for a stream, its consumer groups, asked of the server at
#: the URL (None: the default one); None when unknown.
KeyTypes = Callable[[str | None, str], tuple[str, list[str]] | None]


def scaled_object(name: str, namespace: str | None, auto: AutoscaleConfig,
                  key_types: KeyTypes | None) -> tuple[list[dict[str, Any]], list[str]]:
    """The ScaledObject of the Deployment `name`, with its Secret and
    TriggerAuthentication when the source needs credentials; and what was dropped.
    No manifest at all for a source that cannot leave this box."""
    if auto.source in LOCAL_SOURCES:
        return [], [f"source {auto.source.value} {LOCAL_SOURCES[auto.source]}: no KEDA trigger, no autoscaling"]
    made = SOURCES[auto.source](auto, key_types)
    if auto.max_age is not None:
        made.dropped.append("max_age (no KEDA trigger scales on a job's age)")
    if any(getattr(auto, k) for k in ("dead_letter_keys", "dead_letter_query", "dead_letter_queues")):
        made.dropped.append("dead letters (watched by workerd only, never used for scaling)")
    if auto.listen is not None:
        made.dropped.append(f"listen (KEDA polls every {_seconds(auto.interval)}s)")
    if not made.triggers:
        return [], [*made.dropped, "no trigger left: no autoscaling"]
    if len(made.triggers) > 1:
        made.dropped.append(f"the sum of {len(made.triggers)} queues (KEDA scales on the largest one)")
    if auto.interval < 1:
        made.dropped.append(f"interval {auto.interval:g}s (KEDA polls in whole seconds: 1s)")
    meta = _metadata(name, namespace)
    documents = []
    if made.secrets or made.auth:
        auth_name = f"{name}-queue"
        spec: dict[str, Any] = dict(made.auth)
        if made.secrets:
            documents.append({"apiVersion": "v1", "kind": "Secret", "metadata": _metadata(auth_name, namespace),
                              "type": "Opaque", "stringData": dict(made.secrets)})
            spec["secretTargetRef"] = [{"parameter": p, "name": auth_name, "key": p} for p in made.secrets]
        documents.append({"apiVersion": API_VERSION, "kind": "TriggerAuthentication",
                          "metadata": _metadata(auth_name, namespace), "spec": spec})
        for trigger in made.triggers:
            trigger["authenticationRef"] = {"name": auth_name}
    down = _seconds(auto.scale_down_delay)
    documents.append({
        "apiVersion": API_VERSION, "kind": "ScaledObject", "metadata": meta,
        "spec": {
            "scaleTargetRef": {"name": name},
            "minReplicaCount": auto.min,
            "maxReplicaCount": auto.max,
            "pollingInterval": _seconds(auto.interval),
            # cooldownPeriod is the wait before scaling to zero; between 1 and max, the
            # HPA's stabilization window is what scale_down_delay means: down only to the
            # highest count wanted within the window.
            "cooldownPeriod": down,
            "advanced": {"horizontalPodAutoscalerConfig": {"behavior": {
                "scaleDown": {"stabilizationWindowSeconds": down}}}},
            "triggers": made.triggers,
        },
    })
    return documents, made.dropped


def _metadata(name: str, namespace: str | None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name}
    if namespace:
        meta["namespace"] = namespace
    return meta


def _seconds(value: float) -> int:
    return max(1, math.ceil(value))


def _redis(auto: AutoscaleConfig, key_types: KeyTypes | None) -> Triggers:
    url = urlsplit(auto.url or "redis://127.0.0.1:6379/0")
    made = Triggers()
    base = {"address": f"{url.hostname or '127.0.0.1'}:{url.port or 6379}",
            "databaseIndex": (url.path.strip("/") or "0")}
    if url.scheme == "rediss":
        base["enableTLS"] = "true"
    if url.password:
        made.secrets["password"] = unquote(url.password)
        if url.username:
            made.secrets["username"] = unquote(url.username)
    if auto.format is not None:
        keys = typed_keys(auto.format, auto.queue or "")
    else:
        keys = [(key, "") for key in auto.keys or ()]
    guessed = []
    for key, kind in keys:
        groups: list[str | None] = []
        if not kind:
            probed = key_types(auto.url, key) if key_types is not None else None
            kind, names = probed if probed is not None else ("list", [])
            groups = list(names)
            if probed is None:
                guessed.append(key)
        target = str(auto.per_worker)
        if kind == "list":
            made.triggers.append({"type": "redis", "metadata": {**base, "listName": key, "listLength": target}})
        elif kind == "stream":
            for group in groups or [None]:
                meta = {**base, "stream": key}
                meta.update({"consumerGroup": group, "lagCount": target} if group else {"streamLength": target})
                made.triggers.append({"type": "redis-streams", "metadata": meta})
        else:
            made.dropped.append(f"redis key {key!r}, a {kind} (KEDA's redis triggers read lists and streams)")
    if guessed:
        made.dropped.append(f"the type of {', '.join(map(repr, guessed))}: taken for a list "
                            "(--probe asks Redis, and finds streams and their groups)")
    return made


def _rabbitmq(auto: AutoscaleConfig, key_types: KeyTypes | None) -> Triggers:
    made = Triggers(secrets={"host": auto.url or ""})
    for queue in auto.queues or ():
        made.triggers.append({"type": "rabbitmq", "metadata": {
            "protocol": "auto", "mode": "QueueLength", "value": str(auto.per_worker), "queueName": queue}})
    return made


def _postgres(auto: AutoscaleConfig, key_types: KeyTypes | None) -> Triggers:
    # KEDA wants one number; workerd's query may add the oldest job's age as a second
    # column. A column alias list shorter than the row names the first column only.
    query = (auto.query or "").strip().rstrip(";")
    wrapped = f"SELECT depth FROM ({query}) AS workerd_queue(depth)"
    return Triggers(secrets={"connection": auto.url or ""}, triggers=[{"type": "postgresql", "metadata": {
        "query": wrapped, "targetQueryValue": str(auto.per_worker)}}])


def _sqs(auto: AutoscaleConfig, key_types: KeyTypes | None) -> Triggers:
    meta = {"queueURL": auto.queue_url or "", "queueLength": str(auto.per_worker), "awsRegion": auto.region or "",
            "scaleOnInFlight": "true" if auto.include_in_flight else "false"}
    if auto.endpoint_url:
        meta["awsEndpoint"] = auto.endpoint_url
    made = Triggers(triggers=[{"type": "aws-sqs-queue", "metadata": meta}], auth={"podIdentity": {"provider": "aws"}})
    made.dropped.append("boto3's credential chain (the TriggerAuthentication uses the pod's AWS identity)")
    return made


def _nats(auto: AutoscaleConfig, key_types: KeyTypes | None) -> Triggers:
    url = urlsplit(auto.url or "")
    made = Triggers(triggers=[{"type": "nats-jetstream", "metadata": {
        "natsServerMonitoringEndpoint": f"{url.hostname}:8222", "account": "$G", "stream": auto.stream or "",
        "consumer": auto.consumer or "", "lagThreshold": str(auto.per_worker),
        "useHttps": "true" if url.scheme in ("tls", "wss") else "false"}}])
    made.dropped.append("the client port (KEDA reads the monitoring endpoint: nats-server -m 8222 assumed)")
    if url.username or url.password:
        made.dropped.append("the NATS credentials (the monitoring endpoint takes none)")
    return made


def _http(auto: AutoscaleConfig, key_types: KeyTypes | None) -> Triggers:
    """The URL's credentials go to the Secret: a user and password as basic auth, else
    one secret-looking query parameter as an API key. metrics-api sends one kind of
    credential: any other is left out of the URL, and said."""
    split = split_url(auto.url or "")
    meta = {"url": split.url, "valueLocation": auto.field or "", "targetValue": str(auto.per_worker),
            "format": "json"}
    made = Triggers(triggers=[{"type": "metrics-api", "metadata": meta}])
    params = dict(split.params)
    if split.username or split.password:
        meta["authMode"] = "basic"
        made.secrets["username"] = split.username
        if split.password:
            made.secrets["password"] = split.password
    elif len(params) == 1:
        ((name, value),) = params.items()
        meta.update({"authMode": "apiKey", "method": "query", "keyParamName": name})
        made.secrets["apiKey"] = value
        params.clear()
    for name in params:
        made.dropped.append(f"the query parameter {name} of the URL (KEDA's metrics-api sends one credential, "
                            "and a credential stays out of the ScaledObject)")
    if auto.age_field:
        made.dropped.append("age_field (KEDA's metrics-api reads one value)")
    return made


SOURCES: dict[Source, Callable[[AutoscaleConfig, KeyTypes | None], Triggers]] = {
    Source.REDIS: _redis, Source.RABBITMQ: _rabbitmq, Source.POSTGRES: _postgres, Source.SQS: _sqs,
    Source.NATS: _nats, Source.HTTP: _http,
}
