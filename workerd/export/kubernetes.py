"""workers.toml as Kubernetes manifests: a Deployment per program (with a Secret for
its env_file's values), and a KEDA ScaledObject per autoscaled program (keda.py).

What a manifest cannot say is never dropped silently: it is a comment above the
Deployment and one line per program in `Export.dropped`, which the command prints
on stderr (and `--strict` turns into a refusal).
"""

from __future__ import annotations

import hashlib
import math
import re
import signal
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from workerd.config.envfile import read_env_file
from workerd.config.model import Config, LimitsConfig, ProgramConfig
from workerd.config.schema import PROGRAM, Readiness
from workerd.config.source_rules import Source
from workerd.core.placeholders import PLACEHOLDER
from workerd.core.states import RestartPolicy
from workerd.export.credentials import has_credentials, loopback, secret_name
from workerd.export.keda import KeyTypes, scaled_object
from workerd.export.yaml import Document

#: Requests are this fraction of the limits: the scheduler reserves half, the
#: container may burst to the whole.
REQUEST_FRACTION = 0.5
#: Added to stop_timeout for terminationGracePeriodSeconds: the preStop hook's start
#: and the kubelet's own SIGKILL take a moment.
GRACE_MARGIN = 5
#: The limits a container has no setting for (rlimits of its processes).
RLIMITS = ("open_files", "tasks", "address_space", "core", "cpu_time", "file_size")
_INVALID = re.compile(r"[^a-z0-9-]+")
_INSTANCE = "$(WORKERD_INSTANCE)"
_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"]+")


@dataclass
class Export:
    #: The manifests of each program, in the order `kubectl apply` needs them.
    documents: dict[str, list[Document]] = field(default_factory=dict)
    #: One line per program (and one for [daemon]) saying what was dropped and why.
    dropped: list[str] = field(default_factory=list)
    #: Lines saying what was done that is not a loss: values moved into a Secret, a queue
    #: on loopback. Printed too, never a reason for --strict to refuse.
    notes: list[str] = field(default_factory=list)


def export(config: Config, image: str, namespace: str | None = None, prefix: str = "",
           key_types: KeyTypes | None = None, env_secrets: frozenset[str] = frozenset()) -> Export:
    result = Export()
    names = unique_names([prefix + name for name in config.programs])
    for program in config.programs.values():
        name = names[prefix + program.name]
        documents, dropped, notes = _program(program, name, image, namespace, key_types, env_secrets)
        if name != prefix + program.name:
            dropped.insert(0, f"the name (Kubernetes names are lowercase letters, digits and '-': {name}"
                              f"{_taken(prefix + program.name, names)})")
        result.documents[program.name] = documents
        if dropped:
            result.dropped.append(f"{program.name}: dropped " + "; ".join(dropped))
        result.notes += [f"{program.name}: {note}" for note in notes]
    for variable in sorted(env_secrets):
        if not any(variable in p.environment for p in config.programs.values()):
            result.notes.append(f"--env-secret {variable}: no program has it in its environment")
    if any(p.autoscale for p in config.programs.values()):
        result.dropped.append("[daemon]: dropped the host guard (reserve_memory, max_load: Kubernetes places "
                              "pods by their requests)")
    return result


def kubernetes_name(name: str) -> str:
    """A DNS label: lowercase letters, digits and '-', at most 63, no '-' at the ends."""
    return _INVALID.sub("-", name.lower()).strip("-")[:63].rstrip("-") or "worker"


def unique_names(names: Iterable[str]) -> dict[str, str]:
    """Each name's Kubernetes name, distinct: where several come to the same one, a name
    that already is it keeps it and the others get a suffix from their own name (stable
    whatever the order or the other programs)."""
    wanted = {name: kubernetes_name(name) for name in names}
    taken = {kubernetes_name(name) for name in wanted if kubernetes_name(name) == name}
    result = {}
    for name, label in wanted.items():
        if label != name and (label in taken or list(wanted.values()).count(label) > 1):
            digest = hashlib.sha256(name.encode()).hexdigest()[:6]
            label = f"{label[:56].rstrip('-')}-{digest}"
        result[name] = label
    return result


def _taken(name: str, names: dict[str, str]) -> str:
    plain = kubernetes_name(name)
    return f", as {plain} is taken" if names[name] != plain else ""


def _program(program: ProgramConfig, name: str, image: str, namespace: str | None, key_types: KeyTypes | None,
             env_secrets: frozenset[str]) -> tuple[list[Document], list[str], list[str]]:
    dropped: list[str] = []
    notes: list[str] = []
    comments: list[str] = [f"workerd program {program.name!r}"]
    keda: list[dict[str, Any]] = []
    replicas = program.processes if program.autostart else 0
    if not program.autostart:
        comments.append("autostart = false: no pod until `kubectl scale --replicas=N`")
    if program.autoscale is not None:
        keda, lost = scaled_object(name, namespace, program.autoscale, key_types)
        dropped += lost
        if keda and not program.autostart:
            dropped.append("autostart = false (KEDA starts pods from the queue)")
        # KEDA may scale from zero; a program it does not scale keeps at least one pod.
        replicas = program.autoscale.min if keda else max(program.autoscale.min, 1)
        notes += _loopback(program)
    env, hidden = _environment(program, name, env_secrets)
    if hidden:
        said = f"environment {', '.join(sorted(hidden))} in the Secret {name}-env (valueFrom)"
        notes.append(said)
        comments.append(said)
    command = [_per_pod(arg, program) for arg in program.command]
    for index, arg in enumerate(command):
        if any(has_credentials(url) for url in _URL.findall(arg)):
            variable = f"WORKERD_SECRET_ARG_{index}"
            hidden[variable] = arg
            env.append({"name": variable, "valueFrom": {"secretKeyRef": {"name": f"{name}-env", "key": variable}}})
            command[index] = f"$({variable})"
            said = f"command argument {index} (it holds a credential) in the Secret {name}-env as {variable}"
            notes.append(said)
            comments.append(said)
    numbered = (["command"] if any(_INSTANCE in arg for arg in command) else []) + \
        [f"environment {e['name']}" for e in env if _INSTANCE in e.get("value", "")]
    if numbered:
        env.insert(0, {"name": "WORKERD_INSTANCE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}})
        comments.append("{instance}: the pod's name (replicas are not numbered), as $(WORKERD_INSTANCE)")
        last = program.most_processes - 1
        dropped.append(f"{{instance}} in {', '.join(numbered)}: each pod's name stands in where the app expects "
                       f"{f'0..{last}' if last > 0 else '0'} (a StatefulSet numbers its pods)")
    container: dict[str, Any] = {"name": name, "image": image, "command": command}
    if program.directory is not None:
        container["workingDir"] = str(program.directory)
    if env:
        container["env"] = env
    resources = _resources(program.limits, dropped)
    if resources:
        container["resources"] = resources
    if program.stop_signal != signal.SIGTERM:
        sig = signal.Signals(program.stop_signal).name.removeprefix("SIG")
        container["lifecycle"] = {"preStop": {"exec": {"command": [
            "/bin/sh", "-c", f"kill -{sig} 1; sleep {math.ceil(program.stop_timeout)}"]}}}
        comments.append(f"stop_signal SIG{sig}: sent to PID 1 by the preStop hook (the image needs /bin/sh); "
                        f"or set STOPSIGNAL SIG{sig} in the image and drop the hook")
    dropped += _process_settings(program, comments)
    labels = {"app.kubernetes.io/name": name, "app.kubernetes.io/managed-by": "workerd-export"}
    deployment = {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {**_metadata(name, namespace), "labels": labels},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app.kubernetes.io/name": name}},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"terminationGracePeriodSeconds": math.ceil(program.stop_timeout) + GRACE_MARGIN,
                         "containers": [container]},
            },
        },
    }
    documents = [Document({"apiVersion": "v1", "kind": "Secret", "metadata": _metadata(f"{name}-env", namespace),
                           "type": "Opaque", "stringData": hidden})] if hidden else []
    documents.append(Document(deployment, comments))
    documents += [Document(doc) for doc in keda]
    return documents, dropped, notes


def _metadata(name: str, namespace: str | None) -> dict[str, Any]:
    return {"name": name, **({"namespace": namespace} if namespace else {})}


def _environment(program: ProgramConfig, name: str,
                 env_secrets: frozenset[str]) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """The container's env: the config's own values inline; from a Secret the env_file's
    (a file of secrets must not end up in a manifest in the clear), those that look like
    credentials, and those named by --env-secret."""
    from_file = read_env_file(program.env_file) if program.env_file is not None else {}
    secret = f"{name}-env"
    env: list[dict[str, Any]] = []
    hidden: dict[str, str] = {}
    for key, value in program.environment.items():
        if ((key in from_file and from_file[key] == value) or key in env_secrets or secret_name(key)
                or has_credentials(value)):
            hidden[key] = value
            env.append({"name": key, "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}})
        else:
            env.append({"name": key, "value": _per_pod(value, program)})
    return env, hidden


def _loopback(program: ProgramConfig) -> list[str]:
    """A queue URL on this box's loopback: in a pod (and in KEDA's) it is that pod itself."""
    auto = program.autoscale
    if auto is None:
        return []
    urls = [(auto.url, ""), (auto.endpoint_url, ""), (auto.queue_url, "")]
    if auto.source is Source.REDIS and auto.url is None:
        urls[0] = ("redis://127.0.0.1:6379", " (autoscale.url unset)")
    notes = []
    for url, why in urls:
        where = loopback(url) if url else None
        if where is not None:
            notes.append(f"the queue at {where}{why} is on loopback: in a pod, and in KEDA's, that is the pod "
                         "itself; give the queue's Service name")
    return notes


def _per_pod(text: str, program: ProgramConfig) -> str:
    """{program} filled in; {instance} as a reference to the pod's name, which Kubernetes
    expands in a command and in env values."""
    return PLACEHOLDER.sub(lambda m: program.name if m.group(1) else _INSTANCE, text)


def _resources(limits: LimitsConfig, dropped: list[str]) -> dict[str, Any]:
    given: dict[str, int] = {}
    if limits.memory is not None:
        given["memory"] = limits.memory
    if limits.cpu_percent is not None:
        given["cpu"] = math.ceil(limits.cpu_percent * 10)  # millicores: 100 % of a core is 1000m
    rlimits = [key for key in RLIMITS if getattr(limits, key) is not None]
    if rlimits:
        dropped.append(f"limits {', '.join(rlimits)} (a container has no per-process rlimits)")
    if not given:
        return {}
    return {"limits": {k: _quantity(k, v) for k, v in given.items()},
            "requests": {k: _quantity(k, math.ceil(v * REQUEST_FRACTION)) for k, v in given.items()}}


def _quantity(resource: str, value: int) -> str:
    if resource == "cpu":
        return f"{value}m"
    mib = 1024 * 1024
    return f"{value // mib}Mi" if value % mib == 0 else str(value)


def _process_settings(program: ProgramConfig, comments: list[str]) -> list[str]:
    """The per-process settings a pod spec does not carry, as dropped lines."""
    dropped = []
    if program.user is not None:
        comments.append(f"user {program.user!r}: securityContext.runAsUser takes a number, {program.user}'s uid "
                        "in the image (`id -u` there); until set, the image's USER runs the command")
        dropped.append(f"user {program.user!r} (runAsUser needs a number, {program.user}'s uid in the image: "
                       "the image's USER runs it)")
    if program.group is not None:
        dropped.append(f"group {program.group!r} (runAsGroup needs a number, its gid in the image)")
    if program.ready is Readiness.NOTIFY:
        comments.append('ready = "notify": add a readinessProbe; Kubernetes has no notify socket')
        dropped.append('ready = "notify" (readiness needs a probe)')
    if program.watchdog:
        dropped.append("watchdog (add a livenessProbe)")
    if program.restart is not RestartPolicy.ALWAYS:
        dropped.append(f"restart = {program.restart.value!r} (a Deployment always restarts)")
    if program.nice:
        dropped.append(f"nice {program.nice}")
    if program.umask is not None:
        dropped.append("umask")
    backoff = {key: value for key, value in PROGRAM.defaults().items() if key.startswith("backoff_")}
    if any(getattr(program, key) != value for key, value in backoff.items()):
        dropped.append("the backoff settings (Kubernetes' own crash-loop backoff applies)")
    return dropped
