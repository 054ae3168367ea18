"""Exits on hand-built bars, through the real engine, strategy, paper venue and store.

One signal is built by hand (tiny indicator windows, so a few bars decide it): the warm-up bars
below make bar 6 the only signal, with a swing high of 110 over its low of 97. From it:
    entry   = open of bar 7 (the entry bar) = 101
    stop    = low - 0.5 * ATR(1) = 97 - 0.5 * 5 = 94.5
    target  = 97 + (110 - 97) * 0.618 = 105.034
    tp      = entry + reward_r * (entry - stop) = 101 + 2 * 6.5 = 114
Each case appends bars after the signal and says which exit the agent must take, at what price
and on which bar, following STRATEGY.md's intrabar order (gap through the stop at the open; stop
before target before take-profit on one bar) and its documented differences (exits are watched
from the entry bar on; a stop gapped through fills at the open, the market price there).
Fees and slippage are zero so every price is exact.
"""
from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from agent.clock import ReplayClock
from agent.engine import Engine, EngineBusy
from agent.events import EngineStateChanged, PositionOpened, ReplayFinished
from agent.session import PaperRoutedSource, paper_venue, replay_session
from agent.strategy import SellerExhaustionStrategy, StrategyParams
from agent.venue import OrderRejected
from data import market as mk
from data.bar import Bar
from data.replay_feed import ReplayFeed
from data.sample import write_csv
from persistence.store import Store

from .conftest import make_config

TF = 15 * 60_000
T0 = 1_704_067_200_000                  # 2024-01-01T00:00:00Z

# (open, high, low, close, volume): bar 6 is the one signal (volume spike, wide range, close
# near its high, in a downtrend); bar 3's high of 110 is the swing high.
WARMUP = [
    (106, 107, 105, 106, 100), (106, 107, 105, 106, 100), (106, 108, 105, 107, 100),
    (107, 110, 106, 106, 100), (106, 107, 104, 104, 100), (104, 104.5, 102, 102, 100),
    (101, 101.5, 97, 101, 1000),
]
SIGNAL = 6
ENTRY, STOP, TARGET, TP = 101.0, 94.5, 97 + 13 * 0.618, 114.0


def bars(*after: tuple[float, float, float, float]) -> list[Bar]:
    """The warm-up and signal bars, then `after` (open, high, low, close) from the entry bar on,
    then quiet bars so nothing else happens."""
    rows = list(WARMUP) + [(*b, 100) for b in after]
    rows += [(rows[-1][3],) * 4 + (100,)] * 3
    return [Bar(T0 + i * TF, *map(float, row)) for i, row in enumerate(rows)]


def config(**backtest):
    bp = {"fib_swing_lookback": 4, "fib_swing_lookahead": 1, "fib_target_level": 0.618,
          "use_fib_exits": True, "use_stop_loss": True, "use_traditional_tp": True,
          "use_time_exit": False, "atr_stop_mult": 0.5, "reward_r": 2.0, "max_hold": 96,
          "fee_bp": 0.0, "slippage_bp": 0.0}
    bp.update(backtest)
    return make_config(
        seller_params={"ema_fast": 1, "ema_slow": 3, "z_window": 3, "atr_window": 1,
                       "vol_z": 0.5, "tr_z": 0.5, "cloc_min": 0.3},
        backtest_params=bp,
        risk_management={"slippage_tolerance_percent": 5.0})


def test_the_hand_built_bars_give_one_signal_with_the_documented_levels():
    strategy = SellerExhaustionStrategy(StrategyParams.from_config(config()))
    decisions = [strategy.update(b) for b in bars((ENTRY, 102, 100, 101))]
    assert [d.index for d in decisions if d.signal] == [SIGNAL]
    d = decisions[SIGNAL]
    assert d.fib.swing_high == 110 and d.fib.swing_low == 97
    assert d.target_price == pytest.approx(TARGET) and d.risk_stop == pytest.approx(STOP)


async def run(tmp_path: Path, series: list[Bar], cfg=None, venue_patch=None) -> Engine:
    tmp_path.mkdir(parents=True, exist_ok=True)
    csv = tmp_path / "bars.csv"
    write_csv(series, csv)
    engine = replay_session(cfg or config(), tmp_path / "data", csv, speed=None)
    if venue_patch is not None:
        venue_patch(engine)
    await engine.start()
    await engine.wait_finished()
    return engine


def at(i: int) -> int:
    return T0 + i * TF


@dataclass(frozen=True)
class Case:
    name: str
    after: tuple[tuple[float, float, float, float], ...]    # bars from the entry bar on
    reason: str
    price: float
    exit_ts: int
    backtest: dict | None = None


CASES = [
    Case("gap through the stop fills at the open", ((ENTRY, 102, 100, 101), (93, 95, 92, 94)),
         "STOP_GAP", 93.0, at(8)),
    Case("stop and target on one bar: the stop", ((ENTRY, 102, 100, 101), (100, 106, 94, 100)),
         "STOP", STOP, at(8)),
    Case("stop, target and take-profit on one bar: the stop", ((ENTRY, 102, 100, 101), (100, 120, 90, 100)),
         "STOP", STOP, at(8)),
    Case("target and take-profit on one bar: the target", ((ENTRY, 102, 100, 101), (101, 115, 100, 110)),
         "FIB_61.8", TARGET, at(8)),
    Case("a nearer take-profit and the target on one bar: still the target first",
         ((ENTRY, 102, 100, 101), (101, 106, 100, 104)), "FIB_61.8", TARGET, at(8),
         {"reward_r": 0.5}),
    Case("a nearer take-profit alone", ((ENTRY, 102, 100, 101), (101, 104.5, 100, 104)),
         "TP_0.5R", 101 + 0.5 * 6.5, at(8), {"reward_r": 0.5}),
    Case("take-profit only (the stop only sizes it)",
         ((ENTRY, 102, 100, 101), (101, 104, 100, 103), (103, 115, 102, 112)),
         "TP_2.0R", TP, at(9), {"use_fib_exits": False}),
    Case("take-profit with no stop: risk is 1% of the entry",
         ((ENTRY, 102, 100, 101), (101, 103.5, 90, 103), (103, 115, 102, 112)),
         "TP_2.0R", ENTRY + 2 * 0.01 * ENTRY, at(8), {"use_fib_exits": False, "use_stop_loss": False}),
    Case("a gap up through the target fills at the limit", ((ENTRY, 102, 100, 101), (107, 108, 106, 107)),
         "FIB_61.8", TARGET, at(8)),
    Case("time exit at the close of the max_hold-th bar after the entry bar",
         ((ENTRY, 102, 100, 101), (101, 102, 100, 101.5), (101.5, 102, 100, 100.5), (100, 101, 99, 100)),
         "TIME", 100.5, at(9) + TF, {"use_time_exit": True, "max_hold": 2}),
    Case("the target on the entry bar exits there (watched from the entry on)",
         ((ENTRY, 106, 100, 104),), "FIB_61.8", TARGET, at(7)),
    Case("the stop on the entry bar exits there at the stop, not as a gap",
         ((ENTRY, 102, 94, 95), (95, 96, 94, 95)), "STOP", STOP, at(7)),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
async def test_exit_table(tmp_path, case):
    engine = await run(tmp_path, bars(*case.after), config(**(case.backtest or {})))
    trades = engine.store.closed_trades()
    orders = engine.store.orders_for_trade(trades[0].id) if trades else []
    open_trade = engine.store.open_trade()
    signals = engine.store.signals()
    await engine.stop()
    assert open_trade is None and len(trades) == 1, [(t.exit_reason, t.exit_price) for t in trades]
    t = trades[0]
    assert t.signal_ts == at(SIGNAL) and t.entry_ts == at(SIGNAL + 1)
    assert t.entry_price == ENTRY and t.entry_reference == ENTRY
    assert (t.exit_reason, t.exit_ts) == (case.reason, case.exit_ts)
    assert t.exit_price == pytest.approx(case.price, abs=1e-9)
    assert t.pnl == pytest.approx((t.exit_price - t.entry_price) * t.amount, abs=1e-9)
    assert t.exit_ts >= t.entry_ts
    assert [(s.bar_ts, s.action) for s in signals] == [(at(SIGNAL), "ENTERED")]
    exits = [o for o in orders if o.purpose == "exit"]
    assert sum(o.status == "filled" for o in exits) == 1, "exactly one exit filled"
    assert all(o.status in ("filled", "canceled") for o in exits), "nothing left resting"
    if case.reason == "TIME":
        group = [o for o in exits if o.group_id is not None]
        market = next(o for o in exits if o.type == "market")
        assert group and all(o.status == "canceled" for o in group), "the group is canceled first"
        assert all(o.updated_ts <= market.updated_ts for o in group)


async def test_a_gap_through_the_stop_fills_at_the_open_minus_slippage(tmp_path):
    engine = await run(tmp_path, bars((ENTRY, 102, 100, 101), (93, 95, 92, 94)),
                       config(slippage_bp=10.0, fee_bp=5.0))
    t = engine.store.closed_trades()[0]
    await engine.stop()
    assert t.exit_reason == "STOP_GAP" and t.exit_price == pytest.approx(93 * (1 - 0.001))
    assert t.exit_fee == pytest.approx(t.exit_price * t.amount * 5e-4)
    assert t.entry_price == pytest.approx(ENTRY * 1.001)


async def test_an_entry_the_venue_refuses_skips_the_signal_and_keeps_running(tmp_path):
    def refuse_entries(engine):
        real = engine.venue.place

        async def place(order):
            if order.purpose == "entry":
                raise OrderRejected("insufficient balance (test)")
            return await real(order)

        engine.venue.place = place

    engine = await run(tmp_path, bars((ENTRY, 102, 100, 101), (101, 115, 100, 110)),
                       venue_patch=refuse_entries)
    signals = engine.store.signals()
    orders = engine.store.unresolved_orders()
    state = (engine.run_state, engine.position_state)
    trades = engine.store.closed_trades() + ([engine.store.open_trade()] if engine.store.open_trade() else [])
    await engine.stop()
    assert trades == []
    assert [(s.action, s.reason) for s in signals] == [
        ("SKIPPED", "entry order rejected: insufficient balance (test)")]
    assert orders == []
    assert state == ("RUNNING", "MONITORING")


async def test_a_failed_market_exit_keeps_the_position_protected_and_halts(tmp_path):
    def refuse_market_sells(engine):
        real = engine.venue.place

        async def place(order):
            if order.purpose == "exit" and order.type == "market":
                raise OrderRejected("market closed (test)")
            return await real(order)

        engine.venue.place = place

    engine = await run(tmp_path, bars((ENTRY, 102, 100, 101), (101, 102, 100, 101.5),
                                      (101.5, 102, 100, 100.5)),
                       config(use_time_exit=True, max_hold=2), venue_patch=refuse_market_sells)
    t = engine.store.open_trade()
    resting = await engine.venue.open_orders()
    state, halt = engine.run_state, engine.halt_reason
    await engine.stop()
    assert t is not None and t.status == "open", "the position is still open"
    assert state == "HALTED" and "market closed (test)" in halt and "still open" in halt
    assert {(o.type, o.reason) for o in resting} == {("stop", "STOP"), ("limit", "FIB_61.8"),
                                                     ("limit", "TP_2.0R")}, "protected again"
    assert len({o.group_id for o in resting}) == 1


async def test_the_signal_row_keeps_the_swing_high_when_no_ladder_forms(tmp_path):
    # Every high of the Fibonacci window is 90, below the signal bar's low of 97: no levels, so
    # no entry (PRD), but the row still says which swing high the rule found.
    rows = [(89, 90, 88, 89, 100)] * 5 + [(90, 130, 90, 130, 100), (110, 110.5, 97, 105, 1000)]
    rows += [(105, 105, 105, 105, 100)] * 3
    series = [Bar(T0 + i * TF, *map(float, row)) for i, row in enumerate(rows)]
    cfg = make_config(seller_params={"ema_fast": 1, "ema_slow": 3, "z_window": 3, "atr_window": 1,
                                     "vol_z": 0.5, "tr_z": -5.0, "cloc_min": 0.3},
                      backtest_params=config().backtest_params.model_dump())
    strategy = SellerExhaustionStrategy(StrategyParams.from_config(cfg))
    decisions = [strategy.update(b) for b in series]
    assert [d.index for d in decisions if d.signal] == [SIGNAL]
    assert decisions[SIGNAL].fib is None and decisions[SIGNAL].swing_high == 90.0
    engine = await run(tmp_path, series, cfg)
    signals = engine.store.signals()
    await engine.stop()
    assert [(r.action, r.fib_swing_high, r.fib_levels) for r in signals] == [("SKIPPED", 90.0, None)]
    assert "swing high 90 not above the low 97" in signals[0].reason


class ScriptedSource:
    """A feed that plays given market events, then ends the way the test says."""

    def __init__(self, events, venue, end):
        self._events, self._venue, self._end = events, venue, end

    async def events(self, resume_after_ts):
        for event in self._events:
            self._venue.on_market(event)
            yield event
            await asyncio.sleep(0)
        if self._end == "raise":
            raise ConnectionError("socket closed by peer")
        if self._end is not None:
            yield self._end


def live_events(series: list[Bar]) -> list:
    out: list = []
    for b in series:
        out += [mk.BarOpened(b.ts, b.open), mk.BarClosed(b, b.ts + TF)]
    return out


@pytest.mark.parametrize("end", [mk.FeedEnded("lost", "websocket dropped, reconnect failed"), None, "raise"],
                         ids=["feed says lost", "feed stops without a word", "feed raises"])
async def test_losing_the_feed_is_an_error_never_a_finished_replay(tmp_path, end):
    cfg = config()
    venue = paper_venue(cfg, tmp_path)
    series = bars((ENTRY, 102, 100, 101), (101, 102, 100, 101))
    engine = Engine(cfg, data_dir=tmp_path, source=ScriptedSource(live_events(series), venue, end),
                    venue=venue, clock=ReplayClock())
    events: list = []
    engine.bus.subscribe(events.append)
    await engine.start()
    await engine.wait_finished()
    status = engine.status()
    open_trade = engine.store.open_trade()
    resting = await venue.open_orders()
    await engine.stop()
    assert status.run_state == "ERROR"
    assert not any(isinstance(e, ReplayFinished) for e in events)
    errors = [e for e in events if isinstance(e, EngineStateChanged) and e.run_state == "ERROR"]
    assert errors and errors[-1].reason and ("lost" in errors[-1].reason or "died" in errors[-1].reason)
    assert open_trade is not None and len(resting) == 3, "the position keeps its exits at the venue"
    if end is not None and end != "raise":
        assert status.feed_state == "lost" and "websocket dropped" in errors[-1].reason


class Crash(Exception):
    """Stands for the process dying inside a commit."""


def kill(engine: Engine) -> None:
    """What the OS leaves after the process dies: whatever was committed, nothing more."""
    engine.store.close()
    engine.venue._conn.close()
    engine._lock_file.release()


def venue_orders(data_dir: Path) -> list[tuple[str, str, str]]:
    import sqlite3
    with sqlite3.connect(data_dir / "paper_venue.db") as con:
        rows = [json.loads(r[0]) for r in con.execute("SELECT record FROM orders ORDER BY seq")]
    return [(r["client_order_id"], r["purpose"], r["status"]) for r in rows]


@pytest.mark.parametrize("fill", ["entry", "exit"])
async def test_a_fill_the_agent_did_not_record_before_dying_is_recovered_at_start_up(tmp_path, fill):
    """The venue filled the order, the agent died inside the commit that records it. At the
    restart the order is looked up (never re-sent) and the fill applies with the venue's price
    and time: the same trade as an uninterrupted run, and the signal ENTERED, not SKIPPED."""
    series = bars((ENTRY, 102, 100, 101), (93, 95, 92, 94))
    csv = tmp_path / "bars.csv"
    write_csv(series, csv)
    whole = await run(tmp_path / "whole", series)
    expected = [replace(t, id=None) for t in whole.store.closed_trades()]
    expected_signals = [(s.bar_ts, s.action, s.reason) for s in whole.store.signals()]
    await whole.stop()
    assert [(t.exit_reason, t.entry_ts, t.exit_ts) for t in expected] == [("STOP_GAP", at(7), at(8))]

    data = tmp_path / "crashed"
    engine = replay_session(config(), data, csv, speed=None)
    filled = False
    deliver = engine.venue._callback

    def spy(update):
        nonlocal filled
        filled = filled or (update.order.purpose == fill and update.order.status == "filled")
        deliver(update)

    engine.venue.on_update(spy)
    real_commit = engine.store.commit

    def commit(durable=False):
        if filled:
            raise Crash("killed inside the commit that records the fill")
        real_commit(durable)

    engine.store.commit = commit
    await engine.start()
    await engine.wait_finished()
    assert filled and engine.run_state == "ERROR"
    kill(engine)

    again = replay_session(config(), data, csv, speed=None)
    sent_again: list[str] = []
    real_place = again.venue.place

    async def place(order):
        sent_again.append(order.client_order_id)
        return await real_place(order)

    again.venue.place = place
    await again.start()
    await again.wait_finished()
    got = [replace(t, id=None) for t in again.store.closed_trades()]
    signals = [(s.bar_ts, s.action, s.reason) for s in again.store.signals()]
    await again.stop()
    assert got == expected
    assert signals == expected_signals == [(at(SIGNAL), "ENTERED", "trade 1")]
    entries = [o for o in venue_orders(data) if o[1] == "entry"]
    assert len(entries) == 1, "the entry was sent once"
    assert not any(cid.startswith("ta-E") for cid in sent_again)
    if fill == "exit":
        assert sent_again == [], "the filled exit's group was looked up, not re-sent"


async def test_manual_close_during_a_restart_catch_up_waits_for_a_live_price(tmp_path):
    """The issue's repro: a position restored at start-up, Manual Close while old bars replay.
    It must never fill at a catch-up price nor store an exit before the entry."""
    head = bars((ENTRY, 102, 100, 101), (101, 102, 100, 101.5))[:9]
    tail = [Bar(at(9), 102.0, 103.0, 101.0, 102.5, 100.0)]
    tail += [Bar(at(10 + i), 102.5, 102.5, 102.5, 102.5, 100.0) for i in range(3)]
    first = await run(tmp_path, head)
    assert first.store.open_trade() is not None
    await first.stop()

    csv = tmp_path / "all.csv"
    write_csv(head + tail, csv)
    engine = replay_session(config(), tmp_path / "data", csv, speed=None)
    seen: list = []
    source = engine.source
    real_events = source.events

    async def events(resume_after_ts):
        async for event in real_events(resume_after_ts):
            if not event.live and isinstance(event, mk.BarClosed) and event.bar.ts == at(2):
                seen.append(engine.status().last_price)
                await engine.manual_close()            # the operator clicks during catch-up
                seen.append(engine.position_state)
                with pytest.raises(EngineBusy):
                    await engine.manual_close()        # a second click while it waits
            yield event

    source.events = events
    await engine.start()
    await engine.wait_finished()
    trades = engine.store.closed_trades()
    await engine.stop()
    assert seen == [None, "EXITING"], "no live price during catch-up; the close waits for one"
    assert len(trades) == 1
    t = trades[0]
    assert (t.exit_reason, t.exit_ts, t.exit_price) == ("MANUAL", at(9), 102.0), \
        "filled at the first live price (bar 9's open), not at an old one"
    assert t.exit_ts >= t.entry_ts


@pytest.mark.parametrize("series_after", [
    ((ENTRY, 102, 100, 101), (93, 95, 92, 94)),
    ((ENTRY, 102, 100, 101), (101, 115, 100, 110)),
    ((ENTRY, 102, 100, 101), (101, 102, 100, 101.5), (101.5, 102, 100, 100.5)),
], ids=["stop gap", "target", "time exit"])
async def test_fills_count_only_from_the_venue_update_stream_even_when_it_repeats_and_reorders(
        tmp_path, series_after):
    """An exchange acknowledges an order as open and reports its fill later on its stream, which
    may repeat a report or deliver a stale one after the fill. The engine opens and closes
    positions from the stream alone, and a stale report never reopens a filled order."""
    series = bars(*series_after)
    cfg = config(use_time_exit=True, max_hold=2)
    expected_engine = await run(tmp_path / "direct", series, cfg)
    expected = [replace(t, id=None) for t in expected_engine.store.closed_trades()]
    await expected_engine.stop()

    def acknowledge_only(engine):
        venue = engine.venue
        real_place, deliver = venue.place, venue._callback

        async def place(order):
            view = await real_place(order)
            return replace(order, status="open", exchange_order_id=view.exchange_order_id)

        def stream(update):
            deliver(update)
            deliver(update)                                    # repeated
            if update.order.status == "filled":                # and a stale one after the fill
                deliver(replace(update, order=replace(update.order, status="open", filled_amount=0.0,
                                                      fill_price=None, fee=0.0)))

        venue.place = place
        venue.on_update(stream)

    engine = await run(tmp_path / "stream", series, cfg, venue_patch=acknowledge_only)
    got = [replace(t, id=None) for t in engine.store.closed_trades()]
    left = engine.store.unresolved_orders()
    await engine.stop()
    assert len(got) == len(expected) == 1
    diff = {k: (v, vars_of(expected[0])[k]) for k, v in vars_of(got[0]).items() if vars_of(expected[0])[k] != v}
    assert diff == {}
    assert left == [], "a stale report after a fill does not reopen the order"


def vars_of(record) -> dict:
    from dataclasses import asdict
    return asdict(record)


async def test_a_pending_signal_restored_at_start_up_enters_at_the_first_live_price(tmp_path):
    """Stopped right after the signal bar: the pending entry is in the checkpoint, and the
    restarted engine enters it at the next bar's open (SIGNAL on the first live event)."""
    from agent.accounting import Checkpoint

    series = bars((ENTRY, 102, 100, 101), (101, 115, 100, 110))
    first = await run(tmp_path, series[:SIGNAL + 1])
    pending = Checkpoint.load(first.store).pending
    await first.stop()
    assert pending is not None and pending.bar_ts == at(SIGNAL)
    states: list[str] = []
    csv = tmp_path / "all.csv"
    write_csv(series, csv)
    again = replay_session(config(), tmp_path / "data", csv, speed=None)
    again.bus.subscribe(lambda e: isinstance(e, EngineStateChanged) and states.append(e.position_state))
    await again.start()
    await again.wait_finished()
    trades = again.store.closed_trades()
    signals = [(s.bar_ts, s.action) for s in again.store.signals()]
    await again.stop()
    assert [(t.entry_ts, t.entry_price, t.exit_reason) for t in trades] == [(at(7), ENTRY, "FIB_61.8")]
    assert signals == [(at(SIGNAL), "ENTERED")]
    assert "IN_POSITION" in states and states.index("IN_POSITION") < states.index("MONITORING", 1)


async def test_a_start_up_that_fails_before_the_store_is_read_overwrites_nothing(tmp_path):
    """Until boot has read the store, memory holds defaults: a failed start must not write them
    over the checkpoint or state.json."""
    from agent.accounting import Checkpoint

    first = await run(tmp_path, bars((ENTRY, 102, 100, 101), (101, 102, 100, 101)))
    kept = Checkpoint.load(first.store)
    await first.stop()
    state_before = (tmp_path / "data" / "state.json").read_text()
    assert kept.balance is not None and kept.balance != 10_000.0, "a position is open: cash spent"

    engine = replay_session(config(), tmp_path / "data", tmp_path / "bars.csv", speed=None)

    async def no_rules():
        raise ConnectionError("exchange unreachable")

    engine.venue.market_rules = no_rules
    await engine.start()
    assert engine.run_state == "ERROR"
    await engine.stop()
    store = Store(tmp_path / "data" / "trades.db")
    after = Checkpoint.load(store)
    store.close()
    assert after == kept
    assert (tmp_path / "data" / "state.json").read_text() == state_before


async def test_a_restart_at_a_slow_speed_replays_committed_bars_unpaced_and_never_marks_at_them(
        tmp_path, monkeypatch):
    """`--speed 2` after a restart: every committed bar is warmed at once (the chart seeds from
    them when the first live bar arrives), only live bars are paced, and no committed bar's
    price marks the restored position."""
    head = bars((ENTRY, 102, 100, 101), (101, 102, 100, 101.5))[:9]
    tail = [Bar(at(9 + i), 101.5, 102.0, 101.0, 101.5, 100.0) for i in range(3)]
    first = await run(tmp_path, head)
    assert first.store.open_trade() is not None
    await first.stop()
    csv = tmp_path / "all.csv"
    write_csv(head + tail, csv)
    engine = replay_session(config(), tmp_path / "data", csv, speed=2.0)
    paced: list[tuple[int, int, float | None]] = []

    async def wait_turn(loop, due):
        paced.append((engine.pacer.position, len(engine.history()), engine.status().last_price))
        return None                                    # the test does not wait for real

    monkeypatch.setattr(engine.pacer, "_wait_turn", wait_turn)
    first_live: list[int] = []
    engine.bus.subscribe(lambda e: type(e).__name__ == "BarClosed" and not first_live
                         and first_live.append(len(engine.history())))
    await engine.start()
    await engine.wait_finished()
    await engine.stop()
    assert [p[0] for p in paced] == [9, 10, 11], "only the three live bars were paced"
    assert paced[0][1:] == (9, None), "all committed bars warmed, no price from them"
    assert first_live and first_live[0] >= 10, "the first live bar finds the whole history to seed the chart"
