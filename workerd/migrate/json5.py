"""A PM2 .json file as PM2 reads it: PM2 evaluates .json as JavaScript, so its own
examples have unquoted keys, single quotes, comments and trailing commas. Such text
is turned into JSON token by token, without running anything."""

from __future__ import annotations

import json
import re
from typing import Any

_TOKEN = re.compile(r"""
    (?P<space>\s+|//[^\n]*|/\*.*?\*/)
  | (?P<double>"(?:[^"\\\n]|\\.)*")
  | (?P<single>'(?:[^'\\\n]|\\.)*')
  | (?P<key>[A-Za-z_$][\w$]*)(?=\s*(?://[^\n]*\s*|/\*.*?\*/\s*)*:)
  | (?P<comma>,)(?=(?:\s|//[^\n]*|/\*.*?\*/)*[]}])
  | (?P<other>.)
""", re.VERBOSE | re.DOTALL)


def loads(text: str) -> Any:
    """JSON, or the JavaScript object literal subset PM2's files use; raises
    json.JSONDecodeError with the line of the original text."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        pass
    out = []
    for match in _TOKEN.finditer(text):
        kind, token = match.lastgroup, match.group()
        if kind == "space":
            out.append("\n" * token.count("\n") or " ")  # lines kept for the error's line number
        elif kind == "single":
            out.append(json.dumps(json.loads('"' + token[1:-1].replace('\\\'', "'").replace('"', '\\"') + '"')))
        elif kind == "key":
            out.append(f'"{token}"')
        elif kind != "comma":
            out.append(token)
    return json.loads("".join(out))
