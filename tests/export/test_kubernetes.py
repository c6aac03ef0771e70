"""`workerd export kubernetes`: every manifest validated against KEDA's own CRD
schemas (ScaledObject, TriggerAuthentication) and a closed schema of the Deployment
and Secret fields used; the command run as users run it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.export.manifests import by_kind, config_file, exported, run, validated
from workerd.export.kubernetes import kubernetes_name

RQ_AND_CELERY = """
    [programs.rq-email]
    command = "rq worker email --url redis://:s3cret@127.0.0.1:6379/2"
    directory = "/srv/app"
    stop_signal = "SIGINT"
    stop_timeout = "30s"

    [programs.rq-email.limits]
    memory = "512MiB"
    cpu_percent = 150

    [programs.rq-email.autoscale]
    source = "redis"
    url = "redis://:s3cret@127.0.0.1:6379/2"
    format = "rq"
    queue = "email"
    min = 0
    max = 6
    per_worker = 10
    interval = "5s"
    scale_down_delay = "2m"

    [programs.celery]
    command = "celery -A app worker -Q default --concurrency 4"
    processes = 2

    [programs.celery.autoscale]
    source = "redis"
    format = "celery"
    queue = "default"
    min = 1
    max = 8
    per_worker = 20
"""


def test_rq_becomes_a_deployment_and_a_scaled_object_with_its_password_in_a_secret(tmp_path: Path) -> None:
    documents, _ = exported(tmp_path, RQ_AND_CELERY, namespace="shop")
    deployment = next(d for d in by_kind(documents, "Deployment") if d["metadata"]["name"] == "rq-email")
    assert deployment["metadata"]["namespace"] == "shop"
    assert deployment["spec"]["replicas"] == 0  # KEDA scales it from zero
    pod = deployment["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["command"] == ["rq", "worker", "email", "--url", "$(WORKERD_SECRET_ARG_4)"]
    assert container["workingDir"] == "/srv/app"
    assert container["resources"] == {"limits": {"memory": "512Mi", "cpu": "1500m"},
                                      "requests": {"memory": "256Mi", "cpu": "750m"}}
    assert container["lifecycle"]["preStop"]["exec"]["command"][-1] == "kill -INT 1; sleep 30"
    assert pod["terminationGracePeriodSeconds"] > 30
    scaled = next(d for d in by_kind(documents, "ScaledObject") if d["metadata"]["name"] == "rq-email")
    spec = scaled["spec"]
    assert (spec["minReplicaCount"], spec["maxReplicaCount"], spec["pollingInterval"], spec["cooldownPeriod"]) \
        == (0, 6, 5, 120)
    assert spec["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]["scaleDown"] \
        == {"stabilizationWindowSeconds": 120}
    (trigger,) = spec["triggers"]
    assert trigger["type"] == "redis"
    assert trigger["metadata"] == {"address": "127.0.0.1:6379", "databaseIndex": "2", "listName": "rq:queue:email",
                                   "listLength": "10"}
    auth = next(d for d in by_kind(documents, "TriggerAuthentication") if d["metadata"]["name"] == "rq-email-queue")
    assert trigger["authenticationRef"] == {"name": "rq-email-queue"}
    assert auth["spec"]["secretTargetRef"] == [{"parameter": "password", "name": "rq-email-queue", "key": "password"}]
    secret = next(d for d in by_kind(documents, "Secret") if d["metadata"]["name"] == "rq-email-queue")
    assert secret["stringData"] == {"password": "s3cret"}
    assert "s3cret" not in json.dumps(by_kind(documents, "ScaledObject") + by_kind(documents, "TriggerAuthentication"))


def test_celery_s_priority_lists_are_triggers_and_the_max_is_said(tmp_path: Path) -> None:
    documents, dropped = exported(tmp_path, RQ_AND_CELERY)
    scaled = next(d for d in by_kind(documents, "ScaledObject") if d["metadata"]["name"] == "celery")
    names = [t["metadata"]["listName"] for t in scaled["spec"]["triggers"]]
    assert names == ["default", "default\x06\x163", "default\x06\x166", "default\x06\x169"]
    assert any(line.startswith("celery: dropped the sum of 4 queues") for line in dropped), dropped
    deployment = next(d for d in by_kind(documents, "Deployment") if d["metadata"]["name"] == "celery")
    assert deployment["spec"]["replicas"] == 1  # the autoscale min, not `processes`
    assert "[daemon]: dropped the host guard" in dropped[-1]


SOURCES = """
    [programs.mq]
    command = "python -m app.consume"
    [programs.mq.autoscale]
    source = "rabbitmq"
    url = "amqp://app:pw-rabbit@rabbit.internal:5672/shop"
    queues = ["orders"]

    [programs.pg]
    command = "python -m app.pg"
    [programs.pg.autoscale]
    source = "postgres"
    url = "postgresql://app:pw-pg@db.internal:5432/app"
    query = "SELECT count(*), extract(epoch FROM now() - min(created_at)) FROM jobs WHERE done = false;"

    [programs.sqs]
    command = "python -m app.sqs"
    [programs.sqs.autoscale]
    source = "sqs"
    queue_url = "https://sqs.eu-west-1.amazonaws.com/123456789012/jobs"
    region = "eu-west-1"
    include_in_flight = true

    [programs.js]
    command = "python -m app.js"
    [programs.js.autoscale]
    source = "nats"
    url = "nats://nats.internal:4222"
    stream = "JOBS"
    consumer = "workers"

    [programs.api]
    command = "python -m app.api"
    [programs.api.autoscale]
    source = "http"
    url = "http://app.internal/queues"
    field = "queues.email.depth"
"""


def test_every_remote_source_has_its_keda_trigger(tmp_path: Path) -> None:
    documents, dropped = exported(tmp_path, SOURCES)
    triggers = {d["metadata"]["name"]: d["spec"]["triggers"] for d in by_kind(documents, "ScaledObject")}
    assert triggers["mq"] == [{"type": "rabbitmq", "metadata": {"protocol": "auto", "mode": "QueueLength",
                                                                 "value": "20", "queueName": "orders"},
                               "authenticationRef": {"name": "mq-queue"}}]
    assert triggers["pg"][0]["type"] == "postgresql"
    assert triggers["pg"][0]["metadata"]["query"].startswith("SELECT depth FROM (SELECT count(*)")
    assert triggers["sqs"][0] == {"type": "aws-sqs-queue", "metadata": {
        "queueURL": "https://sqs.eu-west-1.amazonaws.com/123456789012/jobs", "queueLength": "20",
        "awsRegion": "eu-west-1", "scaleOnInFlight": "true"}, "authenticationRef": {"name": "sqs-queue"}}
    assert triggers["js"][0]["metadata"]["natsServerMonitoringEndpoint"] == "nats.internal:8222"
    assert triggers["api"][0]["metadata"]["valueLocation"] == "queues.email.depth"
    secrets = {d["metadata"]["name"]: d["stringData"] for d in by_kind(documents, "Secret")}
    assert secrets["mq-queue"] == {"host": "amqp://app:pw-rabbit@rabbit.internal:5672/shop"}
    assert secrets["pg-queue"] == {"connection": "postgresql://app:pw-pg@db.internal:5432/app"}
    outside_secrets = json.dumps([d for d in documents if d["kind"] != "Secret"])
    assert "pw-rabbit" not in outside_secrets and "pw-pg" not in outside_secrets
    assert any(line.startswith("js: dropped the client port") for line in dropped), dropped


def test_sources_local_to_this_box_are_not_exported_and_said_so(tmp_path: Path) -> None:
    documents, dropped = exported(tmp_path, """
        [programs.local]
        command = "python -m app.local"
        [programs.local.autoscale]
        source = "sqlite"
        path = "jobs.db"
        query = "SELECT count(*) FROM jobs"
        min = 0
        max = 4
        max_age = "30s"
    """)
    assert by_kind(documents, "ScaledObject") == []
    (deployment,) = by_kind(documents, "Deployment")
    assert deployment["spec"]["replicas"] == 1  # no KEDA to wake it from zero
    assert dropped[0] == "local: dropped source sqlite reads a file on this box: no KEDA trigger, no autoscaling"


def test_env_file_values_go_to_a_secret_never_inline(tmp_path: Path) -> None:
    (tmp_path / "app.env").write_text("DATABASE_URL=postgresql://app:envsecret@db/app\nLOG_LEVEL=info\n")
    documents, _ = exported(tmp_path, """
        [programs.w]
        command = "python -m app.worker"
        env_file = "app.env"
        environment = { LOG_LEVEL = "debug", REGION = "eu" }
    """)
    (deployment,) = by_kind(documents, "Deployment")
    env = {e["name"]: e for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["DATABASE_URL"] == {"name": "DATABASE_URL",
                                   "valueFrom": {"secretKeyRef": {"name": "w-env", "key": "DATABASE_URL"}}}
    assert env["LOG_LEVEL"] == {"name": "LOG_LEVEL", "value": "debug"}  # the config's own value wins
    assert env["REGION"] == {"name": "REGION", "value": "eu"}
    assert "envsecret" not in json.dumps(deployment)
    (secret,) = by_kind(documents, "Secret")
    assert secret["stringData"] == {"DATABASE_URL": "postgresql://app:envsecret@db/app"}


def test_a_shell_command_and_what_a_pod_cannot_say(tmp_path: Path) -> None:
    documents, dropped = exported(tmp_path, """
        [programs.Nightly_Report]
        command = "cd /srv && ./report.sh | gzip > out.gz"
        shell = true
        user = "root"
        ready = "notify"
        restart = "on-failure"
        [programs.Nightly_Report.limits]
        open_files = 4096
    """)
    (deployment,) = by_kind(documents, "Deployment")
    assert deployment["metadata"]["name"] == "nightly-report"
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["command"] == ["/bin/sh", "-c", "cd /srv && ./report.sh | gzip > out.gz"]
    (line,) = [line for line in dropped if line.startswith("Nightly_Report:")]
    for what in ("the name", "limits open_files", "user 'root'", 'ready = "notify"', "restart = 'on-failure'"):
        assert what in line, line


def test_instance_numbers_become_the_pod_s_name_and_autostart_false_no_replicas(tmp_path: Path) -> None:
    documents, dropped = exported(tmp_path, """
        [programs.celery]
        command = "celery -A app worker -n {program}-w{instance:2}@%h"
        processes = 3
        environment = { PORT = "80{instance:2}", QUEUE = "{program}" }

        [programs.backfill]
        command = "python backfill.py"
        processes = 2
        autostart = false
    """)
    celery, backfill = by_kind(documents, "Deployment")
    container = celery["spec"]["template"]["spec"]["containers"][0]
    assert container["command"] == ["celery", "-A", "app", "worker", "-n", "celery-w$(WORKERD_INSTANCE)@%h"]
    assert container["env"] == [
        {"name": "WORKERD_INSTANCE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "PORT", "value": "80$(WORKERD_INSTANCE)"},
        {"name": "QUEUE", "value": "celery"},
    ]
    assert dropped == ["celery: dropped {instance} in command, environment PORT: each pod's name stands in where "
                       "the app expects 0..2 (a StatefulSet numbers its pods)"]
    assert backfill["spec"]["replicas"] == 0


def test_the_command_writes_a_directory_and_strict_refuses(tmp_path: Path) -> None:
    config = config_file(tmp_path, RQ_AND_CELERY)
    out = tmp_path / "k8s"
    result = run("-c", str(config), "--image", "app:1", "-o", str(out), "--name-prefix", "shop-")
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in out.iterdir()) == ["celery.yaml", "rq-email.yaml"]
    names = {d["metadata"]["name"] for d in validated((out / "rq-email.yaml").read_text())}
    assert names == {"shop-rq-email", "shop-rq-email-queue", "shop-rq-email-env"}  # -env: the --url argument
    strict = run("-c", str(config), "--image", "app:1", "--strict")
    assert strict.returncode == 1 and strict.stdout == ""
    assert strict.stderr.splitlines()[-1].startswith("workerd: --strict: nothing exported")


def test_a_bad_config_is_one_line_and_exit_2(tmp_path: Path) -> None:
    result = run("-c", str(config_file(tmp_path, "[programs.w]\ncommand = 1\n")), "--image", "app:1")
    assert result.returncode == 2 and result.stdout == ""
    assert len(result.stderr.strip().splitlines()) == 1 and "command" in result.stderr


@pytest.mark.parametrize("name, expected", [("email", "email"), ("Email_Worker.v2", "email-worker-v2"),
                                            ("-x-", "x"), ("a" * 80, "a" * 63)])
def test_kubernetes_names(name: str, expected: str) -> None:
    assert kubernetes_name(name) == expected
