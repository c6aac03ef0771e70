"""Every TOML example in the docs is a valid config: the docs cannot drift from the schema.

Fragments that show only `[programs.X.autoscale]` get a `[programs.X]` with a command,
and `user = "app"` becomes the user running the tests (the examples' user need not
exist here)."""

from __future__ import annotations

import getpass
import re
from pathlib import Path

import pytest

from workerd.config.load import load

ROOT = Path(__file__).resolve().parents[2]
BLOCKS = [
    (path.name, i, block)
    for path in (ROOT / "README.md", *(ROOT / "docs" / name for name in (
        "autoscaling.md", "autoscaling-examples.md", "talking-to-workers.md")))
    for i, block in enumerate(re.findall(r"```toml\n(.*?)```", path.read_text(), re.S))
    if "[programs." in block
]


def completed(block: str) -> str:
    text = block.replace('user = "app"', f'user = "{getpass.getuser()}"')
    tables = set(re.findall(r"^\[programs\.([^.\]]+)\]", text, re.M))
    for name in dict.fromkeys(re.findall(r"^\[programs\.([^.\]]+)\.", text, re.M)):
        if name not in tables:
            text = f'[programs.{name}]\ncommand = "python -m app.worker"\n' + text
    return text


@pytest.mark.parametrize(("doc", "index", "block"), BLOCKS, ids=[f"{d}-{i}" for d, i, _ in BLOCKS])
def test_example_is_a_valid_config(tmp_path: Path, doc: str, index: int, block: str) -> None:
    path = tmp_path / "workers.toml"
    path.write_text(completed(block))
    assert load(path).programs
