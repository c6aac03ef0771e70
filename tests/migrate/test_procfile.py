"""Procfile -> workers.toml, as foreman and honcho run it."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.migrate.conftest import imported, write
from workerd.migrate import MigrationError, convert

PROCFILE = """
    # a Django app
    web: gunicorn shop.wsgi --bind 0.0.0.0:$PORT
    worker: celery -A shop worker -l info
    release: python manage.py migrate
    beat: celery -A shop beat
"""


def test_each_line_is_a_shell_program_in_the_procfile_s_directory(tmp_path: Path) -> None:
    procfile = write(tmp_path / "Procfile", PROCFILE)
    write(tmp_path / ".env", "DATABASE_URL=postgres://localhost/shop\n")
    result = imported(procfile, "procfile")
    assert list(result.config.programs) == ["worker", "beat"]
    worker = result.config.programs["worker"]
    assert worker.command == ("/bin/sh", "-c", "celery -A shop worker -l info")
    assert worker.directory == tmp_path
    assert worker.env_file == tmp_path / ".env"
    assert worker.environment["DATABASE_URL"] == "postgres://localhost/shop"
    # foreman/honcho: 5000 for the 1st type (web), 5100 for the 2nd, ..., plus the instance
    assert worker.environment["PORT"] == "{instance+5100}"
    assert result.config.programs["beat"].environment["PORT"] == "{instance+5300}"
    end = result.not_imported()
    assert "Procfile:2: web: gunicorn shop.wsgi --bind 0.0.0.0:$PORT (left out" in end
    assert "Procfile:4: release: python manage.py migrate (left out: Heroku runs it once per deploy" in end


def test_include_web_keeps_it_and_a_port_in_dot_env_is_the_base(tmp_path: Path) -> None:
    procfile = write(tmp_path / "Procfile", PROCFILE)
    write(tmp_path / ".env", "PORT=8000\n")
    result = imported(procfile, "procfile", include_web=True)
    assert list(result.config.programs) == ["web", "worker", "beat"]
    assert result.config.programs["web"].environment["PORT"] == "{instance+8000}"
    assert result.config.programs["worker"].environment["PORT"] == "{instance+8100}"


@pytest.mark.parametrize(("text", "error"), [
    ("worker: sleep 1\nnot a process line\n", "Procfile:2: expected `name: command`, got 'not a process line'"),
    ("worker:\n", "Procfile:1: expected `name: command`"),
    ("worker: sleep 1\nworker: sleep 2\n", "Procfile:2: worker is already defined on line 1"),
    ("# only a comment\nweb: puma\n", "Procfile: no process type to import"),
])
def test_bad_lines_are_one_line_errors(tmp_path: Path, text: str, error: str) -> None:
    procfile = tmp_path / "Procfile"
    procfile.write_text(text)
    with pytest.raises(MigrationError, match="^" + str(tmp_path)) as caught:
        convert(procfile, "procfile", {})
    assert error in str(caught.value)
