"""No test module imports another: what tests share lives in a helpers module
(tests/helpers.py, tests/runtime/limit_tools.py, tests/export/manifests.py, ...) or a
conftest, so running, moving or deleting one test file never breaks another."""

from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parent


def is_test_module(name: str) -> bool:
    """`tests.runtime.test_stop`: a module pytest collects (test_*.py)."""
    return name.split(".")[0] == "tests" and name.rsplit(".", 1)[-1].startswith("test_")


def imported_test_modules(source: str) -> list[str]:
    """The test modules a source imports, by name (`from tests.x import test_y` included)."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [a.name for a in node.names if is_test_module(a.name)]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            found += [name for name in names if is_test_module(name)]
    return found


def test_no_module_of_the_tests_imports_a_test_module() -> None:
    imports = {str(p.relative_to(TESTS)): imported_test_modules(p.read_text()) for p in sorted(TESTS.rglob("*.py"))}
    assert {path: names for path, names in imports.items() if names} == {}


def test_the_check_catches_every_form() -> None:
    for source in ("from tests.runtime.test_metrics import free_port",
                   "def f():\n    from tests.runtime.test_limits import SAMPLE",
                   "import tests.export.test_kubernetes as k",
                   "from tests.console import test_console"):
        assert imported_test_modules(source) != [], source
    assert imported_test_modules("from tests.helpers import free_port\nfrom tests.runtime.conftest import alive\n"
                                 "from tests.runtime.limit_tools import SAMPLE\nimport pytest") == []
