#!/usr/bin/env python3
"""The project's two entry points, needing only python3:

    python3 tasks.py demo    run the demo daemon on etc/demo.toml (Ctrl-C stops it)
    python3 tasks.py test    run the test suite

Each creates the project's venv in .venv on first use (and reuses it after), with
workerd installed in editable mode plus the test tools.
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


def ensure_venv() -> None:
    """Create .venv and install the project into it, again only when pyproject.toml changed."""
    wanted = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    if STAMP.exists() and STAMP.read_text() == wanted and PYTHON.exists():
        return
    if not PYTHON.exists():
        print("creating .venv ...", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    subprocess.run([str(PYTHON), "-m", "pip", "install", "-q", "--upgrade", "pip"], check=True)
    subprocess.run([str(PYTHON), "-m", "pip", "install", "-q", "-e", f"{ROOT}[test]"], check=True)
    STAMP.write_text(wanted)


def demo() -> int:
    ensure_venv()
    os.chdir(ROOT)
    return subprocess.call([str(VENV / "bin" / "python"), "etc/demo.py"])


def test(args: list[str]) -> int:
    ensure_venv()
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
