"""Where engine time comes from. Engine code never calls datetime.now(): live it reads the wall
clock, in replay the time of the bar being processed, so daily resets, durations and timeouts
behave the same at any replay speed."""
from __future__ import annotations

import time
from typing import Protocol

DAY_MS = 86_400_000


class Clock(Protocol):
    def now_ms(self) -> int: ...

    def observe(self, ts_ms: int) -> None:
        """Market time seen by the engine: drives a replay clock, ignored by the wall clock."""
        ...


class WallClock:
    def now_ms(self) -> int:
        return time.time_ns() // 1_000_000

    def observe(self, ts_ms: int) -> None:
        return None


class ReplayClock:
    """Simulated time, advanced by the replay as it processes bars."""

    def __init__(self, start_ms: int = 0) -> None:
        self._now = start_ms

    def now_ms(self) -> int:
        return self._now

    def observe(self, ts_ms: int) -> None:
        if ts_ms > self._now:
            self._now = ts_ms


def utc_day(ts_ms: int) -> int:
    """The UTC calendar day containing ts_ms, as the ms timestamp of its midnight."""
    return ts_ms - ts_ms % DAY_MS
