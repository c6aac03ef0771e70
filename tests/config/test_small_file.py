"""Files the config points at (env_file, console_token_file) are read only when they
are regular files of at most 1 MiB, and opening one never blocks: /dev/zero grew the
reader to the 4 GB cap and a FIFO froze it. Each is one line naming the file.

Every case that read forever before runs `workerd check` in a child with a bounded
address space and a timeout, so the failing version fails instead of taking the box."""

from __future__ import annotations

import os
import resource
import subprocess
import sys
from pathlib import Path

import pytest

from workerd.config.small_file import LIMIT, UnreadableFile, read_small_text

EMAIL = '[programs.email]\ncommand = "sleep 1"\n'
ADDRESS_SPACE = 1 << 30


def bounded() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE, ADDRESS_SPACE))


def check(workdir: Path, text: str) -> subprocess.CompletedProcess[str]:
    (workdir / "workers.toml").write_text(text)
    return subprocess.run([sys.executable, "-m", "workerd", "check", "-c", "workers.toml"], cwd=workdir,
                          capture_output=True, text=True, timeout=20, preexec_fn=bounded)


def one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 2, result
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr, result.stderr
    return result.stderr.strip()


def test_a_regular_file_is_read(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("A=1\n")
    assert read_small_text(tmp_path / "f") == "A=1\n"


@pytest.mark.parametrize(("make", "why"), [
    (lambda p: p.mkdir(), "[Errno 21] Is a directory"),
    (lambda p: os.mkfifo(p), "not a regular file (a FIFO)"),
    (lambda p: p.write_bytes(b"x" * (LIMIT + 1)), "over 1 MiB"),
    (lambda p: p.write_bytes(b"A=\xff"), "not UTF-8 (byte 2)"),
])
def test_what_is_not_a_small_regular_file_is_one_reason(tmp_path: Path, make, why: str) -> None:
    path = tmp_path / "f"
    make(path)
    with pytest.raises(UnreadableFile) as caught:
        read_small_text(path)
    assert str(caught.value) == why


def test_a_device_is_refused(tmp_path: Path) -> None:
    with pytest.raises(UnreadableFile) as caught:
        read_small_text(Path("/dev/zero"))
    assert str(caught.value) == "not a regular file (a character device)"


def test_an_env_file_that_is_dev_zero(tmp_path: Path) -> None:
    line = one_error_line(check(tmp_path, f'{EMAIL}env_file = "/dev/zero"\n'))
    assert line == ("workerd: workers.toml: programs.email.env_file: cannot read /dev/zero: "
                    "not a regular file (a character device)")


def test_an_env_file_that_is_a_fifo_does_not_block(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "app.env")
    line = one_error_line(check(tmp_path, f'{EMAIL}env_file = "app.env"\n'))
    assert line.endswith(f"programs.email.env_file: cannot read {tmp_path}/app.env: not a regular file (a FIFO)")


def test_a_console_token_file_that_is_dev_zero(tmp_path: Path) -> None:
    line = one_error_line(check(tmp_path, '[daemon]\nconsole_token_file = "/dev/zero"\n'))
    assert line == ("workerd: workers.toml: daemon.console_token_file: cannot read /dev/zero: "
                    "not a regular file (a character device)")


def test_a_big_env_file(tmp_path: Path) -> None:
    (tmp_path / "app.env").write_bytes(b"A=1\n" * (LIMIT // 4 + 1))
    line = one_error_line(check(tmp_path, f'{EMAIL}env_file = "app.env"\n'))
    assert line.endswith(f"cannot read {tmp_path}/app.env: over 1 MiB")
