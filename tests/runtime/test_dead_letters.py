"""Dead letters: read on the autoscaler's interval, shown, never used for scaling."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from workerd.config.load import ConfigError, load


def make_db(path: Path, jobs: int, dead: int) -> None:
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE IF NOT EXISTS jobs (id INTEGER PRIMARY KEY)")
    db.execute("CREATE TABLE IF NOT EXISTS dead (id INTEGER PRIMARY KEY)")
    db.execute("DELETE FROM jobs")
    db.execute("DELETE FROM dead")
    db.executemany("INSERT INTO jobs DEFAULT VALUES", [()] * jobs)
    db.executemany("INSERT INTO dead DEFAULT VALUES", [()] * dead)
    db.commit()
    db.close()


def test_dead_letters_are_shown_and_do_not_scale(daemon, tmp_path):
    db = tmp_path / "q.db"
    make_db(db, jobs=0, dead=7)
    d = daemon(f"""
        [programs.w]
        command = "sleep 1000"
        start_seconds = "0s"
        [programs.w.autoscale]
        source = "sqlite"
        path = "{db}"
        query = "SELECT count(*) FROM jobs"
        dead_letter_query = "SELECT count(*) FROM dead"
        min = 0
        max = 3
        per_worker = 1
        interval = "0.2s"
    """)
    auto = d.wait_status(lambda s: s["programs"][0]["autoscale"]["dead_letters"] == 7 and s["programs"][0]["autoscale"],
                         10, "the dead letters to be read")
    assert auto["desired"] == 0 and auto["depth"] == 0
    assert d.processes("w", None) == []
    assert "7 dead letters" in d.ctl("status").stdout


def test_a_broken_dead_letter_query_is_shown_and_scaling_goes_on(daemon, tmp_path):
    db = tmp_path / "q.db"
    make_db(db, jobs=2, dead=0)
    d = daemon(f"""
        [programs.w]
        command = "sleep 1000"
        start_seconds = "0s"
        [programs.w.autoscale]
        source = "sqlite"
        path = "{db}"
        query = "SELECT count(*) FROM jobs"
        dead_letter_query = "SELECT count(*) FROM no_such_table"
        min = 0
        max = 3
        per_worker = 1
        interval = "0.2s"
    """)
    d.wait_running("w", 2)
    auto = d.status()["programs"][0]["autoscale"]
    assert auto["dead_letters"] is None
    assert "no_such_table" in auto["dead_letter_error"]
    assert auto["error"] is None


def test_dead_letter_keys_belong_to_their_source(tmp_path):
    path = tmp_path / "w.toml"
    path.write_text("""
[programs.w]
command = "sleep 1"
[programs.w.autoscale]
source = "sqlite"
path = "q.db"
query = "SELECT 1"
dead_letter_keys = ["dlq"]
""")
    with pytest.raises(ConfigError, match=r"programs\.w\.autoscale\.dead_letter_keys: not used by source 'sqlite'"):
        load(path)
