"""Runs workerd on etc/demo.toml for a short while and shows what workerctl shows.

Started by `python3 tasks.py demo`. The daemon runs in the background; this script
prints `workerctl status` a few times, the logs of the crashing program, scales one
program up, stops the slow-to-stop worker (it takes ~3 s to finish its job), then
shuts the daemon down gracefully and exits.
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
    started = time.monotonic()
    subprocess.run([str(BIN / "workerctl"), "-c", str(CONFIG), *args], timeout=60)
    if args[0] in ("stop", "start", "restart"):
        print(f"(took {time.monotonic() - started:.1f}s)")


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
        ctl("scale", "steady", "3")
        ctl("stop", "slow-stop")
        ctl("logs", "slow-stop", "-n", "3")
        ctl("status")
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
