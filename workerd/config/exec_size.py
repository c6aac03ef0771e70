"""Whether a worker's command and environment fit what execve accepts.

Linux refuses an exec (E2BIG) when one argument or `NAME=value` string takes
MAX_ARG_STRLEN (32 pages) or more, or when all of them together, with a pointer
each, pass ARG_MAX (a quarter of the stack limit). A config that breaks either would
pass every other check and then fail at every start, so the loader refuses it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

__all__ = ["argument_problem", "total_problem", "variable_problem"]

#: One string, its NUL included, must be shorter than this.
MAX_ARG_STRLEN = 32 * os.sysconf("SC_PAGESIZE")
#: What the exec chain (prlimit, nice, setpriv and their options) and the variables the
#: daemon adds per worker (WORKERD_SOCKET, NOTIFY_SOCKET, ...) take, with room to spare.
CHAIN_MARGIN = 4096
_POINTER = 8


def _size(text: str) -> int:
    return len(os.fsencode(text)) + 1


def variable_problem(name: str, value: str) -> str | None:
    """Why `name=value` cannot be passed to a worker, or None."""
    size = _size(f"{name}={value}")
    if size < MAX_ARG_STRLEN:
        return None
    return (f"{size} bytes with its name, over the {MAX_ARG_STRLEN} one variable may take "
            f"(execve would fail with E2BIG)")


def argument_problem(argv: Sequence[str]) -> str | None:
    """Why one of `argv`'s arguments cannot be passed, or None."""
    for number, argument in enumerate(argv, start=1):
        size = _size(argument)
        if size >= MAX_ARG_STRLEN:
            return (f"argument {number} is {size} bytes, over the {MAX_ARG_STRLEN} one argument may take "
                    f"(execve would fail with E2BIG)")
    return None


def total_problem(argv: Sequence[str], environment: Mapping[str, str], inherited: Mapping[str, str]) -> str | None:
    """Why `argv` with `environment` over the `inherited` one (the daemon's) passes ARG_MAX, or None."""
    env = {**inherited, **environment}
    strings = [*argv, *(f"{name}={value}" for name, value in env.items())]
    total = sum(_size(s) + _POINTER for s in strings) + CHAIN_MARGIN
    limit = os.sysconf("SC_ARG_MAX")
    if total <= limit:
        return None
    return (f"its command and environment take {total} bytes (with the daemon's own environment), "
            f"over ARG_MAX ({limit} bytes, a quarter of the stack limit): execve would fail with E2BIG")
