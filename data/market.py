"""What every feed (replay or live) produces: market events with a live flag.

`live=False` marks catch-up history (bars before the resume point of a replay; bars older than
the current one after a live restart or reconnect). Catch-up only warms the indicators: it never
enters, exits, marks a position or moves the daily-loss check.

A live bar arrives as BarOpened (its first price), any number of PriceUpdates, then BarClosed.
A feed ends with FeedEnded: `finished` when the data ran out by design (the end of a replay
file), `lost` when it failed (the connection could not be restored).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Union

from data.bar import Bar


@dataclass(frozen=True, slots=True)
class BarOpened:
    ts: int                       # the bar's open time
    price: float                  # its first price
    live: bool = True


@dataclass(frozen=True, slots=True)
class PriceUpdate:
    ts: int
    price: float
    live: bool = True


@dataclass(frozen=True, slots=True)
class BarClosed:
    bar: Bar
    close_ts: int                 # bar.ts + timeframe: when it closed
    live: bool = True


@dataclass(frozen=True, slots=True)
class FeedEnded:
    reason: Literal["finished", "lost"]
    detail: str = ""


MarketEvent = Union[BarOpened, PriceUpdate, BarClosed, FeedEnded]
