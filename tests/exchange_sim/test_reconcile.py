"""Start-up reconciliation (agent/reconcile.py) through the real ccxt client against the simulator.

Each test runs the real engine (agent.session.exchange_session) on a data folder, KILLS it at a
point of the order lifecycle, changes the exchange while it is down where the test says, then
starts a new engine on the same data folder and the same simulator and checks that the store and
the exchange agree: one entry, exits in place, no order sent twice (sim.requests), or a HALT
naming both sides of a mismatch.

The kill here is in-process and as abrupt as SIGKILL for everything durable: the reply the
engine was waiting for is lost at the simulator (`lost_reply`: processed, never answered), every
task of the engine is cancelled where it stands, and the store is closed WITHOUT a commit (its
close rolls back, exactly what a dead process leaves). test_reconcile_kill.py does the same with
a real subprocess and SIGKILL.
"""
from __future__ import annotations

import asyncio
from decimal import Decimal
import logging
from collections.abc import AsyncIterator
from pathlib import Path

from agent.clock import ReplayClock
from agent.session import exchange_session
from data import market as mk
from data.exchange import ExchangeClient, ExchangeSettings
from data.exchange_errors import RetryPolicy
from data.sample import generate_sample
from tests.conftest import ACTIVE, make_config
from tests.exchange_sim.test_exchange_engine import FIRST_SIGNAL

TF = 900_000
ENTRY = FIRST_SIGNAL + 1            # the entry bar (its open is the entry price)
BARS = generate_sample()[: FIRST_SIGNAL + 12]
FAST = RetryPolicy(attempts=3, initial_s=0.05, max_backoff_s=0.2, jitter_s=0.01, max_total_s=5)


def config(**risk):
    return make_config(**ACTIVE, risk_management=risk) if risk else make_config(**ACTIVE)


def client_for(sim, timeout_ms: int = 1_000) -> ExchangeClient:
    return ExchangeClient(ExchangeSettings(exchange_url=sim.url, timeout_ms=timeout_ms, retry=FAST),
                          api_key=sim.api_key, secret=sim.secret)


class Market:
    """The sample's bars: history before `live_from` warms the indicators; each live bar moves the
    simulator's price open -> extremes -> close before the engine hears of it. `hold_after_open`
    (a bar index) makes the script wait on `gate` right after that bar's open was processed;
    `stop_at` (a bar index) ends the script there (FeedEnded) without touching the exchange."""

    def __init__(self, sim, venue, live_from: int, *, hold_after_open: int | None = None,
                 stop_at: int | None = None) -> None:
        self.sim, self.venue, self.live_from = sim, venue, live_from
        self.hold_after_open, self.stop_at = hold_after_open, stop_at
        self.gate = asyncio.Event()
        self.now = BARS[live_from].ts
        sim.clock = lambda: self.now

    async def _print(self, ts: int, price: float) -> None:
        self.now = ts
        self.sim.set_price(price, ts=ts)
        if self.venue.watching():
            await self.venue.poll_now()

    async def events(self, resume_after_ts: int | None) -> AsyncIterator[mk.MarketEvent]:
        for i, bar in enumerate(BARS):
            if i == self.stop_at:
                break
            if i < self.live_from:
                yield mk.BarClosed(bar, bar.ts + TF, live=False)
                continue
            await self._print(bar.ts, bar.open)
            yield mk.BarOpened(bar.ts, bar.open)
            if i == self.hold_after_open:
                await self.gate.wait()
            path = (bar.low, bar.high) if bar.close >= bar.open else (bar.high, bar.low)
            for k, price in enumerate(path, start=1):
                await self._print(bar.ts + k * 1000, price)
                yield mk.PriceUpdate(bar.ts + k * 1000, price)
            await self._print(bar.ts + TF - 1, bar.close)
            yield mk.BarClosed(bar, bar.ts + TF)
            await asyncio.sleep(0)
        yield mk.FeedEnded("finished", "script")


def new_engine(sim, data_dir: Path, live_from: int, cfg=None, timeout_ms: int = 1_000, **market):
    holder: dict = {}

    class Late:               # the source needs the venue the session creates
        def events(self, resume_after_ts):
            return holder["market"].events(resume_after_ts)

    engine = exchange_session(cfg or config(), data_dir, Late(), client_for(sim, timeout_ms),
                              clock=ReplayClock(BARS[live_from].ts), poll_interval_s=0.05)
    holder["market"] = Market(sim, engine.venue, live_from, **market)
    return engine, holder["market"]


async def kill(engine) -> None:
    """Everything the process was doing stops where it stands; nothing uncommitted survives."""
    venue = engine.venue
    venue._callback = None                       # a dead process hears nothing
    venue._closed = True
    tasks = [t for t in (engine._feed_task, venue._poller, *venue._deadlines.values(),
                         *engine.orders._lookups) if t is not None and not t.done()]
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    engine.store.close()                         # rolls back: a crash loses what was not committed
    engine._lock_file.release()                  # the OS releases a dead process's lock
    await venue.client.close()


async def until(cond, what: str, timeout: float = 30.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not cond():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


def entry_orders(engine):
    return [o for o in _all_orders(engine) if o.purpose == "entry"]


def _all_orders(engine):
    rows = engine.store._conn.execute("SELECT client_order_id FROM orders ORDER BY id").fetchall()
    return [engine.store.get_order(r[0]) for r in rows]


def oco_legs_open(sim) -> list:
    return [o for o in sim.orders.values() if o.list_id >= 0 and o.status in ("NEW", "PARTIALLY_FILLED")]


async def run_to_end(engine, timeout: float = 45.0) -> None:
    await engine.start()
    await asyncio.wait_for(engine.wait_finished(), timeout)


async def open_position(sim, tmp_path):
    """A running engine whose position is open with its OCO resting, stored as open."""
    engine, market = new_engine(sim, tmp_path, FIRST_SIGNAL - 10, hold_after_open=ENTRY)
    await engine.start()
    await until(lambda: len(oco_legs_open(sim)) == 2, "the exits resting at the exchange")
    await until(lambda: sum(o.status == "open" for o in _all_orders(engine) if o.purpose == "exit") == 2,
                "the exits stored as open")
    return engine, market


async def position_with_exits(sim, tmp_path):
    """Run until the position is open with its OCO resting, then kill; returns nothing is pending."""
    engine, _ = await open_position(sim, tmp_path)
    await kill(engine)


# ----- kills at each point of the order lifecycle -------------------------------------------
async def test_kill_after_exits_placed_before_their_reply_is_stored(sim, tmp_path):
    sim.fault("orderList/oco", "lost_reply", method="POST")
    engine, _ = new_engine(sim, tmp_path, FIRST_SIGNAL - 10, hold_after_open=ENTRY)
    await engine.start()
    await until(lambda: len(oco_legs_open(sim)) == 2, "the OCO booked at the exchange")
    stored = [o.status for o in _all_orders(engine) if o.purpose == "exit"]
    await kill(engine)
    assert stored == ["new", "new", "new"], "killed before the OCO's reply was stored"

    engine, _ = new_engine(sim, tmp_path, ENTRY)
    await engine.start()
    assert engine.halt_reason is None, engine.halt_reason
    legs = [o for o in _all_orders(engine) if o.purpose == "exit"]
    # stop and nearer target found resting; the farther target never reached the exchange
    assert sorted(o.status for o in legs) == ["canceled", "open", "open"], "looked up, not re-placed"
    assert sim.count("POST", "orderList/oco") == 1 and sim.count("POST", "order") == 1
    await asyncio.wait_for(engine.wait_finished(), 45)
    trades = engine.store.closed_trades()
    await engine.stop()
    assert len(trades) == 1 and trades[0].exit_reason == "STOP"
    assert sim.count("POST", "orderList/oco") == 1 and sim.count("POST", "order") == 1


async def test_exit_filled_while_down_closes_the_trade_with_the_real_fill(sim, tmp_path):
    await position_with_exits(sim, tmp_path)
    stop = next(o for o in sim.orders.values() if o.client_id.endswith("-stop"))
    sim.set_price(float(stop.stop) - 5.0, ts=BARS[ENTRY].ts + 60_000)     # while the agent is down
    assert stop.status == "FILLED"
    fills = [x for x in sim.my_trades if x["orderId"] == stop.order_id]

    engine, _ = new_engine(sim, tmp_path, ENTRY, stop_at=ENTRY)
    await engine.start()
    trades = engine.store.closed_trades()
    legs = {o.client_order_id: o for o in _all_orders(engine) if o.purpose == "exit"}
    halt, pos = engine.halt_reason, engine.position_state
    await engine.stop()
    assert halt is None, halt
    assert len(trades) == 1
    t = trades[0]
    assert t.exit_reason == "STOP" and t.exit_ts == BARS[ENTRY].ts + 60_000
    assert abs(t.exit_price - float(stop.quote_qty / stop.executed)) < 1e-6
    assert abs(t.exit_fee - sum(float(x["commission"]) for x in fills)) < 1e-9 and t.exit_fee > 0
    assert sorted(o.status for o in legs.values()) == ["canceled", "canceled", "filled"]
    assert pos == "MONITORING"
    assert sim.count("POST", "orderList/oco") == 1 and sim.count("POST", "order") == 1, "nothing re-sent"


async def test_cancel_sent_reply_lost_then_killed_exits_are_replaced(sim, tmp_path):
    """Manual close: the cancel of the OCO reaches the exchange, its reply is lost, the agent dies
    before selling. Restart: the position has no protection at the exchange -> re-placed, once."""
    engine, market = new_engine(sim, tmp_path, FIRST_SIGNAL - 10, hold_after_open=ENTRY)
    await engine.start()
    await until(lambda: len(oco_legs_open(sim)) == 2, "the exits resting")
    await until(lambda: sum(o.status == "open" for o in _all_orders(engine) if o.purpose == "exit") == 2,
                "stored")
    sim.fault("order", "lost_reply", method="DELETE")
    closing = asyncio.ensure_future(engine.manual_close())
    await until(lambda: sim.count("DELETE", "order") == 1 and not oco_legs_open(sim), "the cancel processed")
    await kill(engine)
    closing.cancel()
    await asyncio.gather(closing, return_exceptions=True)
    assert sim.count("POST", "order") == 1, "killed before the market sell"

    engine, _ = new_engine(sim, tmp_path, ENTRY, stop_at=ENTRY)
    await engine.start()
    t = engine.store.open_trade()
    legs = [o for o in _all_orders(engine) if o.purpose == "exit"]
    halt = engine.halt_reason
    await engine.stop()
    assert halt is None, halt
    assert t is not None
    assert sorted(o.status for o in legs) == ["canceled"] * 4 + ["open", "open"]
    assert sim.count("POST", "orderList/oco") == 2 and len(oco_legs_open(sim)) == 2
    new = [o for o in sim.orders.values() if o.list_id >= 0 and o.status == "NEW"]
    assert {o.client_id.rsplit("-", 1)[0] for o in new} == {f"ta-G{t.id}-2"}
    assert sim.count("POST", "order") == 1, "no market sell and no second entry"


# ----- reconciliation findings --------------------------------------------------------------
async def test_unknown_open_order_is_reported_and_not_touched(sim, tmp_path, ccxt_client, caplog):
    await position_with_exits(sim, tmp_path)
    foreign = await ccxt_client.create_order("BTC/USDT", "limit", "buy", 0.001, 20_000.0,
                                             {"clientOrderId": "operator-hand-1"})
    deletes = sim.count("DELETE", "order")
    caplog.set_level(logging.WARNING, logger="agent.reconcile")
    engine, _ = new_engine(sim, tmp_path, ENTRY, stop_at=ENTRY)
    await engine.start()
    halt = engine.halt_reason
    await engine.stop()
    assert halt is None, halt
    warned = [r.getMessage() for r in caplog.records if "unknown open order" in r.getMessage()]
    assert len(warned) == 1 and "operator-hand-1" in warned[0] and "NOT touched" in warned[0]
    assert sim.orders[int(foreign["id"])].status == "NEW"
    assert sim.count("DELETE", "order") == deletes
    assert sim.count("POST", "orderList/oco") == 1


async def test_balance_short_of_the_position_halts_with_both_figures(sim, tmp_path, ccxt_client):
    await position_with_exits(sim, tmp_path)
    # while the agent is down, someone cancels the exits and sells part of the position by hand
    stop = next(o for o in sim.orders.values() if o.client_id.endswith("-stop"))
    await ccxt_client.cancel_order(None, "BTC/USDT", {"origClientOrderId": stop.client_id})
    held = sim.balance("BTC")[0]
    await ccxt_client.create_order("BTC/USDT", "market", "sell", 0.01)
    left = sum(sim.balance("BTC"))

    engine, _ = new_engine(sim, tmp_path, ENTRY, stop_at=ENTRY)
    await engine.start()
    halt, state = engine.halt_reason, engine.run_state
    t = engine.store.open_trade()
    await engine.stop()
    assert state == "HALTED"
    assert halt is not None and "balance mismatch" in halt
    assert f"trade {t.id} holds {t.amount:.8g} BTC" in halt, halt
    assert f"the account holds {left:.8g} BTC" in halt, halt
    assert "NOT re-protected" in halt
    assert held > left and sim.count("POST", "orderList/oco") == 1, "no exits placed for BTC not there"


async def test_more_base_than_recorded_halts_but_the_first_start_records_foreign_holdings(sim, tmp_path):
    sim.deposit("BTC", 0.5)                      # the operator's own coins, there from the start
    await position_with_exits(sim, tmp_path)
    engine, _ = new_engine(sim, tmp_path, ENTRY, stop_at=ENTRY)
    await engine.start()
    assert engine.halt_reason is None, "0.5 BTC recorded at the first start are not the agent's"
    await engine.stop()
    sim.deposit("BTC", 0.2)                      # appears while down: nobody can explain it
    engine, _ = new_engine(sim, tmp_path, ENTRY, stop_at=ENTRY)
    await engine.start()
    halt = engine.halt_reason
    await engine.stop()
    assert halt is not None and "0.5 BTC recorded as not the agent's" in halt and "0.2 BTC unexplained" in halt


async def test_entry_still_working_at_restart_is_canceled_and_what_filled_kept(sim, tmp_path):
    """Killed while the market entry was acknowledged but only partly filled: the restart cancels
    the rest (never re-sends it) and opens the position with what filled, exits sized to it."""
    sim.hold_market_orders = 1
    engine, _ = new_engine(sim, tmp_path, FIRST_SIGNAL - 10, hold_after_open=ENTRY)
    await engine.start()
    await until(lambda: sim.count("POST", "order") == 1, "the entry acknowledged")
    entry = next(iter(sim.orders.values()))
    sim.fill_held(entry.client_id, float(entry.qty) / 2)
    await kill(engine)

    engine, _ = new_engine(sim, tmp_path, ENTRY, stop_at=ENTRY)
    await engine.start()
    t = engine.store.open_trade()
    stored = entry_orders(engine)
    await engine.stop()
    assert entry.status == "CANCELED" and sim.count("POST", "order") == 1
    assert len(stored) == 1 and stored[0].status == "canceled"
    net = float(entry.executed - sum(Decimal(f["commission"]) for f in entry.fills))
    assert 0 < entry.executed < entry.qty and t is not None and abs(t.amount - net) < 1e-12
    legs = oco_legs_open(sim)
    assert len(legs) == 2 and all(float(o.qty) <= t.amount and t.amount - float(o.qty) < 0.00001 for o in legs)
