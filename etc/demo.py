"""Runs workerd on etc/demo.toml for a short while and shows what workerctl shows.

Started by `python3 tasks.py demo`. The daemon runs in the background; this script
prints `workerctl status` a few times, the logs of one program, then shuts the
daemon down gracefully (the slow-stop worker takes ~3 s to finish) and exits.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
CONFIG = ROOT / "etc" / "demo.toml"


def ctl(*args: str) -> None:
    print(f"\n$ workerctl -c etc/demo.toml {' '.join(args)}", flush=True)
    subprocess.run([str(BIN / "workerctl"), "-c", str(CONFIG), *args], timeout=60)


def main() -> int:
    (ROOT / "run").mkdir(exist_ok=True)
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
