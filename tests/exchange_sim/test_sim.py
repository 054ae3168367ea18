"""The simulator speaks enough Binance spot for the real, unmodified ccxt client."""
from __future__ import annotations

import asyncio

import ccxt
import ccxt.pro as ccxtpro
import pytest

from tests.exchange_sim.server import ccxt_config, production_errors

SYM = "BTC/USDT"


async def test_markets_and_public_data(sim, ccxt_client):
    m = ccxt_client.market(SYM)
    assert m["spot"] and m["precision"]["amount"] == 0.00001 and m["precision"]["price"] == 0.01
    assert m["limits"]["cost"]["min"] == 5 and m["limits"]["amount"]["min"] == 0.00001
    assert sim.count("GET", "exchangeInfo") == 1
    sim.set_price(30_100.0)
    t = await ccxt_client.fetch_ticker(SYM)
    assert t["last"] == 30_100.0 and t["bid"] == 30_100.0 and t["ask"] == 30_100.01
    book = await ccxt_client.fetch_order_book(SYM, 5)
    assert book["asks"][0] == [30_100.01, 1.0] and len(book["bids"]) == 5
    candles = await ccxt_client.fetch_ohlcv(SYM, "15m", limit=5)
    assert candles[-1][4] == 30_100.0 and candles[-1][2] >= 30_100.0


async def test_history_klines_paginate_by_since(sim, ccxt_client):
    start = sim.candles[-1].ts - 30 * sim.tf_ms
    sim.load_history([(start + i * sim.tf_ms, 100 + i, 101 + i, 99 + i, 100.5 + i, 10) for i in range(30)])
    rows = await ccxt_client.fetch_ohlcv(SYM, "15m", since=start + 10 * sim.tf_ms, limit=5)
    assert [r[0] for r in rows] == [start + (10 + i) * sim.tf_ms for i in range(5)]
    assert rows[0][1:5] == [110, 111, 109, 110.5]


async def test_market_buy_fills_with_fee_in_base_and_balances_move(sim, ccxt_client):
    o = await ccxt_client.create_order(SYM, "market", "buy", 0.01, None, {"clientOrderId": "ta-1"})
    assert o["status"] == "closed" and o["filled"] == 0.01 and o["clientOrderId"] == "ta-1"
    assert o["average"] == 30_000.01
    assert o["fee"]["currency"] == "BTC" and o["fee"]["cost"] == pytest.approx(0.00001)
    bal = await ccxt_client.fetch_balance()
    assert bal["BTC"]["free"] == pytest.approx(0.00999)
    assert bal["USDT"]["free"] == pytest.approx(10_000 - 300.0001)
    found = await ccxt_client.fetch_order(None, SYM, {"origClientOrderId": "ta-1"})
    assert found["id"] == o["id"] and found["status"] == "closed"


async def test_market_order_walks_the_book_and_expires_the_rest(sim, ccxt_client):
    sim.book_levels, sim.level_qty = 2, sim.level_qty / 100       # 0.01 + 0.01 available
    o = await ccxt_client.create_order(SYM, "market", "buy", 0.03, None, {"clientOrderId": "ta-2"})
    assert o["status"] == "expired" and o["filled"] == pytest.approx(0.02) and len(o["trades"]) == 2


async def test_resting_limit_fills_partially_then_fully(sim, ccxt_client):
    sim.deposit("BTC", 1)
    sim.liquidity_per_tick = 0.004
    o = await ccxt_client.create_order(SYM, "limit", "sell", 0.01, 30_500, {"clientOrderId": "ta-3"})
    assert o["status"] == "open" and sim.balance("BTC") == (0.99, 0.01)
    sim.set_price(30_500)
    mid = await ccxt_client.fetch_order(o["id"], SYM)
    assert mid["status"] == "open" and mid["filled"] == pytest.approx(0.004)
    sim.set_price(30_600)
    sim.set_price(30_550)
    done = await ccxt_client.fetch_order(o["id"], SYM)
    assert done["status"] == "closed" and done["filled"] == pytest.approx(0.01)
    trades = await ccxt_client.fetch_order_trades(o["id"], SYM)
    assert sum(t["amount"] for t in trades) == pytest.approx(0.01)
    assert sum(t["fee"]["cost"] for t in trades) == pytest.approx(30_500 * 0.01 * 0.001)
    assert sim.balance("BTC") == pytest.approx((0.99, 0.0))


async def test_stop_loss_triggers_and_sells_at_market(sim, ccxt_client):
    sim.deposit("BTC", 0.01)
    o = await ccxt_client.create_order(SYM, "STOP_LOSS", "sell", 0.01, None,
                                       {"stopPrice": 29_000, "clientOrderId": "ta-4"})
    assert o["status"] == "open"
    sim.set_price(29_500)
    assert (await ccxt_client.fetch_order(o["id"], SYM))["status"] == "open"
    sim.set_price(28_900)
    done = await ccxt_client.fetch_order(o["id"], SYM)
    assert done["status"] == "closed" and done["average"] == 28_900


async def test_cancel_by_client_id_and_open_orders(sim, ccxt_client):
    await ccxt_client.create_order(SYM, "limit", "buy", 0.01, 29_000, {"clientOrderId": "ta-5"})
    assert [o["clientOrderId"] for o in await ccxt_client.fetch_open_orders(SYM)] == ["ta-5"]
    assert sim.balance("USDT")[1] == pytest.approx(290.0)
    c = await ccxt_client.cancel_order(None, SYM, {"origClientOrderId": "ta-5"})
    assert c["status"] == "canceled"
    assert await ccxt_client.fetch_open_orders(SYM) == []
    assert sim.balance("USDT") == (10_000.0, 0.0)
    with pytest.raises(ccxt.OrderNotFound):
        await ccxt_client.cancel_order(None, SYM, {"origClientOrderId": "ta-5"})
    with pytest.raises(ccxt.OrderNotFound):
        await ccxt_client.fetch_order(None, SYM, {"origClientOrderId": "nope"})


async def test_oco_list_one_leg_fills_the_other_expires(sim, ccxt_client):
    sim.deposit("BTC", 0.01)
    r = await ccxt_client.private_post_orderlist_oco({
        "symbol": "BTCUSDT", "side": "SELL", "quantity": "0.01",
        "aboveType": "LIMIT_MAKER", "abovePrice": "31000", "aboveClientOrderId": "g-tp",
        "belowType": "STOP_LOSS", "belowStopPrice": "29000", "belowClientOrderId": "g-stop",
        "listClientOrderId": "g"})
    assert r["listClientOrderId"] == "g" and len(r["orderReports"]) == 2
    assert sim.balance("BTC") == (0.0, 0.01)              # one lock for both legs
    sim.set_price(31_000)
    tp = await ccxt_client.fetch_order(None, SYM, {"origClientOrderId": "g-tp"})
    stop = await ccxt_client.fetch_order(None, SYM, {"origClientOrderId": "g-stop"})
    assert tp["status"] == "closed" and stop["status"] == "expired"
    assert sim.balance("BTC") == (0.0, 0.0)
    assert sim.balance("USDT")[0] == pytest.approx(10_000 + 310 - 0.31)


async def test_oco_price_rule_and_duplicate_locks(sim, ccxt_client):
    sim.deposit("BTC", 0.01)
    with pytest.raises(ccxt.InvalidOrder):
        await ccxt_client.private_post_orderlist_oco({
            "symbol": "BTCUSDT", "side": "SELL", "quantity": "0.01", "aboveType": "LIMIT_MAKER",
            "abovePrice": "29990", "belowType": "STOP_LOSS", "belowStopPrice": "29000"})
    await ccxt_client.create_order(SYM, "limit", "sell", 0.01, 31_000, {"clientOrderId": "x"})
    with pytest.raises(ccxt.InsufficientFunds):
        await ccxt_client.create_order(SYM, "STOP_LOSS", "sell", 0.01, None, {"stopPrice": 29_000})


async def test_filters_refused_by_the_exchange(sim, ccxt_client):
    with pytest.raises(ccxt.BadRequest, match="NOTIONAL"):
        await ccxt_client.create_order(SYM, "limit", "buy", 0.0001, 29_000)
    with pytest.raises(ccxt.InvalidOrder, match="PRICE_FILTER"):
        await ccxt_client.private_post_order({"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT",
                                              "quantity": "0.01", "price": "29000.001",
                                              "timeInForce": "GTC"})
    with pytest.raises(ccxt.InsufficientFunds):
        await ccxt_client.create_order(SYM, "market", "buy", 1.0)


async def test_signing_is_checked(sim):
    for key, secret, exc in (("wrong", sim.secret, ccxt.AuthenticationError),
                             (sim.api_key, "wrong", ccxt.AuthenticationError)):
        c = ccxtpro.binance(ccxt_config(sim.url, api_key=key, secret=secret))
        production_errors(c)
        try:
            with pytest.raises(exc):
                await c.fetch_balance()
        finally:
            await c.close()
    c = ccxtpro.binance(ccxt_config(sim.url))
    c.nonce = lambda: c.milliseconds() - 60_000            # a clock a minute behind
    try:
        with pytest.raises(ccxt.InvalidNonce):
            await c.fetch_balance()
    finally:
        await c.close()


async def test_faults_map_to_ccxt_errors(sim, ccxt_client):
    cases = [("error", dict(status=429, code=-1003, msg="Too many requests.", retry_after=1), ccxt.DDoSProtection),
             ("error", dict(status=418, code=-1003, msg="Way too many requests."), ccxt.DDoSProtection),
             ("error", dict(status=503, code=-1001, msg="Internal error; unable to process your request."), ccxt.OperationFailed),
             ("html", dict(status=502), ccxt.ExchangeNotAvailable),
             # aiohttp silently resends an idempotent GET once when a reused connection is cut
             ("abort", dict(times=2), ccxt.ExchangeNotAvailable),
             ("hang", {}, ccxt.RequestTimeout)]
    for kind, kw, exc in cases:
        sim.fault("account", kind, **kw)
        with pytest.raises(exc):
            await ccxt_client.fetch_balance()
    assert (await ccxt_client.fetch_balance())["USDT"]["free"] == 10_000


async def test_lost_reply_books_the_order(sim, ccxt_client):
    sim.fault("order", "lost_reply", method="POST")
    with pytest.raises(ccxt.RequestTimeout):
        await ccxt_client.create_order(SYM, "market", "buy", 0.01, None, {"clientOrderId": "amb"})
    assert sim.order_by_client_id("amb").status == "FILLED"
    assert (await ccxt_client.fetch_order(None, SYM, {"origClientOrderId": "amb"}))["status"] == "closed"
    sim.fault("order", "abort_after", method="POST")       # a POST is not resent by aiohttp
    with pytest.raises(ccxt.ExchangeNotAvailable):
        await ccxt_client.create_order(SYM, "market", "buy", 0.01, None, {"clientOrderId": "amb2"})
    assert sim.order_by_client_id("amb2").status == "FILLED" and sim.count("POST", "order") == 2


async def test_websocket_klines_trades_and_drop(sim, ccxt_client):
    task = asyncio.ensure_future(ccxt_client.watch_ohlcv(SYM, "15m"))
    for _ in range(100):
        if sim.subscribers("btcusdt@kline_15m"):
            break
        await asyncio.sleep(0.01)
    sim.set_price(30_123.45)
    candles = await asyncio.wait_for(task, 2)
    assert candles[-1][4] == 30_123.45
    trades_task = asyncio.ensure_future(ccxt_client.watch_trades(SYM))
    for _ in range(100):
        if sim.subscribers("btcusdt@trade"):
            break
        await asyncio.sleep(0.01)
    sim.set_price(30_200)
    trades = await asyncio.wait_for(trades_task, 2)
    assert trades[-1]["price"] == 30_200
    pending = asyncio.ensure_future(ccxt_client.watch_ohlcv(SYM, "15m"))
    await asyncio.sleep(0.05)
    assert sim.drop_sockets() >= 1
    with pytest.raises(ccxt.NetworkError):
        await asyncio.wait_for(pending, 2)
    again = asyncio.ensure_future(ccxt_client.watch_ohlcv(SYM, "15m"))   # reconnects, resubscribes
    for _ in range(200):
        if sim.subscribers("btcusdt@kline_15m"):
            break
        await asyncio.sleep(0.01)
    sim.set_price(30_300)
    assert (await asyncio.wait_for(again, 2))[-1][4] == 30_300
