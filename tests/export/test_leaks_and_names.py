"""`workerd export kubernetes` leaks no credential outside a Secret, gives every program a
name of its own, and exports a config made for another box (its users, its loopback)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.export.manifests import by_kind, config_file, exported, run, validated
from workerd.config.load import load
from workerd.export.kubernetes import export
from workerd.export.yaml import dump


def outside_secrets(documents: list[dict[str, object]]) -> str:
    return json.dumps([d for d in documents if d["kind"] != "Secret"])


def http_source(url: str) -> str:
    return f"""
        [programs.api]
        command = "python -m app.api"
        [programs.api.autoscale]
        source = "http"
        url = "{url}"
        field = "depth"
    """


def test_an_http_source_s_userinfo_goes_to_a_secret_as_basic_auth(tmp_path: Path) -> None:
    documents, dropped = exported(tmp_path, http_source("https://admin:pw-http@metrics.internal/queues?queue=email"
                                                        "&token=tok-http"))
    (scaled,) = by_kind(documents, "ScaledObject")
    (trigger,) = scaled["spec"]["triggers"]
    assert trigger["metadata"]["url"] == "https://metrics.internal/queues?queue=email"
    assert trigger["metadata"]["authMode"] == "basic"
    assert trigger["authenticationRef"] == {"name": "api-queue"}
    (secret,) = by_kind(documents, "Secret")
    assert secret["stringData"] == {"username": "admin", "password": "pw-http"}
    assert "pw-http" not in outside_secrets(documents) and "tok-http" not in json.dumps(documents)
    assert any("the query parameter token" in line for line in dropped), dropped


def test_an_http_source_s_query_token_goes_to_a_secret_as_an_api_key(tmp_path: Path) -> None:
    documents, dropped = exported(tmp_path, http_source("https://metrics.internal/queues?api_key=tok-http&queue=email"))
    (trigger,) = by_kind(documents, "ScaledObject")[0]["spec"]["triggers"]
    assert trigger["metadata"]["url"] == "https://metrics.internal/queues?queue=email"
    assert (trigger["metadata"]["authMode"], trigger["metadata"]["method"], trigger["metadata"]["keyParamName"]) \
        == ("apiKey", "query", "api_key")
    (auth,) = by_kind(documents, "TriggerAuthentication")
    assert auth["spec"]["secretTargetRef"] == [{"parameter": "apiKey", "name": "api-queue", "key": "apiKey"}]
    assert by_kind(documents, "Secret")[0]["stringData"] == {"apiKey": "tok-http"}
    assert "tok-http" not in outside_secrets(documents)
    assert not any("query parameter" in line for line in dropped)


def test_secret_looking_environment_values_go_to_a_secret_and_it_is_said(tmp_path: Path) -> None:
    config = load(config_file(tmp_path, """
        [programs.w]
        command = "python -m app.worker"
        [programs.w.environment]
        DJANGO_SECRET_KEY = "sk-1"
        SENTRY_DSN = "https://abc@sentry.io/1"
        CACHE_URL = "redis://:pw-cache@cache.internal:6379/1"
        STRIPE_API_TOKEN = "tok-2"
        PLAIN = "visible"
        INTERNAL_NOTE = "forced"
    """))
    result = export(config, "app:1", env_secrets=frozenset({"INTERNAL_NOTE"}))
    documents = validated(dump(result.documents["w"]))
    (deployment,) = by_kind(documents, "Deployment")
    env = {e["name"]: e for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["PLAIN"] == {"name": "PLAIN", "value": "visible"}
    hidden = ["DJANGO_SECRET_KEY", "SENTRY_DSN", "CACHE_URL", "STRIPE_API_TOKEN", "INTERNAL_NOTE"]
    for name in hidden:
        assert env[name]["valueFrom"] == {"secretKeyRef": {"name": "w-env", "key": name}}
    (secret,) = by_kind(documents, "Secret")
    assert sorted(secret["stringData"]) == sorted(hidden)
    for value in ("sk-1", "abc@", "pw-cache", "tok-2", "forced"):
        assert value not in outside_secrets(documents)
    (said,) = [line for line in result.notes if line.startswith("w: ")]
    assert "the Secret w-env" in said and "CACHE_URL" in said and "PLAIN" not in said


def test_an_env_secret_no_program_has_is_said(tmp_path: Path) -> None:
    config = load(config_file(tmp_path, "[programs.w]\ncommand = \"sleep 1\"\n"))
    result = export(config, "app:1", env_secrets=frozenset({"NOPE"}))
    assert "--env-secret NOPE: no program has it in its environment" in result.notes


def test_names_that_become_the_same_kubernetes_name_are_made_unique_and_said(tmp_path: Path) -> None:
    documents, dropped = exported(tmp_path, """
        [programs."x.y"]
        command = "sleep 1"
        [programs.x-y]
        command = "sleep 2"
        [programs.X_Y]
        command = "sleep 3"
    """)
    names = [d["metadata"]["name"] for d in by_kind(documents, "Deployment")]
    assert len(set(names)) == 3 and "x-y" in names, names
    assert names[1] == "x-y"  # the program already named so keeps its name
    for name in names:
        assert len(name) <= 63 and name == name.lower()
    line = next(line for line in dropped if line.startswith("x.y:"))
    assert f"'-': {names[0]}, as x-y is taken)" in line, line


def test_export_needs_neither_the_user_nor_the_socket_group_on_this_box(tmp_path: Path) -> None:
    config = config_file(tmp_path, """
        [daemon]
        socket_group = "no-such-group-here"
        [programs.w]
        command = "sleep 1"
        user = "no-such-user-here"
    """)
    result = run("-c", str(config), "--image", "app:1")
    assert result.returncode == 0, result.stderr
    (line,) = [line for line in result.stderr.splitlines() if line.startswith("workerd: w:")]
    assert "user 'no-such-user-here' (runAsUser needs a number" in line, line
    (_,) = by_kind(validated(result.stdout), "Deployment")
    assert "no-such-user-here" in " ".join(result.stdout.splitlines()[:4])  # the comment above it


def test_a_command_argument_with_a_credential_comes_from_the_secret(tmp_path: Path) -> None:
    documents, _ = exported(tmp_path, """
        [programs.rq]
        command = "rq worker email --url redis://:pw-arg@redis.internal:6379/2 --name rq-{instance}"
    """)
    (deployment,) = by_kind(documents, "Deployment")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["command"] == ["rq", "worker", "email", "--url", "$(WORKERD_SECRET_ARG_4)", "--name",
                                    "rq-$(WORKERD_INSTANCE)"]
    env = {e["name"]: e for e in container["env"]}
    assert env["WORKERD_SECRET_ARG_4"]["valueFrom"] == {"secretKeyRef": {"name": "rq-env",
                                                                         "key": "WORKERD_SECRET_ARG_4"}}
    assert by_kind(documents, "Secret")[0]["stringData"] == {
        "WORKERD_SECRET_ARG_4": "redis://:pw-arg@redis.internal:6379/2"}
    assert "pw-arg" not in outside_secrets(documents)


@pytest.mark.parametrize("autoscale, shown", [
    ('source = "redis"\nkeys = ["jobs"]', "127.0.0.1:6379 (autoscale.url unset)"),
    ('source = "rabbitmq"\nurl = "amqp://u:pw@localhost:5672/"\nqueues = ["q"]', "localhost:5672"),
])
def test_a_queue_on_loopback_is_flagged(tmp_path: Path, autoscale: str, shown: str) -> None:
    config = load(config_file(tmp_path, f"[programs.w]\ncommand = \"sleep 1\"\n[programs.w.autoscale]\n{autoscale}\n"))
    result = export(config, "app:1")
    (line,) = [line for line in result.notes if "loopback" in line]
    assert line.startswith("w: the queue at ") and shown in line, line
    assert "pw" not in line


def test_the_command_takes_env_secret_and_says_what_went_where(tmp_path: Path) -> None:
    config = config_file(tmp_path, """
        [programs.w]
        command = "sleep 1"
        environment = { A = "1", DB_PASSWORD = "pw-db" }
    """)
    result = run("-c", str(config), "--image", "app:1", "--env-secret", "A", "--strict")
    assert result.returncode == 0, result.stderr
    assert "pw-db" not in outside_secrets(validated(result.stdout))
    assert "workerd: w: environment A, DB_PASSWORD in the Secret w-env" in result.stderr

