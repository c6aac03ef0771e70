"""The Grafana dashboard and the Prometheus alerts in packaging/: every metric they name
exists on a live daemon's /metrics, the rules parse (promtool where it is, a structure
check always) and fire as tests/service/alerts_test.yml says."""

from __future__ import annotations

import json
import os
import re
import shutil
import sqlite3
import subprocess
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.helpers import free_port

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "packaging" / "grafana-dashboard.json"
ALERTS = ROOT / "packaging" / "prometheus-alerts.yml"
#: Metric names: ours and the daemon's process metrics; `up` is Prometheus's own.
METRIC = re.compile(r"\b((?:workerd|process)_[a-z_]+)\b")


def dashboard_exprs() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    exprs += [v["query"] for v in dashboard["templating"]["list"] if v["type"] == "query"]
    return exprs


def alert_rules() -> list[dict[str, Any]]:
    return [rule for group in yaml.safe_load(ALERTS.read_text())["groups"] for rule in group["rules"]]


def exposed(text: str) -> set[str]:
    """Every sample name a scrape can return, from its # TYPE lines."""
    names = set()
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ", 3)
            names.add(name)
            if kind == "counter":
                names.add(name + "_total")
            if kind == "histogram":
                names.update(name + s for s in ("_bucket", "_sum", "_count"))
    return names


def test_every_metric_named_exists_on_a_live_daemon(daemon, tmp_path: Path) -> None:
    db = tmp_path / "jobs.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE jobs (id INTEGER PRIMARY KEY)")
    port = free_port()
    d = daemon(f"""
        [programs.plain]
        command = "sleep 1000"
        start_seconds = "0s"

        [programs.limited]
        command = "sleep 1000"
        start_seconds = "0s"
        [programs.limited.limits]
        memory = "512MiB"

        [programs.scaled]
        command = "sleep 1000"
        start_seconds = "0s"
        [programs.scaled.autoscale]
        source = "sqlite"
        path = "{db}"
        query = "SELECT count(*) FROM jobs"
        min = 1
        max = 2
        interval = "0.2s"
    """, metrics=f"127.0.0.1:{port}", reserve_memory=0)
    d.wait_running("scaled", 1)
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as reply:
        names = exposed(reply.read().decode())
    named = {m for expr in dashboard_exprs() + [r["expr"] for r in alert_rules()] for m in METRIC.findall(expr)}
    assert len(named) > 15, named  # the regex finds what the files use
    missing = sorted(m for m in named if m not in names)
    assert not missing, f"named in packaging/ but not on /metrics: {missing}"


def test_the_dashboard_is_well_formed() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    panels = dashboard["panels"]
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids))
    graphs = [p for p in panels if p["type"] != "row"]
    assert graphs
    for panel in graphs:
        assert panel["title"] and panel["description"], panel["id"]
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
        assert panel["targets"] and all(t["expr"] for t in panel["targets"]), panel["title"]
    variables = {v["name"] for v in dashboard["templating"]["list"]}
    assert variables == {"datasource", "job", "program"}


def test_the_rules_have_what_an_alert_needs() -> None:
    rules = alert_rules()
    assert len(rules) >= 7
    for rule in rules:
        assert set(rule) >= {"alert", "expr", "for", "labels", "annotations"}, rule.get("alert")
        assert rule["labels"]["severity"] in ("warning", "critical"), rule["alert"]
        assert rule["annotations"]["summary"] and rule["annotations"]["description"], rule["alert"]
        assert re.fullmatch(r"\d+[smhd]", rule["for"]), rule["alert"]
        assert rule["expr"].strip(), rule["alert"]


def promtool() -> str:
    found = os.environ.get("PROMTOOL") or shutil.which("promtool")
    if found is None or not os.access(found, os.X_OK):
        message = "promtool is not installed (Debian's prometheus package has it; .ci/run unpacks it)"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{message}; CI=true needs it", pytrace=False)
        pytest.skip(message)
    return found


def test_promtool_checks_the_rules_and_their_unit_tests() -> None:
    tool = promtool()
    checked = subprocess.run([tool, "check", "rules", str(ALERTS)], capture_output=True, text=True, timeout=60)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    tested = subprocess.run([tool, "test", "rules", str(Path(__file__).with_name("alerts_test.yml"))],
                            capture_output=True, text=True, timeout=60)
    assert tested.returncode == 0, tested.stdout + tested.stderr
