"""The one job every framework test runs: write `<id> <pid> <time>` to
`$WDTEST_LEDGER/started`, sleep, then the same line to `finished`. A job lost mid-run
has a start and no finish; a job run twice has two starts."""

from __future__ import annotations

import os
import time
from pathlib import Path


def _append(name: str, job_id: str) -> None:
    line = f"{job_id} {os.getpid()} {time.time():.3f}\n"
    # O_APPEND: the lines of concurrent jobs never interleave.
    fd = os.open(Path(os.environ["WDTEST_LEDGER"]) / name, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)


def long_job(job_id: str, seconds: float) -> str:
    _append("started", job_id)
    time.sleep(seconds)
    _append("finished", job_id)
    return job_id
