"""docs/architecture.md lists every module of workerd/ and nothing that is gone.

Its "Layers" block is a tree: `workerd/` at the margin, each folder (`core/`) and
module (`core/states.py`) two spaces deeper than its parent, with its line after it;
a description that wraps continues deeper than any name. An `__init__.py` is told by
its folder's line.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "architecture.md"
PACKAGE = ROOT / "workerd"

#: A name at the start of a tree line: two spaces a level, then `module.py` or `folder/`.
ENTRY = re.compile(r"^((?:  )*)([A-Za-z_][\w]*(?:\.py|/))(?:\s|$)")


def listed(doc: str) -> set[str]:
    """The paths the Layers block names under workerd/: `core/states.py`, `core/`."""
    block = doc.split("## Layers", 1)[1].split("```", 2)[1]
    stack: list[str] = []
    paths: set[str] = set()
    for line in block.splitlines():
        match = ENTRY.match(line)
        depth = len(match.group(1)) // 2 if match else -1
        if match is None or depth > len(stack):
            continue  # a wrapped description, or a line of prose
        del stack[depth:]
        name = match.group(2)
        if depth > 0 and stack[0] == "workerd/":
            paths.add("".join(stack[1:]) + name)
        if name.endswith("/"):
            stack.append(name)
    return paths


def present() -> set[str]:
    """Every module of workerd/ (but `__init__.py`) and every package folder, as the doc writes them."""
    modules = {str(p.relative_to(PACKAGE)) for p in PACKAGE.rglob("*.py") if p.name != "__init__.py"}
    folders = {str(p.parent.relative_to(PACKAGE)) + "/" for p in PACKAGE.rglob("__init__.py") if p.parent != PACKAGE}
    return modules | folders


def test_every_module_is_listed_and_every_listed_module_exists() -> None:
    doc = listed(DOC.read_text())
    assert {"missing from docs/architecture.md": sorted(present() - doc),
            "listed but gone": sorted(doc - present())} == {"missing from docs/architecture.md": [],
                                                            "listed but gone": []}


def test_the_reader_follows_the_tree() -> None:
    doc = ("## Layers\n\n```\nworkerd/\n  daemon.py    the wiring\n  core/        pure\n"
           "    states.py    the states, named as\n                 SPEC.py names them\n"
           "    deep/        a folder\n      x.py       a module\n  web/         http\n    http.py  a server\n"
           "packaging/   the .deb (build_deb.py)\n  build_deb.py  not workerd's\n```\n")
    assert listed(doc) == {"daemon.py", "core/", "core/states.py", "core/deep/", "core/deep/x.py", "web/",
                           "web/http.py"}
