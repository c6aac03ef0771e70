"""A YAML stream of manifests, written without a YAML library.

Manifests are plain dicts, lists, strings, numbers and booleans. A string goes out
bare when no reader could take it for anything else, else as a JSON string, which
YAML reads as a double-quoted scalar: nothing needs YAML's own quoting rules. And
what PyYAML would not give: comments, which the export uses to say what a manifest
could not express.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

#: A string written bare: it starts with a letter and has no ':' or '#', so no YAML
#: reader takes it for a number, a time or a comment. Anything else is quoted.
_PLAIN = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-/]*")
#: What a YAML reader refuses raw or takes for a line break; JSON escapes C0 itself.
_UNSAFE = re.compile("[\x7f-\x9f\u2028\u2029\ufeff\ufffe\uffff]")
#: Words YAML 1.1 readers take for booleans or null.
_RESERVED = {"true", "false", "yes", "no", "on", "off", "y", "n", "null"}


@dataclass
class Document:
    body: dict[str, Any]
    #: Lines written above the document, as `# ...`.
    comments: list[str] = field(default_factory=list)


def dump(documents: Iterable[Document]) -> str:
    parts = []
    for doc in documents:
        body = _mapping(doc.body, 0) if doc.body else ["{}"]
        lines = ["---", *(f"# {c}".rstrip() for c in doc.comments), *body]
        parts.append("\n".join(lines) + "\n")
    return "".join(parts)


def _scalar(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        text = repr(value)  # YAML 1.1 readers take 1e-5 for a string: they want 1.0e-5
        return text.replace("e", ".0e") if "e" in text and "." not in text else text
    return _string(str(value))


def _string(text: str) -> str:
    if _PLAIN.fullmatch(text) and text.lower() not in _RESERVED:
        return text
    return _UNSAFE.sub(lambda m: f"\\u{ord(m.group()):04x}", json.dumps(text, ensure_ascii=False))


def _mapping(mapping: dict[str, Any], indent: int) -> list[str]:
    pad = " " * indent
    lines = []
    for key, value in mapping.items():
        if isinstance(value, dict) and value:
            lines += [f"{pad}{_string(key)}:", *_mapping(value, indent + 2)]
        elif isinstance(value, list) and value:
            lines += [f"{pad}{_string(key)}:", *_sequence(value, indent)]
        else:
            lines.append(f"{pad}{_string(key)}: {_empty(value)}")
    return lines


def _sequence(items: list[Any], indent: int) -> list[str]:
    pad = " " * indent
    lines = []
    for item in items:
        if isinstance(item, dict) and item:
            first, *rest = _mapping(item, indent + 2)
            lines += [f"{pad}- {first.lstrip()}", *rest]
        elif isinstance(item, list) and item:
            lines += [f"{pad}-", *_sequence(item, indent + 2)]
        else:
            lines.append(f"{pad}- {_empty(item)}")
    return lines


def _empty(value: Any) -> str:
    """A scalar, or an empty collection written inline."""
    if isinstance(value, dict):
        return "{}"
    if isinstance(value, list):
        return "[]"
    return _scalar(value)
