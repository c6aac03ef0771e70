"""`workerd export kubernetes`: print or write the manifests, say what was dropped."""

from __future__ import annotations

import sys
from pathlib import Path

from workerd.config.model import Config
from workerd.control.protocol import EXIT_FAILED, EXIT_OK
from workerd.export.kubernetes import export
from workerd.export.yaml import dump


def export_kubernetes(config: Config, image: str, namespace: str | None, prefix: str, output: str | None,
                      strict: bool, probe: bool, env_secrets: frozenset[str] = frozenset()) -> int:
    key_types = None
    if probe:
        from workerd.export.probe import redis_key_types

        key_types = redis_key_types()
    result = export(config, image, namespace, prefix, key_types, env_secrets)
    for line in [*result.notes, *result.dropped]:
        print(f"workerd: {line}", file=sys.stderr)
    if strict and result.dropped:
        print(f"workerd: --strict: nothing exported ({len(result.dropped)} line(s) above)", file=sys.stderr)
        return EXIT_FAILED
    if output is None:
        sys.stdout.write(dump(doc for docs in result.documents.values() for doc in docs))
        return EXIT_OK
    directory = Path(output)
    try:
        directory.mkdir(parents=True, exist_ok=True)
        for program, documents in result.documents.items():
            (directory / f"{program}.yaml").write_text(dump(documents))
    except OSError as exc:
        print(f"workerd: cannot write {directory}: {exc.strerror}", file=sys.stderr)
        return EXIT_FAILED
    print(f"wrote {len(result.documents)} file(s) to {directory}; apply them with: kubectl apply -f {directory}")
    return EXIT_OK
