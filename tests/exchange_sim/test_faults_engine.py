"""Injected faults with the real engine trading at the simulator through ccxt (the setting of
test_testnet_trade: live_exchange_session, compressed market time). Each fault hits during the
live bars before the signal (data faults) or on the entry or the exit list (order faults); in
every case the engine keeps running, no order is booked twice, every bar reaches the strategy
once and in order (gaps backfilled from REST), the REST retries stay within the feed's attempts,
and the trade ends as it does without the fault, or, when the exchange never booked the entry,
no trade at all."""
from __future__ import annotations

import asyncio
from dataclasses import dataclass

import pytest

from agent.events import BarClosed
from agent.session import live_exchange_session
from data import market as mk
from data.sample import generate_sample
from tests.conftest import ACTIVE, make_config
from tests.exchange_sim.test_testnet_trade import M15, SIGNAL, Market, client_for, feed_options, until

LIVE_FROM = SIGNAL - 2
REST_ATTEMPTS = 4


async def at_market(market: Market, ts: int) -> None:
    await asyncio.sleep(market.clock.real_delay(ts))


def socket_down(refusals: int):
    async def act(market: Market) -> None:     # mid-bar: the bar's close must come from REST
        await at_market(market, market.t0 + M15 // 2)
        market.sim.refuse_sockets = refusals
        market.sim.drop_sockets()
    return act


def drops(market_offsets: tuple[float, ...], close: bool = False):
    async def act(market: Market) -> None:
        for k in market_offsets:
            await at_market(market, market.t0 + int(k * M15))
            if close:
                await market.sim.close_sockets()
            else:
                market.sim.drop_sockets()
    return act


@dataclass
class Case:
    name: str
    faults: list[dict]                    # ExchangeSim.fault keyword arguments, armed at go()
    act: object = None                    # a coroutine function run from go() (sockets)
    trade: bool = True                    # the trade happens and ends as without the fault
    entry_requests: int = 1               # POST order requests the exchange sees
    oco_requests: int = 1


CASES = [
    Case("klines 503 -1001 while the socket is down",
         [dict(path="klines", kind="error", method="GET", status=503, code=-1001, times=2)], socket_down(4)),
    Case("klines 429 -1003 (Retry-After) while the socket is down",
         [dict(path="klines", kind="error", method="GET", status=429, code=-1003, retry_after=1, times=2)],
         socket_down(4)),
    Case("klines malformed JSON while the socket is down",
         [dict(path="klines", kind="malformed", method="GET", times=2)], socket_down(4)),
    Case("socket dropped twice (no close frame)", [], drops((0.5, 1.4))),
    Case("socket closed by the server", [], drops((0.5,), close=True)),
    Case("entry: reply lost (booked; looked up, never resent)",
         [dict(path="order", kind="lost_reply", method="POST")]),
    Case("entry: 429 (refused before processing, resent)",
         [dict(path="order", kind="error", method="POST", status=429, code=-1003)], entry_requests=2),
    Case("entry: 503 -1001 (not booked; ambiguous, looked up, never resent)",
         [dict(path="order", kind="error", method="POST", status=503, code=-1001)], trade=False),
    Case("exit list: reply lost (booked)", [dict(path="orderList/oco", kind="lost_reply", method="POST")]),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
async def test_the_engine_rides_out_the_fault(case: Case, tmp_path):
    bars = generate_sample()
    market = Market(bars, LIVE_FROM, SIGNAL + 5, balances={"USDT": 10_000.0}, hang_seconds=5.0)
    await market.sim.start()
    sim, rel = market.sim, market.bars
    cfg = make_config(**ACTIVE)
    engine = live_exchange_session(cfg, tmp_path, client_for(sim, timeout_ms=400), feed_clock=market.clock,
                                   engine_clock=market.clock, poll_interval_s=0.05,
                                   rest_attempts=REST_ATTEMPTS, ws_failures_before_rest=2,
                                   **feed_options(market.speed))
    closes: list = []
    statuses: list[mk.FeedStatus] = []
    engine.bus.subscribe(lambda e: isinstance(e, BarClosed) and closes.append(e.bar.ts))
    engine.bus.subscribe(lambda e: isinstance(e, mk.FeedStatus) and statuses.append(e))
    actor = None
    try:
        await engine.start()
        assert await until(lambda: engine.status().last_bar_ts == rel[LIVE_FROM - 1].ts, 30)
        klines_before = sim.count("GET", "klines")
        for f in case.faults:
            sim.fault(**f)
        market.go()
        if case.act is not None:
            actor = asyncio.get_running_loop().create_task(case.act(market))

        def settled() -> bool:
            if not case.trade:
                return engine.status().last_bar_ts == rel[SIGNAL + 2].ts
            done = engine.store.closed_trades()
            return bool(done) and all(o.status != "open" for t in done
                                      for o in engine.store.orders_for_trade(t.id))

        assert await until(settled, 30), f"{case.name}: not settled; {engine.status()}"
        assert engine.run_state == "RUNNING", engine.status()
        trades = engine.store.closed_trades()
        open_trades = engine.store.open_trade()
        assert await until(lambda: engine.source.feed.health.transport == "websocket", 10), \
            "back on the socket once the exchange accepts it again"
    finally:
        if actor is not None:
            actor.cancel()
        await engine.stop()
        await engine.source.feed.close()
        await market.close()

    assert all(f.hits >= 1 for f in sim.faults), "every fault was hit"
    live = [ts for ts in closes if ts >= rel[LIVE_FROM].ts]
    want = [rel[i].ts for i in range(LIVE_FROM, LIVE_FROM + len(live))]
    assert live == want and len(live) >= SIGNAL + 1 - LIVE_FROM, "every bar once, in order: gaps backfilled"
    for f in sim.faults:
        if f.path == "klines":
            assert f.hits <= REST_ATTEMPTS * 2, "REST retries within the feed's attempts"
    if any(f.path == "klines" for f in sim.faults):
        assert sim.count("GET", "klines") > klines_before + sum(f.hits for f in sim.faults), \
            "the gap was filled from REST once the faults passed"
    assert not any(not st.data_whole for st in statuses[-1:]), "data whole in the end"
    if case.act is not None:
        assert any(s.transport != "websocket" for s in statuses), "the feed saw the socket go"
    buys = [o for o in sim.orders.values() if o.side == "BUY"]
    entry_posts = [p for m, path, p in sim.requests if (m, path) == ("POST", "order") and p.get("side") == "BUY"]
    assert len(entry_posts) == case.entry_requests
    assert len({o.client_id for o in buys}) == len(buys) <= 1, "no order booked twice"
    if not case.trade:
        assert not buys and not trades and open_trades is None and sim.count("POST", "orderList/oco") == 0
        return
    assert len(buys) == 1 and buys[0].status == "FILLED"
    assert len(trades) == 1 and trades[0].exit_reason == "FIB_61.8" and trades[0].exit_fee > 0
    sells = [o for o in sim.orders.values() if o.side == "SELL" and o.executed > 0]
    assert len(sells) == 1, "one exit"
    if sells[0].type == "MARKET":    # the entry resolved after the price had passed the target
        assert sim.count("POST", "orderList/oco") == 0 and not sim.lists
    else:
        assert sells[0].type == "LIMIT_MAKER" and sells[0].status == "FILLED"
        assert sim.count("POST", "orderList/oco") == case.oco_requests and len(sim.lists) == 1
    assert abs(trades[0].exit_price - float(sells[0].quote_qty / sells[0].executed)) < 1e-6
