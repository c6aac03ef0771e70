#!/usr/bin/env python3
"""Build workerd's .deb with dpkg-deb: `python3 packaging/build_deb.py [-o DIR]`.

workerd and its dependencies live in a virtualenv of their own under /opt/workerd,
made with Debian's /usr/bin/python3 (so the package depends on that Python, never
on whatever built it); `workerd` and `workerctl` are linked into /usr/bin. The venv
is built in a staging folder and its scripts are then pointed at /opt/workerd, as
they would read had it been built in place. The units come from systemd/, the
example config (a conffile) and the logrotate snippet from packaging/, the
maintainer scripts from packaging/debian/.

Standard library only; needs dpkg-deb, Debian's python3 (with its venv module) and
a pip of 22.3 or later (`--python`) in the interpreter that runs this script.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGING = ROOT / "packaging"
#: The Python the package runs on: Debian's own.
TARGET_PYTHON = "/usr/bin/python3"
PREFIX = "/opt/workerd"
CONFFILES = ("/etc/workerd/workers.toml", "/etc/logrotate.d/workerd")


def run(*argv: str) -> str:
    return subprocess.run(argv, check=True, capture_output=True, text=True).stdout.strip()


def version() -> str:
    text = (ROOT / "workerd" / "__init__.py").read_text()
    match = re.search(r'^__version__ = "([^"]+)"', text, re.M)
    assert match, "workerd/__init__.py has no __version__"
    return match.group(1)


def make_venv(stage: Path) -> str:
    """The venv at stage/opt/workerd with workerd installed; returns its Python's X.Y."""
    venv = stage / PREFIX.lstrip("/")
    run(TARGET_PYTHON, "-m", "venv", "--without-pip", str(venv))
    # pip builds in the tree, and setuptools' build/ keeps modules that have since moved
    # or gone: they would be shipped.
    shutil.rmtree(ROOT / "build", ignore_errors=True)
    run(sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install", "--quiet",
        "--no-compile", "--no-warn-script-location", "-c", str(ROOT / "constraints.txt"), str(ROOT))
    # Point what names the staging folder at the final one: the scripts' #! lines, the
    # activate scripts, pyvenv.cfg's record of the command that made it.
    for path in [*(venv / "bin").iterdir(), venv / "pyvenv.cfg"]:
        if path.is_file() and not path.is_symlink():
            data = path.read_bytes()
            if str(venv).encode() in data:
                path.write_bytes(data.replace(str(venv).encode(), PREFIX.encode()))
    for cache in venv.rglob("__pycache__"):
        shutil.rmtree(cache)
    return run(str(venv / "bin" / "python"), "-c", "import sys; print('%d.%d' % sys.version_info[:2])")


def lay_out(stage: Path) -> None:
    """Everything outside the venv: commands, units, config, logrotate."""
    bin_dir = stage / "usr" / "bin"
    bin_dir.mkdir(parents=True)
    for command in ("workerd", "workerctl"):
        (bin_dir / command).symlink_to(f"{PREFIX}/bin/{command}")
    units = stage / "lib" / "systemd" / "system"
    units.mkdir(parents=True)
    for unit in ("workerd.service", "workerd@.service"):
        shutil.copy(ROOT / "systemd" / unit, units / unit)
    (stage / "etc" / "workerd").mkdir(parents=True)
    config = stage / "etc" / "workerd" / "workers.toml"
    shutil.copy(PACKAGING / "workers.toml", config)
    # It will hold source passwords and the console token: never world-readable, not
    # even between unpack and postinst (which gives it to the workerd group).
    config.chmod(0o640)
    (stage / "etc" / "logrotate.d").mkdir(parents=True)
    shutil.copy(PACKAGING / "logrotate", stage / "etc" / "logrotate.d" / "workerd")
    docs = stage / "usr" / "share" / "doc" / "workerd"
    docs.mkdir(parents=True)
    # The README's links lead into docs/ and to the changelog: ship them beside it.
    for name in ("README.md", "CHANGELOG.md"):
        shutil.copy(ROOT / name, docs / name)
    shutil.copytree(ROOT / "docs", docs / "docs")


def control(stage: Path, python: str) -> None:
    debian = stage / "DEBIAN"
    debian.mkdir()
    for script in ("postinst", "prerm", "postrm"):
        shutil.copy(PACKAGING / "debian" / script, debian / script)
        (debian / script).chmod(0o755)
    (debian / "conffiles").write_text("".join(f"{path}\n" for path in CONFFILES))
    size = sum(p.stat().st_size for p in stage.rglob("*") if p.is_file() and not p.is_symlink()) // 1024
    major, minor = python.split(".")
    (debian / "control").write_text(
        f"Package: workerd\n"
        f"Version: {version()}\n"
        f"Architecture: {run('dpkg', '--print-architecture')}\n"
        f"Maintainer: workerd developers <workerd@localhost>\n"
        f"Installed-Size: {size}\n"
        # The venv's compiled dependencies (uvloop) are built for this Python X.Y.
        f"Depends: python3 (>= {python}), python3 (<< {major}.{int(minor) + 1})\n"
        f"Recommends: logrotate\n"
        f"Section: admin\n"
        f"Priority: optional\n"
        f"Description: supervise and autoscale an application's background workers\n"
        f" workerd runs an application's background workers on one Linux box: it starts\n"
        f" them from a TOML file, restarts them with backoff, enforces resource limits,\n"
        f" stops them gracefully and scales each program from the depth of its queue.\n"
    )


def build(out_dir: Path) -> Path:
    with tempfile.TemporaryDirectory(prefix="workerd-deb-") as tmp:
        stage = Path(tmp) / "root"
        stage.mkdir()
        python = make_venv(stage)
        lay_out(stage)
        control(stage, python)
        out_dir.mkdir(parents=True, exist_ok=True)
        deb = out_dir / f"workerd_{version()}_{run('dpkg', '--print-architecture')}.deb"
        run("dpkg-deb", "--root-owner-group", "--build", str(stage), str(deb))
    return deb


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-o", "--out", default=str(ROOT / "dist"), help="where the .deb goes (default: dist/)")
    args = parser.parse_args()
    try:
        deb = build(Path(args.out))
    except subprocess.CalledProcessError as exc:
        print(f"build_deb: {' '.join(exc.cmd)} failed:\n{exc.stderr.strip()}", file=sys.stderr)
        return 1
    print(deb)
    return 0


if __name__ == "__main__":
    sys.exit(main())
