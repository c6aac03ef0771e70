"""Reading an `env_file`: the dotenv subset that app repositories actually use.

One `KEY=VALUE` per line; blank lines and `#` comments are skipped; an `export `
prefix is allowed; a value may be wrapped in single quotes (taken literally) or
double quotes (where \\", \\\\ and \\n are escapes); an unquoted value ends at
` #`. Values are not expanded (`$HOME` stays as written) and cannot span lines.
Errors name the file and line but never the line's text: it may hold a secret.
"""

from __future__ import annotations

import re
from pathlib import Path

from workerd.config.small_file import UnreadableFile, read_small_text

__all__ = ["EnvFileError", "read_env_file"]


class EnvFileError(ValueError):
    """A file that cannot be read or a line that is not KEY=VALUE; one line of text."""


_LINE = re.compile(r"(?:export\s+)?([^=\s]*)\s*=\s*(.*)")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_ESCAPES = {'"': '"', "\\": "\\", "n": "\n"}


def read_env_file(path: Path) -> dict[str, str]:
    """The variables of `path`, later lines winning over earlier ones."""
    try:
        text = read_small_text(path)
    except UnreadableFile as e:
        raise EnvFileError(f"cannot read {path}: {e}") from None
    env: dict[str, str] = {}
    for number, line in enumerate(text.split("\n"), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if "\0" in line:
            raise EnvFileError(f"{path}:{number}: contains a NUL character")
        match = _LINE.fullmatch(line)
        if match is None:
            raise EnvFileError(f"{path}:{number}: expected KEY=VALUE")
        name, value = match.groups()
        if not _NAME.fullmatch(name):
            raise EnvFileError(f"{path}:{number}: invalid variable name {name!r}")
        try:
            env[name] = _value(value)
        except ValueError as e:
            raise EnvFileError(f"{path}:{number}: {e}") from None
    return env


def _value(text: str) -> str:
    if not text or text[0] not in "'\"":
        return re.split(r"\s+#", text, maxsplit=1)[0].rstrip()
    quote, i = text[0], 1
    chars: list[str] = []
    while i < len(text) and text[i] != quote:
        if quote == '"' and text[i] == "\\" and text[i + 1 : i + 2] in _ESCAPES:
            i += 1
            chars.append(_ESCAPES[text[i]])
        else:
            chars.append(text[i])
        i += 1
    if i == len(text):
        raise ValueError("unterminated quoted value")
    rest = text[i + 1 :].strip()
    if rest and not rest.startswith("#"):
        raise ValueError("unexpected text after the closing quote")
    return "".join(chars)
