"""Helpers: import a file written by the test, render it, and load the result with
workerd's own loader, so every test also checks that `workerd check` accepts it."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

from workerd.config.load import load
from workerd.config.model import Config
from workerd.migrate import convert
from workerd.migrate.draft import render


class Imported:
    def __init__(self, text: str, config: Config) -> None:
        self.text = text
        self.config = config

    def comments_of(self, table: str) -> str:
        """The comment lines just above `[table]` and inside it, joined."""
        lines = self.text.splitlines()
        start = lines.index(f"[{table}]")
        above = []
        for line in reversed(lines[:start]):
            if not line.startswith("#"):
                break
            above.insert(0, line)
        inside = []
        for line in lines[start + 1:]:
            if line.startswith("["):
                break
            inside.append(line)
        return " ".join(line.lstrip("# ").strip() for line in above + inside if line.startswith("#"))


    def not_imported(self) -> str:
        """The list at the end of the file, unwrapped."""
        end = self.text[self.text.index("# Not imported ("):]
        return " ".join(line.lstrip("#").strip() for line in end.splitlines())


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip())
    return path


def imported(path: Path, kind: str, environ: dict[str, str] | None = None, **options: Any) -> Imported:
    draft = convert(path, kind, environ if environ is not None else {"HOME": "/root"}, **options)
    text = render(draft)
    out = path.parent / "imported-workers.toml"
    out.write_text(text)
    return Imported(text, load(out))
