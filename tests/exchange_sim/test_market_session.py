"""The composition the command line uses for a live market (`market_session`), against the
local simulator through the real ccxt client: paper orders on live prices, and orders at the
exchange on testnet. Both warm up from the exchange's history, reach the live part, and close
their exchange connection with the engine."""
from __future__ import annotations

import asyncio
import json
import time

import pytest

from agent.session import market_session
from tests.conftest import make_config
from tests.exchange_sim.server import ExchangeSim

M15 = 15 * 60_000


def _history(end_ms: int, n: int) -> list[tuple[int, float, float, float, float, float]]:
    price, rows = 30_000.0, []
    for k in range(n, 0, -1):
        o = price
        price = o * (1.0005 if k % 7 else 0.998)
        rows.append((end_ms - k * M15, o, max(o, price) + 5, min(o, price) - 5, price, 3.0))
    return rows


async def _until(predicate, limit_s: float) -> bool:
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        await asyncio.sleep(0.05)
    return predicate()


@pytest.fixture
async def market():
    now = int(time.time() * 1000)
    sim = ExchangeSim(symbol="BTC/USDT", price=30_000.0, balances={"USDT": 10_000.0})
    sim.load_history(_history(now - now % M15, 3_300))
    await sim.start()
    try:
        yield sim
    finally:
        await sim.stop()


@pytest.mark.parametrize("mode", ["paper", "testnet"])
async def test_a_live_market_session_warms_up_goes_live_and_closes_its_connection(market, tmp_path, mode):
    config = make_config(exchange={"paper_trading": mode == "paper", "testnet": True})
    keys = {} if mode == "paper" else {"api_key": market.api_key, "secret": market.secret}
    engine = market_session(config, tmp_path, mode, api_key=keys.get("api_key"),
                            secret=keys.get("secret"), exchange_url=market.url)
    await engine.start()

    async def trade_prints():                  # Binance pushes the forming kline every ~2 s
        price = 30_100.0
        while True:
            price += 1.0
            market.set_price(price)
            await asyncio.sleep(0.2)

    prints = asyncio.create_task(trade_prints())
    try:
        assert await _until(lambda: engine.status().feed_state.startswith("live"), 30), engine.status()
        status = engine.status()
        assert status.run_state == "RUNNING"
        assert status.last_bar_ts is not None and status.last_bar_ts >= market.candles[-2].ts
    finally:
        prints.cancel()
        await engine.stop()
    state = json.loads((tmp_path / "state.json").read_text())
    assert state["run_state"] == "STOPPED"
    assert engine.source.feed.exchange.session is None or engine.source.feed.exchange.session.closed
    klines = market.count("GET", "klines")
    assert klines >= 4, "the warm-up is paginated (3,096 bars at 1,000 a page)"
    assert engine.status().mode == mode


async def test_paper_on_live_prices_fills_a_market_order_by_walking_the_streamed_book(market, tmp_path):
    from agent.venue import walk_book
    from persistence.records import OrderRecord

    config = make_config(exchange={"paper_trading": True, "testnet": True})
    market.book_churn = True                      # a busy market: the book changes every 100 ms
    engine = market_session(config, tmp_path, "paper", api_key=None, secret=None, exchange_url=market.url)
    await engine.start()

    async def trade_prints():                      # Binance pushes the forming kline every ~2 s
        while True:
            market.set_price(30_100.0)
            await asyncio.sleep(0.2)

    prints = asyncio.create_task(trade_prints())
    try:
        stream = engine.source.book
        assert await _until(lambda: engine.status().feed_state.startswith("live")
                            and stream.book() is not None, 30), (engine.status().feed_state, stream.why_not())
        amount = float(market.level_qty) * 2.5    # takes three levels of asks
        depth = await engine.source.feed.exchange.fetch_order_book("BTC/USDT", 100)
        expected = walk_book(depth["asks"], amount)
        depth_reads = market.count("GET", "depth")
        filled = await engine.venue.place(OrderRecord(
            client_order_id="walk-1", trade_id=None, side="buy", type="market", amount=amount,
            created_ts=0, purpose="entry"))
        assert market.count("GET", "depth") == depth_reads, "the fill read no book over REST"
    finally:
        prints.cancel()
        await engine.stop()
    assert filled.status == "filled"
    assert filled.fill_price == pytest.approx(expected.average_price)
    assert filled.fill_price > depth["asks"][0][0], "the size took more than the best ask"
