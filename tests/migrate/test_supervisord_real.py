"""supervisord.conf files shaped like public projects' (Laravel Sail's and Baserow's
container images, Zulip's, supervisor's own test configs): each imports and loads, or
fails in one line that says everything at once."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.migrate.conftest import imported, write
from workerd.migrate import MigrationError, convert

#: Laravel Sail's runtimes/*/supervisord.conf: output to the container's own stdout.
SAIL = """
    [supervisord]
    nodaemon=true
    user=root
    logfile=/var/log/supervisor/supervisord.log
    pidfile=/var/run/supervisord.pid

    [program:php]
    command=%(ENV_SUPERVISOR_PHP_COMMAND)s
    user=%(ENV_SUPERVISOR_PHP_USER)s
    environment=LARAVEL_SAIL="1"
    stdout_logfile=/dev/stdout
    stdout_logfile_maxbytes=0
    stderr_logfile=/dev/stderr
    stderr_logfile_maxbytes=0

    [program:horizon]
    command=php /var/www/html/artisan horizon
    stdout_logfile=/dev/fd/1
    stdout_logfile_maxbytes=0
    redirect_stderr=true
"""


def refusal(path: Path, kind: str, environ: dict[str, str]) -> str:
    with pytest.raises(MigrationError) as caught:
        convert(path, kind, environ)
    return str(caught.value)


def test_docker_style_logging_is_output_on_the_daemon_s_own_stderr(tmp_path: Path) -> None:
    conf = write(tmp_path / "supervisord.conf", SAIL)
    result = imported(conf, "supervisord", environ={"SUPERVISOR_PHP_COMMAND": "php -S 0.0.0.0:80",
                                                    "SUPERVISOR_PHP_USER": "nobody"})
    daemon = result.config.daemon
    assert daemon.log_dir is None
    assert "log_dir =" not in result.text and "log_max_bytes =" not in result.text
    php = result.comments_of("programs.php")
    assert "stdout_logfile = /dev/stdout, stderr_logfile = /dev/stderr: workerd writes the output to its own " \
           "stderr" in php, php
    assert "/dev/fd/1" in result.comments_of("programs.horizon")


def test_a_log_file_without_rotation_is_log_max_bytes_0(tmp_path: Path) -> None:
    conf = write(tmp_path / "supervisord.conf", """
        [program:worker]
        command = sleep 1
        stdout_logfile = /var/log/app/%(program_name)s-stdout.log
        stdout_logfile_maxbytes = 0
        stderr_logfile = /var/log/app/%(program_name)s-stderr.log

        [program:mailer]
        command = sleep 2
        stdout_logfile = /dev/stdout
        stdout_logfile_maxbytes = 0
    """)
    result = imported(conf, "supervisord")
    assert (str(result.config.daemon.log_dir), result.config.daemon.log_max_bytes) == ("/var/log/app", 0)
    worker = result.comments_of("programs.worker")
    assert worker.count("/var/log/app/worker.log") == 1, worker
    assert "stdout_logfile = /var/log/app/worker-stdout.log, stderr_logfile = /var/log/app/worker-stderr.log: " \
           "workerd writes both, in order, to /var/log/app/worker.log" in worker, worker
    assert "stdout_logfile = /dev/stdout: workerd writes /var/log/app/mailer.log" in \
        result.comments_of("programs.mailer")
    assert "stdout_logfile_maxbytes = 0: never rotated" in result.comments_of("daemon")


def test_names_that_become_the_same_are_made_unique_and_said(tmp_path: Path) -> None:
    conf = write(tmp_path / "supervisord.conf", """
        [program:test_öäü]
        command = sleep 1

        [program:test_ß]
        command = sleep 2
    """)
    result = imported(conf, "supervisord")
    assert list(result.config.programs) == ["test_-", "test_--2"]
    assert result.config.programs["test_--2"].command == ("sleep", "2")
    assert "[program:test_ß]: workerd names are letters, digits and _.-, and test_- is [program:test_öäü]'s: " \
           "test_--2" in result.comments_of("programs.test_--2")


@pytest.mark.parametrize("chown, group", [("nobody:nogroup", "nogroup"), ("nobody", "nogroup")])
def test_a_socket_its_owner_alone_could_use_is_its_group_s_in_workerd(tmp_path: Path, chown: str,
                                                                        group: str) -> None:
    """Zulip's: chown=zulip:zulip, chmod=0700: only zulip (and root) could use supervisorctl."""
    conf = write(tmp_path / "supervisord.conf", f"""
        [unix_http_server]
        file = {tmp_path}/supervisor.sock
        chmod = 0700
        chown = {chown}

        [program:w]
        command = sleep 1
    """)
    result = imported(conf, "supervisord")
    daemon = result.config.daemon
    assert (daemon.socket_group, daemon.socket_mode) == (group, 0o770)
    assert f"chown = {chown}, chmod = 0700: nobody owned the socket" in result.comments_of("daemon")


def test_every_unset_variable_is_said_at_once(tmp_path: Path) -> None:
    """Baserow's supervisor/default_baserow_env.conf needed 8 runs, one variable each."""
    conf = write(tmp_path / "supervisord.conf", """
        [program:backend]
        command = %(ENV_DATA_DIR)s/venv/bin/gunicorn -w %(ENV_BASEROW_AMOUNT_OF_GUNICORN_WORKERS)s
        user = %(ENV_DOCKER_USER)s
        environment = OWN="x"

        [program:celery]
        command = celery worker %(ENV_OWN)s %(ENV_DATA_DIR)s %(ENV_HOME)s
    """)
    assert refusal(conf, "supervisord", {"HOME": "/root"}) == (
        f"{conf}:2: %(ENV_DATA_DIR)s: $DATA_DIR is not set here, nor $BASEROW_AMOUNT_OF_GUNICORN_WORKERS "
        f"({conf}:2), $DOCKER_USER ({conf}:3), $OWN ({conf}:7) (supervisord reads them from its own environment "
        "when it starts)")


def test_unset_variables_in_include_files_are_said_with_the_others(tmp_path: Path) -> None:
    """A container image's: its include directories come from the environment; the files
    of the globs that do not need one are read, and theirs are said too. supervisord reads
    the includes before its own environment, which the programs see."""
    conf = write(tmp_path / "supervisord.conf", """
        [supervisord]
        nodaemon=true
        environment=APP_HOME="/srv/app"

        [include]
        files = %(ENV_APP_HOME)s/supervisor/*.conf conf.d/*.conf %(ENV_EXTRA_CONF_DIR)s/*.ini

        [program:web]
        command=%(ENV_APP_HOME)s/bin/web --port %(ENV_PORT)s
    """)
    included = write(tmp_path / "conf.d" / "queue.conf", "[program:queue]\ncommand=worker %(ENV_QUEUES)s\n")
    assert refusal(conf, "supervisord", {"HOME": "/root"}) == (
        f"{conf}:6: %(ENV_APP_HOME)s: $APP_HOME is not set here, nor $EXTRA_CONF_DIR ({conf}:6), $PORT ({conf}:9), "
        f"$QUEUES ({included}:2) (supervisord reads them from its own environment when it starts)")


def test_an_include_that_matches_nothing_is_said(tmp_path: Path) -> None:
    conf = write(tmp_path / "supervisord.conf", """
        [include]
        files = conf.d/*.conf /etc/supervisor/nowhere/*.ini

        [program:w]
        command = sleep 1
    """)
    end = imported(conf, "supervisord").not_imported()
    assert "supervisord.conf:2: [include] files: conf.d/*.conf matches no file here" in end, end
    assert "/etc/supervisor/nowhere/*.ini matches no file here" in end, end


def test_a_file_without_a_program_is_one_line(tmp_path: Path) -> None:
    conf = write(tmp_path / "supervisord.conf", "[supervisord]\nnodaemon = true\n\n[include]\nfiles = conf.d/*\n")
    assert refusal(conf, "supervisord", {}) == (
        f"{conf}: no [program:x] to import (its [include] files: conf.d/* matches no file here)")


def test_a_procfile_with_only_web_and_release_names_include_web(tmp_path: Path) -> None:
    procfile = write(tmp_path / "Procfile", "web: bundle exec puma\nrelease: bin/rails db:migrate\n")
    assert refusal(procfile, "procfile", {}) == (
        f"{procfile}: no process type to import: web is left out (--include-web keeps it), release always")
