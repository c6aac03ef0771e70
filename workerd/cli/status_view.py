"""`workerctl status` as a table and one summary line per program: what the daemon's
status document says, laid out for a person. Standard library only."""

from __future__ import annotations

import json

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Any


def render_status(data: dict[str, Any]) -> str:
    header = ("PROGRAM", "INST", "PID", "STATE", "UPTIME", "RESTARTS", "LAST EXIT", "RSS", "PSS", "CPU%")
    rows = [header]
    summary = []
    for program in data["programs"]:
        for p in program["processes"]:
            rows.append((
                program["name"], str(p["instance"]) + (" old" if p.get("outgoing") else ""), _dash(p["pid"]),
                p["state"], _duration(p["uptime"]),
                str(p["restarts"]), p["last_exit"] or "-", _size(p["rss"]), _size(p.get("pss")),
                _dash(p["cpu_percent"]),
            ))
        line = f"{program['name']}: {program['running']}/{program['desired']} running"
        notes = []
        if not program.get("enabled", True):
            notes.append("stopped by workerctl")
        if program.get("pinned") is not None:
            notes.append(f"pinned to {program['pinned']}")
        auto = program.get("autoscale")
        if auto:
            notes.append(_autoscale_note(auto))
        handover = program.get("handover")
        if handover:
            how = "rolling restart: one at a time" if handover["rolling"] else "new config"
            notes.append(f"{how}; {handover['old']} old process(es) kept until new ones run")
            if handover["held"]:
                notes.append(f"held: {handover['held']}")
        if program.get("log_lines_dropped"):
            notes.append(f"{program['log_lines_dropped']} log line(s) dropped: the log could not be written")
        notes += [_worker_note(p) for p in program["processes"] if _worker_note(p)]
        notes += [f"{p['instance']}: {p['state']}: {p['reason']}" for p in program["processes"] if p["reason"]]
        notes += [f"{p['instance']}: last limit: {p['last_limit']}" for p in program["processes"]
                  if p.get("last_limit") and p["last_limit"] != p["reason"]]
        summary.append(line + (f" ({'; '.join(notes)})" if notes else ""))
    return "\n".join([_table(rows), "", *summary]) if summary else "no programs"


def _table(rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows)


def _worker_note(p: dict[str, Any]) -> str:
    """What a worker said on the notify socket: busy for how long, its STATUS= text."""
    said = []
    if p.get("busy"):
        said.append(f"busy {_duration(p['job_age'])}")
    if p.get("draining"):
        said.append("draining")
    if p.get("status_text"):
        said.append(json.dumps(p["status_text"], ensure_ascii=False))
    return f"{p['instance']}: {', '.join(said)}" if said else ""


def _autoscale_note(auto: dict[str, Any]) -> str:
    depth = "?" if auto["depth"] is None else auto["depth"]
    note = f"autoscale {auto['source']}: depth {depth}, desired {auto['desired']} in [{auto['min']}, {auto['max']}]"
    if auto.get("dead_letters"):
        note += f"; {auto['dead_letters']} dead letters"
    if auto.get("held"):
        note += f"; {auto['held']}"
    if auto.get("error"):
        note += f"; source error for {auto['error_for']:g}s: {auto['error']}"
    return note


def _dash(value: Any) -> str:
    return "-" if value is None else str(value)


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    s = int(seconds)
    if s < 60:
        return f"{seconds:.1f}s" if seconds < 10 else f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 86400}d{s % 86400 // 3600:02d}h"


def _size(value: int | None) -> str:
    if value is None:
        return "-"
    size = float(value)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f}{unit}" if unit == "B" else f"{size:.1f}{unit}"
        size /= 1024
    return str(value)


def render_history(document: dict[str, Any]) -> str:
    """One line per point (local time, depth, desired, running), the marks among them."""
    import time

    rows = [("TIME", "DEPTH", "DESIRED", "RUNNING", "")]
    events = sorted([(p[0], 0, p) for p in document["points"]] + [(m[0], 1, m) for m in document["marks"]],
                    key=lambda e: (e[0], e[1]))
    for at, kind, item in events:
        clock = time.strftime("%H:%M:%S", time.localtime(at))
        if kind == 0:
            rows.append((clock, _dash(item[1]), str(item[2]), str(item[3]), ""))
        else:
            rows.append((clock, "", "", "", f"{item[1]}: {item[2]}"))
    if len(rows) == 1:
        return f"{document['program']}: nothing recorded in that time"
    return _table(rows)
