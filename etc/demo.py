"""Runs workerd on etc/demo.toml for a short while and shows what workerctl shows.

Started by `python3 tasks.py demo`. The daemon runs in the background; this script
prints `workerctl status` a few times, the logs of the crashing program, scales one
program up, stops the slow-to-stop worker (it takes ~3 s to finish its job), enqueues
a burst of 60 jobs into the SQLite queue and shows the autoscaled program rise and
fall, then shuts the daemon down gracefully and exits.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
CONFIG = ROOT / "etc" / "demo.toml"
JOBS_DB = ROOT / "run" / "demo-jobs.db"


def ctl(*args: str) -> None:
    print(f"\n$ workerctl -c etc/demo.toml {' '.join(args)}", flush=True)
    started = time.monotonic()
    subprocess.run([str(BIN / "workerctl"), "-c", str(CONFIG), *args], timeout=60)
    if args[0] in ("stop", "start", "restart"):
        print(f"(took {time.monotonic() - started:.1f}s)")


def enqueue(count: int) -> None:
    db = sqlite3.connect(JOBS_DB)
    db.executemany("INSERT INTO jobs (created) VALUES (?)", [(time.time(),)] * count)
    db.commit()
    db.close()


def queue_workers() -> tuple[int, int]:
    """(running, queued) for the autoscaled program, from `workerctl status --json`."""
    out = subprocess.run([str(BIN / "workerctl"), "-c", str(CONFIG), "status", "--json", "queue-worker"],
                         capture_output=True, text=True, timeout=30).stdout
    program = json.loads(out)["programs"][0]
    return program["running"], program["autoscale"]["depth"] or 0


def main() -> int:
    (ROOT / "run").mkdir(exist_ok=True)
    db = sqlite3.connect(JOBS_DB)
    db.execute("CREATE TABLE IF NOT EXISTS jobs (id INTEGER PRIMARY KEY, created REAL)")
    db.execute("DELETE FROM jobs")
    db.commit()
    db.close()
    print("$ workerd start -c etc/demo.toml   (daemon log: run/demo-daemon.log)", flush=True)
    with open(ROOT / "run" / "demo-daemon.log", "wb") as daemon_log:
        daemon = subprocess.Popen([str(BIN / "workerd"), "start", "-c", str(CONFIG)], stderr=daemon_log)
    try:
        for pause in (0.5, 2.5, 4.0):
            time.sleep(pause)
            if daemon.poll() is not None:
                print("the daemon exited early; see run/demo-daemon.log", file=sys.stderr)
                return 1
            ctl("status")
        ctl("logs", "crasher", "-n", "4")
        ctl("scale", "steady", "3")
        ctl("stop", "slow-stop")
        ctl("logs", "slow-stop", "-n", "3")
        print("\n# a producer enqueues a burst of 60 jobs into the SQLite queue", flush=True)
        enqueue(60)
        time.sleep(2.5)
        ctl("status", "queue-worker")
        deadline = time.monotonic() + 40
        while queue_workers() != (0, 0) and time.monotonic() < deadline:
            time.sleep(1)
        print("\n# the queue drained; 3 s later (scale_down_delay) the workers were stopped", flush=True)
        ctl("status", "queue-worker")
        ctl("logs", "queue-worker", "-n", "4")
        print("\n# the scaling decisions in the daemon's log:")
        for line in (ROOT / "run" / "demo-daemon.log").read_text().splitlines():
            if ": scale " in line:
                print(line)
        ctl("shutdown")
        daemon.wait(timeout=30)
        print(f"\ndaemon exited with {daemon.returncode}; its log is in run/demo-daemon.log")
        return daemon.returncode
    finally:
        if daemon.poll() is None:
            daemon.kill()
            daemon.wait()


if __name__ == "__main__":
    sys.exit(main())
