"""The package's rooms stay small and their arrows point down.

workerd/process/ (the hands on processes) imports nothing of the loop, workerd/runtime/
(the loop) nothing of the web, workerd/web/ nothing of the daemon; workerd/daemon.py is
the one place that wires them all, and only the CLI starts it. The packages below them
(core, config, control, sources, export, migrate) import none of them. No folder holds
more than MAX_MODULES modules, and no module imports itself back through others.
Imports are read with ast, lazy ones (in a function, under TYPE_CHECKING) included.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Mapping
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "workerd"
MAX_MODULES = 16

#: The rooms above the pure packages, lowest first: a module may import its own room and
#: the rooms below it, never one above.
ROOMS = ("process", "runtime", "web", "daemon", "cli")
#: Who alone may import a room from outside it.
ONLY_FROM = {"web": {"daemon"}, "daemon": {"cli"}}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imported(name: str, source: str, known: Iterable[str], is_package: bool = False) -> set[str]:
    """The workerd modules a module's source imports (a `from package import module`
    names the module, relative imports resolved)."""
    known = set(known)
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                package = name.split(".")[: len(name.split(".")) - node.level + (1 if is_package else 0)]
                base = ".".join(package + ([node.module] if node.module else []))
            found |= {f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names}
    return {m for m in found if m == "workerd" or m.startswith("workerd.")}


def room(module: str) -> str:
    """A module's room (process, runtime, web, daemon, cli) or "" for the pure packages."""
    parts = module.split(".")
    if len(parts) > 1 and parts[1] in ROOMS:
        return parts[1]
    return "cli" if module == "workerd.__main__" else ""


def wrong_arrows(graph: Mapping[str, set[str]]) -> list[str]:
    """Every import that points up a room, or into a room only another may enter."""
    rank = {name: i for i, name in enumerate(("", *ROOMS))}
    wrong = []
    for module, targets in sorted(graph.items()):
        for target in sorted(targets):
            mine, theirs = room(module), room(target)
            if rank[theirs] > rank[mine]:
                wrong.append(f"{module} imports {target}: {theirs or 'the pure packages'} is above {mine or 'it'}")
            elif theirs in ONLY_FROM and mine != theirs and mine not in ONLY_FROM[theirs]:
                wrong.append(f"{module} imports {target}: only {', '.join(sorted(ONLY_FROM[theirs]))} may")
    return wrong


def cycles(graph: Mapping[str, set[str]]) -> list[list[str]]:
    """The groups of modules that import each other, round (Tarjan's strongly connected components)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = stack[stack.index(v):]
            del stack[stack.index(v):]
            if len(group) > 1 or v in graph.get(v, ()):
                found.append(sorted(group))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def crowded(folders: Mapping[Path, int]) -> dict[str, int]:
    return {str(f.relative_to(ROOT)): n for f, n in folders.items() if n > MAX_MODULES}


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    return {name: imported(name, path.read_text(), MODULES, path.name == "__init__.py") & set(MODULES)
            for name, path in MODULES.items()}


def test_the_rooms_exist() -> None:
    for name in ("process", "runtime", "web"):
        assert (PACKAGE / name / "__init__.py").is_file()
    assert (PACKAGE / "daemon.py").is_file()


def test_no_folder_holds_more_than_16_modules() -> None:
    folders: dict[Path, int] = {}
    for path in MODULES.values():
        folders[path.parent] = folders.get(path.parent, 0) + 1
    assert crowded(folders) == {}


def test_arrows_point_down(graph: dict[str, set[str]]) -> None:
    assert wrong_arrows(graph) == []


def test_no_module_imports_itself_back(graph: dict[str, set[str]]) -> None:
    assert cycles(graph) == []


@pytest.mark.parametrize(
    "module, target",
    [
        ("workerd.process.effects", "workerd.runtime.supervisor"),
        ("workerd.process.spawn", "workerd.web.http"),
        ("workerd.runtime.supervisor", "workerd.web.metrics"),
        ("workerd.runtime.handlers", "workerd.daemon"),
        ("workerd.web.console", "workerd.daemon"),
        ("workerd.config.load", "workerd.process.spawn"),
        ("workerd.sources.child", "workerd.process.reaper"),
        ("workerd.cli.workerd_commands", "workerd.web.listeners"),
    ],
)
def test_the_check_catches_an_arrow_pointing_up(module: str, target: str) -> None:
    assert len(wrong_arrows({module: {target}})) == 1


def test_the_check_lets_arrows_down_through() -> None:
    down = {"workerd.daemon": {"workerd.web.listeners", "workerd.runtime.supervisor", "workerd.process.spawn"},
            "workerd.web.metrics": {"workerd.runtime.status"},
            "workerd.runtime.supervisor": {"workerd.process.effects"},
            "workerd.process.children": {"workerd.sources.child"}, "workerd.cli.loading": {"workerd.daemon"}}
    assert wrong_arrows(down) == []


def test_the_check_reads_every_kind_of_import() -> None:
    known = {"workerd.process", "workerd.process.cgroups", "workerd.runtime.tally", "workerd.web.http",
             "workerd.config.model", "workerd.daemon"}
    source = ("from workerd.process import cgroups\nfrom . import tally\n"
              "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from workerd.web.http import HttpServer\n"
              "def f():\n    import workerd.daemon\n")
    assert imported("workerd.runtime.status", source, known) == {
        "workerd.process.cgroups", "workerd.runtime.tally", "workerd.web.http", "workerd.daemon"}


def test_the_check_finds_a_circle() -> None:
    assert cycles({"workerd.config.capacity": {"workerd.config.model"},
                   "workerd.config.model": {"workerd.config.capacity", "workerd.config.schema"},
                   "workerd.config.schema": set()}) == [["workerd.config.capacity", "workerd.config.model"]]


def test_the_check_counts_a_crowded_folder() -> None:
    assert crowded({PACKAGE / "runtime": MAX_MODULES + 1, PACKAGE / "web": MAX_MODULES}) == {"workerd/runtime": 17}
