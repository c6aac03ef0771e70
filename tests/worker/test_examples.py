"""The worked examples in etc/examples/: the RQ worker runs for real against the local
Redis and tells a notify socket READY, then BUSY=1 and BUSY=0 around a job; the Celery
one (Celery is not a test dependency) at least compiles."""

from __future__ import annotations

import os
import py_compile
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

from tests.sources.services import delete_tagged, need_client, need_port

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "etc" / "examples"


def test_the_rq_example_says_ready_then_busy_and_idle_around_a_job(tmp_path):
    need_port("Redis", 6379)
    redis = need_client("redis", "redis")
    rq = need_client("rq", "redis")
    queue = f"wdtest-{uuid.uuid4().hex[:8]}"
    path = tmp_path / "notify"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(path))
        sock.settimeout(10)
        env = {**os.environ, "NOTIFY_SOCKET": str(path), "PYTHONPATH": str(ROOT)}
        proc = subprocess.Popen([sys.executable, str(EXAMPLES / "rq_worker.py"), queue], env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        connection = redis.Redis.from_url("redis://127.0.0.1:6379/0")
        try:
            messages = [sock.recv(4096)]
            assert messages == [b"READY=1"]
            rq.Queue(queue, connection=connection).enqueue(time.sleep, 0.1, result_ttl=0)
            deadline = time.monotonic() + 20
            while b"BUSY=0" not in messages and time.monotonic() < deadline:
                messages.append(sock.recv(4096))
            said = [m for m in messages if m.startswith((b"READY", b"BUSY"))]
            assert said == [b"READY=1", b"BUSY=1", b"BUSY=0"], messages
        finally:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
            for key in connection.scan_iter(f"rq:*{queue}*"):
                connection.delete(key)


def test_the_rq_example_imports_jobs_from_its_directory_as_rq_worker_does(tmp_path):
    """workerd runs the worker in the program's `directory`; `rq worker` puts that
    directory on sys.path (its --path, "." by default), so must the example: run as a
    script, only the script's own directory is on it, and every job failed to import."""
    need_port("Redis", 6379)
    redis = need_client("redis", "redis")
    rq = need_client("rq", "redis")
    tag = f"wdtest-{uuid.uuid4().hex[:8]}"
    module = tag.replace("-", "_")
    (tmp_path / f"{module}.py").write_text("def work(path):\n    open(path, 'w').write('done')\n")
    done = tmp_path / "done"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "NOTIFY_SOCKET")}
    proc = subprocess.Popen([sys.executable, str(EXAMPLES / "rq_worker.py"), tag, "redis://127.0.0.1:6379/13"],
                            cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    connection = redis.Redis.from_url("redis://127.0.0.1:6379/13")
    try:
        job = rq.Queue(tag, connection=connection).enqueue(f"{module}.work", str(done), job_id=tag, result_ttl=0)
        deadline = time.monotonic() + 20
        while not done.exists() and job.get_status(refresh=True) != "failed" and time.monotonic() < deadline:
            time.sleep(0.05)
        assert done.exists(), f"the job did not run: {job.get_status(refresh=True)} {job.exc_info}"
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)
        delete_tagged(connection, tag)


def test_the_celery_example_compiles(tmp_path):
    py_compile.compile(str(EXAMPLES / "celery_worker.py"), cfile=str(tmp_path / "c.pyc"), doraise=True)
