"""The exchange venue's entry path through the real ccxt client against the simulator: the
slippage check from the order book (skip with a WARNING), the entry order durable before it is
sent, the fill waited for up to order_timeout_seconds then the rest canceled and never retried,
a partial fill kept as the position with exits sized to it, exits never blocked by the check."""
from __future__ import annotations

import asyncio
import logging
import sqlite3
from decimal import Decimal

from persistence.paths import DataDir
from tests.exchange_sim.test_reconcile import (ENTRY, FIRST_SIGNAL, _all_orders, config, new_engine,
                                               oco_legs_open, until)


def entry_signal(engine):
    return [s for s in engine.store.signals() if s.action != "PENDING"]


async def test_entry_skipped_when_the_book_would_slip_beyond_tolerance(sim, tmp_path, caplog):
    sim.level_qty, sim.level_gap_ticks = Decimal("0.005"), 2000          # $20 between levels of 0.005 BTC
    caplog.set_level(logging.WARNING)
    engine, _ = new_engine(sim, tmp_path, FIRST_SIGNAL - 10, config(slippage_tolerance_percent=0.1),
                           stop_at=ENTRY + 2)
    await engine.start()
    await asyncio.wait_for(engine.wait_finished(), 30)
    signals = entry_signal(engine)
    trades = engine.store.closed_trades()
    state = engine.position_state
    await engine.stop()
    assert sim.count("POST", "order") == 0 and sim.count("GET", "depth") >= 1
    assert [s.action for s in signals] == ["SKIPPED"]
    why = signals[0].reason
    assert why.startswith("slippage check: estimated slippage") and "exceeds the tolerance of 0.1%" in why, why
    assert not trades and state == "MONITORING"
    assert any(r.levelno == logging.WARNING and "not traded" in r.getMessage() and "slippage" in r.getMessage()
               for r in caplog.records)


async def test_entry_passes_the_check_within_tolerance(sim, tmp_path):
    sim.level_qty, sim.level_gap_ticks = Decimal("0.005"), 2000          # ~0.25 % for the size: under 0.5 %
    engine, _ = new_engine(sim, tmp_path, FIRST_SIGNAL - 10, config(slippage_tolerance_percent=0.5),
                           hold_after_open=ENTRY)
    await engine.start()
    await until(lambda: engine.store.open_trade() is not None, "the position")
    await engine.stop()
    assert sim.count("POST", "order") == 1


async def test_exits_are_never_blocked_by_the_slippage_check(sim, tmp_path):
    engine, market = new_engine(sim, tmp_path, FIRST_SIGNAL - 10, config(slippage_tolerance_percent=0.1),
                                hold_after_open=ENTRY)
    await engine.start()
    await until(lambda: len(oco_legs_open(sim)) == 2, "the exits resting")
    depth_calls = sim.count("GET", "depth")
    sim.level_qty, sim.level_gap_ticks = Decimal("0.005"), 2000          # the book turns thin
    await engine.manual_close()
    trades = engine.store.closed_trades()
    await engine.stop()
    assert len(trades) == 1 and trades[0].exit_reason == "MANUAL"
    assert sim.count("GET", "depth") == depth_calls, "an exit never asks the book for permission"


async def test_entry_not_filled_in_time_is_canceled_and_not_retried(sim, tmp_path, caplog):
    caplog.set_level(logging.WARNING)
    sim.hold_market_orders = 1
    db = DataDir(tmp_path).db
    seen_in_store: list = []
    original = sim._new_order

    def spy(params):                       # what the store holds when the exchange gets the order
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as con:
            cid = params.get("newClientOrderId")
            seen_in_store.append((cid, con.execute("SELECT status FROM orders WHERE client_order_id = ?",
                                                   (cid,)).fetchone()))
        return original(params)

    sim._new_order = spy
    engine, market = new_engine(sim, tmp_path, FIRST_SIGNAL - 10, config(order_timeout_seconds=5),
                                hold_after_open=ENTRY, stop_at=ENTRY + 3)   # the next signal is at +3
    await engine.start()
    await until(lambda: sim.count("POST", "order") == 1, "the entry sent")
    started = asyncio.get_running_loop().time()
    await until(lambda: sim.count("DELETE", "order") == 1, "the cancel after the timeout", timeout=15)
    waited = asyncio.get_running_loop().time() - started
    await until(lambda: engine.position_state == "MONITORING", "the entry resolved")
    market.gate.set()
    await asyncio.wait_for(engine.wait_finished(), 30)
    orders = _all_orders(engine)
    signals = entry_signal(engine)
    trades = engine.store.closed_trades() + [t for t in [engine.store.open_trade()] if t]
    await engine.stop()
    assert [row for _, row in seen_in_store] == [("new",)], "the order row was durable before it was sent"
    assert 4.5 <= waited <= 7.0, waited
    entry = next(iter(sim.orders.values()))
    assert entry.status == "CANCELED" and entry.executed == 0
    assert [(o.purpose, o.status) for o in orders] == [("entry", "canceled")]
    assert "not filled within order_timeout_seconds (5 s)" in (orders[0].reason or "")
    assert [s.action for s in signals] == ["SKIPPED"] and "canceled" in signals[0].reason
    assert sim.count("POST", "order") == 1, "never retried"
    assert not trades
    assert any("not filled within 5 s" in r.getMessage() for r in caplog.records)


async def test_partial_fill_is_kept_and_the_rest_canceled_exits_sized_to_it(sim, tmp_path):
    sim.hold_market_orders = 1
    engine, market = new_engine(sim, tmp_path, FIRST_SIGNAL - 10, hold_after_open=ENTRY)
    engine.venue.order_timeout_s = 1.0      # the config's minimum is 5 s; the wiring is tested above
    await engine.start()
    await until(lambda: sim.count("POST", "order") == 1, "the entry sent")
    entry = next(iter(sim.orders.values()))
    sim.fill_held(entry.client_id, 0.012)
    await until(lambda: engine.store.open_trade() is not None, "the position from the partial fill")
    await until(lambda: len(oco_legs_open(sim)) == 2, "the exits resting")
    t = engine.store.open_trade()
    orders = _all_orders(engine)
    await engine.stop()
    fee = sum(float(f["commission"]) for f in entry.fills)
    assert entry.status == "CANCELED" and float(entry.executed) == 0.012
    assert abs(t.amount - (0.012 - fee)) < 1e-12
    e = next(o for o in orders if o.purpose == "entry")
    assert e.status == "canceled" and abs(e.filled_amount - t.amount) < 1e-12
    for leg in oco_legs_open(sim):
        assert float(leg.qty) <= t.amount and t.amount - float(leg.qty) < 0.00001, (leg.qty, t.amount)
    assert sim.count("POST", "order") == 1 and sim.count("DELETE", "order") == 1
    assert sim.balance("BTC")[1] == float(oco_legs_open(sim)[0].qty), "the exits lock what was bought"


async def test_without_the_book_stream_the_book_is_read_at_the_signal_not_in_front_of_the_order(sim, tmp_path):
    """The REST fallback: the entry's slippage check walks the book prefetched when the signal
    was found: between the signal bar's close and the order there is no depth request (no round
    trip, no rate-limit wait), as long as the book is younger than BOOK_MAX_AGE_S."""
    engine, _ = new_engine(sim, tmp_path, FIRST_SIGNAL - 10, config(slippage_tolerance_percent=0.5),
                           hold_after_open=ENTRY)
    engine.venue.book_stream_enabled = False
    seen: list[str] = []
    venue, client = engine.venue, engine.venue.client
    read_book, quote_buy = client.order_book, venue.quote_buy

    async def recorded_read(*args, **kwargs):
        seen.append("book read")
        return await read_book(*args, **kwargs)

    async def recorded_quote(amount):
        seen.append("entry asks")
        return await quote_buy(amount)

    client.order_book, venue.quote_buy = recorded_read, recorded_quote
    await engine.start()
    await until(lambda: engine.store.open_trade() is not None, "the position")
    await engine.stop()
    assert seen == ["book read", "entry asks"], seen
    calls = [(m, p) for m, p, _ in sim.requests if p in ("depth", "order") and m in ("GET", "POST")]
    assert calls.count(("POST", "order")) == 1
    before_order = calls[:calls.index(("POST", "order"))]
    assert before_order.count(("GET", "depth")) == 1, calls
