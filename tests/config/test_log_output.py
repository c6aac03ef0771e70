"""[daemon] log_dir and log_max_bytes as imported configs write them: 0 is "never
rotate" (supervisord's stdout_logfile_maxbytes = 0), and a log_dir among devices
(/dev, /proc: the Docker-style `stdout_logfile = /dev/stdout`) is one line."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from workerd.config.model import Config

EMAIL = '[programs.email]\ncommand = "sleep 1"\n'


def test_log_max_bytes_0_means_no_rotation(loads: Callable[[str], Config]) -> None:
    assert loads(f'[daemon]\nlog_dir = "logs"\nlog_max_bytes = 0\n{EMAIL}').daemon.log_max_bytes == 0


@pytest.mark.parametrize("log_dir", ["/dev", "/dev/fd", "/proc/self/fd", "/dev/../dev/shm"])
def test_a_log_dir_among_devices_is_one_line(error: Callable[[str], str], log_dir: str) -> None:
    assert error(f'[daemon]\nlog_dir = "{log_dir}"\n{EMAIL}') == (
        f'workers.toml: daemon.log_dir: "{log_dir}" is under /dev or /proc: workerd would write '
        "<log_dir>/<program>.log files there; leave log_dir unset for output on the daemon's stderr")
