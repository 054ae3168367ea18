"""data.exchange, data.exchange_errors, data.market_rules and agent.exchange_venue against the
simulator, through the real ccxt client."""
from __future__ import annotations

import asyncio
import time

import ccxt
import pytest

from agent.exchange_venue import ExchangeVenue
from agent.venue import OrderOutcomeUnknown, OrderRejected
from data import exchange_errors as errs
from data.exchange import ExchangeClient, ExchangeSettings, create_exchange
from data.exchange_errors import RetryPolicy, SubmitAmbiguous
from data.market_rules import PairRules
from persistence.records import OrderRecord

SYM = "BTC/USDT"
FAST = RetryPolicy(attempts=4, initial_s=0.02, max_backoff_s=0.1, jitter_s=0.01, max_total_s=5)


@pytest.fixture
async def client(sim):
    c = ExchangeClient(ExchangeSettings(exchange_url=sim.url, timeout_ms=1_000, retry=FAST),
                       api_key=sim.api_key, secret=sim.secret)
    await c.load_markets()
    try:
        yield c
    finally:
        await c.close()


@pytest.fixture
async def venue(client):
    v = ExchangeVenue(client, SYM, mode="testnet", poll_interval_s=0.05, owns_client=False)
    updates: list = []
    v.on_update(updates.append)
    v.updates = updates
    try:
        yield v
    finally:
        await v.close()


def buy(cid: str, amount: float = 0.01, price: float = 30_000.0) -> OrderRecord:
    return OrderRecord(client_order_id=cid, trade_id=1, side="buy", type="market", amount=amount,
                       created_ts=0, expected_price=price)


def exits(group: str, amount: float, stop: float, target: float, tp: float | None = None) -> list[OrderRecord]:
    legs = [OrderRecord(f"{group}-stop", 1, "sell", "stop", amount, 0, purpose="exit", stop_price=stop,
                        reason="STOP", group_id=group),
            OrderRecord(f"{group}-fib", 1, "sell", "limit", amount, 0, purpose="exit", limit_price=target,
                        reason="FIB_61.8", group_id=group)]
    if tp is not None:
        legs.append(OrderRecord(f"{group}-tp", 1, "sell", "limit", amount, 0, purpose="exit",
                                limit_price=tp, reason="TP_2.0R", group_id=group))
    return legs


# ----- the ccxt instance ----------------------------------------------------------------------
def test_create_exchange_spot_rate_limited_sandbox_and_url_override():
    ex = create_exchange("binance", api_key="k", secret="s", testnet=True, exchange_url="http://127.0.0.1:9")
    assert ex.enableRateLimit and ex.options["defaultType"] == "spot" and ex.isSandboxModeEnabled
    assert ex.urls["api"]["private"] == "http://127.0.0.1:9/api/v3"
    assert ex.urls["api"]["ws"]["spot"] == "ws://127.0.0.1:9/ws"
    assert ex.exceptions["exact"]["Account has insufficient balance for requested action."] is ccxt.InsufficientFunds
    plain = create_exchange("binance", testnet=True)
    assert "testnet" in plain.urls["api"]["public"]
    with pytest.raises(ValueError):
        create_exchange("nosuchexchange")
    assert "k" not in repr(ExchangeClient(exchange=ex))


# ----- error classes --------------------------------------------------------------------------
@pytest.mark.parametrize("exc, kind", [
    (ccxt.RequestTimeout("x"), "transient"), (ccxt.ExchangeNotAvailable("x"), "transient"),
    (ccxt.DDoSProtection("x"), "transient"), (ccxt.RateLimitExceeded("x"), "transient"),
    (ccxt.OperationFailed("x"), "transient"), (ccxt.InvalidNonce("x"), "transient"),
    (ccxt.AuthenticationError("x"), "permanent"), (ccxt.PermissionDenied("x"), "permanent"),
    (ccxt.InsufficientFunds("x"), "permanent"), (ccxt.InvalidOrder("x"), "permanent"),
    (ccxt.BadRequest("x"), "permanent"), (ccxt.BadSymbol("x"), "permanent"),
    (ccxt.ExchangeError("x"), "permanent")])
def test_classify(exc, kind):
    assert errs.classify(exc).value == kind


@pytest.mark.parametrize("fault, exc", [
    (dict(kind="error", status=503, code=-1001, msg="Internal error; unable to process your request."), None),
    (dict(kind="error", status=500, code=-1000, msg="An unknown error occurred while processing the request."), None),
    (dict(kind="error", status=429, code=-1003, msg="Too many requests.", retry_after=0), None),
    (dict(kind="error", status=418, code=-1003, msg="Way too many requests."), None),
    (dict(kind="html", status=502), None),
    (dict(kind="hang"), None),
])
async def test_transient_read_errors_are_retried(sim, client, fault, exc):
    sim.fault("account", times=2, **fault)
    bal = await client.balance()
    assert bal["USDT"]["free"] == 10_000
    assert sim.count("GET", "account") == 3


@pytest.mark.parametrize("fault, exc", [
    (dict(kind="error", status=401, code=-2014, msg="API-key format invalid."), ccxt.AuthenticationError),
    (dict(kind="error", status=400, code=-1022, msg="Signature for this request is not valid."), ccxt.AuthenticationError),
    (dict(kind="error", status=400, code=-2010, msg="Account has insufficient balance for requested action."), ccxt.InsufficientFunds),
    (dict(kind="error", status=400, code=-1013, msg="Filter failure: LOT_SIZE"), ccxt.InvalidOrder),
    (dict(kind="error", status=400, code=-1121, msg="Invalid symbol."), ccxt.BadSymbol),
])
async def test_permanent_errors_are_never_retried(sim, client, fault, exc):
    sim.fault("account", times=5, **fault)
    with pytest.raises(exc):
        await client.balance()
    assert sim.count("GET", "account") == 1


async def test_retries_give_up_after_the_policy(sim, client):
    sim.fault("account", "error", status=503, code=-1001, msg="Internal error", times=-1)
    with pytest.raises(ccxt.OperationFailed):
        await client.balance()
    assert sim.count("GET", "account") == FAST.attempts


async def test_retry_after_is_honoured(sim, client):
    sim.fault("account", "error", status=429, code=-1003, msg="Too many requests.", retry_after=1)
    t0 = time.monotonic()
    await client.balance()
    assert time.monotonic() - t0 >= 1.0, "waited at least Retry-After, not the 20 ms backoff"
    assert sim.count("GET", "account") == 2


async def test_rate_limited_submit_is_resent_after_retry_after_but_once_booked(sim, client):
    sim.fault("order", "error", method="POST", status=429, code=-1003, msg="Too many requests.", retry_after=0)
    o = await client.create_order(SYM, "market", "buy", 0.01, None, {"clientOrderId": "rl-1"})
    assert o["status"] == "closed" and sim.count("POST", "order") == 2
    assert len([x for x in sim.orders.values() if x.client_id == "rl-1"]) == 1


@pytest.mark.parametrize("kind, kw", [("lost_reply", {}), ("abort_after", {}),
                                      ("error", dict(status=503, code=-1001, msg="Internal error"))])
async def test_ambiguous_submit_is_never_resent(sim, client, kind, kw):
    sim.fault("order", kind, method="POST", **kw)
    with pytest.raises(SubmitAmbiguous):
        await client.create_order(SYM, "market", "buy", 0.01, None, {"clientOrderId": "amb-1"})
    assert sim.count("POST", "order") == 1


# ----- market rules ---------------------------------------------------------------------------
async def test_market_rules_from_load_markets(client):
    r = PairRules.from_market(client.market(SYM))
    assert (r.amount_step, r.price_tick, r.min_amount, r.min_notional) == (0.00001, 0.01, 0.00001, 5.0)
    assert r.round_amount(0.0123456) == 0.01234 and r.round_price(123.456, up=True) == 123.46
    assert r.violation(0.01234, 30_000) is None
    assert "minimum 5" in r.violation(0.0001, 30_000)
    assert "step" in r.violation(0.0123456, 30_000)
    assert "tick" in r.violation(0.01, 30_000.001)
    assert "below the minimum" in r.violation(0.000001, 30_000)


async def test_venue_refuses_locally_what_breaks_the_rules(sim, venue):
    rules = await venue.market_rules()
    assert rules.amount_step == 0.00001 and rules.min_notional == 5.0
    with pytest.raises(OrderRejected, match="notional"):
        await venue.place(buy("small", amount=0.0001))
    assert sim.count("POST", "order") == 0


# ----- the venue ------------------------------------------------------------------------------
async def test_market_buy_reports_net_amount_and_fee_in_quote(sim, venue):
    r = await venue.place(buy("e-1"))
    assert r.status == "filled" and r.fill_price == 30_000.01 and r.exchange_order_id
    assert r.filled_amount == pytest.approx(0.00999)               # 0.1 % commission taken in BTC
    assert r.fee == pytest.approx(0.00001 * 30_000.01)
    assert (await venue.balances())["BTC"] == pytest.approx(0.00999)
    assert (await venue.lookup("e-1")).filled_amount == pytest.approx(0.00999)
    assert await venue.lookup("never-sent") is None


async def test_insufficient_balance_is_a_rejection(sim, venue):
    with pytest.raises(OrderRejected, match="InsufficientFunds"):
        await venue.place(buy("e-big", amount=1.0))


async def test_ambiguous_submit_resolved_by_lookup_exactly_one_order(sim, venue):
    sim.fault("order", "lost_reply", method="POST")
    r = await venue.place(buy("e-amb"))
    assert r.status == "filled" and r.filled_amount == pytest.approx(0.00999)
    assert sim.count("POST", "order") == 1
    assert len([o for o in sim.orders.values() if o.client_id == "e-amb"]) == 1


async def test_ambiguous_submit_never_booked_is_outcome_unknown(sim, venue):
    sim.fault("order", "hang", method="POST")
    with pytest.raises(OrderOutcomeUnknown):
        await venue.place(buy("e-lost"))
    assert sim.count("POST", "order") == 1 and sim.order_by_client_id("e-lost") is None


async def test_partial_entry_fill_reported(sim, venue):
    sim.book_levels, sim.level_qty = 1, sim.level_qty / 200              # 0.005 available
    r = await venue.place(buy("e-part"))
    assert r.status == "canceled" and r.filled_amount == pytest.approx(0.005 * 0.999)
    assert "expired" in r.reason


async def test_oco_exit_group_one_leg_fills_the_other_is_reported(sim, venue):
    await venue.place(buy("e-2"))
    amount = (await venue.lookup("e-2")).filled_amount
    legs = await venue.place_exit_group(exits("G1", amount, stop=29_000, target=31_000, tp=32_000))
    assert [leg.status for leg in legs] == ["open", "open", "canceled"]   # the farther target dropped
    assert sim.count("POST", "orderList/oco") == 1 and sim.count("POST", "order") == 1
    assert len(await venue.open_orders()) == 2
    sim.set_price(29_500)
    sim.set_price(28_990)                                   # the stop triggers, sells at market
    for _ in range(100):
        if {u.order.client_order_id for u in venue.updates} >= {"G1-stop", "G1-fib"}:
            break
        await asyncio.sleep(0.02)
    final = {u.order.client_order_id: u.order for u in venue.updates}
    assert final["G1-stop"].status == "filled" and final["G1-stop"].fill_price == 28_990
    assert final["G1-stop"].fee == pytest.approx(28_990 * 0.00999 * 0.001, rel=1e-6)
    assert final["G1-fib"].status == "canceled"
    assert await venue.open_orders() == []


async def test_exit_already_due_sells_at_market_under_the_leg_id(sim, venue):
    await venue.place(buy("e-3"))
    amount = (await venue.lookup("e-3")).filled_amount
    sim.set_price(31_500)
    legs = await venue.place_exit_group(exits("G2", amount, stop=29_000, target=31_000))
    assert [(leg.client_order_id, leg.status) for leg in legs] == [("G2-stop", "canceled"), ("G2-fib", "filled")]
    assert sim.count("POST", "orderList/oco") == 0


async def test_stop_crossed_between_the_price_read_and_the_list_sells_at_market(sim, venue):
    """The price falls through the stop after the venue read it and before the OCO arrives:
    Binance refuses the list (price relationship); the exit is due, so it is sold at market
    under the stop's id instead of leaving the position unprotected."""
    await venue.place(buy("e-5"))
    amount = (await venue.lookup("e-5")).filled_amount
    new_oco = sim._new_oco

    def price_falls_first(params):
        sim.set_price(28_900)
        return new_oco(params)

    sim._new_oco = price_falls_first
    legs = await venue.place_exit_group(exits("G5", amount, stop=29_000, target=31_000))
    assert [(leg.client_order_id, leg.status) for leg in legs] == [("G5-stop", "filled"), ("G5-fib", "canceled")]
    assert legs[0].fill_price == 28_900
    assert sim.count("POST", "orderList/oco") == 1 and not any(o.status == "NEW" for o in sim.orders.values())


async def test_partial_fill_of_resting_target_reported_then_filled(sim, venue):
    await venue.place(buy("e-4"))
    amount = (await venue.lookup("e-4")).filled_amount
    sim.liquidity_per_tick = 0.004
    await venue.place_exit_group(exits("G3", amount, stop=29_000, target=31_000))
    sim.set_price(31_000)
    for _ in range(100):
        if any(u.order.client_order_id == "G3-fib" for u in venue.updates):
            break
        await asyncio.sleep(0.02)
    first = next(u.order for u in venue.updates if u.order.client_order_id == "G3-fib")
    assert first.status == "open" and first.filled_amount == pytest.approx(0.004)
    sim.set_price(31_010)
    sim.set_price(31_020)
    for _ in range(100):
        if venue.updates[-1].order.status == "filled":
            break
        await asyncio.sleep(0.02)
    last = [u.order for u in venue.updates if u.order.client_order_id == "G3-fib"][-1]
    assert last.status == "filled" and last.filled_amount == pytest.approx(amount)


async def test_cancel_a_leg_cancels_the_list(sim, venue):
    await venue.place(buy("e-5"))
    amount = (await venue.lookup("e-5")).filled_amount
    await venue.place_exit_group(exits("G4", amount, stop=29_000, target=31_000))
    c = await venue.cancel("G4-stop")
    assert c.status == "canceled"
    assert (await venue.lookup("G4-fib")).status == "canceled"
    assert await venue.cancel("never") is None
    assert sim.balance("BTC")[1] == 0
