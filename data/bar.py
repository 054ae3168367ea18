"""The one candle type every layer shares."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone


@dataclass(frozen=True, slots=True)
class Bar:
    """A closed OHLCV candle. `ts` is the bar's OPEN time in Unix milliseconds, UTC."""

    ts: int
    open: float
    high: float
    low: float
    close: float
    volume: float

    @property
    def iso(self) -> str:
        return iso_utc(self.ts)


def iso_utc(ts_ms: int) -> str:
    """ISO 8601 UTC with a trailing Z: the only timestamp format the agent stores or prints."""
    return datetime.fromtimestamp(ts_ms / 1000, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
