"""A worker's command and environment must fit what execve accepts: a single string
of MAX_ARG_STRLEN (32 pages, 128 KiB) or more, or all of them over ARG_MAX, is E2BIG
at every start. The loader refuses such a config in one line naming the program and
the key, so `workerd check` says so instead of a crash loop."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from workerd.config.model import Config

Error = Callable[[str], str]
Loads = Callable[[str], Config]

EMAIL = '[programs.email]\ncommand = "sleep 1"\n'
STRLEN = 32 * os.sysconf("SC_PAGESIZE")


def test_a_300_kb_environment_value_is_refused_naming_the_program_and_variable(error: Error) -> None:
    message = error(f'{EMAIL}environment = {{ BIG = "{"x" * 300_000}" }}\n')
    assert message == (f"workers.toml: programs.email.environment.BIG: 300005 bytes with its name, "
                       f"over the {STRLEN} one variable may take (execve would fail with E2BIG)")


def test_a_huge_value_from_the_env_file_names_the_file_and_variable(error: Error, workdir: Path) -> None:
    (workdir / "app.env").write_text("HUGE=" + "y" * STRLEN + "\n")
    message = error(f'{EMAIL}env_file = "app.env"\n')
    assert message.startswith("workers.toml: programs.email.env_file: HUGE: ")
    assert "E2BIG" in message


def test_a_huge_argument_is_refused(error: Error) -> None:
    message = error(f'[programs.email]\ncommand = ["echo", "{"z" * STRLEN}"]\n')
    assert message.startswith(f"workers.toml: programs.email.command: argument 2 is {STRLEN + 1} bytes, over the")


def test_many_large_values_over_arg_max_together_are_refused(error: Error) -> None:
    """Each one fits, all of them do not: the total is held to ARG_MAX."""
    count = os.sysconf("SC_ARG_MAX") // 100_000 + 1
    table = ", ".join(f'V{n} = "{"v" * 100_000}"' for n in range(count))
    message = error(f"{EMAIL}environment = {{ {table} }}\n")
    assert message.startswith("workers.toml: programs.email: its command and environment take ")
    assert f"over ARG_MAX ({os.sysconf('SC_ARG_MAX')} bytes" in message


def test_a_large_environment_that_fits_loads(loads: Loads) -> None:
    config = loads(f'{EMAIL}environment = {{ BIG = "{"x" * 100_000}" }}\n')
    assert len(config.programs["email"].environment["BIG"]) == 100_000


def test_workerd_check_says_it_in_one_line(write: Callable[[str], Path]) -> None:
    write(f'{EMAIL}environment = {{ BIG = "{"x" * 300_000}" }}\n')
    result = subprocess.run([sys.executable, "-m", "workerd", "check", "-c", "workers.toml"],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "programs.email.environment.BIG" in result.stderr, result.stderr
