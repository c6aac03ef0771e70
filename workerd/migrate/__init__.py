"""`workerd import`: another supervisor's config as a workers.toml.

Each importer reads its tool's file the way that tool reads it and fills a `Draft`
(draft.py), which renders as TOML with a comment wherever the mapping is not exact.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

from workerd.migrate.draft import Draft
from workerd.migrate.source import MigrationError, read_text

KINDS = ("supervisord", "procfile", "pm2")
_SUPERVISORD_SECTION = re.compile(r"^\s*\[(program:|group:|supervisord\]|include\]|unix_http_server\])", re.M)
_PROCFILE_LINE = re.compile(r"[A-Za-z0-9_-]+:\s*\S.*")


def guess(path: Path) -> str:
    """The tool a file belongs to, from its name, else its content."""
    name, suffix = path.name.lower(), path.suffix.lower()
    if name.startswith("procfile"):
        return "procfile"
    if name.startswith("ecosystem") or suffix in (".js", ".cjs", ".mjs", ".json", ".yaml", ".yml"):
        return "pm2"
    text = read_text(path)
    if _SUPERVISORD_SECTION.search(text):
        return "supervisord"
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    if lines and all(_PROCFILE_LINE.fullmatch(line) for line in lines):
        return "procfile"
    raise MigrationError(f"{path}: cannot tell which tool's config this is; say it with --from "
                         f"{'|'.join(KINDS)}")


def convert(path: Path, kind: str, environ: Mapping[str, str], include_web: bool = False,
            env_name: str | None = None) -> Draft:
    if kind == "supervisord":
        from workerd.migrate.supervisord import import_supervisord

        return import_supervisord(path, environ)
    if kind == "procfile":
        from workerd.migrate.procfile import import_procfile

        return import_procfile(path, include_web)
    from workerd.migrate.pm2 import import_pm2

    return import_pm2(path, env_name)


__all__ = ["KINDS", "MigrationError", "convert", "guess"]
