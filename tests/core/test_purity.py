"""The core decides and never acts: it imports nothing that reaches the OS, and it type-checks strictly."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CORE = ROOT / "workerd" / "core"
MODULES = sorted(CORE.rglob("*.py"))

FORBIDDEN = {"os", "signal", "asyncio", "time", "subprocess", "psutil", "socket", "threading", "random"}
ALLOWED = {"__future__", "dataclasses", "typing", "enum", "math", "collections", "functools", "itertools", "re",
           "array"}


def imports(source: str) -> list[str]:
    """Every module a source imports, by absolute name; `__import__`/`importlib` calls show up too."""
    found: list[str] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            # relative imports stay inside the package they are in
            found.append("workerd.core" if node.level else node.module or "")
        elif isinstance(node, ast.Name) and node.id in ("__import__", "importlib"):
            found.append(node.id)
    return found


def disallowed(source: str) -> list[str]:
    bad = []
    for name in imports(source):
        top = name.split(".")[0]
        inside_core = name == "workerd.core" or name.startswith("workerd.core.")
        if top in FORBIDDEN or not (inside_core or top in ALLOWED):
            bad.append(name)
    return bad


def test_the_core_has_modules() -> None:
    names = {p.name for p in MODULES}
    assert {"lifecycle.py", "states.py", "events.py", "actions.py", "backoff.py", "reconcile.py", "diff.py"} <= names


@pytest.mark.parametrize("path", MODULES, ids=[str(p.relative_to(CORE)) for p in MODULES])
def test_core_module_imports_only_pure_modules(path: Path) -> None:
    assert disallowed(path.read_text()) == []


@pytest.mark.parametrize(
    "source",
    [
        "import os",
        "import time as clock",
        "from asyncio import sleep",
        "import os.path",
        "from workerd.process import spawn",
        "from workerd import runtime",
        "import workerd.config",
        "import json",
        "x = __import__('signal')",
        "def f():\n    import subprocess",
        "from collections import deque\nimport threading",
    ],
)
def test_the_check_catches_an_impure_import(source: str) -> None:
    assert disallowed(source) != []


def test_the_check_lets_pure_imports_through() -> None:
    source = (
        "from __future__ import annotations\nimport math\nfrom typing import Callable\n"
        "from collections.abc import Mapping\nfrom workerd.core.states import State\nfrom . import events\n"
    )
    assert disallowed(source) == []


def test_core_passes_mypy_strict() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "workerd/core"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_no_module_of_the_package_is_over_400_lines() -> None:
    """A module past 400 lines holds two responsibilities: split it along the data flow."""
    package = ROOT / "workerd"
    long = {str(p.relative_to(package)): n for p in package.rglob("*.py")
            if (n := len(p.read_text().splitlines())) > 400}
    assert long == {}
