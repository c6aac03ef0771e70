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


class KillMode(str, enum.Enum):
    """Who gets the stop signal, as systemd's KillMode= says it."""

    #: The main process; what is left of its group once it has exited (a pool stops its
    #: own children warmly, as job frameworks do on SIGTERM).
    MIXED = "mixed"
    #: The whole process group at once.
    GROUP = "group"
