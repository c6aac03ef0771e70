"""PM2 ecosystem files (.js through node, .json, .yaml) -> workers.toml."""

from __future__ import annotations

import json
import os
import shutil
import signal
from pathlib import Path

import pytest

from tests.migrate.conftest import imported, write
from workerd.core.states import RestartPolicy
from workerd.migrate import MigrationError, convert

APPS = {
    "apps": [
        {
            "name": "mailer",
            "script": "./mailer.py",
            "args": "--queue email --name 'w one' level=\"a b\"",
            "cwd": "app",
            "instances": 3,
            "env": {"APP_ENV": "development", "PORT": 3000},
            "env_production": {"APP_ENV": "production"},
            "max_memory_restart": "300M",
            "kill_timeout": 5000,
            "min_uptime": "5s",
            "max_restarts": 4,
            "exp_backoff_restart_delay": 100,
            "cron_restart": "0 3 * * *",
            "out_file": "/var/log/mailer.out",
            "namespace": "shop",
        },
        {
            "script": "bin/report",
            "interpreter": "none",
            "autorestart": False,
            "instances": "max",
            "autostart": False,
        },
    ]
}


def test_an_app_s_keys_map_to_workerd_s(tmp_path: Path) -> None:
    (tmp_path / "app").mkdir()
    ecosystem = write(tmp_path / "ecosystem.json", json.dumps(APPS))
    result = imported(ecosystem, "pm2", env_name="production")
    mailer = result.config.programs["mailer"]
    python = "python" if shutil.which("python") else "python3"
    assert mailer.command == (python, f"{tmp_path}/app/mailer.py", "--queue", "email", "--name", "w one",
                              'level="a b"')
    assert mailer.directory == tmp_path / "app"
    assert mailer.processes == 3
    assert dict(mailer.environment) == {"PYTHONUNBUFFERED": "1", "APP_ENV": "production", "PORT": "3000",
                                        "NODE_APP_INSTANCE": "{instance}"}
    assert mailer.limits.memory == 300 * 1024**2
    assert (mailer.stop_signal, mailer.stop_timeout) == (signal.SIGINT, 5.0)
    assert (mailer.start_seconds, mailer.max_restarts) == (5.0, 4)
    assert (mailer.backoff_initial, mailer.backoff_factor, mailer.backoff_max) == (0.1, 1.5, 15.0)
    assert "unknown key kept as it was: namespace = \"shop\"" in result.comments_of("programs.mailer")
    assert 'apps[0] (mailer): cron_restart = "0 3 * * *": restarts on a schedule are not supported yet' \
        in result.not_imported()
    report = result.config.programs["report"]
    assert report.command == (f"{tmp_path}/bin/report",)
    assert report.restart is RestartPolicy.NEVER and report.autostart is False
    assert report.processes == len(os.sched_getaffinity(0))
    assert report.stop_timeout == 1.6


def test_a_script_with_spaces_runs_with_bash_c_as_pm2_does(tmp_path: Path) -> None:
    ecosystem = write(tmp_path / "ecosystem.json", json.dumps({"apps": [{"name": "q", "script": "rq worker high"}]}))
    assert imported(ecosystem, "pm2").config.programs["q"].command == ("bash", "-c", "rq worker high")


def test_a_node_app_with_instances_was_in_cluster_mode_and_that_is_said(tmp_path: Path) -> None:
    ecosystem = write(tmp_path / "ecosystem.json", json.dumps({"apps": [
        {"name": "api", "script": "api.js", "instances": 2},
        {"name": "forked", "script": "api.js", "instances": 2, "exec_mode": "fork"},
    ]}))
    result = imported(ecosystem, "pm2")
    assert "exec_mode cluster: PM2's node cluster shared one port" in result.comments_of("programs.api")
    assert "exec_mode cluster" not in result.comments_of("programs.forked")
    assert result.config.programs["api"].processes == result.config.programs["forked"].processes == 2


def test_yaml(tmp_path: Path) -> None:
    ecosystem = write(tmp_path / "ecosystem.yaml", """
        apps:
          - name: worker
            script: worker.sh
            instances: 2
    """)
    worker = imported(ecosystem, "pm2").config.programs["worker"]
    assert worker.command == ("bash", f"{tmp_path}/worker.sh")
    assert worker.processes == 2


@pytest.mark.skipif(shutil.which("node") is None and os.environ.get("CI") != "true",
                    reason="node is not installed (PM2's .js files are evaluated by node)")
def test_a_js_file_is_evaluated_by_node(tmp_path: Path) -> None:
    ecosystem = write(tmp_path / "ecosystem.config.js", """
        const instances = 1 + 1;
        module.exports = {
          apps: [{ name: "api", script: "./api.js", instances, env: { N: String(40 + 2) } }],
        };
    """)
    api = imported(ecosystem, "pm2").config.programs["api"]
    assert api.command == ("node", f"{tmp_path}/api.js")
    assert api.processes == 2 and api.environment["N"] == "42"


@pytest.mark.parametrize(("name", "text", "error"), [
    ("ecosystem.json", '{"apps": [\n  {"name" "a"}\n]}', "ecosystem.json:2: Expecting ':' delimiter"),
    ("ecosystem.yaml", "apps:\n  - name: a\n   script: x\n", "ecosystem.yaml:3: "),
    ("ecosystem.config.js", "module.exports = {\n  apps: [\n    {name: 'a' script: 'x'}\n  ]\n}\n",
     "ecosystem.config.js:3: SyntaxError"),
    ("ecosystem.json", '{"apps": [{"name": "a"}]}', "ecosystem.json: apps[0]: no script"),
    ("ecosystem.json", '{"apps": [{"script": "a", "instances": "many"}]}', "instances = 'many'"),
    ("ecosystem.json", '{"apps": [{"script": "a", "max_memory_restart": "1T"}]}', "max_memory_restart = '1T'"),
    ("ecosystem.json", '{"services": []}', "expected {apps: [{name, script, ...}]}"),
])
def test_a_malformed_file_is_one_line_with_its_line_number(tmp_path: Path, name: str, text: str,
                                                             error: str) -> None:
    if name.endswith(".js") and shutil.which("node") is None and os.environ.get("CI") != "true":
        pytest.skip("node is not installed")
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(MigrationError) as caught:
        convert(path, "pm2", {})
    assert "\n" not in str(caught.value)
    assert error in str(caught.value), caught.value
