"""What the export tests share: every manifest checked against KEDA's own CRD schemas
(ScaledObject, TriggerAuthentication) and a closed schema of the Deployment and Secret
fields used, a config exported in-process, and the command run as users run it."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from workerd.config.load import load
from workerd.export.kubernetes import export
from workerd.export.yaml import dump

DATA = Path(__file__).parent / "data"
WORKERD = str(Path(sys.executable).with_name("workerd"))


def crd_schema(file: str) -> dict[str, Any]:
    crd = yaml.safe_load((DATA / file).read_text())
    return crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]


OWN = json.loads((DATA / "kubernetes.schema.json").read_text())
SCHEMAS = {
    "ScaledObject": crd_schema("keda.sh_scaledobjects.yaml"),
    "TriggerAuthentication": crd_schema("keda.sh_triggerauthentications.yaml"),
    "Deployment": {**OWN, "$ref": "#/$defs/deployment"},
    "Secret": {**OWN, "$ref": "#/$defs/secret"},
}


def validated(text: str) -> list[dict[str, Any]]:
    """Every document of a YAML stream, each checked against its kind's schema."""
    documents = [d for d in yaml.safe_load_all(text) if d is not None]
    for doc in documents:
        jsonschema.validate(doc, SCHEMAS[doc["kind"]])
    return documents


def config_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "workers.toml"
    path.write_text(textwrap.dedent(text))
    return path


def exported(tmp_path: Path, text: str, **options: Any) -> tuple[list[dict[str, Any]], list[str]]:
    result = export(load(config_file(tmp_path, text)), "registry.example/app:1.4", **options)
    stream = dump(doc for docs in result.documents.values() for doc in docs)
    return validated(stream), result.dropped


def by_kind(documents: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [d for d in documents if d["kind"] == kind]


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([WORKERD, "export", "kubernetes", *args], capture_output=True, text=True, timeout=60)
