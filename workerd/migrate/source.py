"""What the importers share: the one-line error, and reading the other tool's file."""

from __future__ import annotations

from pathlib import Path

from workerd.config.small_file import UnreadableFile, read_small_text


class MigrationError(Exception):
    """Why a file cannot be imported, as `FILE:LINE: why` (the other tool's own line)."""


def where(path: Path, line: int | None) -> str:
    return f"{path}:{line}" if line is not None else str(path)


def read_text(path: Path) -> str:
    """The other tool's file (or one it includes): a small regular file, never a device or a FIFO."""
    try:
        return read_small_text(path)
    except UnreadableFile as e:
        raise MigrationError(f"{path}: cannot read: {e}") from None


def size_text(size: int) -> str:
    """A size for workers.toml, in the largest power-of-1024 unit that divides it."""
    for unit, factor in (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if size and size % factor == 0:
            return f"{size // factor}{unit}"
    return f"{size}B"

