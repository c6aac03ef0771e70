"""Handing a program's work from the processes of its old config to those of the new.

A reload that changes how a program runs (its command, directory, user, limits...)
must not trade working processes for ones that cannot start: the old processes
(an *outgoing generation*) keep running until new ones run in their place. A new
config that fails to start therefore leaves the old processes serving, and the
failure shows in status instead of an outage.

Pure: the shell counts what runs in each generation and applies the counts this
returns as the outgoing generations' wanted counts (through reconcile, which stops
the least useful processes first).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Outgoing:
    """One outgoing generation, as the handover sees it."""

    #: How many of its processes it may still keep; it only ever goes down.
    keep: int
    #: How many of them are running now.
    running: int


def restart_rolls(asked: bool, configured: bool, running: int, enabled: bool) -> bool:
    """Whether a restart hands over one process at a time (`--rolling`, or `rolling =
    true`) rather than stopping and starting each slot: only when something runs to
    hand over from."""
    return (asked or configured) and running > 0 and enabled


def new_count(target: int, running_new: int, rolling: bool) -> int:
    """How many processes the new generation may have while old ones remain: all of
    them at once, or, rolling, one more than already run (one new process at a time),
    so the program never has fewer running processes than its count."""
    return min(target, running_new + 1) if rolling else target


def keep_counts(target: int, running_new: int, outgoing: list[Outgoing]) -> list[int]:
    """How many processes each outgoing generation (newest first) keeps.

    The new generation's running processes cover the target first; each older
    generation covers what is still missing, up to what it kept before. A count
    never rises again: an old process, once stopped, is not started anew, so a new
    config that runs and then crashes cannot make the old one flap up and down.
    """
    missing = max(0, target - running_new)
    counts = []
    for generation in outgoing:
        keep = min(generation.keep, missing)
        counts.append(keep)
        missing -= min(generation.running, keep)
    return counts
