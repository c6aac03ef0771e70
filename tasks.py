#!/usr/bin/env python3
"""The project's two entry points, needing only python3:

    python3 tasks.py demo    run the demo daemon on etc/demo.toml (Ctrl-C stops it)
    python3 tasks.py test    run the test suite

Each creates the project's venv in .venv on first use (and reuses it after), with
workerd installed in editable mode; `test` adds the test tools.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
PYTHON = VENV / "bin" / "python"
STAMP = VENV / ".installed"


def ensure_venv(extras: str) -> None:
    """Create .venv and install the project into it with `extras` ("" or "test"), again
    only when pyproject.toml changed or those extras are not installed yet. The demo
    needs the package alone; the test tools (hypothesis, mypy, moto, every queue
    client) are installed by the first `test`."""
    digest = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    installed = STAMP.read_text().split() if STAMP.exists() and PYTHON.exists() else []
    if installed[:1] == [digest] and (not extras or extras in installed[1:]):
        return
    if not PYTHON.exists():
        print("creating .venv ...", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    target = f"{ROOT}[{extras}]" if extras else str(ROOT)
    print(f"installing workerd{f'[{extras}]' if extras else ''} into .venv ...", flush=True)
    subprocess.run([str(PYTHON), "-m", "pip", "install", "-q", "-e", target], check=True)
    kept = installed[1:] if installed[:1] == [digest] else []
    STAMP.write_text(" ".join([digest, *sorted({*kept, *([extras] if extras else [])})]))


def demo() -> int:
    ensure_venv("")
    os.chdir(ROOT)
    return subprocess.call([str(VENV / "bin" / "python"), "etc/demo.py"])


def test(args: list[str]) -> int:
    ensure_venv("test")
    os.chdir(ROOT)
    return subprocess.call([str(PYTHON), "-m", "pytest", *args])


def main() -> int:
    if len(sys.argv) < 2 or sys.argv[1] not in ("demo", "test"):
        print(__doc__.strip(), file=sys.stderr)
        return 2
    if sys.argv[1] == "demo":
        return demo()
    return test(sys.argv[2:])


if __name__ == "__main__":
    sys.exit(main())
