"""The states of a worker slot; the enum values are the names SPEC shows users."""

from __future__ import annotations

import enum


class State(str, enum.Enum):
    STARTING = "starting"
    RUNNING = "running"
    BACKOFF = "backoff"
    STOPPING = "stopping"
    STOPPED = "stopped"
    EXITED = "exited"
    FATAL = "fatal"


#: A process exists (or is being made) for the slot.
HAS_PROCESS = frozenset({State.STARTING, State.RUNNING, State.STOPPING})
#: Nothing will happen to the slot until someone asks.
AT_REST = frozenset({State.STOPPED, State.EXITED, State.FATAL})


class RestartPolicy(str, enum.Enum):
    ALWAYS = "always"
    ON_FAILURE = "on-failure"
    NEVER = "never"
