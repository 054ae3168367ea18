"""The engine end to end on the synthetic sample: real strategy, risk manager, paper broker,
store and state file. Each test is one behaviour a trader relies on."""
from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
from dataclasses import replace

import pytest

from agent.engine import Engine, EngineBusy
from agent.session import replay_session
from agent.events import EngineStateChanged, PositionClosed, PositionOpened, SignalSeen
from agent.accounting import Checkpoint
from agent.state_machine import PositionState
from persistence.records import OrderRecord
from persistence.store import Store

from .conftest import ACTIVE, DEFAULT_CONFIG, make_config


async def replay(config, data_dir, csv) -> Engine:
    engine = replay_session(config, data_dir, csv, speed=None)
    await engine.start()
    await engine.wait_finished()
    return engine


async def test_a_replay_trades_and_leaves_store_state_and_logs(tmp_path, sample_csv):
    engine = await replay(make_config(), tmp_path, sample_csv)
    trades = engine.store.closed_trades()
    status = engine.status()
    await engine.stop()
    assert len(trades) >= 4
    assert all(t.exit_reason.startswith("FIB_61.8") for t in trades)
    assert (tmp_path / "trades.db").exists()
    state = json.loads((tmp_path / "state.json").read_text())
    assert state["run_state"] == "STOPPED" and state["balance"] == pytest.approx(status.balance)


async def test_balance_is_initial_balance_plus_realised_pnl_minus_open_cost(tmp_path, sample_csv):
    engine = await replay(make_config(**ACTIVE), tmp_path, sample_csv)
    trades = engine.store.closed_trades()
    open_trade = engine.store.open_trade()
    balance = engine.status().balance
    await engine.stop()
    expected = 10_000 + sum(t.pnl for t in trades)
    if open_trade:
        expected -= open_trade.amount * open_trade.entry_price + open_trade.entry_fee
    assert balance == pytest.approx(expected, rel=1e-12)
    reasons = {t.exit_reason for t in trades}
    assert {"STOP", "TIME"} <= reasons or {"STOP", "FIB_61.8"} <= reasons


async def test_every_order_row_is_committed_before_the_venue_sees_it(tmp_path, sample_csv):
    placed: list[str] = []
    engine = replay_session(make_config(), tmp_path, sample_csv, speed=None)
    place, place_group = engine.venue.place, engine.venue.place_exit_group

    def check(order):
        with sqlite3.connect(tmp_path / "trades.db") as other:
            row = other.execute("SELECT status FROM orders WHERE client_order_id = ?",
                                (order.client_order_id,)).fetchone()
        assert row == ("new",), f"{order.client_order_id} was not durable before it was sent"
        placed.append(order.purpose)

    async def recording_place(order):
        check(order)
        return await place(order)

    async def recording_group(legs):
        for leg in legs:
            check(leg)
        return await place_group(legs)

    engine.venue.place, engine.venue.place_exit_group = recording_place, recording_group
    await engine.start()
    await engine.wait_finished()
    await engine.stop()
    assert "entry" in placed and "exit" in placed


async def test_daily_loss_limit_closes_the_position_and_halts_across_restarts(tmp_path, sample_csv):
    cfg = make_config(seller_params=ACTIVE["seller_params"],
                      backtest_params={"use_fib_exits": True, "use_stop_loss": False},
                      risk_management={"max_daily_loss_percent": 1.0, "risk_per_trade_percent": 10.0,
                                       "max_position_size_percent": 100.0})
    engine = await replay(cfg, tmp_path, sample_csv)
    trades = engine.store.closed_trades()
    assert engine.run_state == "HALTED" and "daily loss limit" in engine.halt_reason
    stopped = [t for t in trades if t.exit_reason == "DAILY_LOSS_LIMIT"]
    assert len(stopped) == 1 and trades[-1] is not None
    assert engine.store.open_trade() is None
    halted_at = stopped[0].exit_ts
    assert all(t.entry_ts <= halted_at for t in trades), "no entry after the halt"
    await engine.stop()

    again = replay_session(cfg, tmp_path, sample_csv, speed=None)
    await again.start()
    assert again.run_state == "HALTED"
    await again.clear_halt()
    assert again.run_state == "STOPPED" and Checkpoint.load(again.store).halt_reason is None
    await again.stop()


async def test_emergency_stop_flattens_halts_and_the_halt_survives_a_restart(tmp_path, sample_csv):
    engine = replay_session(make_config(), tmp_path, sample_csv, speed=None)
    opened = asyncio.get_running_loop().create_future()
    engine.bus.subscribe(lambda e: isinstance(e, PositionOpened) and not opened.done() and opened.set_result(e))
    await engine.start()
    await opened
    await engine.emergency_stop()
    assert engine.run_state == "HALTED"
    assert engine.store.open_trade() is None
    assert engine.store.closed_trades()[-1].exit_reason == "EMERGENCY"
    await engine.wait_finished()
    assert len(engine.store.closed_trades()) == 1, "no trade after an emergency stop"
    await engine.stop()
    restarted = replay_session(make_config(), tmp_path, sample_csv, speed=None)
    await restarted.start()
    assert restarted.run_state == "HALTED" and "emergency" in restarted.halt_reason
    await restarted.stop()


async def test_pause_stops_new_entries_but_still_manages_the_open_position(tmp_path, sample_csv):
    engine = replay_session(make_config(), tmp_path, sample_csv, speed=None)
    events: list = []
    engine.bus.subscribe(events.append)
    pause_task: list[asyncio.Task] = []

    def on_event(e):
        if isinstance(e, PositionOpened) and not pause_task:
            pause_task.append(asyncio.ensure_future(engine.pause()))

    engine.bus.subscribe(on_event)
    await engine.start()
    await engine.wait_finished()
    await engine.stop()
    assert engine.run_state == "STOPPED"
    opened = [e for e in events if isinstance(e, PositionOpened)]
    closed = [e for e in events if isinstance(e, PositionClosed)]
    assert len(opened) == 1, "no entry while paused"
    assert len(closed) == 1 and closed[0].trade.exit_reason == "FIB_61.8", "the open trade was still exited"
    paused_skips = [e for e in events if isinstance(e, SignalSeen) and "paused" in e.signal.reason]
    assert paused_skips


async def test_manual_close_needs_a_position_and_closes_it_at_market(tmp_path, sample_csv):
    engine = replay_session(make_config(), tmp_path, sample_csv, speed=None)
    with pytest.raises(EngineBusy):
        await engine.manual_close()
    opened = asyncio.get_running_loop().create_future()
    engine.bus.subscribe(lambda e: isinstance(e, PositionOpened) and not opened.done() and opened.set_result(e))
    await engine.start()
    await opened
    await engine.manual_close()
    trade = engine.store.closed_trades()[-1]
    assert trade.exit_reason == "MANUAL" and engine.store.open_trade() is None
    assert trade.exit_price == pytest.approx(engine.status().last_price * (1 - 5e-4))
    await engine.stop()


async def test_a_corrupt_state_file_is_set_aside_and_the_engine_refuses_to_trade(tmp_path, sample_csv):
    (tmp_path / "state.json").write_text('{"run_state": "RUNN')
    engine = await replay(make_config(), tmp_path, sample_csv)
    assert engine.run_state == "HALTED" and "state.json" in engine.halt_reason
    assert engine.store.closed_trades() == [] and engine.store.open_trade() is None
    assert list(tmp_path.glob("state.json.corrupt*")), "the corrupt file is kept for the operator"
    await engine.stop()


async def test_an_illegal_transition_halts_trading_and_logs_critical(tmp_path, sample_csv, caplog):
    engine = replay_session(make_config(), tmp_path, sample_csv, speed=None)

    def corrupt(e):
        if isinstance(e, EngineStateChanged) and e.position_state == "MONITORING":
            engine._pos.force(PositionState.CLOSED)        # a bug elsewhere left a wrong state

    engine.bus.subscribe(corrupt)
    with caplog.at_level(logging.CRITICAL):
        await engine.start()
        await engine.wait_finished()
    assert engine.run_state == "HALTED"
    assert any(r.levelno == logging.CRITICAL and "not allowed" in r.getMessage() for r in caplog.records)
    assert engine.store.closed_trades() == []
    await engine.stop()


async def test_max_daily_trades_limits_entries_per_utc_day(tmp_path, sample_csv):
    engine = await replay(make_config(**ACTIVE, risk_management={"max_daily_trades": 1}),
                          tmp_path, sample_csv)
    trades = engine.store.closed_trades()
    skips = [s for s in engine.store.signals() if "max_daily_trades" in s.reason]
    await engine.stop()
    days = [t.entry_ts // 86_400_000 for t in trades]
    assert len(days) == len(set(days)), "at most one entry per UTC day"
    assert skips, "a second signal on the same day was refused by the check"


async def test_every_signal_bar_gets_one_row_traded_or_not(tmp_path, sample_csv):
    from agent.strategy import SellerExhaustionStrategy, StrategyParams
    from data.replay_feed import load_replay

    cfg = make_config(**ACTIVE)
    engine = await replay(cfg, tmp_path, sample_csv)
    rows = engine.store.signals()
    await engine.stop()
    strategy = SellerExhaustionStrategy(StrategyParams.from_config(cfg))
    signal_bars = [b.ts for b in load_replay(sample_csv, 15).bars if strategy.update(b).signal]
    assert sorted(r.bar_ts for r in rows) == signal_bars
    assert {r.action for r in rows} == {"ENTERED", "SKIPPED"}
    assert all(r.reason for r in rows)


async def test_an_unresolved_order_found_at_startup_is_looked_up_never_resent(tmp_path, sample_csv):
    store = Store(tmp_path / "trades.db")
    store.insert_order(OrderRecord(client_order_id="ta-E1-1", trade_id=None, side="buy", type="market",
                                   amount=0.1, created_ts=1, expected_price=100.0))
    store.commit(durable=True)
    store.close()
    engine = replay_session(make_config(), tmp_path, sample_csv, speed=None)
    sent: list[str] = []
    original = engine.venue.place

    async def spy(order):
        sent.append(order.client_order_id)
        return await original(order)

    engine.venue.place = spy
    await engine.start()
    recovered = engine.store.get_order("ta-E1-1")
    assert recovered.status == "canceled" and "never received" in recovered.reason
    await engine.wait_finished()
    await engine.stop()
    assert "ta-E1-1" not in sent


async def test_import_config_is_refused_while_running_and_adopted_when_stopped(tmp_path, sample_csv):
    engine = replay_session(make_config(), tmp_path, sample_csv, speed=None)
    new_cfg = tmp_path / "new.json"
    raw = json.loads(DEFAULT_CONFIG.read_text())
    raw["seller_params"]["vol_z"] = 2.5
    new_cfg.write_text(json.dumps(raw))
    await engine.start()
    with pytest.raises(EngineBusy):
        await engine.import_config(new_cfg)
    await engine.stop()
    fresh = replay_session(make_config(), tmp_path / "b", sample_csv, speed=None)
    summary, warnings = await fresh.import_config(new_cfg)
    assert fresh.config.seller_params.vol_z == 2.5 and summary
    assert (tmp_path / "b" / "config.json").exists()
    fresh.store.close()


async def test_daily_trade_counter_survives_a_restart_within_the_day(tmp_path, sample_csv):
    cfg = make_config(**ACTIVE, risk_management={"max_daily_trades": 1})
    reference = await replay(cfg, tmp_path / "whole", sample_csv)
    limited_days = {s.bar_ts // 86_400_000 for s in reference.store.signals() if "max_daily_trades" in s.reason}
    first_on_such_day = next(t for t in reference.store.closed_trades() if t.entry_ts // 86_400_000 in limited_days)
    expected = [(t.signal_ts, t.exit_reason) for t in reference.store.closed_trades()]
    await reference.stop()

    # The first run's data ends on the entry bar: the restart resumes in the middle of that day.
    from data.replay_feed import load_replay
    from data.sample import write_csv

    part = tmp_path / "until_entry.csv"
    write_csv([b for b in load_replay(sample_csv, 15).bars if b.ts <= first_on_such_day.entry_ts], part)
    engine = await replay(cfg, tmp_path / "restarted", part)
    assert engine.store.open_trade().signal_ts == first_on_such_day.signal_ts
    await engine.stop()
    again = replay_session(cfg, tmp_path / "restarted", sample_csv, speed=None)
    await again.start()
    await again.wait_finished()
    assert [(t.signal_ts, t.exit_reason) for t in again.store.closed_trades()] == expected
    await again.stop()


@pytest.mark.parametrize("cut", ["signal bar", "entry bar", "mid trade", "exit bar"])
async def test_a_stop_at_any_bar_of_a_trade_resumes_to_the_same_trades(tmp_path, sample_csv, cut):
    from data.replay_feed import load_replay
    from data.sample import write_csv

    cfg = make_config(**ACTIVE)
    reference = await replay(cfg, tmp_path / "whole", sample_csv)
    expected = [(t.signal_ts, t.entry_price, t.exit_ts, t.exit_reason, t.pnl) for t in reference.store.closed_trades()]
    trade = next(t for t in reference.store.closed_trades() if t.bars_held >= 2)
    await reference.stop()
    last_ts = {"signal bar": trade.signal_ts, "entry bar": trade.entry_ts,
               "mid trade": trade.entry_ts + 15 * 60_000, "exit bar": trade.exit_ts}[cut]
    part = tmp_path / "part.csv"
    write_csv([b for b in load_replay(sample_csv, 15).bars if b.ts <= last_ts], part)
    first = await replay(cfg, tmp_path / "resumed", part)
    await first.stop()
    resumed = await replay(cfg, tmp_path / "resumed", sample_csv)
    got = [(t.signal_ts, t.entry_price, t.exit_ts, t.exit_reason, t.pnl) for t in resumed.store.closed_trades()]
    await resumed.stop()
    assert got == expected


async def test_a_second_engine_on_the_same_data_folder_is_refused(tmp_path, sample_csv):
    from persistence.paths import DataDirBusy

    first = replay_session(make_config(), tmp_path, sample_csv, speed=None)
    with pytest.raises(DataDirBusy, match="another agent"):
        replay_session(make_config(), tmp_path, sample_csv, speed=None)
    await first.start()
    await first.stop()
    second = replay_session(make_config(), tmp_path, sample_csv, speed=None)   # free again
    await second.stop()


def _unresolved_entry(tmp_path) -> OrderRecord:
    store = Store(tmp_path / "trades.db")
    order = OrderRecord(client_order_id="ta-E1704800000000-1", trade_id=None, side="buy", type="market",
                        amount=0.01, created_ts=1_704_800_000_000, purpose="entry", expected_price=27_000.0)
    store.insert_order(order)
    store.commit(durable=True)
    store.close()
    return order


async def test_an_entry_the_venue_filled_before_a_crash_becomes_the_open_position(tmp_path, sample_csv):
    order = _unresolved_entry(tmp_path)
    engine = replay_session(make_config(), tmp_path, sample_csv, speed=None)
    fill_ts = order.created_ts + 60_000
    filled = replace(order, status="filled", fill_price=27_013.5, filled_amount=0.01, fee=0.135,
                     updated_ts=fill_ts)
    sent: list[str] = []
    real_lookup = engine.venue.lookup

    async def lookup(client_order_id):
        return filled if client_order_id == order.client_order_id else await real_lookup(client_order_id)

    async def place(o):
        sent.append(o.client_order_id)
        raise AssertionError("the entry may not be sent again")

    engine.venue.lookup, engine.venue.place = lookup, place
    opened = asyncio.get_running_loop().create_future()
    engine.bus.subscribe(lambda e: isinstance(e, PositionOpened) and not opened.done() and opened.set_result(e))
    await engine.start()
    assert engine.position_state == "ENTERING", "the fill applies when the replay reaches its time"
    trade = (await opened).trade
    assert trade.entry_price == 27_013.5 and trade.amount == 0.01
    assert trade.entry_ts == fill_ts, "the venue's fill time, not zero"
    assert engine.status().balance == pytest.approx(10_000 - 0.01 * 27_013.5 - 0.135)
    assert sent == []
    await engine.stop()


async def test_an_entry_still_working_at_the_venue_after_a_crash_is_waited_for_not_resent(tmp_path, sample_csv):
    order = _unresolved_entry(tmp_path)
    engine = replay_session(make_config(), tmp_path, sample_csv, speed=None)
    still_open = replace(order, status="open")
    sent: list[str] = []

    async def lookup(client_order_id):
        return still_open

    async def place(o):
        sent.append(o.client_order_id)
        raise AssertionError("nothing may be sent while the entry works")

    engine.venue.lookup, engine.venue.place = lookup, place
    await engine.start()
    await engine.wait_finished()
    assert engine.position_state == "ENTERING" and sent == []
    assert all("in progress" in s.reason for s in engine.store.signals())
    await engine.stop()


async def test_an_entry_unknown_at_the_venue_after_a_crash_halts_trading(tmp_path, sample_csv):
    order = _unresolved_entry(tmp_path)
    engine = replay_session(make_config(), tmp_path, sample_csv, speed=None)

    async def lookup(client_order_id):
        return replace(order, status="unknown")

    engine.venue.lookup = lookup
    await engine.start()
    assert engine.run_state == "HALTED" and order.client_order_id in engine.halt_reason
    await engine.stop()


async def test_balance_snapshots_come_once_per_bar_and_at_every_fill(tmp_path, sample_csv):
    engine = await replay(make_config(**ACTIVE), tmp_path, sample_csv)
    trades = engine.store.closed_trades()
    open_trade = engine.store.open_trade()
    bars = engine._bars_this_run
    await engine.stop()
    with sqlite3.connect(tmp_path / "trades.db") as con:
        stamps = [row[0] for row in con.execute("SELECT timestamp FROM balance_snapshots ORDER BY id")]
    from persistence.store import ms_from_iso

    times = [ms_from_iso(t) for t in stamps]
    fills = [t.entry_ts for t in trades] + [t.exit_ts for t in trades] + ([open_trade.entry_ts] if open_trade else [])
    assert set(fills) <= set(times), "a snapshot at every fill"
    time_exits = sum(1 for t in trades if t.exit_reason == "TIME")   # fill and bar close coincide
    assert len(times) == bars + len(fills) - time_exits, "one per bar close, one per fill"
    assert times == sorted(times)
