"""What every feed (replay or live) produces: market events with a live flag.

`live=False` marks catch-up history (bars before the resume point of a replay; bars older than
the current one after a live restart or reconnect). Catch-up only warms the indicators: it never
enters, exits, marks a position or moves the daily-loss check.

A live bar arrives as BarOpened (its first price), any number of PriceUpdates, then BarClosed.
A live feed also reports its own condition with FeedStatus (transport, health checks, whether
the data is whole); while `data_whole` is False a candle gap could not be filled from the
exchange and no new entry may be taken.

A feed ends with FeedEnded: `finished` when the data ran out by design (the end of a replay
file), `lost` when it failed (the connection could not be restored).

Events are values: nobody changes one after it is made. The three that come once or more per
bar (BarOpened, PriceUpdate, BarClosed) are plain slotted dataclasses, immutable by convention
rather than `frozen=True`, whose __init__ costs three times as much (a replay builds two per
bar); none of them is hashed or used as a key.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Union

from data.bar import Bar


@dataclass(slots=True)
class BarOpened:
    ts: int                       # the bar's open time
    price: float                  # its first price
    live: bool = True


@dataclass(slots=True)
class PriceUpdate:
    ts: int
    price: float
    live: bool = True


@dataclass(slots=True)
class BarClosed:
    bar: Bar
    close_ts: int                 # bar.ts + timeframe: when it closed
    live: bool = True


@dataclass(frozen=True, slots=True)
class FeedEnded:
    reason: Literal["finished", "lost"]
    detail: str = ""


@dataclass(frozen=True, slots=True)
class FeedStatus:
    """The live feed's condition, published whenever any part of it changes and after every
    health check (the counts: the ledger keeps them per day for the uptime KPI).

    state: "ok" (every check passes), "degraded" (data still flows: REST fallback, a failed
    check), "down" (no market data: reconnecting). transport: "websocket", "rest" or
    "reconnecting". data_whole False: a gap could not be filled; entries pause until it is.
    """

    ts: int
    state: Literal["ok", "degraded", "down"]
    transport: Literal["websocket", "rest", "reconnecting"]
    data_whole: bool
    problems: tuple[str, ...] = ()
    latency_ms: float | None = None          # REST ping round trip
    last_message_ts: int | None = None       # last market data received (any transport)
    last_candle_close_ts: int | None = None  # close time of the last closed candle
    checks: int = 0                          # health checks so far by this feed
    checks_up: int = 0                       # ... that found the data link up
    live: bool = True

    @property
    def uptime_ratio(self) -> float:
        return 1.0 if self.checks == 0 else self.checks_up / self.checks


MarketEvent = Union[BarOpened, PriceUpdate, BarClosed, FeedEnded, FeedStatus]
