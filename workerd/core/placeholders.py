"""`{program}` and `{instance}` in a command and its environment, filled in per process.

What supervisord's `%(program_name)s` and `%(process_num)02d` do: one config line that
gives each process its own name or port (`celery worker -n w{instance:2}@%h`,
`--port {instance+8000}`). Only these exact forms are placeholders; any other brace
is left as it is, and so is `${program}` or `${instance}`, which is the shell's.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

#: `{program}`; `{instance}`, `{instance+N}` (the number plus N), either with `:W` (at
#: least W digits, zero-padded; `:0W` too).
PLACEHOLDER = re.compile(r"(?<!\$)\{(?:(program)|instance(?:\+(\d{1,9}))?(?::0?([1-9]))?)\}")


def has_placeholders(text: str) -> bool:
    return PLACEHOLDER.search(text) is not None


def expand(text: str, program: str, instance: int) -> str:
    def value(match: re.Match[str]) -> str:
        if match.group(1):
            return program
        return str(instance + int(match.group(2) or 0)).zfill(int(match.group(3) or 1))

    return PLACEHOLDER.sub(value, text)


def expand_argv(argv: Sequence[str], program: str, instance: int) -> tuple[str, ...]:
    return tuple(expand(arg, program, instance) for arg in argv)


def expand_environment(env: Mapping[str, str], program: str, instance: int) -> dict[str, str]:
    return {name: expand(value, program, instance) for name, value in env.items()}
