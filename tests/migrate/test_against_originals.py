"""Round trips: a real-world config run by its own tool (supervisord, honcho, PM2), then
imported and run by workerd; the processes each starts, read from /proc, must be the
same: argv, working directory, user, environment, and how many of each."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.migrate.conftest import write
from tests.migrate.originals import (
    Worker,
    differences,
    leftovers,
    running,
    settled,
    stop,
)
from workerd.migrate import convert
from workerd.migrate.draft import render

BIN = Path(sys.executable).parent
#: The system's Python, which any user may run (the venv's may live under /root).
SYSTEM_PYTHON = shutil.which("python3", path="/usr/bin:/bin") or sys.executable
IN_CI = os.environ.get("CI") == "true"

#: The stand-in for celery, rq, gunicorn...: keeps its argv, sleeps, ends on TERM or INT.
STAND_IN = """#!/bin/sh
trap 'kill $! 2>/dev/null; exit 0' TERM INT QUIT
sleep 3600 &
wait
"""


@pytest.fixture
def shop() -> Iterator[Path]:
    """/srv/shop as a test directory: the tools a Django shop runs, as stand-ins. Outside
    pytest's own temp dir (0700), so that a program run as `nobody` can read it."""
    root = Path(tempfile.mkdtemp(prefix="workerd-shop-"))
    try:
        root.chmod(0o755)
        for tool in ("celery", "rq", "rqscheduler", "gunicorn", "flower", "thumbnailer", "daphne"):
            write(root / "venv" / "bin" / tool, STAND_IN).chmod(0o755)
        write(root / "manage.py", "import time\nwhile True:\n    time.sleep(3600)\n")
        (root / "media").mkdir()
        yield root
    finally:
        shutil.rmtree(root)


def run_workerd(config: Path, tmp_path: Path, marker: str, count: int, env: dict[str, str],
                keep: frozenset[str] | None = None) -> Counter[Worker]:
    environ = {**env, "WORKERD_SOCKET": str(tmp_path / "workerd.sock")}
    with running([str(BIN / "workerd"), "start", "-c", str(config)], environ, tmp_path,
                 tmp_path / "workerd.log") as daemon:
        return settled(daemon.pid, marker, count, keep)


def imported(source: Path, kind: str, env: dict[str, str], **options: object) -> Path:
    out = source.parent / "workers.toml"
    out.write_text(render(convert(source, kind, env, **options)))  # type: ignore[arg-type]
    check = subprocess.run([str(BIN / "workerd"), "check", "-c", str(out)], capture_output=True, text=True,
                           timeout=30, env=env)
    assert check.returncode == 0, check.stderr
    return out


SUPERVISORD_CONF = """
    ; /etc/supervisor/supervisord.conf of a Django shop
    [unix_http_server]
    file = %(here)s/supervisor.sock
    chmod = 0700

    [supervisord]
    logfile = %(here)s/supervisord.log
    pidfile = %(here)s/supervisord.pid
    environment = DJANGO_SETTINGS_MODULE="shop.settings.production",APP_ENV="production"

    [rpcinterface:supervisor]
    supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface

    [supervisorctl]
    serverurl = unix://%(here)s/supervisor.sock

    [program:celery]
    command = {app}/venv/bin/celery -A shop worker -Q default,email -c 4 -n w%(process_num)02d@%%h
    process_name = %(program_name)s_%(process_num)02d
    numprocs = 3
    directory = {app}
    stopwaitsecs = 600
    stopasgroup = true
    killasgroup = true
    environment = C_FORCE_ROOT="1",WORKER_NAME="w%(process_num)02d"
    startsecs = 0

    [program:celerybeat]
    command = {app}/venv/bin/celery -A shop beat -s %(here)s/celerybeat-schedule
    directory = {app}
    startsecs = 0

    [program:rq-high]
    command = {app}/venv/bin/rq worker --url redis://127.0.0.1:6379/3 high default
    process_name = rq-high-%(process_num)s
    numprocs = 2
    directory = {app}
    startsecs = 0

    [program:django-tasks]
    command = {python} manage.py process_tasks --queue %(program_name)s
    directory = {app}
    user = nobody
    startsecs = 0

    [program:api]
    command = {app}/venv/bin/gunicorn shop.wsgi --bind 127.0.0.1:80%(process_num)02d --workers 2
    process_name = api-%(process_num)d
    numprocs = 2
    numprocs_start = 1
    directory = {app}
    environment = PORT="80%(process_num)02d"
    startsecs = 0

    [program:celery-email]
    command = {app}/venv/bin/celery -A shop worker -Q %(program_name)s -n %(program_name)s.%(process_num)d@%%h
    process_name = %(program_name)s-%(process_num)d
    numprocs = 2
    directory = {app}
    priority = 200
    stopwaitsecs = 120
    startsecs = 0

    [program:rqscheduler]
    command = {app}/venv/bin/rqscheduler --host 127.0.0.1 --db 3 --interval 5
    directory = {app}
    autorestart = unexpected
    exitcodes = 0,2
    startsecs = 0

    [program:clearsessions]
    command = {python} manage.py clearsessions --loop
    directory = {app}
    startretries = 10
    startsecs = 0

    [program:channels]
    command = {app}/venv/bin/daphne -u /run/shop/daphne%(process_num)d.sock shop.asgi:application
    process_name = channels%(process_num)d
    numprocs = 2
    directory = {app}
    stopsignal = INT
    environment = DJANGO_SETTINGS_MODULE="shop.settings.channels"
    startsecs = 0

    [group:shop]
    programs = celery,celerybeat,celery-email

    [include]
    files = conf.d/*.conf
"""

INCLUDED = {
    "flower.conf": """
        [program:flower]
        command = {app}/venv/bin/flower --port=5555 --basic_auth=%(ENV_FLOWER_AUTH)s
        directory = {app}
        startsecs = 0
        autorestart = true
    """,
    "media.conf": """
        [program:thumbnailer]
        command = {app}/venv/bin/thumbnailer --watch %(here)s/../media
        directory = {app}/media
        umask = 002
        startsecs = 0

        [program:backfill]
        command = {python} manage.py backfill
        directory = {app}
        autostart = false
    """,
}
#: 13 programs: celery 3, celerybeat 1, rq-high 2, django-tasks 1, api 2, celery-email 2,
#: rqscheduler 1, clearsessions 1, channels 2, flower 1, thumbnailer 1; backfill waits.
SUPERVISORD_WORKERS = 17


@pytest.fixture
def environment() -> dict[str, str]:
    """What both tools are started with: the same environment, FLOWER_AUTH included."""
    return {"PATH": os.environ["PATH"], "HOME": "/root", "LANG": "C.UTF-8", "FLOWER_AUTH": "admin:s3cret"}


def test_supervisord_and_workerd_start_the_same_processes(tmp_path: Path, shop: Path,
                                                          environment: dict[str, str]) -> None:
    etc = tmp_path / "etc"
    conf = write(etc / "supervisord.conf", SUPERVISORD_CONF.replace("{app}", str(shop))
                 .replace("{python}", SYSTEM_PYTHON))
    for name, text in INCLUDED.items():
        write(etc / "conf.d" / name, text.replace("{app}", str(shop)).replace("{python}", SYSTEM_PYTHON))
    with running([str(BIN / "supervisord"), "-n", "-c", str(conf)], environment, etc, etc / "out.log") as sup:
        original = settled(sup.pid, str(shop), SUPERVISORD_WORKERS)
    config = imported(conf, "supervisord", environment)
    mine = run_workerd(config, tmp_path, str(shop), SUPERVISORD_WORKERS, environment)
    assert mine == original, differences(original, mine)
    assert leftovers(str(shop)) == []
    by_argv = {w.argv[-1]: w for w in mine}
    assert by_argv["w02@%h"].env == (*sorted({**environment, "APP_ENV": "production", "C_FORCE_ROOT": "1",
                                               "DJANGO_SETTINGS_MODULE": "shop.settings.production",
                                               "WORKER_NAME": "w02"}.items()),)


PROCFILE = """
    web: {app}/venv/bin/gunicorn shop.wsgi --bind 127.0.0.1:$PORT
    worker: {app}/venv/bin/celery -A shop worker -n w$PORT@%h --loglevel $LOG_LEVEL
    clock: {app}/venv/bin/celery -A shop beat
    mailer: exec {app}/venv/bin/rq worker mail --name mail-$PORT
"""


def test_honcho_and_workerd_start_the_same_processes(tmp_path: Path, shop: Path,
                                                     environment: dict[str, str]) -> None:
    procfile = write(shop / "Procfile", PROCFILE.replace("{app}", str(shop)))
    write(shop / ".env", "LOG_LEVEL=info\nDATABASE_URL=postgres://127.0.0.1/shop\n")
    honcho = [str(BIN / "honcho"), "start", "-f", str(procfile), "-c", "worker=2"]
    with running(honcho, environment, shop, tmp_path / "honcho.log") as tool:
        original = settled(tool.pid, str(shop), 5, depth=2)
    config = imported(procfile, "procfile", environment, include_web=True)
    text = config.read_text().replace('[programs.worker]\ncommand', '[programs.worker]\nprocesses = 2\ncommand')
    config.write_text(text)  # honcho -c worker=2, as a user would set processes after the import
    mine = run_workerd(config, tmp_path, str(shop), 5, environment)
    assert mine == original, differences(original, mine)
    assert leftovers(str(shop)) == []
    ports = sorted(dict(w.env)["PORT"] for w in mine)
    assert ports == ["5000", "5100", "5101", "5200", "5300"]


def pm2_command() -> str | None:
    return os.environ.get("PM2") or shutil.which("pm2")


@pytest.mark.skipif(pm2_command() is None and not IN_CI,
                    reason="PM2 is not installed (npm install pm2; .ci/run puts it in .ci-cache and sets $PM2)")
def test_pm2_and_workerd_start_the_same_processes(tmp_path: Path, shop: Path, environment: dict[str, str]) -> None:
    pm2 = pm2_command()
    assert pm2 is not None, "CI must have PM2: .ci/run installs it and sets $PM2"
    ecosystem = write(shop / "ecosystem.config.js", """
        const venv = __dirname + "/venv/bin";
        module.exports = {
          apps: [
            { name: "celery", script: venv + "/celery", args: "-A shop worker -Q default", instances: 2,
              interpreter: "none", env: { APP_ENV: "staging" }, env_production: { APP_ENV: "production" },
              kill_timeout: 30000, max_memory_restart: "512M" },
            { name: "tasks", script: "manage.py", args: ["process_tasks", "--sleep", "5"], cwd: __dirname,
              interpreter: "python3", env: { DJANGO_SETTINGS_MODULE: "shop.settings" } },
            { name: "thumbs", script: "venv/bin/thumbnailer --watch media", cwd: __dirname },
          ],
        };
    """)
    declared = frozenset({"APP_ENV", "DJANGO_SETTINGS_MODULE", "NODE_APP_INSTANCE", "PYTHONUNBUFFERED"})
    home = tmp_path / "pm2-home"
    pm2_env = {**environment, "PM2_HOME": str(home)}
    try:
        start = subprocess.run([pm2, "start", str(ecosystem), "--env", "production"], env=pm2_env, cwd=shop,
                               capture_output=True, text=True, timeout=60)
        assert start.returncode == 0, start.stdout + start.stderr
        god = int((home / "pm2.pid").read_text())
        original = settled(god, str(shop), 4, declared)
    finally:
        subprocess.run([pm2, "kill"], env=pm2_env, capture_output=True, timeout=60)
        pid_file = home / "pm2.pid"
        if pid_file.exists():
            god = int(pid_file.read_text())
            stop(god, lambda: not Path(f"/proc/{god}").exists(), set())
    config = imported(ecosystem, "pm2", environment, env_name="production")
    mine = run_workerd(config, tmp_path, str(shop), 4, environment, declared)
    assert mine == original, differences(original, mine)
    celery = [w for w in mine if w.argv[1].endswith("/celery")]
    assert sorted(dict(w.env)["NODE_APP_INSTANCE"] for w in celery) == ["0", "1"]
    assert leftovers(str(shop)) == []
