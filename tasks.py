#!/usr/bin/env python3
"""The project's entry points, needing only python3:

    python3 tasks.py demo             run the demo daemon on etc/demo.toml
    python3 tasks.py test [ARGS]      run the test suite with the locked versions (constraints.txt)
    python3 tasks.py test --latest    run it with the newest versions of every dependency
    python3 tasks.py lock             write constraints.txt from what `test --latest` ran with

`demo` and `test` install into .venv (created on first use, with workerd in editable
mode) the versions constraints.txt names, so a fresh clone tests what CI passed with;
`test` adds the test tools. `--latest` uses a venv of its own, .venv-latest, upgraded
to the newest releases at every run: when it passes, `lock` moves the lock to them.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
LOCK = ROOT / "constraints.txt"
LOCK_HEADER = """\
# The full dependency set the test suite passed with (`python3 tasks.py lock` writes it
# from .venv-latest after `python3 tasks.py test --latest` passed). tasks.py and .ci/run
# install with `pip install -c constraints.txt`; `pip install workerd` keeps the ranges
# of pyproject.toml.
"""


def python(env: Path) -> Path:
    return env / "bin" / "python"


def ensure_venv(env: Path, extras: str) -> None:
    """Create `env` and install the project into it with `extras` ("" or "test") and the
    locked versions, again only when pyproject.toml or the lock changed or those extras
    are not installed yet. The demo needs the package alone; the test tools (hypothesis,
    mypy, moto, the job frameworks, every queue client) are installed by the first `test`."""
    stamp = env / ".installed"
    digest = hashlib.sha256((ROOT / "pyproject.toml").read_bytes() + LOCK.read_bytes()).hexdigest()
    installed = stamp.read_text().split() if stamp.exists() and python(env).exists() else []
    if installed[:1] == [digest] and (not extras or extras in installed[1:]):
        return
    create(env)
    print(f"installing workerd{f'[{extras}]' if extras else ''} into {env.name} (locked versions) ...", flush=True)
    pip(env, "-c", str(LOCK), "-e", target(extras))
    kept = installed[1:] if installed[:1] == [digest] else []
    stamp.write_text(" ".join([digest, *sorted({*kept, *([extras] if extras else [])})]))


def upgrade_venv(env: Path) -> None:
    """`env` with the newest release of every dependency, whatever the lock says."""
    create(env)
    print(f"upgrading {env.name} to the newest versions ...", flush=True)
    pip(env, "-U", "--upgrade-strategy", "eager", "-e", target("test"))


def create(env: Path) -> None:
    if not python(env).exists():
        print(f"creating {env.name} ...", flush=True)
        venv.EnvBuilder(with_pip=True).create(env)


def target(extras: str) -> str:
    return f"{ROOT}[{extras}]" if extras else str(ROOT)


def pip(env: Path, *args: str) -> None:
    subprocess.run([str(python(env)), "-m", "pip", "install", "-q", *args], check=True)


def demo() -> int:
    ensure_venv(ROOT / ".venv", "")
    os.chdir(ROOT)
    return subprocess.call([str(python(ROOT / ".venv")), "etc/demo.py"])


def test(args: list[str]) -> int:
    if "--latest" in args:
        env = ROOT / ".venv-latest"
        upgrade_venv(env)
        args = [arg for arg in args if arg != "--latest"]
    else:
        env = ROOT / ".venv"
        ensure_venv(env, "test")
    os.chdir(ROOT)
    return subprocess.call([str(python(env)), "-m", "pytest", *args])


def lock() -> int:
    env = ROOT / ".venv-latest"
    if not python(env).exists():
        print("tasks.py lock: run `python3 tasks.py test --latest` first (the lock is what it ran with)",
              file=sys.stderr)
        return 2
    frozen = subprocess.run([str(python(env)), "-m", "pip", "freeze", "--exclude-editable"],
                            check=True, capture_output=True, text=True).stdout
    pins = sorted((line for line in frozen.splitlines() if "==" in line), key=str.lower)
    LOCK.write_text(LOCK_HEADER + "\n".join(pins) + "\n")
    print(f"constraints.txt: {len(pins)} pins from {env.name}")
    return 0


def main() -> int:
    command = sys.argv[1] if len(sys.argv) > 1 else ""
    if command == "demo":
        return demo()
    if command == "test":
        return test(sys.argv[2:])
    if command == "lock":
        return lock()
    print(__doc__.strip(), file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
