"""`workerd import` as a user runs it: output, refusals, exit codes, format guessing."""

from __future__ import annotations

import resource
import subprocess
import sys
from pathlib import Path

import pytest

from tests.migrate.conftest import write

WORKERD = str(Path(sys.executable).with_name("workerd"))
SUPERVISORD_CONF = """
    [program:w]
    command = sleep 100
    numprocs = 2
    process_name = %(program_name)s_%(process_num)d
"""


def workerd(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([WORKERD, *args], capture_output=True, text=True, timeout=30, cwd=cwd)


def test_import_writes_a_file_that_workerd_check_accepts(tmp_path: Path) -> None:
    conf = write(tmp_path / "supervisord.conf", SUPERVISORD_CONF)
    out = tmp_path / "workers.toml"
    result = workerd("import", str(conf), "-o", str(out))
    assert result.returncode == 0, result.stderr
    assert result.stderr == f"wrote {out}: 1 program(s) from {conf} (supervisord); 0 part(s) not imported, " \
                            "listed at its end\n"
    check = workerd("check", "-c", str(out))
    assert check.returncode == 0, check.stderr
    assert "w: 2 × sleep 100" in check.stdout


def test_without_output_it_prints_and_an_existing_output_needs_force(tmp_path: Path) -> None:
    conf = write(tmp_path / "supervisord.conf", SUPERVISORD_CONF)
    printed = workerd("import", str(conf))
    assert printed.returncode == 0 and "[programs.w]" in printed.stdout
    out = write(tmp_path / "workers.toml", "# mine\n")
    refused = workerd("import", str(conf), "-o", str(out))
    assert (refused.returncode, refused.stderr) == (1, f"workerd: {out} exists; --force replaces it\n")
    assert out.read_text() == "# mine\n"
    assert workerd("import", str(conf), "-o", str(out), "--force").returncode == 0
    assert out.read_text() == printed.stdout


@pytest.mark.parametrize(("name", "text", "kind"), [
    ("Procfile.dev", "worker: sleep 1\n", "procfile"),
    ("ecosystem.config.json", '{"apps": [{"name": "w", "script": "sleep.sh"}]}', "pm2"),
    ("apps.json", '{"apps": [{"name": "w", "script": "sleep.sh"}]}', "pm2"),
    ("jobs.conf", "[program:w]\ncommand = sleep 1\n", "supervisord"),
    ("workers", "worker: sleep 1\nclock: sleep 2\n", "procfile"),
])
def test_the_format_is_guessed_from_the_name_then_the_content(tmp_path: Path, name: str, text: str,
                                                                kind: str) -> None:
    source = write(tmp_path / name, text)
    result = workerd("import", str(source))
    assert result.returncode == 0, result.stderr
    assert f"# Imported from {source} ({kind})" in result.stdout


def test_bad_input_is_one_line_and_exit_2(tmp_path: Path) -> None:
    unknown = write(tmp_path / "notes.txt", "hello there\n")
    result = workerd("import", str(unknown))
    assert (result.returncode, result.stderr) == (2, f"workerd: {unknown}: cannot tell which tool's config this "
                                                     "is; say it with --from supervisord|procfile|pm2\n")
    malformed = write(tmp_path / "supervisord.conf", "[program:w]\ncommand = sleep 1\n!!!\n")
    result = workerd("import", str(malformed))
    assert (result.returncode, result.stderr) == (2, f"workerd: {malformed}:3: cannot parse '!!!'\n")
    missing = workerd("import", str(tmp_path / "nope.conf"), "--from", "supervisord")
    assert missing.returncode == 2 and missing.stderr.startswith(f"workerd: {tmp_path}/nope.conf: cannot read: ")
    usage = workerd("import", str(unknown), "--from", "circus")
    assert usage.returncode == 2 and usage.stderr.count("\n") == 1 and "'circus' is not one of" in usage.stderr


def test_a_result_this_box_cannot_run_is_written_and_said(tmp_path: Path) -> None:
    conf = write(tmp_path / "supervisord.conf", "[program:w]\ncommand = sleep 1\nuser = no-such-user-here\n")
    out = tmp_path / "workers.toml"
    result = workerd("import", str(conf), "-o", str(out))
    assert result.returncode == 1
    assert result.stderr.splitlines()[-1] == ("workerd: the result does not load on this box: <imported>: "
                                              "programs.w.user: no such user 'no-such-user-here'")
    assert 'user = "no-such-user-here"' in out.read_text()


def test_an_include_that_is_not_a_small_regular_file_is_one_line(tmp_path: Path) -> None:
    """`[include] files = /dev/zero` grew the importer to the 4 GB cap (here bounded to
    1 GiB of address space, so the old reader fails instead of taking the box)."""
    conf = write(tmp_path / "supervisord.conf", "[include]\nfiles = /dev/zero\n\n[program:w]\ncommand = sleep 1\n")

    def bounded() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))

    result = subprocess.run([WORKERD, "import", str(conf)], capture_output=True, text=True, timeout=30,
                            preexec_fn=bounded)
    assert (result.returncode, result.stderr) == (
        2, "workerd: /dev/zero: cannot read: not a regular file (a character device)\n")
