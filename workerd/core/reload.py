"""What a reload does to each program: the decisions the supervisor carries out.

The config diff says which programs were added, removed or changed; this module
decides, for each, the one step that applies the change with the least disruption.
Every branch is a labelled edge with a unit test, as in lifecycle.py.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from workerd.core.diff import diff

#: Program settings that only say how many processes run: changing them rescales.
#: (`autostart` says so only when the program is added: a running program keeps running.)
SCALING_FIELDS = frozenset({"processes", "autoscale", "autostart"})


class Step(str, enum.Enum):
    #: A new program: start it.
    ADD = "add"
    #: A program the file no longer has: stop its processes, then forget it.
    REMOVE = "remove"
    #: Added back while an earlier reload's removal is still stopping it: keep the
    #: program, with the new config, and restart it.
    TAKE_BACK = "take back"
    #: Only the count changed: reconcile, no process restarts.
    RESCALE = "rescale"
    #: How the processes run changed and some run now: new processes start and the old
    #: ones stop as they are replaced (core.handover).
    REPLACE = "replace"
    #: How the processes run changed and none runs: restart with the new config.
    RESTART = "restart"
    #: Back to the config (but for its count) of processes still running from before an
    #: earlier change (one that could not start): they are the program again, not
    #: replaced by new processes of the same config; the newer ones stop.
    REVERT = "revert"


@dataclass(frozen=True)
class Facts:
    """What the supervisor knows of a program a reload finds in place."""

    running: int
    #: False after `workerctl stop`.
    enabled: bool
    #: Dropped by an earlier reload and still stopping.
    removing: bool
    #: The outgoing generations (the configs before a change, kept until new processes
    #: run), newest first: each one's config and how many of its processes run.
    outgoing: tuple[tuple[Any, int], ...] = ()


def changed_fields(old: Any, new: Any) -> frozenset[str]:
    """The names of the fields where two dataclass instances of one type differ."""
    return frozenset(f.name for f in dataclasses.fields(old) if getattr(old, f.name) != getattr(new, f.name))


def decide_change(changed: frozenset[str], facts: Facts) -> Step:
    """The step for a program whose config changed (`changed`: the fields that did)."""
    if changed <= SCALING_FIELDS:
        # changed -> rescale: only the count follows the file
        return Step.RESCALE
    if facts.running and facts.enabled:
        # changed -> replace: the running processes serve until new ones run
        return Step.REPLACE
    # changed -> restart: nothing runs that a handover could keep
    return Step.RESTART


def reverts_to(new: Any, facts: Facts) -> int | None:
    """The outgoing generation (its index in `facts.outgoing`) a changed config goes
    back to: the newest whose processes still run and whose config differs from `new`
    only in the count. None: no such generation, or the program was stopped by hand."""
    if not facts.enabled:
        return None
    for index, (config, running) in enumerate(facts.outgoing):
        if running and changed_fields(config, new) <= SCALING_FIELDS:
            return index
    return None


def plan(old: Mapping[str, Any], new: Mapping[str, Any], facts: Mapping[str, Facts]) -> list[tuple[str, Step]]:
    """One step per program the reload touches: removals, then additions, then changes,
    in the new file's order. `old` holds the configs of the programs in force (not
    those being removed); `facts` every program the supervisor still has."""
    d = diff(old, new)
    steps = [(name, Step.REMOVE) for name in d.removed]
    for name in d.added:
        # added -> take back (still stopping from an earlier removal) | add
        steps.append((name, Step.TAKE_BACK if name in facts else Step.ADD))
    for name in d.changed:
        if reverts_to(new[name], facts[name]) is not None:
            # changed -> revert: processes of this config still run
            steps.append((name, Step.REVERT))
        else:
            steps.append((name, decide_change(changed_fields(old[name], new[name]), facts[name])))
    return steps
