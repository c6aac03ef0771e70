#!/usr/bin/env python3
"""workerd vs supervisord 4.3.0, side by side, in one run.

    python3 bench/run.py [--quick] [--only NAME[,NAME...]] [--daemon workerd|supervisord]

Creates/reuses bench/.venv (supervisor==4.3.0, psutil, redis; workerd installed from this tree),
re-executes itself inside it, runs every metric against both daemons, prints a
Markdown table and writes bench/results/latest.json. See bench/README.md.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
VENV = BENCH / ".venv"
VENV_PY = VENV / "bin" / "python"
# redis: the autoscale metrics push jobs with it, and workerd's redis source imports it
# (workerd itself is installed without its extras)
#: Installed with the test suite's lock (constraints.txt), so both measure the same versions.
REQUIREMENTS = ["-c", str(ROOT / "constraints.txt"), "supervisor==4.3.0", "psutil", "redis>=5.0"]
KINDS = ["workerd", "supervisord"]


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- venv bootstrap
def _stamp() -> str:
    h = hashlib.sha256(" ".join(REQUIREMENTS).encode())
    h.update((ROOT / "pyproject.toml").read_bytes())
    h.update((ROOT / "constraints.txt").read_bytes())
    return h.hexdigest()


def ensure_venv() -> None:
    """bench/.venv with supervisor 4.3.0, psutil and redis (re-done when they or pyproject.toml
    change), and workerd installed from this tree on every run, as a user installs it
    (`pip install .`, not editable: an editable install puts an import hook in front of
    every Python start in the venv, which would slow both daemons' CLIs)."""
    stamp = VENV / ".bench-stamp"
    if not VENV_PY.exists():
        log(f"creating {VENV}")
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True, timeout=300)
    need = [VENV / "bin" / n for n in ("supervisord", "supervisorctl")]
    steps = [["--no-deps", "--force-reinstall", str(ROOT)]]
    if not (stamp.exists() and stamp.read_text() == _stamp() and all(p.exists() for p in need)):
        steps = [REQUIREMENTS, ["-c", str(ROOT / "constraints.txt"), "--force-reinstall", str(ROOT)]]
    # pip builds in the tree, and setuptools' build/ keeps modules that have since moved
    # or gone: the bench would run with them installed.
    shutil.rmtree(ROOT / "build", ignore_errors=True)
    for args in steps:
        log(f"pip install {' '.join(args)}")
        r = subprocess.run([str(VENV_PY), "-m", "pip", "install", "-q", *args],
                           capture_output=True, text=True, check=False, timeout=900)
        if r.returncode != 0:
            sys.exit(f"pip install {' '.join(args)} failed:\n{r.stdout[-3000:]}{r.stderr[-3000:]}")
    stamp.write_text(_stamp())


def in_venv() -> bool:
    return Path(sys.prefix).resolve() == VENV.resolve()


# --------------------------------------------------------------------------- machine
def machine_info() -> dict:
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = 0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem = int(line.split()[1]) * 1024
    except OSError:
        pass
    u = platform.uname()
    return {"nproc": os.cpu_count(), "cpu": cpu, "mem_gib": round(mem / 2**30, 1),
            "kernel": f"{u.system} {u.release} {u.machine}", "python": platform.python_version(),
            "loadavg_at_start": os.getloadavg()}


def version_of(argv: list[str]) -> str | None:
    try:
        r = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=15,
                           stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired):
        return None
    out = (r.stdout or r.stderr).strip()
    if r.returncode != 0 or not out:
        return None
    last = out.splitlines()[-1]
    name = Path(argv[0]).name
    return last[len(name):].strip() if last.startswith(name + " ") else last


def git_rev() -> str:
    try:
        r = subprocess.run(["git", "-C", str(ROOT), "describe", "--always", "--dirty"],
                           capture_output=True, text=True, check=False, timeout=10)
        return r.stdout.strip() or "no commits"
    except (OSError, subprocess.TimeoutExpired):
        return "?"


# --------------------------------------------------------------------------- table
def fmt_value(row, v) -> str:
    if v is None:
        return "—"
    if isinstance(v, str):
        return v
    try:
        s = row.fmt.format(v)
    except (ValueError, TypeError):
        s = str(v)
    return f"{s} {row.unit}".strip() if row.unit and not row.unit.startswith("%") else (
        f"{s} {row.unit}" if row.unit else s)


def ratio_cell(row, w, s) -> str:
    if not isinstance(w, (int, float)) or not isinstance(s, (int, float)) or isinstance(w, bool):
        return ""
    if s == 0:
        return "=" if w == 0 else ""
    r = w / s
    txt = f"{r:.3g}×"
    if row.better == "lower":
        txt += " (lower is better)"
    elif row.better == "higher":
        txt += " (higher is better)"
    return txt


def goal_cell(row, w, s) -> str:
    if not row.goal:
        return ""
    if row.check is None or not isinstance(w, (int, float)):
        return row.goal
    try:
        ok = row.check(w, s)
    except Exception:
        return row.goal + " (n/a)"
    if ok is None:
        return row.goal
    return f"{row.goal} {'✅' if ok else '❌'}"


def render(metrics, results, errors) -> str:
    out = ["| metric | workerd | supervisord | ratio workerd/supervisord | goal (workerd) |",
           "|---|---|---|---|---|"]
    for m in metrics:
        for row in m.rows:
            w = results["workerd"].get(row.key)
            s = results["supervisord"].get(row.key)
            cells = []
            for kind, v in (("workerd", w), ("supervisord", s)):
                if v is None and m.name in errors.get(kind, {}):
                    cells.append("error")
                elif v is None and kind in errors and "*" in errors[kind]:
                    cells.append("not run")
                else:
                    cells.append(fmt_value(row, v))
            out.append(f"| {row.label} | {cells[0]} | {cells[1]} | {ratio_cell(row, w, s)} | "
                       f"{goal_cell(row, w, s)} |")
    return "\n".join(out)


# --------------------------------------------------------------------------- main
def parse_args(argv: list[str]) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true",
                    help="fewer repetitions and 10 s windows instead of 30 s")
    ap.add_argument("--only", default="", help="comma-separated metric names (see --list)")
    ap.add_argument("--daemon", choices=KINDS, action="append",
                    help="run only this daemon (repeatable); default both")
    ap.add_argument("--list", action="store_true", help="list the metrics and exit")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir (configs, logs)")
    return ap.parse_args(argv)


def _sigterm(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    if not in_venv():
        ensure_venv()
        os.environ["WBENCH_COMMAND"] = shlex.join(["python3", os.path.relpath(__file__), *argv])
        os.execv(str(VENV_PY), [str(VENV_PY), str(Path(__file__).resolve()), *argv])

    sys.path.insert(0, str(BENCH))
    import autoscaling
    import console
    import limits
    import load
    import metrics
    import polling
    import readers
    import service
    import talking
    from daemons import SUPERVISORD_FAVOURABLE  # needs the venv's psutil
    from harness import Ctx

    METRICS = [m for module in (metrics, load, limits, autoscaling, polling, talking, service, readers, console)
               for m in module.METRICS]

    if args.list:
        width = max(len(m.name) for m in METRICS)
        for m in METRICS:
            print(f"{m.name:{width}} {m.title}")
        return 0
    names = [n for n in args.only.split(",") if n]
    unknown = [n for n in names if n not in {m.name for m in METRICS}]
    if unknown:
        log(f"unknown metric(s): {', '.join(unknown)}; known: {', '.join(m.name for m in METRICS)}")
        return 2
    selected = [m for m in METRICS if not names or m.name in names]
    kinds = [k for k in KINDS if not args.daemon or k in args.daemon]

    signal.signal(signal.SIGTERM, _sigterm)
    bin_dir = VENV / "bin"
    command = os.environ.get("WBENCH_COMMAND") or shlex.join(["python3", "bench/run.py", *argv])
    info = machine_info()
    versions = {"workerd": version_of([str(bin_dir / "workerd"), "--version"]),
                "supervisord": version_of([str(bin_dir / "supervisord"), "--version"])}
    results: dict[str, dict] = {k: {} for k in KINDS}
    errors: dict[str, dict[str, str]] = {k: {} for k in KINDS}
    for k in KINDS:
        if k not in kinds:
            errors[k]["*"] = "not selected"
    if "workerd" in kinds and versions["workerd"] is None:
        errors["workerd"]["*"] = "`workerd --version` fails: the daemon does not run yet"
        log("workerd does not run yet (`workerd --version` failed); measuring supervisord only")
        kinds.remove("workerd")

    sv = " ".join(f"{k}={v}" for k, v in SUPERVISORD_FAVOURABLE.items())
    header = [
        "# workerd vs supervisord 4.3.0",
        "",
        (f"- machine: {info['nproc']} CPUs ({info['cpu']}), {info['mem_gib']} GiB RAM, "
        f"{info['kernel']}, Python {info['python']}, load average at start "
        f"{' '.join(f'{x:.2f}' for x in info['loadavg_at_start'])}"),
        f"- command: `{command}`" + (" (quick: fewer repetitions, 10 s windows)" if args.quick else ""),
        (f"- versions: workerd {versions['workerd'] or '(not running)'} (git {git_rev()}), "
        f"supervisord {versions['supervisord']}"),
        (f"- supervisord settings (its most favourable): `{sv}`, run as `supervisord -n -c FILE` "
        "with a unix_http_server socket in a temp dir, loglevel=info, redirect_stderr=true, "
        "stdout_logfile per program with maxbytes=0 (no rotation); except in the crash-loop "
        "test's 'defaults' rows, which use supervisord's defaults (startsecs=1, startretries=3)"),
        ("- workerd settings: `start_seconds = \"0s\"` (to match startsecs=0) in every test but "
        "the crash loop, which uses workerd's defaults; log_dir in the temp dir; "
        "log_max_bytes = \"4GiB\" for the flood only (no rotation during it)"),
        ("- \"running\" = a child of the daemon pid whose comm is the worker's (`sleep`), read "
        "from /proc, never from the daemons' status"),
    ]
    log("\n".join(header) + "\n")

    tmp = Path(tempfile.mkdtemp(prefix="wbench-"))
    ctx = Ctx(bin_dir, tmp, args.quick, log)
    t_start = time.perf_counter()
    # fixture metrics run back to back on one daemon; each other metric alternates daemons
    blocks: list[list] = []
    for m in selected:
        if m.fixture and blocks and blocks[-1][0].fixture:
            blocks[-1].append(m)
        else:
            blocks.append([m])
    try:
        for block in blocks:
            for kind in kinds:
                for m in block:
                    log(f"[{time.perf_counter() - t_start:6.1f}s] {m.name} / {kind}")
                    try:
                        vals = m.fn(ctx, kind)
                        results[kind].update(vals)
                        log("  " + ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                                             for k, v in vals.items()))
                    except KeyboardInterrupt:
                        raise
                    except Exception as e:
                        msg = f"{type(e).__name__}: {e}"
                        errors[kind][m.name] = msg
                        log(f"  ERROR: {msg}")
                        ctx.close_fixture()
                ctx.close_fixture()
    except KeyboardInterrupt as e:
        log(f"interrupted ({e}); cleaning up")
        ctx.kill_all()
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
        return 130
    finally:
        ctx.kill_all()
    elapsed = time.perf_counter() - t_start
    if args.keep:
        log(f"temp dir kept: {tmp}")
    else:
        shutil.rmtree(tmp, ignore_errors=True)

    table = render(selected, results, errors)
    lines = [*header, "", table, ""]
    for kind in KINDS:
        for name, msg in errors[kind].items():
            if name != "*" or msg != "not selected":
                lines.append(f"- {kind} {name}: {msg}")
        for n in ctx.notes.get(kind, []):
            lines.append(f"- {kind}: {n}")
    lines.append(f"- total bench time {elapsed:.0f} s")
    print("\n".join(lines))

    out_dir = BENCH / "results"
    out_dir.mkdir(exist_ok=True)
    doc = {
        "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "command": command, "quick": args.quick, "machine": info, "versions": versions,
        "git": git_rev(), "supervisord_settings": SUPERVISORD_FAVOURABLE,
        "results": results, "details": ctx.details, "errors": errors, "notes": ctx.notes,
        "rows": [{"metric": m.name, "key": r.key, "label": r.label, "unit": r.unit,
                  "better": r.better, "goal": r.goal,
                  "workerd": results["workerd"].get(r.key),
                  "supervisord": results["supervisord"].get(r.key)}
                 for m in selected for r in m.rows],
        "elapsed_s": elapsed, "table_markdown": table,
    }
    (out_dir / "latest.json").write_text(json.dumps(doc, indent=2, default=str) + "\n")
    log(f"wrote {out_dir / 'latest.json'}")
    failed = any(k != "*" or msg != "not selected" for e in errors.values() for k, msg in e.items())
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
