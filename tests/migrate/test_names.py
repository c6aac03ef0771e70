"""Program names workerd's loader would refuse, or that two programs would share, are made
unique and said: the written file loads, and no program is lost or merged into another."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.migrate.conftest import imported, write
from workerd.config.load import ConfigError, load


def test_workerd_s_loader_reserves_all(tmp_path: Path) -> None:
    """The name the importers avoid is one the loader refuses (else the tests below prove nothing)."""
    config = write(tmp_path / "workers.toml", '[programs.all]\ncommand = "sleep 1"\n')
    with pytest.raises(ConfigError, match="reserved name"):
        load(config)


@pytest.mark.parametrize("order", [("all", "all-2"), ("all-2", "all")])
def test_a_supervisord_program_named_all_is_renamed_and_said(tmp_path: Path, order: tuple[str, str]) -> None:
    """A queue worker for every queue, named `all` as its queue is."""
    first, second = order
    conf = write(tmp_path / "supervisord.conf", f"""
        [program:{first}]
        command = php /var/www/artisan queue:work --queue={first}
        process_name = %(program_name)s_%(process_num)02d
        numprocs = 2

        [program:{second}]
        command = php /var/www/artisan queue:work --queue={second}
    """)
    result = imported(conf, "supervisord")
    commands = {name: program.command[-1] for name, program in result.config.programs.items()}
    assert "all" not in commands and len(commands) == 2
    renamed = next(name for name, command in commands.items() if command == "--queue=all")
    assert renamed.startswith("all-")
    assert f"[program:all]: all is reserved (`workerctl start all` means every program): {renamed}" in \
        result.comments_of(f"programs.{renamed}")


def test_a_procfile_type_named_all_is_renamed_and_said(tmp_path: Path) -> None:
    procfile = write(tmp_path / "Procfile", "all: bundle exec sidekiq -q default -q mailers\n")
    result = imported(procfile, "procfile")
    assert list(result.config.programs) == ["all-2"]
    assert "the all process type: all is reserved" in result.comments_of("programs.all-2")


def test_pm2_apps_named_all_or_named_alike_are_all_kept(tmp_path: Path) -> None:
    ecosystem = write(tmp_path / "ecosystem.json", json.dumps({"apps": [
        {"name": "all", "script": "queue.js", "args": "--queue all"},
        {"name": "api", "script": "api.js", "args": "--port 3000"},
        {"name": "api", "script": "api.js", "args": "--port 3001"},
    ]}))
    result = imported(ecosystem, "pm2")
    programs = result.config.programs
    assert list(programs) == ["all-2", "api", "api-2"]
    assert programs["api-2"].command[-1] == "3001"
    assert "apps[0] (all): all is reserved" in result.comments_of("programs.all-2")
    assert "apps[2] (api): api is apps[1] (api)'s: api-2" in result.comments_of("programs.api-2")
