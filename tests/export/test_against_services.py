"""What the export says about real servers: the PostgreSQL query KEDA will run gives
the depth workerd reads, and `--probe` finds what Redis keys are."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import hypothesis.strategies as st
import yaml
from hypothesis import given

from tests.sources.services import POSTGRES_URL, missing
from workerd.export.yaml import Document, dump

WORKERD = str(Path(sys.executable).with_name("workerd"))
REDIS_URL = "redis://127.0.0.1:6379/0"


def export_stream(tmp_path: Path, config: str, *options: str) -> tuple[list[dict], str]:
    path = tmp_path / "workers.toml"
    path.write_text(textwrap.dedent(config))
    result = subprocess.run([WORKERD, "export", "kubernetes", "-c", str(path), "--image", "app:1", *options],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return [d for d in yaml.safe_load_all(result.stdout) if d], result.stderr


def test_the_postgres_query_keda_runs_returns_workerd_s_depth(tmp_path: Path) -> None:
    import psycopg

    table = f"wd_export_{uuid.uuid4().hex[:8]}"
    try:
        conn = psycopg.connect(POSTGRES_URL, autocommit=True, connect_timeout=3)
    except psycopg.Error as exc:
        missing(f"PostgreSQL at {POSTGRES_URL}", str(exc))
    with conn:
        conn.execute(f"CREATE TABLE {table} (id serial, created_at timestamptz DEFAULT now() - interval '1 minute')")
        try:
            conn.execute(f"INSERT INTO {table} SELECT FROM generate_series(1, 7)")
            documents, _ = export_stream(tmp_path, f"""
                [programs.pg]
                command = "python -m app.pg"
                [programs.pg.autoscale]
                source = "postgres"
                url = "{POSTGRES_URL}"
                query = "SELECT count(*), extract(epoch FROM now() - min(created_at)) FROM {table};"
            """)
            (scaled,) = [d for d in documents if d["kind"] == "ScaledObject"]
            query = scaled["spec"]["triggers"][0]["metadata"]["query"]
            assert conn.execute(query).fetchall() == [(7,)]
        finally:
            conn.execute(f"DROP TABLE {table}")


def test_probe_finds_lists_streams_with_their_groups_and_sorted_sets(tmp_path: Path) -> None:
    import redis

    client = redis.Redis.from_url(REDIS_URL, socket_timeout=2, socket_connect_timeout=2)
    try:
        client.ping()
    except redis.RedisError as exc:
        missing(f"Redis at {REDIS_URL}", str(exc))
    prefix = f"wdtest-{uuid.uuid4().hex[:8]}"
    jobs, events, delayed = f"{prefix}:jobs", f"{prefix}:events", f"{prefix}:delayed"
    try:
        client.rpush(jobs, "a")
        client.xadd(events, {"k": "v"})
        client.xgroup_create(events, "mailers", id="0")
        client.xgroup_create(events, "audit", id="0")
        client.zadd(delayed, {"x": 1})
        config = f"""
            [programs.w]
            command = "python -m app.w"
            [programs.w.autoscale]
            source = "redis"
            url = "{REDIS_URL}"
            keys = ["{jobs}", "{events}", "{delayed}"]
        """
        documents, stderr = export_stream(tmp_path, config, "--probe")
        (scaled,) = [d for d in documents if d["kind"] == "ScaledObject"]
        triggers = [(t["type"], t["metadata"].get("listName") or t["metadata"].get("consumerGroup"))
                    for t in scaled["spec"]["triggers"]]
        assert sorted(triggers) == [("redis", jobs), ("redis-streams", "audit"), ("redis-streams", "mailers")]
        assert "a zset" in stderr, stderr
        # without --probe every key is taken for a list, and the export says so
        documents, stderr = export_stream(tmp_path, config)
        (scaled,) = [d for d in documents if d["kind"] == "ScaledObject"]
        assert [t["type"] for t in scaled["spec"]["triggers"]] == ["redis"] * 3
        assert "--probe asks Redis" in stderr
    finally:
        client.delete(jobs, events, delayed)
        client.close()


#: Any text a manifest can hold (UTF-8 has no lone surrogates).
_text = st.text(st.characters(blacklist_categories=("Cs",)))
_leaf = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | _text
_tree = st.recursive(_leaf, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_text, inner, max_size=4),
                     max_leaves=20)


@given(st.dictionaries(_text, _tree, max_size=5))
def test_any_manifest_reads_back_as_written(body: dict) -> None:
    assert yaml.safe_load(dump([Document(body, ["a comment"])])) == body
