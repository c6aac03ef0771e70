"""supervisord.conf -> workers.toml: each key's mapping, the expansions, includes and
groups, and the errors that name the file and line."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from tests.migrate.conftest import imported, write
from workerd.core.states import RestartPolicy
from workerd.migrate import MigrationError, convert


def test_a_program_s_keys_map_to_workerd_s(tmp_path: Path) -> None:
    conf = write(tmp_path / "supervisord.conf", """
        [supervisord]
        logfile = /var/log/supervisor/supervisord.log

        [program:mailer]
        command = /usr/bin/python3 -m app.mailer --queue %(program_name)s
        directory = /tmp
        user = nobody
        umask = 022
        autostart = false
        autorestart = true
        startsecs = 5
        startretries = 2
        stopsignal = QUIT
        stopwaitsecs = 120
        environment = A="1",B='two words',C=x
    """)
    result = imported(conf, "supervisord")
    mailer = result.config.programs["mailer"]
    assert mailer.command == ("/usr/bin/python3", "-m", "app.mailer", "--queue", "mailer")
    assert (str(mailer.directory), mailer.user, mailer.umask) == ("/tmp", "nobody", 0o022)
    assert mailer.autostart is False
    assert mailer.restart is RestartPolicy.ALWAYS
    assert (mailer.start_seconds, mailer.max_restarts) == (5.0, 3)
    assert (mailer.stop_signal, mailer.stop_timeout) == (signal.SIGQUIT, 120.0)
    assert dict(mailer.environment) == {"A": "1", "B": "two words", "C": "x"}
    assert "supervisord gives up after 2 retries" in result.comments_of("programs.mailer")
    assert "logfile = /var/log/supervisor/supervisord.log" in result.comments_of("daemon")


def test_supervisord_s_defaults_are_written_where_workerd_s_differ(tmp_path: Path) -> None:
    conf = write(tmp_path / "supervisord.conf", """
        [program:w]
        command = sleep 100
    """)
    w = imported(conf, "supervisord").config.programs["w"]
    assert w.restart is RestartPolicy.ON_FAILURE  # autorestart = unexpected, exitcodes = 0
    assert (w.stop_timeout, w.max_restarts, w.start_seconds) == (10.0, 4, 1.0)


@pytest.mark.parametrize(("autorestart", "exitcodes", "restart", "note"), [
    ("true", "0", RestartPolicy.ALWAYS, None),
    ("false", "0", RestartPolicy.NEVER, None),
    ("unexpected", "0", RestartPolicy.ON_FAILURE, None),
    ("unexpected", "0,2", RestartPolicy.ON_FAILURE, "exitcodes = 0,2: workerd counts only exit 0 as expected"),
])
def test_autorestart_and_exitcodes(tmp_path: Path, autorestart: str, exitcodes: str, restart: RestartPolicy,
                                   note: str | None) -> None:
    conf = write(tmp_path / "supervisord.conf", f"""
        [program:w]
        command = sleep 100
        autorestart = {autorestart}
        exitcodes = {exitcodes}
    """)
    result = imported(conf, "supervisord")
    assert result.config.programs["w"].restart is restart
    assert note is None or note in result.comments_of("programs.w")


def test_process_num_becomes_an_instance_placeholder(tmp_path: Path) -> None:
    conf = write(tmp_path / "supervisord.conf", """
        [program:celery]
        command = celery -A shop worker -n w%(process_num)02d@%%h --pidfile=/run/c%(process_num)d.pid
        process_name = %(program_name)s_%(process_num)02d
        numprocs = 4
        environment = WORKER_ID="%(process_num)s",QUEUES="email,sms"

        [program:api]
        command = gunicorn --bind 127.0.0.1:80%(process_num)02d app:wsgi
        process_name = %(program_name)s_%(process_num)d
        numprocs = 2
        numprocs_start = 1
    """)
    result = imported(conf, "supervisord")
    celery = result.config.programs["celery"]
    assert celery.processes == 4
    assert celery.command == ("celery", "-A", "shop", "worker", "-n", "w{instance:2}@%h",
                              "--pidfile=/run/c{instance}.pid")
    assert dict(celery.environment) == {"WORKER_ID": "{instance}", "QUEUES": "email,sms"}
    assert result.config.programs["api"].command[2] == "127.0.0.1:80{instance+1:2}"
    assert "workerd names each process celery[N]" in result.comments_of("programs.celery")


def test_with_one_process_process_num_is_its_number(tmp_path: Path) -> None:
    conf = write(tmp_path / "supervisord.conf", """
        [program:one]
        command = sleep 7%(process_num)02d
        numprocs_start = 3
    """)
    assert imported(conf, "supervisord").config.programs["one"].command == ("sleep", "703")


def test_env_here_and_host_expansions_are_done_at_import(tmp_path: Path) -> None:
    conf = write(tmp_path / "supervisord.conf", """
        [supervisord]
        environment = SHARED="from supervisord"

        [program:w]
        command = %(here)s/run.sh %(ENV_APP_HOME)s %(ENV_SHARED)s %(ENV_OWN)s %(group_name)s
        environment = OWN=own
    """)
    result = imported(conf, "supervisord", environ={"APP_HOME": "/srv/app"})
    assert result.config.programs["w"].command == (f"{tmp_path}/run.sh", "/srv/app", "from", "supervisord", "own",
                                                   "w")
    assert dict(result.config.programs["w"].environment) == {"SHARED": "from supervisord", "OWN": "own"}


def test_includes_groups_and_what_is_not_imported(tmp_path: Path) -> None:
    conf = write(tmp_path / "supervisord.conf", """
        [unix_http_server]
        file = /run/supervisor.sock
        chmod = 0770
        chown = root:adm
        username = admin
        password = secret

        [inet_http_server]
        port = 127.0.0.1:9001

        [include]
        files = conf.d/*.conf extra.ini

        [group:shop]
        programs = web-worker,beat
    """)
    write(tmp_path / "conf.d" / "a.conf", """
        [program:web-worker]
        command = sleep 1
        ; a comment
        frobnicate = yes  ; an unknown key
    """)
    write(tmp_path / "conf.d" / "b.conf", """
        [program:beat]
        command = sleep 2

        [eventlistener:crashmail]
        command = crashmail -m root
        events = PROCESS_STATE_EXITED

        [fcgi-program:php]
        command = php-cgi
        socket = tcp://127.0.0.1:9000
    """)
    write(tmp_path / "extra.ini", "[program:extra]\ncommand = sleep 3\n")
    result = imported(conf, "supervisord")
    assert list(result.config.programs) == ["web-worker", "beat", "extra"]
    daemon = result.config.daemon
    assert (str(daemon.socket), daemon.socket_mode, daemon.socket_group) == ("/run/supervisor.sock", 0o770, "adm")
    assert "SO_PEERCRED" in result.comments_of("daemon")
    assert "in supervisord's [group:shop]" in result.comments_of("programs.web-worker")
    assert "unknown key kept as it was: frobnicate = yes" in result.comments_of("programs.web-worker")
    end = result.not_imported()
    assert end.startswith("Not imported (3):")
    assert "supervisord.conf:8: [inet_http_server]: workerd has no TCP control port, by design" in end
    assert "b.conf:4: [eventlistener:crashmail]" in end and "b.conf:8: [fcgi-program:php]" in end


def test_an_explicit_log_file_sets_the_log_dir(tmp_path: Path) -> None:
    conf = write(tmp_path / "supervisord.conf", """
        [program:a]
        command = sleep 1
        stdout_logfile = /var/log/shop/a.log
        stdout_logfile_maxbytes = 10MB
        stdout_logfile_backups = 3

        [program:b]
        command = sleep 1
        stdout_logfile = NONE
    """)
    result = imported(conf, "supervisord")
    daemon = result.config.daemon
    assert (str(daemon.log_dir), daemon.log_max_bytes, daemon.log_backups) == ("/var/log/shop", 10 * 1024**2, 3)
    assert "workerd writes /var/log/shop/a.log" in result.comments_of("programs.a")
    assert "stdout_logfile = NONE: workerd keeps the output" in result.comments_of("programs.b")


@pytest.mark.parametrize(("text", "error"), [
    ("[program:w]\ncommand = sleep 1\n  continued\nnot a key line\n",
     "supervisord.conf:4: cannot parse 'not a key line'"),
    ("command = sleep 1\n", "supervisord.conf:1: a setting before any [section]"),
    ("[program:w]\ncommand = sleep %(ENV_NOPE)s\n", "supervisord.conf:2: %(ENV_NOPE)s: $NOPE is not set here"),
    ("[program:w]\ncommand = sleep %(nope)s\n", "supervisord.conf:2: %(nope): no such expansion"),
    ("[program:w]\ncommand = sleep 100%\n", "supervisord.conf:2: 'sleep 100%': a lone '%'"),
    ("[program:w]\nnumprocs = 2\n", "supervisord.conf:1: [program:w] has no command"),
    ("[program:w]\ncommand = x\nnumprocs = two\n", "supervisord.conf:3: numprocs = 'two': expected a whole number"),
    ("[program:w]\ncommand = x\nautorestart = maybe\n", "supervisord.conf:3: autorestart = 'maybe'"),
    ("[program:w]\ncommand = x\nstopsignal = NOPE\n", "supervisord.conf:3: stopsignal = 'NOPE': not a signal"),
    ("[program:w]\ncommand = x\nenvironment = A=1,B\n", "supervisord.conf:3: environment: expected KEY=value"),
    ("[group:g]\nprograms = ghost\n", "supervisord.conf:2: [group:g] names 'ghost', which is no [program:x]"),
    ("[program:w]\ncommand = x %(process_num)3d\nnumprocs = 2\n", "supervisord.conf:2: %(process_num)3d: only"),
])
def test_bad_input_is_one_line_naming_the_file_and_line(tmp_path: Path, text: str, error: str) -> None:
    conf = tmp_path / "supervisord.conf"
    conf.write_text(text)
    with pytest.raises(MigrationError) as caught:
        convert(conf, "supervisord", {})
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"{tmp_path}/"), message
    assert error in message, message
