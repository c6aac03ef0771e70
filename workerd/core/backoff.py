"""Exponential backoff between restarts: pure arithmetic, randomness passed in."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Backoff:
    """The program's backoff_* keys; their defaults are the config schema's."""

    initial: float
    factor: float
    maximum: float
    #: Fraction of randomness: the delay is scaled by a factor in [1 - jitter, 1 + jitter).
    jitter: float
    #: A run at least this long ends a crash streak.
    reset: float

    def delay(self, step: int, rand: float) -> float:
        """Delay before the `step`-th (0-based) delayed restart of a streak.

        `rand` is uniform in [0, 1); jitter spreads restarts of many workers that
        crashed together so they do not all hit a shared resource at the same instant.
        """
        try:
            base = self.initial * self.factor**step
        except OverflowError:
            base = self.maximum
        base = min(base, self.maximum)
        return max(0.0, base * (1.0 + self.jitter * (2.0 * rand - 1.0)))
