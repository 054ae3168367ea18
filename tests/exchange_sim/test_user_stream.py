"""Order updates through the exchange's user data stream (ccxt watch_orders on Binance's WebSocket
API, as the simulator speaks it), against the simulator through the real ccxt client:

- with polling effectively off (an interval of an hour), a resting OCO leg's fill reaches the
  venue's consumer (and the real engine) by the stream alone: no order lookups at the exchange;
- partial fills arrive one by one with cumulative amounts and fees;
- the stream dropped (or ended by the exchange): polling takes over at its fast interval, the
  stream comes back, and no fill is missed or reported twice;
- the simulator's events themselves (executionReport fields, listStatus, balances).
"""
from __future__ import annotations

import asyncio

import ccxt
import pytest

from agent.clock import ReplayClock
from agent.exchange_venue import ExchangeVenue
from agent.session import exchange_session
from data.exchange import ExchangeClient, ExchangeSettings
from data.exchange_errors import RetryPolicy
from data.sample import generate_sample
from persistence.records import OrderRecord
from tests.conftest import ACTIVE, make_config
from tests.exchange_sim.test_exchange_engine import FIRST_SIGNAL, ScriptedMarket
from tests.exchange_sim.test_exchange_venue import buy, client, exits  # noqa: F401 (client: a fixture)

SYM = "BTC/USDT"
HOUR = 3600.0


async def until(cond, what: str, limit_s: float = 15.0) -> None:
    """Wait for a state (not a time): fail with `what` if it never comes."""
    loop = asyncio.get_running_loop()
    end = loop.time() + limit_s
    while not cond():
        if loop.time() > end:
            raise AssertionError(f"never happened: {what}")
        await asyncio.sleep(0.01)


def make_venue(client, **kw) -> ExchangeVenue:
    kw.setdefault("poll_interval_s", HOUR)
    kw.setdefault("stream_backoff_s", 0.05)
    kw.setdefault("stream_check_s", 0.1)
    v = ExchangeVenue(client, SYM, mode="testnet", owns_client=False, **kw)
    v.updates = []
    v.on_update(v.updates.append)
    return v


def of(venue, cid: str) -> list:
    return [u.order for u in venue.updates if u.order.client_order_id == cid]


async def test_oco_leg_fill_arrives_by_the_stream_with_polling_off(sim, client):
    venue = make_venue(client)
    try:
        entry = await venue.place(buy("e-1"))
        await until(lambda: venue.stream_healthy, "stream subscribed")
        assert sim.user_stream_subscribers() == 1
        legs = await venue.place_exit_group(exits("G1", entry.filled_amount, stop=29_000, target=31_000))
        assert [leg.status for leg in legs] == ["open", "open"]
        lookups = sim.count("GET", "order"), sim.count("GET", "myTrades")
        sim.set_price(31_000)                                     # the target fills
        await until(lambda: any(o.status == "filled" for o in of(venue, "G1-fib")), "target fill reported")
        await until(lambda: any(o.status == "canceled" for o in of(venue, "G1-stop")), "stop leg expiry reported")
        fib = of(venue, "G1-fib")[-1]
        assert fib.filled_amount == pytest.approx(entry.filled_amount) and fib.fill_price == 31_000
        fills = [t for t in sim.my_trades if t["orderId"] == sim.order_by_client_id("G1-fib").order_id]
        assert fib.fee == pytest.approx(sum(float(t["commission"]) for t in fills))   # USDT on a sell
        assert (sim.count("GET", "order"), sim.count("GET", "myTrades")) == lookups, "no polling, no lookups"
        assert len(of(venue, "G1-fib")) == 1, "one report of one fill"
        assert venue.watching() == 0 and venue.stream_updates >= 2
    finally:
        await venue.close()


async def test_partial_fills_by_the_stream_net_of_a_base_commission(sim, client):
    venue = make_venue(client)
    try:
        await venue.market_rules()
        await until(lambda: venue.stream_healthy, "stream subscribed")
        sim.liquidity_per_tick = 0.004
        r = await venue.place(OrderRecord("e-lim", 1, "buy", "limit", 0.01, 0, limit_price=29_990.0))
        assert r.status == "open"
        for k, price in enumerate((29_990, 29_985, 29_980), start=1):
            sim.set_price(price)
            await until(lambda: len(of(venue, "e-lim")) == k, f"fill {k} reported")
        seen = of(venue, "e-lim")
        assert [round(o.filled_amount, 8) for o in seen] == [round(q * 0.999, 8) for q in (0.004, 0.008, 0.01)]
        assert [o.status for o in seen] == ["open", "open", "filled"]
        last = seen[-1]                         # commission in BTC: net amount, fee valued in USDT
        assert last.fill_price == 29_990 and last.fee == pytest.approx(0.01 * 0.001 * 29_990)
        # identical to what a poll of the same order reports
        polled = await venue.lookup("e-lim")
        assert (polled.filled_amount, polled.fee, polled.fill_price) == pytest.approx(
            (last.filled_amount, last.fee, last.fill_price))
        assert sim.count("GET", "order") == 1, "only the lookup above"
    finally:
        await venue.close()


@pytest.mark.parametrize("fault", ["drop", "terminate"])
async def test_stream_lost_polling_takes_over_no_fill_missed_or_doubled(sim, client, fault):
    venue = make_venue(client, poll_interval_s=0.05, stream_poll_interval_s=HOUR)
    try:
        entry = await venue.place(buy("e-2"))
        await until(lambda: venue.stream_healthy, "stream subscribed")
        sim.liquidity_per_tick = 0.004
        await venue.place_exit_group(exits("G2", entry.filled_amount, stop=29_000, target=31_000))
        sim.set_price(31_000)                                     # first part by the stream
        await until(lambda: len(of(venue, "G2-fib")) == 1, "first partial fill")
        sim.refuse_user_streams = 3                               # the stream stays down a while
        assert (sim.drop_user_streams() if fault == "drop" else sim.terminate_user_streams()) == 1
        await until(lambda: not venue.stream_healthy, "stream loss noticed")
        polls = sim.count("GET", "order")
        sim.set_price(31_010)                                     # second part while it is down
        await until(lambda: len(of(venue, "G2-fib")) == 2, "second partial fill, by polling")
        assert sim.count("GET", "order") > polls
        await until(lambda: venue.stream_healthy and sim.user_stream_subscribers() == 1, "stream back")
        assert venue.current_poll_interval() == HOUR
        sim.set_price(31_020)                                     # the rest by the stream again
        await until(lambda: any(o.status == "filled" for o in of(venue, "G2-fib")), "target filled")
        await until(lambda: venue.watching() == 0, "nothing left open")
        fib = of(venue, "G2-fib")
        assert [round(o.filled_amount, 8) for o in fib] == [0.004, 0.008, round(entry.filled_amount, 8)]
        stop = of(venue, "G2-stop")
        assert [o.status for o in stop] == ["canceled"], "the expired leg once"
        assert venue.stream_subscriptions >= 2
    finally:
        await venue.close()


async def test_engine_exit_fill_by_the_stream_alone(sim, tmp_path):
    """The end-to-end trade of test_exchange_engine with polling off: the source does not ask the
    venue after each print, it only waits until the venue knows what the exchange did."""
    bars = generate_sample()[: FIRST_SIGNAL + 12]
    sim.price = sim._tick_down(sim.price.__class__(str(bars[0].open)))
    client = ExchangeClient(ExchangeSettings(exchange_url=sim.url, timeout_ms=2_000,
                                             retry=RetryPolicy(attempts=3, initial_s=0.05)),
                            api_key=sim.api_key, secret=sim.secret)
    holder: dict = {}

    class StreamOnly(ScriptedMarket):
        async def _print(self, ts: int, price: float) -> None:
            self.now = ts
            self.sim.set_price(price, ts=ts)
            finals = {o.client_id for o in self.sim.orders.values() if o.status in ("FILLED", "EXPIRED")}
            await until(lambda: all(self.venue._known.get(c) is None or self.venue._known[c].status != "open"
                                    for c in finals), "the venue heard of every final order")

    class Late:
        def events(self, resume_after_ts):
            return holder["market"].events(resume_after_ts)

    engine = exchange_session(make_config(**ACTIVE), tmp_path, Late(), client, clock=ReplayClock(),
                              poll_interval_s=HOUR)
    holder["market"] = StreamOnly(bars, FIRST_SIGNAL - 10, sim, engine.venue)
    await engine.start()
    await asyncio.wait_for(engine.wait_finished(), 45)
    trades = engine.store.closed_trades()
    stream_updates = engine.venue.stream_updates
    await engine.stop()
    assert len(trades) == 1 and trades[0].exit_reason == "STOP"
    assert sim.count("GET", "order") == 0, "no order was polled: the exit fill came by the stream"
    assert stream_updates > 0
    stop = next(o for o in sim.orders.values() if o.client_id.endswith("-stop"))
    fills = [x for x in sim.my_trades if x["orderId"] == stop.order_id]
    assert abs(trades[0].exit_fee - sum(float(x["commission"]) for x in fills)) < 1e-6


async def test_simulator_user_stream_events(sim, client):
    """What the simulator sends, as Binance documents it: NEW, TRADE with cumulative and last
    quantity, commission and asset; CANCELED naming the cancel's id in c and the order's in C;
    listStatus for OCO lists; outboundAccountPosition after balances change."""
    ex = client.ex
    watching = asyncio.ensure_future(ex.watch_orders(SYM))    # subscribes (and readies ccxt's caches)
    await until(lambda: sim.user_stream_subscribers() == 1, "subscribed")
    await ex.create_order(SYM, "limit", "buy", 0.01, 29_000, {"clientOrderId": "L-1"})
    await ex.cancel_order(None, SYM, {"origClientOrderId": "L-1"})
    await ex.create_order(SYM, "market", "buy", 0.02, None, {"clientOrderId": "M-1"})
    await ex.private_post_orderlist_oco({"symbol": "BTCUSDT", "side": "SELL", "quantity": "0.01",
                                         "aboveType": "LIMIT_MAKER", "abovePrice": "30100",
                                         "belowType": "STOP_LOSS", "belowStopPrice": "29900",
                                         "listClientOrderId": "LST", "aboveClientOrderId": "A-1",
                                         "belowClientOrderId": "B-1"})
    sim.set_price(30_100)
    ev = sim.user_events
    reports = [(e["c"], e["C"], e["x"], e["X"]) for e in ev if e["e"] == "executionReport"]
    cancel = next(r for r in reports if r[2] == "CANCELED")
    assert cancel[1] == "L-1" and cancel[0] != "L-1"
    assert ("M-1", "", "NEW", "NEW") in reports and ("B-1", "", "EXPIRED", "EXPIRED") in reports
    trade = next(e for e in ev if e["e"] == "executionReport" and e["c"] == "A-1" and e["x"] == "TRADE")
    assert (trade["X"], trade["z"], trade["l"], trade["L"], trade["N"]) == ("FILLED", "0.01", "0.01", "30100", "USDT")
    assert trade["g"] >= 0 and trade["m"] is True and float(trade["n"]) == pytest.approx(0.301)
    m_trades = [e for e in ev if e["e"] == "executionReport" and e["c"] == "M-1" and e["x"] == "TRADE"]
    assert m_trades[-1]["X"] == "FILLED" and m_trades[-1]["N"] == "BTC"
    assert [e["L"] for e in ev if e["e"] == "listStatus"] == ["EXECUTING", "ALL_DONE"]
    assert any(e["e"] == "outboundAccountPosition" and {b["a"] for b in e["B"]} >= {"BTC"} for e in ev)
    # the ws order ccxt builds from them: the target closed, the stop expired
    await asyncio.sleep(0)
    await until(lambda: {o["clientOrderId"]: o["status"] for o in (ex.orders or [])}.get("A-1") == "closed",
                "ccxt saw the target filled")
    watching.cancel()
    sim.reject_user_stream_subscribe = 1
    sim.drop_user_streams()
    await until(lambda: sim.user_stream_subscribers() == 0, "dropped")
    # ccxt 4.5.90 maps the refusal to AuthenticationError, then trips over its own cleanup
    # (binance.py deletes the subscription twice) and raises KeyError: either way it is refused
    with pytest.raises((ccxt.AuthenticationError, KeyError)):
        await ex.watch_orders(SYM)
    assert sim.user_stream_subscribers() == 0
