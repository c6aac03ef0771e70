"""The README stays a page, and no link in the docs leads nowhere: every relative link
names a file that exists and, with a #fragment, a heading of that file (GitHub's slugs)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", ROOT / "CHANGELOG.md", ROOT / "bench" / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^\s*```")


def prose(text: str) -> list[str]:
    """The lines outside fenced code blocks: a `# comment` in a TOML block is no heading."""
    lines, fenced = [], False
    for line in text.splitlines():
        if FENCE.match(line):
            fenced = not fenced
        elif not fenced:
            lines.append(line)
    return lines


def slug(heading: str) -> str:
    """GitHub's anchor of a heading: markup dropped, lower case, punctuation out, spaces to '-'."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)
    text = re.sub(r"[`*]", "", text).strip().lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """Every heading's slug; a repeated heading gets -1, -2... as on GitHub."""
    found: set[str] = set()
    counts: dict[str, int] = {}
    for line in prose(path.read_text()):
        heading = re.match(r"#{1,6}\s+(.*?)\s*#*\s*$", line)
        if heading:
            base = slug(heading.group(1))
            count = counts.get(base, 0)
            counts[base] = count + 1
            found.add(f"{base}-{count}" if count else base)
    return found


def broken_links(path: Path) -> list[str]:
    broken = []
    for line in prose(path.read_text()):
        for target in LINK.findall(line):
            if re.match(r"[a-z][a-z0-9+.-]*:", target):
                continue
            name, _, fragment = target.partition("#")
            linked = (path.parent / name).resolve() if name else path
            if not linked.is_file():
                broken.append(f"{target}: no such file")
            elif fragment and fragment not in anchors(linked):
                broken.append(f"{target}: no heading #{fragment} in {name or path.name}")
    return broken


def test_the_readme_is_at_most_300_lines() -> None:
    assert len((ROOT / "README.md").read_text().splitlines()) <= 300


@pytest.mark.parametrize("path", DOCS, ids=[str(p.relative_to(ROOT)) for p in DOCS])
def test_every_relative_link_resolves(path: Path) -> None:
    assert broken_links(path) == []


def test_a_missing_file_or_heading_is_found(tmp_path: Path) -> None:
    (tmp_path / "other.md").write_text("# Other\n\n## How processes are run\n\n## Stopping\n\n## Stopping\n")
    doc = tmp_path / "doc.md"
    doc.write_text(
        "# The `doc`\n\n[a](other.md) [b](other.md#how-processes-are-run) [c](other.md#stopping-1)\n"
        "[d](#the-doc) [e](https://example.com/x#y)\n"
        "[f](gone.md) [g](other.md#strays) [h](#nowhere)\n"
        "```toml\n# [not a link](gone.md)\n```\n"
    )
    assert broken_links(doc) == ["gone.md: no such file", "other.md#strays: no heading #strays in other.md",
                                 "#nowhere: no heading #nowhere in doc.md"]
