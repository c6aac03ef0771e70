"""Who each tool's stop reaches, as kill_mode: supervisord's stopasgroup/killasgroup,
honcho's process groups, PM2's treekill. The files are shaped like public projects'."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.migrate.conftest import imported, write
from workerd.core.states import KillMode
from workerd.migrate import MigrationError, convert

#: supervisor's own sample: stopasgroup for a program whose children must stop with it
#: (a shell script, uwsgi, celery's pool), killasgroup implied; the rest left as default.
SUPERVISORD_CONF = """
    [program:celery]
    command = celery -A proj worker --loglevel=INFO --concurrency=4
    stopwaitsecs = 600
    stopasgroup = true
    killasgroup = true

    [program:uwsgi]
    command = uwsgi --ini /etc/uwsgi/app.ini
    stopsignal = QUIT
    stopasgroup = true

    [program:beat]
    command = celery -A proj beat --loglevel=INFO
    killasgroup = true

    [program:mailer]
    command = python manage.py send_queued_mail --loop
"""


def test_stopasgroup_is_kill_mode_group_and_the_default_is_mixed_with_what_differs(tmp_path: Path) -> None:
    result = imported(write(tmp_path / "supervisord.conf", SUPERVISORD_CONF), "supervisord")
    programs = result.config.programs
    assert programs["celery"].kill_mode is KillMode.GROUP
    assert programs["uwsgi"].kill_mode is KillMode.GROUP
    assert programs["beat"].kill_mode is KillMode.MIXED
    assert programs["mailer"].kill_mode is KillMode.MIXED
    assert "stopasgroup = true: supervisord sent stopsignal to the whole process group" in \
        result.comments_of("programs.uwsgi")
    beat = result.comments_of("programs.beat")
    assert "killasgroup = true: supervisord sent SIGKILL to the whole process group at stopwaitsecs; " \
           "workerd does that at stop_timeout in either kill_mode" in beat, beat
    defaults = result.comments_of("defaults")
    assert "supervisord sent stopsignal to a program's main process only" in defaults, defaults
    assert "and at stop_timeout the whole group gets SIGKILL" in defaults, defaults
    assert "always signals the whole process group" not in result.text


def test_with_every_program_stopped_as_a_group_no_default_is_written(tmp_path: Path) -> None:
    conf = write(tmp_path / "supervisord.conf", "[program:w]\ncommand = sleep 1\nstopasgroup = yes\n")
    result = imported(conf, "supervisord")
    assert result.config.programs["w"].kill_mode is KillMode.GROUP
    assert "[defaults]" not in result.text


@pytest.mark.parametrize(("keys", "error"), [
    ("stopasgroup = true\nkillasgroup = false\n",
     "supervisord.conf:4: killasgroup = 'false': supervisord refuses it with stopasgroup = true"),
    ("stopasgroup = sometimes\n", "supervisord.conf:3: stopasgroup = 'sometimes': expected true or false"),
])
def test_what_supervisord_refuses_is_one_line(tmp_path: Path, keys: str, error: str) -> None:
    conf = tmp_path / "supervisord.conf"
    conf.write_text(f"[program:w]\ncommand = sleep 1\n{keys}")
    with pytest.raises(MigrationError) as caught:
        convert(conf, "supervisord", {})
    assert str(caught.value) == f"{tmp_path}/{error}"


def test_a_procfile_is_stopped_as_honcho_stops_it_a_group_each(tmp_path: Path) -> None:
    procfile = write(tmp_path / "Procfile", "worker: bundle exec sidekiq -C config/sidekiq.yml\n")
    result = imported(procfile, "procfile")
    assert result.config.programs["worker"].kill_mode is KillMode.GROUP
    assert "honcho sent SIGTERM to each process's whole process group" in result.comments_of("defaults")


def test_pm2_s_treekill_is_kill_mode_group_and_treekill_false_is_mixed(tmp_path: Path) -> None:
    ecosystem = write(tmp_path / "ecosystem.json", json.dumps({"apps": [
        {"name": "api", "script": "server.js", "instances": 2},
        {"name": "jobs", "script": "jobs.js", "treekill": False, "kill_timeout": 3000},
    ]}))
    result = imported(ecosystem, "pm2")
    assert result.config.programs["api"].kill_mode is KillMode.GROUP
    assert "treekill (PM2's default): PM2 sent SIGINT to the app's whole process tree" in \
        result.comments_of("programs.api")
    assert result.config.programs["jobs"].kill_mode is KillMode.MIXED
    jobs = result.comments_of("programs.jobs")
    assert "treekill = false: PM2 sent SIGINT to the main process only" in jobs, jobs
    assert "always signals the whole process group" not in result.text
