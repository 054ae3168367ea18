"""The live feed against an in-process fake exchange on a virtual clock: warm-up and its cache,
closes within 1 s, socket drops, REST-only mode, gaps, bad candles, health."""
from __future__ import annotations

import asyncio
import logging

import ccxt
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from data.candle_builder import aggregate
from data.candle_cache import CandleCache
from data.feed_health import FeedHealth, is_stale
from data.live_feed import LiveFeed, exchange_timeframe
from data.market import BarClosed, BarOpened, FeedStatus, PriceUpdate

from .fake_exchange import FakeExchange, VirtualClock, random_walk

M15 = 900_000
M5 = 300_000
T0 = 1_700_000_000_000 - 1_700_000_000_000 % 86_400_000     # a UTC midnight


class Run:
    """A feed streaming in the background while the test moves the clock."""

    def __init__(self, feed: LiveFeed, clock: VirtualClock) -> None:
        self.feed, self.clock = feed, clock
        self.events: list[tuple[int, object]] = []
        self.task: asyncio.Task | None = None

    async def __aenter__(self) -> Run:
        async def consume() -> None:
            async for event in self.feed.stream(None):
                self.events.append((self.clock.now_ms(), event))
        self.task = asyncio.get_running_loop().create_task(consume())
        await self.clock.settle()
        return self

    async def __aexit__(self, *exc) -> None:
        assert self.task is not None
        self.task.cancel()
        try:
            await self.task
        except asyncio.CancelledError:
            pass

    def closed(self, live: bool | None = None) -> list[BarClosed]:
        return [e for _, e in self.events if isinstance(e, BarClosed)
                and (live is None or e.live is live)]

    def statuses(self) -> list[FeedStatus]:
        return [e for _, e in self.events if isinstance(e, FeedStatus)]

    def when_closed(self, close_ts: int) -> int:
        return next(t for t, e in self.events if isinstance(e, BarClosed) and e.close_ts == close_ts)


def market(bars: int = 400, step: int = M15, start_after: int = 300, offset_ms: int = 200_000):
    clock = VirtualClock(T0 + start_after * step + offset_ms)
    return clock, random_walk(T0, step, bars)


def test_exchange_timeframe_picks_the_largest_divisor():
    binance = ["1m", "3m", "5m", "15m", "30m", "1h", "4h"]
    assert exchange_timeframe(15, binance) == ("15m", 15)
    assert exchange_timeframe(10, binance) == ("5m", 5)
    assert exchange_timeframe(60, binance) == ("1h", 60)
    with pytest.raises(ValueError):
        exchange_timeframe(7, ["5m"])


async def test_warm_up_is_paginated_catch_up_and_ends_at_the_last_closed_bar():
    clock, bars = market(bars=2600, start_after=2500)
    ex = FakeExchange(clock, bars)
    feed = LiveFeed(ex, "BTC/USDT", 15, warmup_bars=2200, clock=clock)
    async with Run(feed, clock) as run:
        await clock.advance(1)
    catch_up = run.closed(live=False)
    assert [b.bar for b in catch_up] == bars[300:2500]
    pages = [c for c in ex.rest_calls if c[0] == "ohlcv"]
    assert len(pages) == 3 and all(limit <= 1000 for _, _, limit in pages)


async def test_a_restart_fetches_only_the_candles_missing_from_the_cache(tmp_path):
    clock, bars = market(bars=700, start_after=600)
    cache_path = tmp_path / "candles.db"
    ex = FakeExchange(clock, bars)
    feed = LiveFeed(ex, "BTC/USDT", 15, warmup_bars=500, clock=clock, cache=CandleCache(cache_path))
    async with Run(feed, clock):
        await clock.advance(2 * 900)                 # two live bars, cached as they close
    await feed.close()
    await clock.advance(3 * 900)                      # the agent is down for three bars
    ex2 = FakeExchange(clock, bars)
    feed2 = LiveFeed(ex2, "BTC/USDT", 15, warmup_bars=500, clock=clock, cache=CandleCache(cache_path))
    async with Run(feed2, clock) as run2:
        await clock.advance(1)
    assert [e.bar for e in run2.closed(live=False)] == bars[105:605]
    fetched = [since for kind, since, _ in ex2.rest_calls if kind == "ohlcv"]
    assert fetched == [T0 + 602 * M15], "only the three bars the agent missed"
    await feed2.close()


async def test_live_bars_close_within_a_second_on_the_socket_and_prices_flow():
    clock, bars = market()
    ex = FakeExchange(clock, bars, ws_update_s=7.0, ws_lag_ms=400)
    feed = LiveFeed(ex, "BTC/USDT", 15, warmup_bars=100, clock=clock)
    async with Run(feed, clock) as run:
        await clock.advance(4 * 900)
    live = run.closed(live=True)
    assert [e.bar for e in live] == bars[300:304]
    for e in live:
        assert run.when_closed(e.close_ts) - e.close_ts <= 1000
    opens = [e for _, e in run.events if isinstance(e, BarOpened) and e.live]
    assert [o.ts for o in opens] == [T0 + k * M15 for k in range(301, 305)]
    assert all(o.price == bars[(o.ts - T0) // M15].open for o in opens)
    prices = [e for _, e in run.events if isinstance(e, PriceUpdate)]
    assert len(prices) > 4 * 100
    for p in prices:                                  # inside the bar being formed
        assert p.live and min(bars[(p.ts - T0) // M15].low, 1e9) <= p.price


async def test_a_silent_socket_at_the_close_is_overtaken_by_the_rest_confirmation():
    clock, bars = market()
    ex = FakeExchange(clock, bars, ws_update_s=60.0, ws_lag_ms=20_000)    # slow socket
    feed = LiveFeed(ex, "BTC/USDT", 15, warmup_bars=100, clock=clock)
    async with Run(feed, clock) as run:
        await clock.advance(2 * 900)
    live = run.closed(live=True)
    assert [e.bar for e in live] == bars[300:302]
    for e in live:
        assert run.when_closed(e.close_ts) - e.close_ts <= 1000


async def test_a_socket_drop_across_a_close_is_backfilled_and_never_live_after_the_grace():
    clock, bars = market()
    ex = FakeExchange(clock, bars)
    feed = LiveFeed(ex, "BTC/USDT", 15, warmup_bars=100, clock=clock, backoff_initial_s=1.0)
    async with Run(feed, clock) as run:
        await clock.advance(300)
        ex.ws_down = True
        ex.rest_down = True                          # nothing at all for 20 minutes
        await clock.advance(20 * 60)
        ex.ws_down = ex.rest_down = False
        await clock.advance(3 * 900)
    closed = run.closed()
    assert [e.bar for e in closed][-104:] == bars[200:304]
    late = [e for e in closed if e.bar.ts == T0 + 300 * M15][0]
    assert not late.live, "the bar that closed during the outage is catch-up"
    later = [e for e in closed if e.bar.ts >= T0 + 302 * M15]
    assert later and all(e.live for e in later)
    transports = [s.transport for s in run.statuses()]
    assert "reconnecting" in transports and transports[-1] == "websocket"


async def test_a_failing_socket_falls_back_to_rest_and_returns_to_websocket():
    clock, bars = market()
    ex = FakeExchange(clock, bars)
    ex.ws_down = True
    feed = LiveFeed(ex, "BTC/USDT", 15, warmup_bars=100, clock=clock, rest_interval_s=60,
                    ws_failures_before_rest=3, backoff_initial_s=1.0, backoff_max_s=30)
    async with Run(feed, clock) as run:
        await clock.advance(3 * 900)
        in_rest = run.statuses()[-1]
        rest_closes = list(run.closed(live=True))
        ex.ws_down = False
        await clock.advance(2 * 900)
    assert in_rest.transport == "rest" and in_rest.state == "degraded"
    assert [e.bar for e in rest_closes] == bars[300:303]
    assert all(run.when_closed(e.close_ts) - e.close_ts <= 1000 for e in rest_closes)
    assert run.statuses()[-1].transport == "websocket" and run.statuses()[-1].state == "ok"
    assert [e.bar for e in run.closed(live=True)] == bars[300:305]


async def test_rest_only_mode_polls_and_never_touches_the_socket():
    clock, bars = market()
    ex = FakeExchange(clock, bars)
    feed = LiveFeed(ex, "BTC/USDT", 15, warmup_bars=100, clock=clock, use_websocket=False,
                    rest_interval_s=60)
    async with Run(feed, clock) as run:
        await clock.advance(2 * 900)
    assert ex.ws_calls == 0
    assert [e.bar for e in run.closed(live=True)] == bars[300:302]
    assert all(run.when_closed(e.close_ts) - e.close_ts <= 1000 for e in run.closed(live=True))
    polls = [c for c in ex.rest_calls if c[0] == "ohlcv"]
    assert len(polls) >= 2 * 900 / 60
    assert run.statuses()[-1].transport == "rest" and run.statuses()[-1].state == "ok"


async def test_an_unfillable_gap_holds_later_bars_and_pauses_entries_until_whole(caplog):
    clock, bars = market()
    ex = FakeExchange(clock, bars)
    feed = LiveFeed(ex, "BTC/USDT", 15, warmup_bars=100, clock=clock, max_missing_bars=1,
                    backoff_initial_s=1.0, rest_attempts=2)
    async with Run(feed, clock) as run:
        await clock.advance(300)
        ex.ws_drop_at.append(clock.now_ms() + 1000)  # the socket drops...
        ex.ws_down = True
        ex.rest_down = True
        await clock.advance(3 * 900)                  # ...for three closes, REST down too
        ex.ws_down = False                            # the socket is back first
        with caplog.at_level(logging.WARNING, "data.live_feed"):
            await clock.advance(60)
        paused = [s for s in run.statuses() if not s.data_whole]
        held = run.closed()[-1].bar.ts
        ex.rest_down = False
        await clock.advance(900)
    assert paused and "data gap" in " ".join(paused[-1].problems)
    assert held == T0 + 299 * M15, "nothing after the gap reached the strategy while it was open"
    assert run.statuses()[-1].data_whole
    assert [e.bar for e in run.closed()][-104:] == bars[200:304]
    assert any("missing" in r.message for r in caplog.records if r.levelno == logging.WARNING)


async def test_a_hole_in_the_exchange_history_is_logged_and_skipped(caplog):
    clock, bars = market()
    ex = FakeExchange(clock, bars)
    ex.holes = {T0 + 301 * M15}
    feed = LiveFeed(ex, "BTC/USDT", 15, warmup_bars=100, clock=clock)
    with caplog.at_level(logging.WARNING, "data.live_feed"):
        async with Run(feed, clock) as run:
            await clock.advance(4 * 900)
    got = [e.bar.ts for e in run.closed(live=True)]
    assert got == [T0 + k * M15 for k in (300, 302, 303)]
    assert any("hole" in r.message for r in caplog.records)
    assert all(s.data_whole for s in run.statuses())


async def test_a_bad_candle_on_the_socket_is_refused_and_the_exchange_copy_used():
    clock, bars = market()
    ex = FakeExchange(clock, bars, ws_update_s=3.0, ws_lag_ms=100)
    b = bars[300]
    from data.bar import Bar
    ex.ws_bad[b.ts] = Bar(b.ts, b.open, b.low - 1, b.high + 1, b.close, b.volume)   # high < low
    feed = LiveFeed(ex, "BTC/USDT", 15, warmup_bars=100, clock=clock)
    async with Run(feed, clock) as run:
        await clock.advance(2 * 900)
    assert [e.bar for e in run.closed(live=True)] == [bars[301]] or \
        [e.bar for e in run.closed()][-2:] == bars[300:302]
    assert all(e.bar.high >= e.bar.low for e in run.closed())


async def test_ten_minute_bars_are_built_from_five_minute_candles_live():
    clock, bars = market(bars=1200, step=M5, start_after=1000, offset_ms=60_000)
    ex = FakeExchange(clock, bars, tf="5m")
    feed = LiveFeed(ex, "BTC/USDT", 10, warmup_bars=300, clock=clock)
    assert feed.fine_tf == "5m"
    async with Run(feed, clock) as run:
        await clock.advance(60 * 60)
    expected = aggregate(bars[:1012], M5, 600_000)
    assert [e.bar for e in run.closed()] == expected[-len(run.closed()):]
    assert len(run.closed(live=True)) == 6
    opens = [e.ts for _, e in run.events if isinstance(e, BarOpened) and e.live]
    assert all(ts % 600_000 == 0 for ts in opens) and len(opens) == 6


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 10_000), holes=st.sets(st.integers(0, 299), max_size=6),
       start=st.integers(100, 280))
def test_built_bars_equal_the_replay_aggregation(seed, holes, start):
    """Property: whatever holes the exchange history has, the feed's 10m bars (catch-up and live)
    are exactly the replay's aggregation of the same 5m candles."""
    bars = random_walk(T0, M5, 300, seed=seed)

    async def scenario():
        clock = VirtualClock(T0 + start * M5 + 1000)
        ex = FakeExchange(clock, bars, tf="5m")
        ex.holes = {T0 + h * M5 for h in holes}
        feed = LiveFeed(ex, "X/Y", 10, warmup_bars=start // 2, clock=clock)
        async with Run(feed, clock) as run:
            await clock.advance_to(T0 + 299 * M5 + 2000)
        return [e.bar for e in run.closed()]

    got = asyncio.run(scenario())
    kept = [b for i, b in enumerate(bars[:299]) if i not in holes]
    expected = aggregate(kept, M5, 600_000)
    assert got and got == [b for b in expected if b.ts >= got[0].ts]


async def test_health_checks_staleness_rest_and_balance():
    clock = VirtualClock(T0)
    published: list[FeedStatus] = []
    fail = {"rest": False, "balance": False}

    async def ping():
        if fail["rest"]:
            raise ccxt.RequestTimeout("no answer")
        return clock.now_ms()

    async def balance():
        if fail["balance"]:
            raise ccxt.AuthenticationError("bad key")
        return {"USDT": 1.0}

    health = FeedHealth(clock=clock, timeframe_ms=M15, use_websocket=True, ping=ping,
                        balance=balance, publish=published.append)
    health.set_transport("websocket")
    health.candle_closed(T0)
    assert (await health.check()).state == "ok"
    await clock.advance(25 * 60)                       # 25 min after a 15m close: not stale
    assert (await health.check()).state == "ok"
    await clock.advance(6 * 60)                        # 31 min: older than two timeframes
    status = await health.check()
    assert status.state == "degraded" and "two timeframes" in status.problems[0]
    health.candle_closed(clock.now_ms())
    fail["balance"] = True
    assert "balance unreadable" in " ".join((await health.check()).problems)
    fail["balance"], fail["rest"] = False, True
    assert "REST unreachable" in " ".join((await health.check()).problems)
    fail["rest"] = False
    health.set_transport("reconnecting")
    status = await health.check()
    assert status.state == "down" and status.uptime_ratio == pytest.approx(5 / 6)
    assert (status.checks, status.checks_up) == (6, 5)
    kinds = [(s.state, s.transport) for s in published]
    assert kinds[0] == ("ok", "websocket")
    # every check is published (its counts), and every change: the transport change to
    # "reconnecting" came between two checks
    assert [s.checks for s in published].count(6) == 1 and len(published) == 1 + 6 + 1
    assert is_stale(T0, T0 + 2 * M15 + 1, M15) and not is_stale(T0, T0 + 2 * M15, M15)


async def test_the_health_loop_runs_every_thirty_seconds():
    clock = VirtualClock(T0)
    pings: list[int] = []

    async def ping():
        pings.append(clock.now_ms())

    health = FeedHealth(clock=clock, timeframe_ms=M15, use_websocket=False, ping=ping)
    task = asyncio.get_running_loop().create_task(health.run())
    await clock.advance(95)
    task.cancel()
    assert pings == [T0 + 30_000, T0 + 60_000, T0 + 90_000]
