"""A PM2 `.js` ecosystem file is JavaScript: importing it runs it with node. `workerd
import` says so on stderr before it runs, `--no-js` refuses such a file, node gets a
time limit, and whatever it leaves behind (children in its session) is killed."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.migrate.conftest import write
from workerd.migrate import MigrationError, convert, pm2

pytestmark = pytest.mark.skipif(shutil.which("node") is None and os.environ.get("CI") != "true",
                                reason="node is not installed (PM2's .js files are evaluated by node)")

WORKERD = str(Path(sys.executable).with_name("workerd"))
APPS = 'module.exports = { apps: [{ name: "api", script: "./api.js" }] };\n'


def spawns(marker: Path, stdio: str) -> str:
    """JavaScript that starts `sleep 30` (its pid in MARKER) before exporting the apps."""
    return (f"const child = require('child_process').spawn('sleep', ['30'], {{ stdio: '{stdio}' }});\n"
            f"require('fs').writeFileSync({str(marker)!r}, String(child.pid));\n" + APPS)


def gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ", 1)[1].startswith("Z")
    except FileNotFoundError:
        return True


def wait_gone(pid: int, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if gone(pid):
            return True
        time.sleep(0.02)
    return gone(pid)


def kill(pid: int) -> None:
    try:
        os.kill(pid, 9)
    except ProcessLookupError:
        pass


def test_import_says_it_runs_javascript_before_it_does(tmp_path: Path) -> None:
    ecosystem = write(tmp_path / "ecosystem.config.js", APPS)
    result = subprocess.run([WORKERD, "import", str(ecosystem)], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    assert result.stderr.splitlines()[0] == (f"workerd: {ecosystem} is JavaScript: running it with node to read "
                                             f"its apps (at most 10 s; --no-js refuses)")


def test_no_js_refuses_a_js_file_in_one_line_without_running_it(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    ecosystem = write(tmp_path / "ecosystem.config.js", f"require('fs').writeFileSync({str(marker)!r}, 'x');\n"
                      + APPS)
    result = subprocess.run([WORKERD, "import", "--no-js", str(ecosystem)], capture_output=True, text=True,
                            timeout=30)
    assert (result.returncode, result.stderr) == (2, f"workerd: {ecosystem}: a .js ecosystem file is JavaScript "
                                                     "that only running it can read, and --no-js refuses that; "
                                                     "give its JSON form (`pm2 ecosystem`, JSON.stringify)\n")
    assert not marker.exists()
    json_file = write(tmp_path / "ecosystem.json", '{"apps": [{"name": "api", "script": "./api.js"}]}')
    assert subprocess.run([WORKERD, "import", "--no-js", str(json_file)], capture_output=True,
                          timeout=30).returncode == 0


def test_what_node_leaves_behind_is_killed(tmp_path: Path) -> None:
    marker = tmp_path / "child.pid"
    ecosystem = write(tmp_path / "ecosystem.config.js", spawns(marker, "ignore") + "child.unref();\n")
    try:
        draft = convert(ecosystem, "pm2", {})
        assert list(draft.programs) == ["api"]
        assert wait_gone(int(marker.read_text())), "node's child outlived the import"
    finally:
        if marker.exists():
            kill(int(marker.read_text()))


def test_node_that_does_not_finish_is_stopped_with_its_children(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """The child holds node's output pipe: killing node alone left the import waiting on it."""
    monkeypatch.setattr(pm2, "NODE_TIMEOUT", 1.0)
    marker = tmp_path / "child.pid"
    ecosystem = write(tmp_path / "ecosystem.config.js", spawns(marker, "inherit"))
    started = time.monotonic()
    try:
        with pytest.raises(MigrationError) as caught:
            convert(ecosystem, "pm2", {})
        assert time.monotonic() - started < 10, "the import waited for node's child"
        assert str(caught.value) == f"{ecosystem}: node did not finish evaluating it in 1 s"
        assert wait_gone(int(marker.read_text())), "node's child outlived the import"
    finally:
        if marker.exists():
            kill(int(marker.read_text()))
