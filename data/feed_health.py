"""Health of the live market data, checked every 30 s (PRD) and on every change of transport.

Checks: the socket is alive (when the WebSocket is configured), the exchange's REST API answers
(a `fetch_time` ping whose round trip is the latency), the last closed candle is younger than
two timeframes (a 15m feed's last closed bar is up to ~15 min old when all is well), and the
balance is readable (a callable injected by the composition root: the venue's balances).
Measures: ping latency, time of the last market data message, the health checks and how many
found the data link up (the uptime). Any change of state, transport, data completeness or the
list of problems is published (and logged) as one FeedStatus event; a check that changes none
of them is published quietly, for its counts.
"""
from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Protocol

from data.bar import iso_utc
from data.market import FeedStatus

log = logging.getLogger(__name__)

HEALTH_INTERVAL_S = 30.0


class FeedClock(Protocol):
    """Where the live feed's time comes from: the wall clock live, a virtual clock in tests."""

    def now_ms(self) -> int: ...

    async def sleep(self, seconds: float) -> None: ...


class SystemClock:
    def now_ms(self) -> int:
        return time.time_ns() // 1_000_000

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))


def is_stale(last_candle_close_ts: int | None, now_ms: int, timeframe_ms: int) -> bool:
    """The staleness rule: the last closed candle closed more than two timeframes ago."""
    return last_candle_close_ts is not None and now_ms - last_candle_close_ts > 2 * timeframe_ms


class FeedHealth:
    """Keeps the feed's status; the feed reports transport changes, messages, closed candles and
    gaps, and `run` checks the rest every `interval_s`."""

    def __init__(self, *, clock: FeedClock, timeframe_ms: int, use_websocket: bool,
                 ping: Callable[[], Awaitable[object]],
                 balance: Callable[[], Awaitable[object]] | None = None,
                 publish: Callable[[FeedStatus], None] = lambda status: None,
                 interval_s: float = HEALTH_INTERVAL_S) -> None:
        self.clock = clock
        self.timeframe_ms = timeframe_ms
        self.use_websocket = use_websocket
        self._ping = ping
        self._balance = balance
        self._publish = publish
        self.interval_s = interval_s
        self.transport: str = "reconnecting"
        self.data_whole = True
        self.gap_detail = ""
        self.last_message_ts: int | None = None
        self.last_candle_close_ts: int | None = None
        self.latency_ms: float | None = None
        self.rest_problem: str | None = None
        self.balance_problem: str | None = None
        self.checks = 0
        self.checks_up = 0
        self.status: FeedStatus | None = None

    # ----- what the feed reports --------------------------------------------------------------
    def set_transport(self, transport: str) -> None:
        if transport != self.transport:
            log.log(logging.INFO if transport == "websocket" else logging.WARNING,
                    "market data transport: %s -> %s", self.transport, transport)
            self.transport = transport
            self.publish_if_changed()

    def message(self) -> None:
        self.last_message_ts = self.clock.now_ms()

    def candle_closed(self, close_ts: int) -> None:
        if self.last_candle_close_ts is None or close_ts > self.last_candle_close_ts:
            self.last_candle_close_ts = close_ts

    def set_data_whole(self, whole: bool, detail: str = "") -> None:
        if whole != self.data_whole:
            self.data_whole, self.gap_detail = whole, detail
            if whole:
                log.warning("market data whole again: new entries allowed")
            else:
                log.error("market data incomplete (%s): new entries paused until it is whole", detail)
            self.publish_if_changed()

    # ----- checks -----------------------------------------------------------------------------
    async def check(self) -> FeedStatus:
        """One round: REST ping, balance, staleness; counts toward the uptime ratio."""
        started = time.perf_counter()
        try:
            await self._ping()
            self.latency_ms = (time.perf_counter() - started) * 1000.0
            self.rest_problem = None
        except Exception as exc:                  # any failure means "not reachable"
            self.rest_problem = f"REST unreachable: {type(exc).__name__}: {exc}"[:200]
        if self._balance is not None:
            try:
                await self._balance()
                self.balance_problem = None
            except Exception as exc:
                self.balance_problem = f"balance unreadable: {type(exc).__name__}: {exc}"[:200]
        self.checks += 1
        if self._link_up():
            self.checks_up += 1
        return self.publish_if_changed(quietly=True)

    async def run(self) -> None:
        while True:
            await self.clock.sleep(self.interval_s)
            try:
                await self.check()
            except Exception:                     # a health check must never kill the feed
                log.exception("feed health check failed")

    def _link_up(self) -> bool:
        if self.use_websocket:
            return self.transport == "websocket"
        return self.transport == "rest" and self.rest_problem is None

    def problems(self) -> tuple[str, ...]:
        now = self.clock.now_ms()
        found: list[str] = []
        if self.use_websocket and self.transport != "websocket":
            found.append("socket down" + (": polling REST" if self.transport == "rest" else ""))
        if self.transport == "reconnecting":
            found.append("no market data: reconnecting")
        if self.rest_problem:
            found.append(self.rest_problem)
        if is_stale(self.last_candle_close_ts, now, self.timeframe_ms):
            assert self.last_candle_close_ts is not None
            found.append(f"last candle closed at {iso_utc(self.last_candle_close_ts)}, "
                         f"more than two timeframes ago")
        if self.balance_problem:
            found.append(self.balance_problem)
        if not self.data_whole:
            found.append(f"data gap: {self.gap_detail}")
        return tuple(found)

    def snapshot(self) -> FeedStatus:
        problems = self.problems()
        if self.transport == "reconnecting":
            state = "down"
        elif problems:
            state = "degraded"
        else:
            state = "ok"
        return FeedStatus(ts=self.clock.now_ms(), state=state, transport=self.transport,  # type: ignore[arg-type]
                          data_whole=self.data_whole, problems=problems, latency_ms=self.latency_ms,
                          last_message_ts=self.last_message_ts,
                          last_candle_close_ts=self.last_candle_close_ts,
                          checks=self.checks, checks_up=self.checks_up)

    def publish_if_changed(self, quietly: bool = False) -> FeedStatus:
        """Publish and log when state, transport, completeness or the problems differ from the
        last one; `quietly`: publish an unchanged status too, without a log line."""
        status = self.snapshot()
        old = self.status
        key = (status.state, status.transport, status.data_whole, status.problems)
        if old is None or key != (old.state, old.transport, old.data_whole, old.problems):
            level = logging.INFO if status.state == "ok" else logging.WARNING
            log.log(level, "feed health %s (%s)%s", status.state, status.transport,
                    ": " + "; ".join(status.problems) if status.problems else "")
        elif not quietly:
            return status
        self.status = status
        self._publish(status)
        return status
