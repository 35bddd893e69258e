"""A settable clock for code that takes a `clock` callable (limits, key refresh), so tests move time
instead of sleeping through minute windows."""

from __future__ import annotations

T0 = 1_800_000_000.0  # a minute boundary (divisible by 60 and by 3600)


class Clock:
    def __init__(self, t: float = T0 + 1) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t
