"""Cash and partly filled exits at an exchange, through the real engine, ExchangeVenue and the
real ccxt client against the simulator (helpers from test_reconcile.py):

- cash is the exchange's free quote balance, adopted at start-up: the entry is sized on it, not
  on config.exchange.paper_initial_balance, and it is read again after fills;
- a deposit made while the agent is down becomes cash at the restart, said at INFO with both
  figures, and is not taken for a trading result (the day's start equity moves with it);
- an exit leg that fills in part (the simulator's liquidity_per_tick; its OCO sibling expires)
  reduces the position and pays cash at once; the remainder gets exits of its own at the exchange
  and closes later; the trade's pnl is the exit fills' proceeds less every fee less what the
  entry cost. The same while the agent is down: the restart reduces, re-protects, and does not halt.
"""
from __future__ import annotations

import logging
from decimal import ROUND_DOWN, Decimal

from agent.risk_manager import DayState
from tests.exchange_sim.test_reconcile import (BARS, ENTRY, FIRST_SIGNAL, _all_orders, entry_orders, kill,
                                               new_engine, oco_legs_open, open_position, position_with_exits,
                                               run_to_end, until)

STEP = Decimal("0.00001")


def exit_fills(sim) -> list[dict]:
    return [x for x in sim.my_trades if not x["isBuyer"]]


def cash_matches(engine, sim) -> bool:
    return abs(engine.acct.balance - sim.balance("USDT")[0]) < 1e-6


def assert_pnl_is_the_fills(t, sim) -> None:
    sells = exit_fills(sim)
    proceeds = sum(float(x["quoteQty"]) for x in sells)
    fees = sum(float(x["commission"]) for x in sells)
    sold = sum(float(x["qty"]) for x in sells)
    assert len({x["orderId"] for x in sells}) >= 2, "sold by more than one order"
    assert 0 <= t.amount - sold < float(STEP), "all of it, but the commission dust below one step"
    assert abs(t.exit_price - proceeds / sold) < 1e-6, "the fills' weighted price"
    assert abs(t.exit_fee - fees) < 1e-8, "every exit fee"
    assert abs(t.pnl - (proceeds - fees - t.amount * t.entry_price - t.entry_fee)) < 1e-6


def part_fill_target(sim, ts: int):
    """The target leg sells a third, its stop sibling expires, the price falls back between them."""
    target = next(o for o in sim.orders.values() if o.type == "LIMIT_MAKER" and o.status == "NEW")
    stop = next(o for o in sim.orders.values() if o.list_id == target.list_id and o is not target)
    part = (target.qty / 3).quantize(STEP, rounding=ROUND_DOWN)
    sim.liquidity_per_tick = part
    sim.set_price(float(target.price), ts=ts)
    assert target.status == "PARTIALLY_FILLED" and target.executed == part and stop.status == "EXPIRED"
    sim.set_price(float((target.price + stop.stop) / 2), ts=ts + 1)
    sim.liquidity_per_tick = None
    return target, stop, float(part)


async def test_cash_is_the_exchange_balance_and_sizes_the_entry(sim, tmp_path, caplog):
    sim.deposit("USDT", 15_000.0)                 # 25 000 at the exchange; the config says 10 000
    caplog.set_level(logging.INFO, logger="agent.engine")
    engine, market = await open_position(sim, tmp_path)
    try:
        t = engine.store.open_trade()
        entry = entry_orders(engine)[0]
        ref = entry.expected_price

        def sized(cash: float) -> float:
            return engine.risk.check(balance=cash, equity=cash, entry=ref, risk_stop=t.risk_stop,
                                     signal_close=ref, open_positions=0, day=DayState(0, cash, 0)).amount

        assert sized(25_000.0) != sized(10_000.0)
        assert entry.amount == sized(25_000.0), "sized on the exchange's balance"
        assert float(sim.orders[1].qty) == entry.amount
        assert any("cash at the exchange: 25000 USDT free, adopted (paper_initial_balance 10000"
                   in r.getMessage() for r in caplog.records), [r.getMessage() for r in caplog.records]
        await until(lambda: cash_matches(engine, sim), "cash read again after the entry fill")
        assert engine.acct.balance < 25_000.0 - entry.amount * ref * 0.99
        market.gate.set()
        await engine.wait_finished()
        trades = engine.store.closed_trades()
        assert len(trades) == 1 and trades[0].exit_reason == "STOP"
        assert cash_matches(engine, sim), (engine.acct.balance, sim.balance("USDT"))
    finally:
        await engine.stop()


async def test_a_deposit_while_down_is_cash_at_the_restart(sim, tmp_path, caplog):
    engine, _ = new_engine(sim, tmp_path, FIRST_SIGNAL - 10, stop_at=FIRST_SIGNAL - 5)
    await run_to_end(engine)
    before, day = engine.acct.balance, engine.acct.day
    await engine.stop()
    assert before == 10_000.0 and day is not None and day.start_equity == 10_000.0

    sim.deposit("USDT", 2_500.5)
    caplog.set_level(logging.INFO, logger="agent.engine")
    caplog.clear()                       # only the restart's lines (the first start may be captured too)
    engine, _ = new_engine(sim, tmp_path, FIRST_SIGNAL - 5, stop_at=FIRST_SIGNAL - 5)
    await engine.start()
    after, day, status = engine.acct.balance, engine.acct.day, engine.status()
    await engine.stop()
    assert after == 12_500.5 and status.balance == 12_500.5 and status.equity == 12_500.5
    lines = [r for r in caplog.records if "cash at the exchange" in r.getMessage()]
    assert len(lines) == 1 and lines[0].levelno == logging.INFO
    assert "12500.5 USDT free, the agent's record was 10000 (+2500.5" in lines[0].getMessage()
    assert day.start_equity == 12_500.5, "a deposit is not a trading result"


async def test_partial_exit_reduces_the_position_and_the_rest_stays_protected_then_closes(sim, tmp_path):
    engine, market = await open_position(sim, tmp_path)
    try:
        t = engine.store.open_trade()
        target, stop, part = part_fill_target(sim, BARS[ENTRY].ts + 500)
        market.now = BARS[ENTRY].ts + 501
        await engine.venue.poll_now()
        await until(lambda: sim.count("POST", "orderList/oco") == 2 and len(oco_legs_open(sim)) == 2,
                    "exits for the remainder resting at the exchange")
        await until(lambda: sum(o.status == "open" for o in _all_orders(engine)
                                if o.client_order_id.startswith(f"ta-G{t.id}-2-")) == 2, "and stored")
        await until(lambda: cash_matches(engine, sim), "cash read after the partial fill")
        left = t.amount - part
        assert engine.store.open_trade() is not None and engine.position_state == "IN_POSITION"
        assert abs(engine.acct.position_amount() - left) < 1e-12
        assert abs(sum(sim.balance("BTC")) - left) < 1e-12, "the exchange holds what the agent says"
        for leg in oco_legs_open(sim):
            assert float(leg.qty) == float(Decimal(str(left)).quantize(STEP, rounding=ROUND_DOWN))
        assert engine.halt_reason is None
        market.gate.set()
        await engine.wait_finished()
        trades = engine.store.closed_trades()
        assert engine.halt_reason is None, engine.halt_reason
        assert len(trades) == 1 and trades[0].exit_reason == "STOP" and engine.store.open_trade() is None
        assert_pnl_is_the_fills(trades[0], sim)
        assert cash_matches(engine, sim)
        assert sim.count("POST", "order") == 1, "no market sell needed"
    finally:
        await engine.stop()


async def test_partial_exit_while_down_is_reduced_and_reprotected_at_the_restart(sim, tmp_path):
    await position_with_exits(sim, tmp_path)
    target, stop, part = part_fill_target(sim, BARS[ENTRY].ts + 60_000)

    engine, _ = new_engine(sim, tmp_path, ENTRY, stop_at=ENTRY)
    await engine.start()
    t = engine.store.open_trade()
    halt, left, cash_ok = engine.halt_reason, engine.acct.position_amount(), cash_matches(engine, sim)
    await engine.stop()
    assert halt is None, halt
    assert t is not None and abs(left - (t.amount - part)) < 1e-12
    assert cash_ok, "the partial fill's proceeds are cash"
    assert sim.count("POST", "orderList/oco") == 2 and len(oco_legs_open(sim)) == 2
    assert target.status == "CANCELED" and target.executed == Decimal(str(part))

    engine, _ = new_engine(sim, tmp_path, ENTRY)
    await run_to_end(engine)
    trades = engine.store.closed_trades()
    halt, cash_ok = engine.halt_reason, cash_matches(engine, sim)
    await engine.stop()
    assert halt is None, halt
    assert len(trades) == 1 and trades[0].exit_reason == "STOP"
    assert_pnl_is_the_fills(trades[0], sim)
    assert cash_ok
