"""`workerd import`: convert, check the result with workerd's own loader, write it."""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

from workerd.config.load import ConfigError, load
from workerd.control.protocol import EXIT_FAILED, EXIT_OK, EXIT_USAGE
from workerd.migrate import MigrationError, convert, guess
from workerd.migrate.draft import render
from workerd.migrate.pm2 import NODE_TIMEOUT, runs_javascript


def import_config(source: str, kind: str | None, output: str | None, force: bool, include_web: bool,
                  env_name: str | None, allow_js: bool = True) -> int:
    path = Path(source)
    target = Path(output) if output else None
    if target is not None and target.exists() and not force:
        print(f"workerd: {target} exists; --force replaces it", file=sys.stderr)
        return EXIT_FAILED
    try:
        kind = kind or guess(path)
        if kind == "pm2" and runs_javascript(path):
            if not allow_js:
                raise MigrationError(f"{path}: a .js ecosystem file is JavaScript that only running it can read, "
                                     "and --no-js refuses that; give its JSON form (`pm2 ecosystem`, JSON.stringify)")
            print(f"workerd: {path} is JavaScript: running it with node to read its apps (at most "
                  f"{NODE_TIMEOUT:g} s; --no-js refuses)", file=sys.stderr, flush=True)
        draft = convert(path, kind, os.environ, include_web, env_name)
    except MigrationError as exc:
        print(f"workerd: {exc}", file=sys.stderr)
        return EXIT_USAGE
    text = render(draft)
    problem = _problem(text, target.parent if target is not None else Path.cwd())
    if target is None:
        sys.stdout.write(text)
    else:
        try:
            target.write_text(text)
        except OSError as exc:
            print(f"workerd: cannot write {target}: {exc.strerror}", file=sys.stderr)
            return EXIT_FAILED
        print(f"wrote {target}: {len(draft.programs)} program(s) from {path} ({draft.kind}); "
              f"{len(draft.unsupported)} part(s) not imported, listed at its end", file=sys.stderr)
    if problem is not None:
        print(f"workerd: the result does not load on this box: {problem}", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK


def _problem(text: str, directory: Path) -> str | None:
    """What `workerd check` would refuse in TEXT here (a user that does not exist, say)."""
    with tempfile.NamedTemporaryFile("w", suffix=".toml", dir=directory if directory.is_dir() else None,
                                     prefix=".workerd-import-") as file:
        file.write(text)
        file.flush()
        try:
            load(file.name)
        except ConfigError as exc:
            return str(exc).replace(file.name, "<imported>")
    return None
