"""Live candles from an exchange through ccxt.pro, as the market events the engine consumes.

The same interface as ReplayFeed: `stream(resume_after_ts)` yields catch-up BarClosed events
(live=False) and then live BarOpened / PriceUpdate / BarClosed, plus FeedStatus whenever the
feed's condition changes; it ends with FeedEnded("lost") only when it is closed or cannot go on.

How a candle gets to the strategy:
- Warm-up: enough closed history for the strategy (the composition root passes the strategy's
  own warmup_bars, STRATEGY.md's EMA-memory rule), paginated `fetch_ohlcv` with a plain `since`
  loop (gentle on rate limits), kept in a SQLite CandleCache so a restart fetches only what is
  missing. All of it is catch-up: live=False.
- Timeframes the exchange lacks (10m on Binance) come from the largest smaller exchange
  timeframe that divides them, through the same CandleBuilder as the replay: buckets aligned
  to the epoch, a bucket with a missing part is dropped.
- Live: `watch_ohlcv` on the exchange timeframe. A candle is closed when a later one starts, or
  when the clock passes its close and a REST fetch confirms it, whichever comes first. With
  `use_websocket` false, or after `ws_failures_before_rest` failed connections in a row, REST is
  polled every `rest_interval_s` (plus a fetch right after each close); the socket is retried
  with exponential backoff meanwhile and takes over again once it answers.
- Prices inside a bar (each update of the forming candle; trades if `watch_trades` is on) are
  PriceUpdates (live): they drive the paper venue and the position's mark.
- Every candle passes the validator; a missing candle is backfilled from REST before any later
  bar is emitted. More than `max_missing_bars` missing is logged at WARNING. If REST cannot
  fill it (errors), later bars are held and FeedStatus(data_whole=False) pauses entries until
  the backfill succeeds; a hole the exchange itself reports (REST answers with the candles
  around it but not it) is its history, the same history a backtest sees: logged, and the
  stream goes on.
- Stale bars: a bar is live only if the feed saw it close within `live_grace_ms` of its close
  (and BarOpened only if seen within that time of its open). Bars recovered after a reconnect
  or a restart are catch-up, so no entry is ever taken on them.
"""
from __future__ import annotations

import asyncio
import logging
import math
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from tenacity import (AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt,
                      wait_exponential_jitter)

from data.bar import Bar, iso_utc
from data.candle_builder import CandleBuilder, interval_name
from data.candle_cache import CandleCache
from data.feed_health import FeedClock, FeedHealth, SystemClock
from data.market import BarClosed, BarOpened, FeedEnded, FeedStatus, MarketEvent, PriceUpdate
from data.validator import bar_problem

log = logging.getLogger(__name__)

PAGE_LIMIT = 1000                      # Binance returns at most 1000 candles per klines call


def is_transient(exc: BaseException) -> bool:
    """Network trouble and exchange hiccups (retried); anything else is a real error.

    ccxt is looked up, not imported: a replay session imports this module and must not load
    the exchange library (and if ccxt is not loaded, no ccxt error can have been raised)."""
    if isinstance(exc, (OSError, TimeoutError)):
        return True
    ccxt = sys.modules.get("ccxt")
    return ccxt is not None and isinstance(exc, ccxt.OperationFailed)


def ccxt_timeframe(minutes: int) -> str:
    if minutes % 1440 == 0:
        return f"{minutes // 1440}d"
    if minutes % 60 == 0:
        return f"{minutes // 60}h"
    return f"{minutes}m"


def _tf_minutes(name: str) -> int | None:
    units = {"m": 1, "h": 60, "d": 1440}
    try:
        return int(name[:-1]) * units[name[-1]]
    except (KeyError, ValueError):
        return None


def exchange_timeframe(target_minutes: int, available: Sequence[str] | None) -> tuple[str, int]:
    """The exchange timeframe to watch for a target: the target itself when the exchange has it,
    else the largest available timeframe that divides it (STRATEGY.md)."""
    if not available:
        return ccxt_timeframe(target_minutes), target_minutes
    sizes = {m: name for name in available if (m := _tf_minutes(name)) is not None}
    if target_minutes in sizes:
        return sizes[target_minutes], target_minutes
    divisors = [m for m in sizes if m < target_minutes and target_minutes % m == 0]
    if not divisors:
        raise ValueError(f"the exchange has no timeframe dividing {target_minutes}m "
                         f"(it offers {', '.join(sorted(available))})")
    best = max(divisors)
    return sizes[best], best


@dataclass
class _Candle:
    ts: int
    open: float
    high: float
    low: float
    close: float
    volume: float
    verified: bool = True              # False: last seen before a reconnect, values unsure

    def bar(self) -> Bar:
        return Bar(self.ts, self.open, self.high, self.low, self.close, self.volume)


class GapUnfilled(Exception):
    """REST could not deliver candles the stream needs before it can go on."""


class LiveFeed:
    """A live market feed for one symbol and timeframe on a ccxt(.pro) exchange instance."""

    def __init__(self, exchange: Any, symbol: str, timeframe_minutes: int, *, warmup_bars: int,
                 cache: CandleCache | None = None, use_websocket: bool = True,
                 rest_interval_s: float = 60.0, max_missing_bars: int = 3,
                 validate: bool = True, clock: FeedClock | None = None,
                 balance: Callable[[], Awaitable[object]] | None = None,
                 health_interval_s: float = 30.0, watch_trades: bool = False,
                 close_confirm_delay_s: float = 0.3, live_grace_ms: int | None = None,
                 ws_failures_before_rest: int = 3, backoff_initial_s: float = 1.0,
                 backoff_max_s: float = 60.0, rest_attempts: int = 4) -> None:
        if warmup_bars < 1:
            raise ValueError(f"warmup_bars must be at least 1, got {warmup_bars}")
        self.exchange = exchange
        self.symbol = symbol
        self.target_ms = timeframe_minutes * 60_000
        available = list(getattr(exchange, "timeframes", None) or [])
        self.fine_tf, fine_minutes = exchange_timeframe(timeframe_minutes, available)
        self.fine_ms = fine_minutes * 60_000
        self.warmup_bars = warmup_bars
        self.cache = cache
        self.use_websocket = use_websocket
        self.rest_interval_s = rest_interval_s
        self.max_missing_bars = max_missing_bars
        self.validate = validate
        self.clock: FeedClock = clock or SystemClock()
        self.watch_trades = watch_trades
        self.close_confirm_delay_s = close_confirm_delay_s
        self.live_grace_ms = (live_grace_ms if live_grace_ms is not None
                              else max(5_000, min(60_000, self.target_ms // 10)))
        self.ws_failures_before_rest = ws_failures_before_rest
        self.backoff_initial_s = backoff_initial_s
        self.backoff_max_s = backoff_max_s
        self.rest_attempts = rest_attempts
        self._inbox: asyncio.Queue = asyncio.Queue()
        self._out: list[MarketEvent] = []
        self.health = FeedHealth(clock=self.clock, timeframe_ms=self.target_ms,
                                 use_websocket=use_websocket, ping=self._ping, balance=balance,
                                 publish=lambda s: self._inbox.put_nowait(("status", s)),
                                 interval_s=health_interval_s)
        self._builder = (CandleBuilder(self.fine_ms, self.target_ms)
                         if self.fine_ms != self.target_ms else None)
        self._offset_ms = 0                     # exchange clock minus ours
        self._last_closed: int | None = None    # open time of the last closed fine candle
        self._current: _Candle | None = None    # the forming fine candle
        self._opened_bucket: int | None = None  # target bucket whose BarOpened went out
        self._last_price_ts = 0
        self._rest_mode = not use_websocket
        self._rest_wake = asyncio.Event()
        self._tasks: list[asyncio.Task] = []
        self.description = f"{getattr(exchange, 'id', 'exchange')} {symbol} " \
                           f"{interval_name(self.target_ms)}"
        if self.fine_ms != self.target_ms:
            self.description += f" (built from {self.fine_tf})"

    def _reset(self) -> None:
        """A new stream starts from scratch (the engine re-warms on every start, as in replay)."""
        self._inbox = asyncio.Queue()
        self._out = []
        self._builder = (CandleBuilder(self.fine_ms, self.target_ms)
                         if self.fine_ms != self.target_ms else None)
        self._last_closed = None
        self._current = None
        self._opened_bucket = None
        self._last_price_ts = 0
        self._rest_mode = not self.use_websocket
        self._rest_wake = asyncio.Event()

    # ----- time -------------------------------------------------------------------------------
    def now(self) -> int:
        """The exchange's time, as well as we know it."""
        return self.clock.now_ms() + self._offset_ms

    @property
    def source_description(self) -> str:
        return self.description

    # ----- the stream -------------------------------------------------------------------------
    async def stream(self, resume_after_ts: int | None = None) -> AsyncIterator[MarketEvent]:
        """Catch-up first (live=False), then live events until closed or lost."""
        del resume_after_ts    # the engine treats bars it already did as warm-up itself
        self._reset()
        try:
            try:
                for event in await self._warm_up():
                    yield event
            except Exception as exc:
                log.error("warm-up of %s failed: %s", self.description, exc)
                yield FeedEnded("lost", f"warm-up failed: {type(exc).__name__}: {exc}")
                return
            self._start_tasks()
            self.health.publish_if_changed(quietly=True)   # queued: the first status
            while True:
                item = await self._inbox.get()
                kind = item[0]
                if kind == "lost":
                    yield FeedEnded("lost", item[1])
                    return
                if kind == "status":
                    yield item[1]
                    continue
                try:
                    await self._process(item)
                except GapUnfilled as exc:
                    out, self._out = self._out, []
                    for event in out:
                        yield event
                    async for event in self._hold_until_filled(item, str(exc)):
                        yield event
                    continue
                out, self._out = self._out, []
                for event in out:
                    yield event
        finally:
            await self.stop()

    async def stop(self) -> None:
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        for task in tasks:
            try:
                await task
            except BaseException:
                pass

    async def close(self) -> None:
        """Stop the feed and close the exchange connection and the cache."""
        await self.stop()
        closer = getattr(self.exchange, "close", None)
        if closer is not None:
            try:
                await closer()
            except Exception:
                log.exception("closing the exchange connection failed")
        if self.cache is not None:
            self.cache.close()

    def _start_tasks(self) -> None:
        loop = asyncio.get_running_loop()

        def spawn(coro, name: str) -> None:
            task = loop.create_task(coro, name=name)
            task.add_done_callback(self._task_done)
            self._tasks.append(task)

        if self.use_websocket:
            spawn(self._ws_loop(), "live-feed-ws")
            if self.watch_trades:
                spawn(self._trades_loop(), "live-feed-trades")
        else:
            self.health.set_transport("rest")
        spawn(self._rest_loop(), "live-feed-rest")
        spawn(self._close_timer(), "live-feed-close")
        spawn(self.health.run(), "live-feed-health")

    def _task_done(self, task: asyncio.Task) -> None:
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None:
            log.critical("%s died: %s", task.get_name(), exc, exc_info=exc)
            self._inbox.put_nowait(("lost", f"{task.get_name()} died: {type(exc).__name__}: {exc}"))

    # ----- REST -------------------------------------------------------------------------------
    async def _rest(self, what: str, call: Callable[[], Awaitable[Any]]) -> Any:
        """One REST call, transient errors retried with exponential backoff and jitter."""
        def note(state: RetryCallState) -> None:
            exc = state.outcome.exception() if state.outcome else None
            log.warning("%s failed (%s: %s); retry %d", what, type(exc).__name__, exc,
                        state.attempt_number)

        async for attempt in AsyncRetrying(
                retry=retry_if_exception(is_transient), stop=stop_after_attempt(self.rest_attempts),
                wait=wait_exponential_jitter(multiplier=self.backoff_initial_s, max=self.backoff_max_s, jitter=0.2),
                sleep=self.clock.sleep, before_sleep=note, reraise=True):
            with attempt:
                return await call()
        raise AssertionError("unreachable")

    async def _ping(self) -> object:
        return await self.exchange.fetch_time()

    async def _fetch(self, since: int, limit: int = PAGE_LIMIT) -> list[list]:
        rows = await self._rest(
            f"fetch_ohlcv {self.symbol} {self.fine_tf} since {iso_utc(since)}",
            lambda: self.exchange.fetch_ohlcv(self.symbol, self.fine_tf, since=since, limit=limit))
        self.health.message()
        return list(rows or [])

    async def _fetch_range(self, start: int, end: int) -> list[_Candle]:
        """Closed candles with start <= ts < end, paginated; only those the exchange has."""
        found: dict[int, _Candle] = {}
        cursor = start
        while cursor < end:
            rows = await self._fetch(cursor, min(PAGE_LIMIT, max(1, (end - cursor) // self.fine_ms + 1)))
            candles = [c for c in self._parse(rows) if c.ts >= cursor]
            if not candles:
                break
            for c in candles:
                if c.ts < end and c.ts + self.fine_ms <= self.now():
                    found[c.ts] = c
            last = max(c.ts for c in candles)
            if last + self.fine_ms <= cursor:
                break
            cursor = last + self.fine_ms
        return [found[ts] for ts in sorted(found)]

    def _parse(self, rows: Sequence[Any]) -> list[_Candle]:
        out: list[_Candle] = []
        for row in rows:
            try:
                ts = int(row[0])
                values = [float(x) for x in row[1:6]]
            except (TypeError, ValueError, IndexError):
                log.warning("%s: unreadable candle %r from the exchange: ignored", self.symbol, row)
                continue
            if ts % self.fine_ms:
                log.warning("%s: candle at %s is not aligned to %s: ignored", self.symbol, ts, self.fine_tf)
                continue
            out.append(_Candle(ts, *values))
        out.sort(key=lambda c: c.ts)
        return out

    # ----- warm-up ----------------------------------------------------------------------------
    async def _warm_up(self) -> list[MarketEvent]:
        try:
            server = await self._rest("fetch_time", self.exchange.fetch_time)
            local = self.clock.now_ms()
            if server:
                self._offset_ms = int(server) - local
        except Exception as exc:
            log.warning("cannot read the exchange clock (%s): using ours", exc)
        now = self.now()
        forming = now - now % self.fine_ms              # the fine candle in progress
        since = now - now % self.target_ms - self.warmup_bars * self.target_ms
        cached: list[Bar] = []
        if self.cache is not None:
            cached = self.cache.load(self.symbol, self.fine_tf, since, forming)
        have = {b.ts for b in cached}
        fetched: list[_Candle] = []
        for start, end in _missing_runs(have, since, forming, self.fine_ms):
            fetched.extend(await self._fetch_range(start, end))
        bars, rejected = self._checked([c.bar() for c in fetched])
        if self.cache is not None and bars:
            self.cache.store(self.symbol, self.fine_tf, bars)
        merged = sorted({b.ts: b for b in [*cached, *bars]}.values(), key=lambda b: b.ts)
        missing = len(_missing_runs({b.ts for b in merged}, since, forming, self.fine_ms, runs=False))
        log.info("warm-up %s: %d candles (%d cached, %d fetched, %d refused, %d missing at the "
                 "exchange) from %s", self.description, len(merged), len(cached), len(bars),
                 rejected, missing, iso_utc(since))
        if missing > self.max_missing_bars:
            log.warning("warm-up %s: %d %s candles missing at the exchange", self.description,
                        missing, self.fine_tf)
        events: list[MarketEvent] = []
        for bar in merged:
            events.extend(self._closed_fine(bar, live=False))
        return events

    def _checked(self, bars: list[Bar]) -> tuple[list[Bar], int]:
        if not self.validate:
            return bars, 0
        good: list[Bar] = []
        for bar in bars:
            problem = bar_problem(bar)
            if problem is None:
                good.append(bar)
            else:
                log.warning("%s: candle %s refused: %s", self.symbol, iso_utc(bar.ts), problem)
        return good, len(bars) - len(good)

    # ----- live processing --------------------------------------------------------------------
    async def _process(self, item: tuple) -> None:
        """Turn one input into events, appended to self._out as they happen (a GapUnfilled
        raised half-way keeps what was already emitted)."""
        kind = item[0]
        if kind == "tick":
            self._out.extend(self._price(item[1], item[2]))
            return
        _, rows, source, closed_before = item
        candles = self._parse(rows)
        events = self._out
        for i, c in enumerate(candles):
            if self._last_closed is not None and c.ts <= self._last_closed:
                continue
            later = i + 1 < len(candles) or (self._current is not None and self._current.ts > c.ts)
            if later or (closed_before is not None and c.ts + self.fine_ms <= closed_before):
                await self._close_upto(c.ts, source)
                events.extend(self._closed_fine(c.bar(), live=True))
            else:
                await self._forming(c, source)

    async def _forming(self, c: _Candle, source: str) -> None:
        """An update of the candle in progress (a later start closes the previous one)."""
        events = self._out
        cur = self._current
        if cur is not None and c.ts < cur.ts:
            return                                      # an old update arriving late
        if cur is not None and c.ts > cur.ts:
            if cur.verified:
                await self._close_upto(cur.ts, source)
                events.extend(self._closed_fine(cur.bar(), live=True))
            # an unverified candle is fetched by _close_upto below like any missing one
        await self._close_upto(c.ts, source)
        self._current = c
        bucket = c.ts - c.ts % self.target_ms
        if bucket != self._opened_bucket:
            self._opened_bucket = bucket
            now = self.clock.now_ms() + self._offset_ms
            fresh = now - bucket <= self.live_grace_ms
            events.append(BarOpened(bucket, c.open if fresh else c.close, live=fresh))
            self._last_price_ts = bucket
        events.extend(self._price(self.now(), c.close))

    def _price(self, ts: int, price: float) -> list[MarketEvent]:
        if self._opened_bucket is None or not (price > 0 and math.isfinite(price)):
            return []
        bucket = self._opened_bucket
        ts = min(max(ts, bucket + 1), bucket + self.target_ms - 1)
        if ts <= self._last_price_ts:
            return []
        self._last_price_ts = ts
        return [PriceUpdate(ts, price)]

    async def _close_upto(self, ts: int, source: str) -> None:
        """Everything before fine candle `ts` must be closed and emitted first: backfill."""
        if self._last_closed is None:
            return
        first_missing = self._last_closed + self.fine_ms
        if ts <= first_missing:
            return
        missing = (ts - first_missing) // self.fine_ms
        level = logging.WARNING if missing > self.max_missing_bars else logging.INFO
        log.log(level, "%s: %d %s candle(s) missing before %s (%s): backfilling from REST",
                self.description, missing, self.fine_tf, iso_utc(ts), source)
        try:
            got = await self._fetch_range(first_missing, ts)
        except Exception as exc:
            if not is_transient(exc):
                raise
            raise GapUnfilled(f"{missing} {self.fine_tf} candle(s) from {iso_utc(first_missing)}: "
                              f"{type(exc).__name__}: {exc}") from exc
        if not got and missing and not await self._exchange_has_later(ts):
            raise GapUnfilled(f"{missing} {self.fine_tf} candle(s) from {iso_utc(first_missing)}: "
                              "the exchange returned none yet")
        bars, _ = self._checked([c.bar() for c in got])
        for bar in bars:
            self._out.extend(self._closed_fine(bar, live=True))
        if self._last_closed is not None and self._last_closed + self.fine_ms < ts:
            log.warning("%s: the exchange has no %s candle from %s to %s: the history has a hole "
                        "(a backtest on it has the same)", self.description, self.fine_tf,
                        iso_utc(self._last_closed + self.fine_ms), iso_utc(ts - self.fine_ms))
            self._last_closed = ts - self.fine_ms
        if self._current is not None and self._current.ts < ts:
            self._current = None

    async def _exchange_has_later(self, ts: int) -> bool:
        """Did the exchange's REST answer include candle `ts` or later (the hole is its own)?"""
        rows = await self._fetch(ts, 2)
        return any(c.ts >= ts for c in self._parse(rows))

    def _closed_fine(self, bar: Bar, live: bool) -> list[MarketEvent]:
        """A closed exchange candle: validated, cached, aggregated, emitted."""
        if self._last_closed is not None and bar.ts <= self._last_closed:
            return []
        if self.validate and (problem := bar_problem(bar)) is not None:
            log.warning("%s: candle %s refused: %s", self.symbol, iso_utc(bar.ts), problem)
            return []
        self._last_closed = bar.ts
        if self._current is not None and self._current.ts <= bar.ts:
            self._current = None
        now = self.now()
        if live and self.cache is not None:
            self.cache.store(self.symbol, self.fine_tf, [bar])
        target = bar if self._builder is None else self._builder.add(bar)
        if target is None:
            return []
        close_ts = target.ts + self.target_ms
        self.health.candle_closed(close_ts)
        fresh = live and now - close_ts <= self.live_grace_ms
        return [BarClosed(target, close_ts, live=fresh)]

    async def _hold_until_filled(self, item: tuple, reason: str) -> AsyncIterator[MarketEvent]:
        """REST could not fill a gap: hold everything later, pause entries, retry until whole."""
        self.health.set_data_whole(False, reason)
        yield self._status()
        delay = self.backoff_initial_s
        while True:
            await self.clock.sleep(delay)
            try:
                await self._process(item)
            except GapUnfilled as exc:
                log.warning("gap still unfilled: %s", exc)
                delay = min(self.backoff_max_s, delay * 2)
                continue
            self.health.set_data_whole(True)
            out, self._out = self._out, []
            for event in out:
                yield event
            yield self._status()
            return

    def _status(self) -> FeedStatus:
        """The current status; what the health object already queued is dropped (no repeats)."""
        return self.health.snapshot()

    # ----- transports -------------------------------------------------------------------------
    async def _ws_loop(self) -> None:
        failures = 0
        delay = self.backoff_initial_s
        while True:
            try:
                rows = await self.exchange.watch_ohlcv(self.symbol, self.fine_tf)
            except Exception as exc:
                if not is_transient(exc):
                    raise
                failures += 1
                self._mark_unverified()
                log.warning("%s: websocket failed (%s: %s), attempt %d; retry in %.1f s",
                            self.description, type(exc).__name__, exc, failures, delay)
                if failures >= self.ws_failures_before_rest and not self._rest_mode:
                    log.warning("%s: the socket keeps failing: polling REST every %g s until it "
                                "recovers", self.description, self.rest_interval_s)
                    self._rest_mode = True
                    self._rest_wake.set()
                    self.health.set_transport("rest")
                elif not self._rest_mode:
                    self.health.set_transport("reconnecting")
                await self.clock.sleep(delay)
                delay = min(self.backoff_max_s, delay * 2)
                continue
            if failures or self.health.transport != "websocket":
                if self._rest_mode:
                    log.warning("%s: websocket back: REST polling stops", self.description)
                self._rest_mode = False
                self.health.set_transport("websocket")
            failures = 0
            delay = self.backoff_initial_s
            self.health.message()
            self._inbox.put_nowait(("candles", rows, "websocket", None))

    async def _trades_loop(self) -> None:
        delay = self.backoff_initial_s
        while True:
            try:
                trades = await self.exchange.watch_trades(self.symbol)
            except Exception as exc:
                if not is_transient(exc):
                    raise
                await self.clock.sleep(delay)
                delay = min(self.backoff_max_s, delay * 2)
                continue
            delay = self.backoff_initial_s
            for trade in trades or []:
                price, ts = trade.get("price"), trade.get("timestamp")
                if price is not None and ts is not None:
                    self._inbox.put_nowait(("tick", int(ts), float(price)))

    def _mark_unverified(self) -> None:
        if self._current is not None:
            self._current.verified = False

    async def _rest_loop(self) -> None:
        """Polls REST every rest_interval_s while in REST mode (idle otherwise)."""
        while True:
            if not self._rest_mode:
                self._rest_wake.clear()
                await self._rest_wake.wait()
                continue
            await self._poll_once()
            await self.clock.sleep(self.rest_interval_s)

    async def _poll_once(self) -> bool:
        since = self._last_closed + self.fine_ms if self._last_closed is not None \
            else self.now() - 2 * self.fine_ms
        try:
            rows = await self._fetch(since, PAGE_LIMIT)
        except Exception as exc:
            if not is_transient(exc):
                raise
            log.warning("%s: REST poll failed: %s", self.description, exc)
            if self._rest_mode and self.health.transport == "rest":
                self.health.set_transport("reconnecting" if self.use_websocket else "rest")
            return False
        if self._rest_mode and self.health.transport != "websocket":
            self.health.set_transport("rest")
        self._inbox.put_nowait(("candles", rows, "rest", self.now()))
        return True

    async def _close_timer(self) -> None:
        """Right after each candle's close time, confirm it by REST unless a later candle
        already closed it."""
        while True:
            anchor = self._current.ts if self._current is not None else (
                self._last_closed + self.fine_ms if self._last_closed is not None else None)
            if anchor is None:
                await self.clock.sleep(self.close_confirm_delay_s)
                continue
            due = anchor + self.fine_ms
            wait_ms = due - self.now()
            await self.clock.sleep(max(0.0, wait_ms / 1000.0) + self.close_confirm_delay_s)
            if self._last_closed is not None and self._last_closed >= anchor:
                continue                                 # the socket closed it first
            if not await self._poll_once():
                await self.clock.sleep(1.0)


def _missing_runs(have: set[int], start: int, end: int, step: int, runs: bool = True):
    """Contiguous [a, b) runs of timestamps start, start+step, ... < end absent from `have`
    (or, with runs=False, the list of absent timestamps)."""
    absent = [ts for ts in range(start, end, step) if ts not in have]
    if not runs:
        return absent
    out: list[tuple[int, int]] = []
    for ts in absent:
        if out and out[-1][1] == ts:
            out[-1] = (out[-1][0], ts + step)
        else:
            out.append((ts, ts + step))
    return out
