"""LiveFeed through the real ccxt.pro client against the local Binance simulator: WebSocket
klines, a dropped socket, REST fallback while sockets are refused, and back. Market time runs
60x faster than real time (a 1m candle per real second) on one clock shared by the simulator
and the feed; assertions are about order and completeness, never about wall-clock speed."""
from __future__ import annotations

import asyncio
import random

import ccxt.pro as ccxtpro
import pytest

from data.live_feed import LiveFeed
from data.market import BarClosed, FeedStatus
from tests.exchange_sim.server import ExchangeSim, ccxt_config, production_errors

from .fake_exchange import ScaledClock

M1 = 60_000


async def _until(predicate, limit_s: float) -> bool:
    for _ in range(int(limit_s / 0.05)):
        if predicate():
            return True
        await asyncio.sleep(0.05)
    return predicate()


@pytest.mark.slow
async def test_live_feed_on_the_simulator_survives_drops_and_refused_sockets():
    start = 1_700_000_000_000 - 1_700_000_000_000 % M1 + 20_000
    clock = ScaledClock(start, 60.0)
    sim = ExchangeSim(symbol="BTC/USDT", price=30_000.0, timeframe="1m", clock=clock.now_ms)
    first = start - start % M1
    rng = random.Random(3)
    price, rows = 30_000.0, []
    for k in range(80, 0, -1):
        o = price
        price = o * (1 + rng.gauss(0, 0.001))
        rows.append((first - k * M1, o, max(o, price) + 1, min(o, price) - 1, price, 1.0))
    sim.load_history(rows)
    await sim.start()
    client = ccxtpro.binance(ccxt_config(sim.url, timeout_ms=2_000))
    production_errors(client)
    await client.load_markets()
    feed = LiveFeed(client, "BTC/USDT", 1, warmup_bars=50, clock=clock, rest_interval_s=6.0,
                    backoff_initial_s=1.0, backoff_max_s=6.0, ws_failures_before_rest=2)
    events: list = []

    async def drive():
        p = price
        while True:
            p *= 1 + rng.gauss(0, 0.0005)
            sim.set_price(p)
            await asyncio.sleep(0.05)                  # 3 market seconds

    async def consume():
        async for event in feed.stream(None):
            events.append(event)

    driver = asyncio.create_task(drive())
    consumer = asyncio.create_task(consume())

    def live_closes():
        return [e for e in events if isinstance(e, BarClosed) and e.live]

    try:
        assert await _until(lambda: len(live_closes()) >= 2, 20), "klines over the socket"
        sim.drop_sockets()                                       # a dropped connection
        n = len(live_closes())
        assert await _until(lambda: len(live_closes()) >= n + 2, 20), "bars after the drop"
        sim.refuse_sockets = 10_000                              # the socket keeps failing
        sim.drop_sockets()
        assert await _until(lambda: any(isinstance(e, FeedStatus) and e.transport == "rest"
                                        for e in events), 20), "REST fallback"
        n = len(live_closes())
        assert await _until(lambda: len(live_closes()) >= n + 2, 20), "bars while polling REST"
        sim.refuse_sockets = 0
        assert await _until(lambda: [e for e in events if isinstance(e, FeedStatus)][-1].transport
                            == "websocket", 30), "back on the socket"
    finally:
        driver.cancel()
        consumer.cancel()
        for task in (driver, consumer):
            try:
                await task
            except BaseException:
                pass
        await feed.close()
        await sim.stop()
    closes = [e.bar.ts for e in events if isinstance(e, BarClosed)]
    assert closes == sorted(set(closes)), "no bar twice, none out of order"
    assert all(b - a == M1 for a, b in zip(closes, closes[1:])), "no bar missing"
    assert sim.count("GET", "klines") >= 3
