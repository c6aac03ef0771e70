from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from workerd.config.kinds import DURATION, INT
from workerd.config.model import DaemonConfig, LimitsConfig, ProgramConfig, Readiness
from workerd.config.reference import render_reference
from workerd.config.schema import AUTOSCALE, DAEMON, LIMITS, PROGRAM
from workerd.config.tables import (
    Invalid,
    Key,
    Setting,
    Table,
    complete,
    overlay,
    parse_table,
)
from workerd.control.protocol import default_socket as default_socket_path
from workerd.core.states import RestartPolicy

REPO = Path(__file__).resolve().parents[2]


def field_names(model: type) -> set[str]:
    return {f.name for f in dataclasses.fields(model)}


def test_every_daemon_key_is_a_model_field() -> None:
    keys = {f.name for f in DAEMON.fields}
    assert field_names(DaemonConfig) - keys == {"socket_gid"}
    assert keys <= field_names(DaemonConfig)


def test_every_program_key_is_a_model_field() -> None:
    keys = {f.name for f in PROGRAM.fields if isinstance(f, Key)}
    tables = {f.name for f in PROGRAM.fields if isinstance(f, Table)}
    assert tables == {"limits", "autoscale"}
    assert field_names(ProgramConfig) - keys == {"name", "uid", "gid", "limits", "autoscale"}
    assert keys <= field_names(ProgramConfig)


def test_every_limits_key_is_a_model_field() -> None:
    assert {f.name for f in LIMITS.fields} == field_names(LimitsConfig)


def test_model_defaults_are_the_spec_defaults() -> None:
    program = ProgramConfig(name="x", command=("true",))
    assert (program.processes, program.nice, program.restart) == (1, 0, RestartPolicy.ALWAYS)
    assert (program.ready, program.start_timeout) == (Readiness.UPTIME, 60.0)
    assert (program.watchdog, program.rolling, program.stop_signal) == (0.0, False, 15)
    assert (program.backoff_max, program.backoff_reset) == (300.0, 600.0)
    daemon = DaemonConfig(socket=Path("/s"))
    assert (daemon.socket_mode, daemon.reserve_memory, daemon.max_load) == (0o600, 256 << 20, 0.0)
    assert (daemon.log_max_bytes, daemon.shutdown_timeout, daemon.metrics) == (50 << 20, 60.0, None)


def test_reference_is_committed() -> None:
    """CI regenerates docs/config-reference.md with `python -m workerd.config.reference`."""
    committed = (REPO / "docs" / "config-reference.md").read_text()
    assert render_reference() == committed


def test_each_source_key_documents_the_sources_it_is_declared_for() -> None:
    """A doc's "sqlite, postgres: ..." prefixes name exactly the sources in the key's
    optional_for and required_for, so the reference cannot drift from what is checked."""
    specific = [k for k in AUTOSCALE.fields if isinstance(k, Key) and (k.optional_for or k.required_for)]
    assert len(specific) == 20
    for key in specific:
        prefixes = re.findall(r"(?:^|; )((?:\w+, )*\w+)(?: with \w+)?:", key.doc)
        named = {name for prefix in prefixes for name in prefix.split(", ")}
        assert named == {source.value for source in (*key.optional_for, *key.required_for)}, key.name


def test_reference_lists_every_key() -> None:
    reference = render_reference()
    for table in (DAEMON, PROGRAM):
        for spec in table.fields:
            assert f"| `{spec.name}` |" in reference


# A sub-table as limits and autoscale will declare theirs: keys, a cross-key check.
SCALE = Table(
    "scale",
    "A nested table.",
    (Key("min", INT, 1, "Low."), Key("max", INT, 4, "High."), Key("interval", DURATION, 2.0, "")),
    checks=(lambda v: None if v["max"] >= v["min"] else ("max", f"must be >= min ({v['min']})"),),
)
OUTER = Table("outer", "", (Key("name", INT, 0, ""), SCALE))


def test_nested_table_parses_its_own_keys() -> None:
    settings = parse_table(OUTER, {"scale": {"max": 8, "interval": "5s"}}, "p")
    scale = settings["scale"]
    assert scale.path == "p.scale"
    assert scale.value == {
        "max": Setting(8, "p.scale.max"),
        "interval": Setting(5.0, "p.scale.interval"),
    }
    assert complete(SCALE, scale.value, "p.scale")["min"] == Setting(1, "p.scale.min")


def test_nested_table_unknown_key_and_cross_check() -> None:
    with pytest.raises(Invalid) as caught:
        parse_table(OUTER, {"scale": {"mx": 8}}, "p")
    assert str(caught.value) == "p.scale.mx: unknown key (did you mean 'max'?)"
    with pytest.raises(Invalid) as caught:
        complete(SCALE, parse_table(SCALE, {"min": 3, "max": 2}, "p.scale"), "p.scale")
    assert str(caught.value) == "p.scale.max: must be >= min (3)"


def test_overlay_merges_tables_one_level_down() -> None:
    base = {"scale": Setting({"min": Setting(2, "d.min")}, "d"), "name": Setting(1, "d.name")}
    top = {"scale": Setting({"max": Setting(9, "p.max")}, "p"), "name": Setting(2, "p.name")}
    merged = overlay(base, top)
    assert merged["name"] == Setting(2, "p.name")
    assert merged["scale"].value == {"min": Setting(2, "d.min"), "max": Setting(9, "p.max")}


@pytest.fixture(autouse=True)
def no_socket_in_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WORKERD_SOCKET", raising=False)


def test_default_socket_is_workerd_socket_when_set(monkeypatch: pytest.MonkeyPatch) -> None:
    """How systemd's workerd@APP units give each instance its own socket."""
    monkeypatch.setattr("os.geteuid", lambda: 0)
    monkeypatch.setenv("WORKERD_SOCKET", "/run/workerd/app.sock")
    assert default_socket_path() == "/run/workerd/app.sock"


def test_default_socket_for_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("os.geteuid", lambda: 0)
    monkeypatch.setenv("XDG_RUNTIME_DIR", "/run/user/0")
    assert default_socket_path() == "/run/workerd/workerd.sock"


def test_default_socket_for_a_user(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("os.geteuid", lambda: 1000)
    monkeypatch.setenv("XDG_RUNTIME_DIR", "/run/user/1000")
    assert default_socket_path() == "/run/user/1000/workerd.sock"


@pytest.mark.parametrize("runtime_dir", [None, "", "relative/dir"])
def test_default_socket_without_xdg_runtime_dir(
    monkeypatch: pytest.MonkeyPatch, runtime_dir: str | None
) -> None:
    monkeypatch.setattr("os.geteuid", lambda: 1000)
    if runtime_dir is None:
        monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)
    else:
        monkeypatch.setenv("XDG_RUNTIME_DIR", runtime_dir)
    assert default_socket_path() == "/tmp/workerd-1000/workerd.sock"
