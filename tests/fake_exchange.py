"""An in-process stand-in for a ccxt.pro exchange, on a virtual clock, for the live feed's tests.

It implements the async methods the feed calls (fetch_time, fetch_ohlcv, watch_ohlcv,
watch_trades) over a scripted series of candles, with faults switched on by the test: socket
drops, a socket that will not connect, REST errors, candles missing at the exchange, a bad
candle on the socket. Time only moves when the test advances the VirtualClock, so hours of
market run in milliseconds and nothing depends on the machine's speed.
"""
from __future__ import annotations

import asyncio
import heapq
import itertools
import random

import ccxt

from data.bar import Bar


class VirtualClock:
    """now_ms/sleep for the feed; `advance_to` wakes sleepers in time order."""

    def __init__(self, start_ms: int) -> None:
        self._now = start_ms
        self._sleepers: list[tuple[int, int, asyncio.Future]] = []
        self._seq = itertools.count()

    def now_ms(self) -> int:
        return self._now

    async def sleep(self, seconds: float) -> None:
        wake = self._now + max(0, round(seconds * 1000))
        if wake <= self._now:
            await asyncio.sleep(0)
            return
        fut = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (wake, next(self._seq), fut))
        await fut

    async def sleep_until(self, wake_ms: int) -> None:
        await self.sleep((wake_ms - self._now) / 1000)

    @staticmethod
    async def settle(rounds: int = 30) -> None:
        for _ in range(rounds):
            await asyncio.sleep(0)

    async def advance_to(self, t_ms: int) -> None:
        await self.settle()
        while self._sleepers and self._sleepers[0][0] <= t_ms:
            wake, _, fut = heapq.heappop(self._sleepers)
            self._now = max(self._now, wake)
            if not fut.done():
                fut.set_result(None)
                await self.settle()
        self._now = max(self._now, t_ms)
        await self.settle()

    async def advance(self, seconds: float) -> None:
        await self.advance_to(self._now + round(seconds * 1000))


def random_walk(start_ts: int, step_ms: int, count: int, seed: int = 1, price: float = 100.0) -> list[Bar]:
    rng = random.Random(seed)
    bars = []
    for i in range(count):
        o = price
        c = max(1.0, o * (1 + rng.gauss(0, 0.004)))
        h = max(o, c) * (1 + abs(rng.gauss(0, 0.002)))
        low = min(o, c) * (1 - abs(rng.gauss(0, 0.002)))
        bars.append(Bar(start_ts + i * step_ms, o, h, low, c, round(rng.uniform(1, 50), 6)))
        price = c
    return bars



class EngineClock:
    """The engine's clock on a VirtualClock: the virtual time, not the bars'."""

    def __init__(self, clock: VirtualClock) -> None:
        self.clock = clock

    def now_ms(self) -> int:
        return self.clock.now_ms()

    def observe(self, ts_ms: int) -> None:
        return None


class FakeExchange:
    """A market of scripted candles on `step_ms` (the exchange timeframe `tf`)."""

    id = "fake"

    def __init__(self, clock: VirtualClock, candles: list[Bar], tf: str = "15m",
                 ws_update_s: float = 5.0, ws_lag_ms: int = 150,
                 timeframes: tuple[str, ...] = ("1m", "3m", "5m", "15m", "30m", "1h")) -> None:
        self.clock = clock
        self.tf = tf
        self.step_ms = {"m": 60_000, "h": 3_600_000}[tf[-1]] * int(tf[:-1])
        self.candles = {b.ts: b for b in candles}
        self.timeframes = {t: t for t in timeframes}
        self.ws_update_s = ws_update_s
        self.ws_lag_ms = ws_lag_ms
        # faults
        self.holes: set[int] = set()             # candles the exchange never had
        self.rest_down = False                   # every REST call raises NetworkError
        self.ws_down = False                     # watch_ohlcv cannot connect
        self.ws_drop_at: list[int] = []          # times at which the open socket drops
        self.ws_bad: dict[int, Bar] = {}         # what the socket says instead of the truth
        # records
        self.rest_calls: list[tuple[str, int | None, int | None]] = []
        self.ws_calls = 0
        self._ws_sent_ts: int | None = None      # last candle sent on this connection
        self._ws_last_push: int | None = None
        self.closed = False

    # ----- the market -------------------------------------------------------------------------
    def visible(self, ts: int, now: int) -> Bar | None:
        """Candle `ts` as the exchange shows it at `now`: final once closed, partial while forming."""
        bar = self.candles.get(ts)
        if bar is None or ts in self.holes or now < ts:
            return None
        if now >= ts + self.step_ms:
            return bar
        frac = (now - ts) / self.step_ms
        close = bar.open + (bar.close - bar.open) * frac
        return Bar(ts, bar.open, max(bar.open, close), min(bar.open, close), close, bar.volume * frac)

    @staticmethod
    def row(bar: Bar) -> list:
        return [bar.ts, bar.open, bar.high, bar.low, bar.close, bar.volume]

    # ----- REST -------------------------------------------------------------------------------
    async def fetch_time(self) -> int:
        self.rest_calls.append(("time", None, None))
        if self.rest_down:
            raise ccxt.ExchangeNotAvailable("fake: REST down")
        return self.clock.now_ms()

    async def fetch_ohlcv(self, symbol, timeframe="1m", since=None, limit=None, params=None):
        assert timeframe == self.tf, f"asked for {timeframe}, the fake serves {self.tf}"
        self.rest_calls.append(("ohlcv", since, limit))
        if self.rest_down:
            raise ccxt.RequestTimeout("fake: REST timeout")
        now = self.clock.now_ms()
        limit = min(limit or 500, 1000)
        start = since if since is not None else now - now % self.step_ms - (limit - 1) * self.step_ms
        start -= start % self.step_ms if start % self.step_ms else 0
        if since is not None and since % self.step_ms:
            start += self.step_ms
        out = []
        ts = start
        while len(out) < limit and ts <= now:
            bar = self.visible(ts, now)
            if bar is not None:
                out.append(self.row(bar))
            ts += self.step_ms
        return out

    async def fetch_ticker(self, symbol):
        now = self.clock.now_ms()
        bar = self.visible(now - now % self.step_ms, now)
        return {"last": bar.close if bar else None, "timestamp": now}

    # ----- WebSocket --------------------------------------------------------------------------
    async def watch_ohlcv(self, symbol, timeframe="1m", since=None, limit=None, params=None):
        assert timeframe == self.tf
        self.ws_calls += 1
        if self.ws_down:
            self._ws_sent_ts = None
            await asyncio.sleep(0)
            raise ccxt.NetworkError("fake: connection refused")
        now = self.clock.now_ms()
        if self._ws_last_push is None:
            due = now + 50                           # the first message of a new connection
        else:
            last = self._ws_last_push
            next_boundary = last - last % self.step_ms + self.step_ms + self.ws_lag_ms
            due = max(min(last + round(self.ws_update_s * 1000), next_boundary), now + 1)
        drops = [t for t in self.ws_drop_at if now <= t < due]
        if drops:
            await self.clock.sleep_until(drops[0])
            self.ws_drop_at.remove(drops[0])
            self._ws_sent_ts = None
            self._ws_last_push = None
            raise ccxt.NetworkError("fake: connection closed by the server")
        await self.clock.sleep_until(due)
        if self.ws_down:
            self._ws_sent_ts = None
            self._ws_last_push = None
            raise ccxt.NetworkError("fake: connection lost")
        now = self.clock.now_ms()
        self._ws_last_push = now
        current = now - now % self.step_ms
        first = current if self._ws_sent_ts is None else self._ws_sent_ts
        rows = []
        for ts in range(first, current + 1, self.step_ms):
            bar = self.ws_bad.get(ts) or self.visible(ts, now)
            if bar is not None:
                rows.append(self.row(bar))
        self._ws_sent_ts = current
        return rows

    async def watch_trades(self, symbol, since=None, limit=None, params=None):
        await self.clock.sleep(1.0)
        now = self.clock.now_ms()
        bar = self.visible(now - now % self.step_ms, now)
        return [] if bar is None else [{"timestamp": now, "price": bar.close, "amount": 0.01}]

    async def close(self) -> None:
        self.closed = True


class ScaledClock:
    """Real time sped up `speed` times from `start_ms` (market time): for runs against real
    sockets (the simulator, benchmarks) where a virtual clock cannot stop the network."""

    def __init__(self, start_ms: int, speed: float) -> None:
        import time as _time
        self._perf = _time.perf_counter
        self.start_ms, self.speed = start_ms, speed
        self._t0 = self._perf()

    def now_ms(self) -> int:
        return self.start_ms + int((self._perf() - self._t0) * 1000 * self.speed)

    def real_at(self, market_ms: int) -> float:
        """perf_counter() value at which the market clock reads market_ms."""
        return self._t0 + (market_ms - self.start_ms) / 1000 / self.speed

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds) / self.speed)

    async def sleep_until(self, wake_ms: int) -> None:
        await self.sleep((wake_ms - self.now_ms()) / 1000)
