"""A reload cannot move the sockets and listeners the daemon opened at start: the keys
the schema marks `at_start` are reported as waiting for the next start, the rest applied."""

from __future__ import annotations

from tests.runtime.fakes import FakeClock, RecordingEffects, config
from workerd.config.schema import AT_START
from workerd.runtime.supervisor import Supervisor

ONE = '[programs.w]\ncommand = "sleep 1"\n'


def test_a_changed_start_only_key_is_reported_and_a_changed_other_key_is_not(tmp_path):
    assert AT_START == ("socket", "socket_mode", "socket_group", "metrics", "console")
    s = Supervisor(config(tmp_path, ONE), FakeClock(), RecordingEffects())
    s.start()
    new = config(tmp_path, 'shutdown_timeout = "3s"\nmetrics = "127.0.0.1:9999"\n' + ONE, "new.toml")
    assert s.reload(new) == ["daemon.metrics: changed; takes effect at the next start"]
