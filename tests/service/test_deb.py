"""The .deb: built by packaging/build_deb.py, read back, installed on this machine
with dpkg, used (`workerd check`, a daemon that answers `workerctl status`), purged."""

from __future__ import annotations

import grp
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
IN_CI = os.environ.get("CI") == "true"


def missing_tools() -> str | None:
    for tool in ("dpkg-deb", "dpkg"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (not a Debian system)"
    if not Path("/usr/bin/python3").exists():
        return "Debian's /usr/bin/python3 is not installed"
    return None


pytestmark = pytest.mark.skipif(missing_tools() is not None and not IN_CI, reason=str(missing_tools()))


def sh(*argv: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def deb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("deb")
    result = sh(sys.executable, str(ROOT / "packaging" / "build_deb.py"), "-o", str(out), timeout=600)
    assert result.returncode == 0, result.stderr
    return Path(result.stdout.strip())


def test_the_control_data(deb: Path) -> None:
    info = sh("dpkg-deb", "-f", str(deb)).stdout
    fields = dict(line.split(": ", 1) for line in info.splitlines() if ": " in line and not line.startswith(" "))
    assert fields["Package"] == "workerd"
    assert fields["Architecture"] == sh("dpkg", "--print-architecture").stdout.strip()
    assert fields["Depends"].startswith("python3 (>= 3.")
    control = Path(tempfile.mkdtemp(prefix="wd-control-"))
    try:
        assert sh("dpkg-deb", "-e", str(deb), str(control)).returncode == 0
        assert (control / "conffiles").read_text().split() == ["/etc/workerd/workers.toml", "/etc/logrotate.d/workerd"]
        for script in ("postinst", "prerm", "postrm"):
            assert os.access(control / script, os.X_OK), script
    finally:
        shutil.rmtree(control)


def test_the_file_list_and_no_trace_of_the_build(deb: Path) -> None:
    listing = sh("dpkg-deb", "-c", str(deb)).stdout
    names = {line.split()[5] for line in listing.splitlines()}
    for path in ("./usr/bin/workerd", "./usr/bin/workerctl", "./lib/systemd/system/workerd.service",
                 "./lib/systemd/system/workerd@.service", "./etc/workerd/workers.toml",
                 "./etc/logrotate.d/workerd", "./opt/workerd/bin/workerd", "./opt/workerd/pyvenv.cfg"):
        assert path in names, path
    assert "/usr/bin/workerd -> /opt/workerd/bin/workerd" in listing
    (config,) = [line for line in listing.splitlines() if line.endswith(" ./etc/workerd/workers.toml")]
    assert config.startswith("-rw-r----- root/root "), "the config holds secrets: never world-readable"
    assert not any("__pycache__" in name for name in names)
    tree = Path(tempfile.mkdtemp(prefix="wd-tree-"))
    try:
        assert sh("dpkg-deb", "-x", str(deb), str(tree)).returncode == 0
        assert (tree / "opt/workerd/bin/workerd").read_text().startswith("#!/opt/workerd/bin/python\n")
        assert "workerd-deb-" not in (tree / "opt/workerd/pyvenv.cfg").read_text()
        shipped = (ROOT / "systemd/workerd.service").read_text()
        assert (tree / "lib/systemd/system/workerd.service").read_text() == shipped
        doc = tree / "usr/share/doc/workerd"
        for target in re.findall(r"\]\(((?:docs/|CHANGELOG)[^)#]*)", (doc / "README.md").read_text()):
            assert (doc / target).is_file(), f"the README's link {target} leads nowhere in the package"
    finally:
        shutil.rmtree(tree)


def test_install_use_and_purge(deb: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("installing a package needs root")
    if sh("dpkg-query", "-W", "-f=${Status}", "workerd").stdout.startswith("install ok"):
        pytest.fail("a workerd package is already installed on this machine: not touching it", pytrace=False)
    installed = sh("dpkg", "-i", str(deb), timeout=300)
    try:
        assert installed.returncode == 0, installed.stdout + installed.stderr
        check = sh("/usr/bin/workerd", "check", "-c", "/etc/workerd/workers.toml")
        assert check.returncode == 0, check.stderr
        assert "ok, 0 program(s)" in check.stdout
        assert sh("getent", "passwd", "workerd").returncode == 0
        log_dir = Path("/var/log/workerd")
        assert log_dir.is_dir() and log_dir.stat().st_mode & 0o777 == 0o750
        conffiles = sh("dpkg-query", "-W", "-f=${Conffiles}", "workerd").stdout
        assert "/etc/workerd/workers.toml" in conffiles
        config = os.stat("/etc/workerd/workers.toml")
        assert (config.st_mode & 0o777, config.st_uid) == (0o640, 0), "source passwords and the console token"
        assert config.st_gid == grp.getgrnam("workerd").gr_gid
        if shutil.which("logrotate"):
            rotate = sh("logrotate", "--debug", "/etc/logrotate.d/workerd")
            assert rotate.returncode == 0 and "error" not in rotate.stderr.lower(), rotate.stderr
        run_installed_daemon()
    finally:
        purged = sh("dpkg", "--purge", "workerd", timeout=300)
    assert purged.returncode == 0, purged.stdout + purged.stderr
    for path in ("/opt/workerd", "/usr/bin/workerd", "/usr/bin/workerctl", "/etc/workerd", "/var/log/workerd",
                 "/lib/systemd/system/workerd.service"):
        assert not os.path.lexists(path), f"{path} is left after the purge"


def run_installed_daemon() -> None:
    """The packaged venv really runs: a daemon with one worker, asked for its status."""
    work = Path(tempfile.mkdtemp(prefix="wd-deb-"))
    config = work / "w.toml"
    config.write_text(f'[daemon]\nsocket = "{work}/w.sock"\n\n[programs.sleeper]\ncommand = "sleep 1000"\n'
                      f'start_seconds = "0s"\n')
    daemon = subprocess.Popen(["/usr/bin/workerd", "start", "-c", str(config)], stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, start_new_session=True)
    try:
        deadline = time.monotonic() + 20
        status = None
        while time.monotonic() < deadline:
            status = sh("/usr/bin/workerctl", "-s", str(work / "w.sock"), "status", timeout=10)
            if status.returncode == 0 and "running" in status.stdout:
                break
            time.sleep(0.1)
        assert status is not None and status.returncode == 0 and "sleeper" in status.stdout, status
    finally:
        daemon.terminate()
        try:
            daemon.wait(20)
        except subprocess.TimeoutExpired:
            daemon.kill()
            daemon.wait(5)
        shutil.rmtree(work)
