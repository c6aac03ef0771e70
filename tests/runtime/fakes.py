"""A hand-moved clock and a recording Effects: the Supervisor driven without processes,
signals or sleeps, so a sequence of events runs in milliseconds."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from workerd.config.load import load
from workerd.config.model import Config
from workerd.core.actions import Action, KillGroup, SignalGroup, SignalMain, Spawn
from workerd.core.events import Event, Exited, Spawned
from workerd.process.effects import SlotContext


@dataclass
class FakeTimer:
    when: float
    callback: Callable[[], None]
    cancelled: bool = False

    def cancel(self) -> None:
        self.cancelled = True


class FakeClock:
    """Time moves only when a test calls `advance`; due timers fire in order."""

    def __init__(self, start: float = 1000.0) -> None:
        self.t = start
        self._timers: list[FakeTimer] = []

    def now(self) -> float:
        return self.t

    def call_at(self, when: float, callback: Callable[[], None]) -> Any:
        timer = FakeTimer(when, callback)
        self._timers.append(timer)
        return timer

    def call_later(self, delay: float, callback: Callable[[], None]) -> Any:
        return self.call_at(self.t + delay, callback)

    def advance(self, seconds: float) -> None:
        target = self.t + seconds
        while True:
            due = [t for t in self._timers if not t.cancelled and t.when <= target]
            if not due:
                break
            timer = min(due, key=lambda t: t.when)
            self._timers.remove(timer)
            self.t = max(self.t, timer.when)
            timer.callback()
        self.t = target


@dataclass
class RecordingEffects:
    """Records every action; a Spawn gets a fresh pid, as the real Effects would."""

    actions: list[tuple[str, int, Action]] = field(default_factory=list)
    pipes: set[Any] = field(default_factory=set)
    contexts: dict[int, SlotContext] = field(default_factory=dict)
    next_pid: int = 100

    def execute(self, action: Action, ctx: SlotContext) -> Event | None:
        self.actions.append((ctx.program, ctx.instance, action))
        if isinstance(action, Spawn):
            self.next_pid += 1
            self.contexts[self.next_pid] = ctx
            return Spawned(self.next_pid)
        return None

    def exit(self, pid: int, success: bool = False, description: str = "exit status 1") -> None:
        """The process `pid` ended: its slot hears of it, as from the reaper."""
        self.contexts[pid].deliver(Exited(pid, success, description))

    def take(self) -> list[tuple[str, int, Action]]:
        """The actions since the last take."""
        taken, self.actions = self.actions, []
        return taken

    def spawned(self) -> list[tuple[str, int]]:
        return [(p, i) for p, i, a in self.take() if isinstance(a, Spawn)]


def signalled(actions: list[tuple[str, int, Action]]) -> list[int]:
    """The workers that got a stop signal (their main process, or their group)."""
    return [a.pid if isinstance(a, SignalMain) else a.pgid for _, _, a in actions
            if isinstance(a, (SignalMain, SignalGroup))]


def killed(actions: list[tuple[str, int, Action]]) -> list[int]:
    return [a.pgid for _, _, a in actions if isinstance(a, KillGroup)]


def config(tmp_path: Path, programs: str, name: str = "w.toml") -> Config:
    """A Config from TOML text (a [daemon] socket under tmp_path, output to stderr)."""
    path = tmp_path / name
    path.write_text(f'[daemon]\nsocket = "{tmp_path}/w.sock"\n\n{programs}')
    return load(path)
