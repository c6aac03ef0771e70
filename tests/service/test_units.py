"""The systemd units: the shipped ones and `workerd install-unit`'s, checked by
`systemd-analyze verify` with their Exec paths pointed at this checkout's workerd."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from workerd.unit import PACKAGED_WORKERD, shipped

ROOT = Path(__file__).resolve().parents[2]
WORKERD = str(Path(sys.executable).with_name("workerd"))
ANALYZE = shutil.which("systemd-analyze")

needs_analyze = pytest.mark.skipif(
    ANALYZE is None and os.environ.get("CI") != "true", reason="systemd-analyze is not installed (Debian: systemd)"
)


def verify(unit_dir: Path, *names: str) -> None:
    """systemd-analyze verify exits 0 even for an unknown key: any line about our
    units is a failure too."""
    assert ANALYZE is not None, "systemd-analyze is missing in CI"
    result = subprocess.run([ANALYZE, "verify", *(str(unit_dir / n) for n in names)], capture_output=True,
                            text=True, timeout=60)
    about_ours = [line for line in (result.stdout + result.stderr).splitlines()
                  if any(n.split("@")[0] in line for n in names)]
    assert result.returncode == 0 and not about_ours, result.stdout + result.stderr


def install_unit(*args: str, user: str | None = None) -> subprocess.CompletedProcess[str]:
    prefix = ["setpriv", f"--reuid={user}", "--regid=nogroup", "--clear-groups"] if user else []
    return subprocess.run([*prefix, WORKERD, "install-unit", *args], capture_output=True, text=True, timeout=60)


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "workers.toml"
    path.write_text('[daemon]\nshutdown_timeout = "100s"\n\n[programs.w]\ncommand = "sleep 1000"\n')
    return path


def test_the_shipped_units_are_the_renderer_s(tmp_path: Path) -> None:
    """systemd/ is generated: `python -m workerd.unit systemd` after a change."""
    for name, unit in shipped().items():
        assert (ROOT / "systemd" / name).read_text() == unit.render(), f"regenerate systemd/{name}"


@needs_analyze
def test_the_shipped_units_verify(tmp_path: Path) -> None:
    for name in shipped():
        text = (ROOT / "systemd" / name).read_text()
        assert f"ExecStart={PACKAGED_WORKERD} start" in text
        (tmp_path / name).write_text(text.replace(PACKAGED_WORKERD, WORKERD))
    verify(tmp_path, "workerd.service", "workerd@app.service")


def test_the_template_gives_each_instance_its_config_and_socket() -> None:
    text = shipped()["workerd@.service"].render()
    assert "ExecStart=/usr/bin/workerd start -c /etc/workerd/%i.toml" in text
    assert "Environment=WORKERD_SOCKET=/run/workerd/%i.sock" in text
    assert "RuntimeDirectoryPreserve=yes" in text


def test_the_stop_timeout_is_above_shutdown_timeout(config: Path) -> None:
    result = install_unit("-c", str(config), "--dry-run")
    assert result.returncode == 0, result.stderr
    timeout = re.search(r"^TimeoutStopSec=(\d+)s$", result.stdout, re.M)
    assert timeout is not None and int(timeout.group(1)) > 100, result.stdout


@needs_analyze
def test_install_unit_writes_a_unit_for_this_installation_that_verifies(config: Path, tmp_path: Path) -> None:
    units = tmp_path / "units"
    units.mkdir()
    result = install_unit("-c", str(config), "--unit-dir", str(units), "--name", "myapp")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[1:] == ["  systemctl daemon-reload", "  systemctl enable --now myapp"]
    unit = units / "myapp.service"
    text = unit.read_text()
    assert f"ExecStart={WORKERD} start -c {config}" in text
    assert "Environment=WORKERD_SOCKET=/run/workerd/myapp.sock" in text
    assert unit.stat().st_mode & 0o777 == 0o644
    verify(units, "myapp.service")


def test_install_unit_with_user_runs_the_daemon_as_that_user(config: Path) -> None:
    result = install_unit("-c", str(config), "--dry-run", "--user", "daemon")
    assert result.returncode == 0, result.stderr
    assert "\nUser=daemon\n" in result.stdout
    assert "Environment=WORKERD_SOCKET=/run/workerd/workerd.sock" in result.stdout  # not the user's default


def test_install_unit_refuses_to_overwrite_without_force(config: Path, tmp_path: Path) -> None:
    unit = tmp_path / "workerd.service"
    unit.write_text("mine\n")
    result = install_unit("-c", str(config), "--unit-dir", str(tmp_path))
    assert result.returncode == 1
    assert result.stderr.strip() == f"workerd: {unit} exists; --force replaces it"
    assert unit.read_text() == "mine\n"
    assert install_unit("-c", str(config), "--unit-dir", str(tmp_path), "--force").returncode == 0
    assert "Type=notify" in unit.read_text()


def test_install_unit_with_a_bad_config_writes_nothing(tmp_path: Path) -> None:
    bad = tmp_path / "workers.toml"
    bad.write_text('[programs.w]\ncommand = "sleep 1"\nprocesses = -1\n')
    result = install_unit("-c", str(bad), "--unit-dir", str(tmp_path))
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1 and "processes" in result.stderr, result.stderr
    assert not (tmp_path / "workerd.service").exists()


def test_install_unit_without_permission_is_one_line(config: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root to run the command as another user")
    shared = Path(tempfile.mkdtemp(prefix="wd-unit-"))  # pytest's tmp_path is root's alone
    try:
        shared.chmod(0o755)
        readable = shared / "workers.toml"
        readable.write_text(config.read_text())
        units = shared / "units"
        units.mkdir(mode=0o755)
        result = install_unit("-c", str(readable), "--unit-dir", str(units), user="nobody")
        assert result.returncode == 1, result.stderr
        assert result.stderr.strip() == f"workerd: cannot write {units}/workerd.service: Permission denied"
        assert list(units.iterdir()) == []
    finally:
        shutil.rmtree(shared)


def test_install_unit_names_are_checked(config: Path) -> None:
    result = install_unit("-c", str(config), "--dry-run", "--name", "my app")
    assert result.returncode == 2 and "not a unit name" in result.stderr
    result = install_unit("-c", str(config), "--dry-run", "--user", "no-such-user-here")
    assert result.returncode == 2 and "no such user" in result.stderr


def test_every_unit_sets_the_open_files_limit(config: Path) -> None:
    """systemd's default soft limit (1024) held 1,000 programs to 2 running: the daemon
    raises its soft limit to the hard one set here, and its workers get 1024 back."""
    for name, unit in shipped().items():
        assert "\nLimitNOFILE=1024:524288\n" in unit.render(), name
    result = install_unit("-c", str(config), "--dry-run")
    assert result.returncode == 0, result.stderr
    assert "\nLimitNOFILE=1024:524288\n" in result.stdout
