"""The lock is what the tests run with: every package installed in the test venv is
pinned in constraints.txt at the version installed, so a fresh clone (tasks.py and
.ci/run install with `-c constraints.txt`) tests what CI passed with. A dependency
added to pyproject.toml without `python3 tasks.py lock` fails here."""

from __future__ import annotations

import re
import sys
from importlib import metadata
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def locked() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            name, _, version = line.partition("==")
            pins[canonical(name)] = version
    return pins


@pytest.mark.skipif(Path(sys.prefix).name == ".venv-latest",
                    reason="`tasks.py test --latest` runs newer versions than the lock, on purpose")
def test_every_installed_package_is_locked_at_its_version() -> None:
    pins = locked()
    unlocked = {}
    for dist in metadata.distributions():
        name = canonical(dist.metadata["Name"])
        if name in {"workerd", "pip", "setuptools", "wheel"}:
            continue
        if pins.get(name) != dist.version:
            unlocked[name] = (dist.version, pins.get(name))
    assert not unlocked, f"installed vs locked (run `python3 tasks.py test --latest` and `lock`): {unlocked}"


def test_every_runtime_dependency_has_an_upper_bound() -> None:
    """`pip install workerd` keeps ranges, capped below the next untested major version."""
    text = (ROOT / "pyproject.toml").read_text()
    block = text[text.index("dependencies = ["):]
    block = block[:block.index("]")]
    ranges = re.findall(r'"([^"]+)"', block)
    uncapped = [r for r in ranges if "<" not in r.split(";")[0]]
    assert not uncapped, uncapped
