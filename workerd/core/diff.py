"""What a reload changes: programs added, removed, changed or left alone."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class Diff(Generic[T]):
    added: tuple[str, ...]
    removed: tuple[str, ...]
    changed: tuple[str, ...]
    unchanged: tuple[str, ...]

    @property
    def empty(self) -> bool:
        return not (self.added or self.removed or self.changed)


def diff(old: Mapping[str, T], new: Mapping[str, T]) -> Diff[T]:
    """Compare two name -> definition maps by value, keeping the new file's order."""
    return Diff(
        added=tuple(n for n in new if n not in old),
        removed=tuple(n for n in old if n not in new),
        changed=tuple(n for n in new if n in old and old[n] != new[n]),
        unchanged=tuple(n for n in new if n in old and old[n] == new[n]),
    )
