"""How a child process ended: one type for the reaper, the workers' slots and the
sources' helpers."""

from __future__ import annotations

import os
import signal
from dataclasses import dataclass


@dataclass(frozen=True)
class ExitStatus:
    pid: int
    #: The exit code, or None when a signal ended it.
    code: int | None
    signal: int | None

    @classmethod
    def from_wait(cls, pid: int, status: int) -> ExitStatus:
        """From the status waitpid() returned."""
        code = os.waitstatus_to_exitcode(status)
        return cls(pid, None, -code) if code < 0 else cls(pid, code, None)

    @property
    def success(self) -> bool:
        return self.code == 0

    def describe(self) -> str:
        """As status shows it: "exit status 1", "killed by SIGKILL"."""
        if self.signal is not None:
            try:
                name = signal.Signals(self.signal).name
            except ValueError:
                name = str(self.signal)
            return f"killed by {name}"
        return f"exit status {self.code}"
