"""Explicit `Policy` and `Backoff` values for the core's tests.

The core holds no defaults (the config schema does), so each test states the values it
runs with: start_seconds 1, stop_signal 15 (SIGTERM), stop_timeout 30, kill_mode "group"
(the stop signal to the whole group; tests/core/test_kill_mode.py covers "mixed"),
backoff 1s * 2**k capped at 5s with 0.1 jitter and a reset after a 600s run, limits
sampled every second, no notify readiness (start_timeout 60s) and no watchdog.
"""

from __future__ import annotations

from typing import Any

from workerd.core.backoff import Backoff
from workerd.core.lifecycle import Policy
from workerd.core.states import KillMode, RestartPolicy

BACKOFF = Backoff(initial=1.0, factor=2.0, maximum=5.0, jitter=0.1, reset=600.0)


def policy_with(**overrides: Any) -> Policy:
    values: dict[str, Any] = {
        "restart": RestartPolicy.ALWAYS,
        "start_seconds": 1.0,
        "stop_signal": 15,
        "stop_signal_name": "SIGTERM",
        "kill_mode": KillMode.GROUP,
        "stop_timeout": 30.0,
        "max_restarts": 0,
        "backoff": BACKOFF,
        "sample_interval": 1.0,
        "notify": False,
        "start_timeout": 60.0,
        "watchdog": 0.0,
    }
    return Policy(**(values | overrides))
