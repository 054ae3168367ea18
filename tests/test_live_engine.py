"""The engine made for live markets: what a trader whose money rests on the exits relies on."""
from __future__ import annotations

import asyncio
import json
import time

import pytest

import agent.order_manager as om
from agent.events import EngineStateChanged, PositionOpened
from agent.session import replay_session
from agent.venue import OrderOutcomeUnknown
from persistence.store import Store

from .conftest import ACTIVE, make_config


async def test_every_published_state_is_already_in_state_json(tmp_path, sample_csv):
    engine = replay_session(make_config(**ACTIVE), tmp_path, sample_csv, speed=None)
    mismatches: list[str] = []
    seen = 0

    def compare(event):
        nonlocal seen
        if isinstance(event, EngineStateChanged) and (tmp_path / "state.json").exists():
            seen += 1
            state = json.loads((tmp_path / "state.json").read_text())
            if (state["run_state"], state["position_state"]) != (event.run_state, event.position_state):
                mismatches.append(f"{event} vs {state['run_state']}/{state['position_state']}")

    engine.bus.subscribe(compare)
    await engine.start()
    await engine.wait_finished()
    await engine.stop()
    assert seen > 20 and mismatches == []


async def test_exits_rest_at_the_venue_while_the_position_is_open(tmp_path, sample_csv):
    engine = replay_session(make_config(**ACTIVE), tmp_path, sample_csv, speed=None)
    resting: list = []

    async def look(trade):
        resting.extend(await engine.venue.open_orders())

    engine.bus.subscribe(lambda e: isinstance(e, PositionOpened) and not resting
                         and asyncio.ensure_future(look(e.trade)))
    await engine.start()
    await engine.wait_finished()
    await engine.stop()
    kinds = {(o.type, o.reason) for o in resting}
    assert ("stop", "STOP") in kinds and ("limit", "FIB_61.8") in kinds
    assert len({o.group_id for o in resting}) == 1, "one group: one fill cancels the others"


async def test_a_catch_up_is_at_full_speed_and_never_marks_the_position(tmp_path, sample_csv):
    cfg = make_config(**ACTIVE)
    first = replay_session(cfg, tmp_path, sample_csv, speed=None)
    await first.start()
    await first.wait_finished()
    last_bar = first.status().last_bar_ts
    await first.stop()
    again = replay_session(cfg, tmp_path, sample_csv, speed=0.5)   # 2 s per bar if it paced
    started = time.monotonic()
    await again.start()
    await asyncio.wait_for(again.wait_finished(), 30)
    assert time.monotonic() - started < 30
    assert again.status().last_bar_ts == last_bar
    assert again.status().last_price is None, "no live price: catch-up never marks"
    await again.stop()


async def test_trades_never_exit_before_they_enter(tmp_path, sample_csv):
    engine = replay_session(make_config(**ACTIVE), tmp_path, sample_csv, speed=None)
    await engine.start()
    await engine.wait_finished()
    trades = engine.store.closed_trades()
    await engine.stop()
    assert trades and all(t.exit_ts >= t.entry_ts for t in trades)


async def test_pause_and_emergency_stop_act_within_100_ms_while_a_lookup_backs_off(
        tmp_path, sample_csv, monkeypatch):
    monkeypatch.setattr(om, "LOOKUP_BACKOFF_S", 5.0)          # a lookup that takes minutes
    engine = replay_session(make_config(**ACTIVE), tmp_path, sample_csv, speed=200.0)
    real_place = engine.venue.place

    async def place(order):
        if order.purpose == "entry":
            raise OrderOutcomeUnknown("read timeout")
        return await real_place(order)

    async def lookup(client_order_id):
        return None                                          # the venue never answers

    engine.venue.place, engine.venue.lookup = place, lookup
    await engine.start()
    for _ in range(2000):
        if engine.orders.pending_lookups():
            break
        await asyncio.sleep(0.01)
    assert engine.orders.pending_lookups(), "an entry whose outcome is being looked up"
    started = time.monotonic()
    await engine.pause()
    assert engine.run_state == "PAUSED" and time.monotonic() - started < 0.1
    started = time.monotonic()
    await asyncio.wait_for(engine.emergency_stop(), 0.1)
    assert engine.run_state == "HALTED"
    assert time.monotonic() - started < 0.1
    await engine.stop()


class Crash(Exception):
    """Stands for the process dying inside a commit."""


@pytest.mark.slow
async def test_a_crash_inside_any_commit_resumes_to_the_same_trades_and_signals(tmp_path, sample_csv):
    cfg = make_config(**ACTIVE)
    reference = replay_session(cfg, tmp_path / "whole", sample_csv, speed=None)
    await reference.start()
    await reference.wait_finished()
    expected_trades = [(t.signal_ts, t.entry_price, t.exit_ts, t.exit_reason, t.pnl)
                       for t in reference.store.closed_trades()]
    expected_signals = [(s.bar_ts, s.action, s.reason) for s in reference.store.signals()]
    await reference.stop()

    data = tmp_path / "crashy"
    crashes, nth = 0, 15
    while True:
        engine = replay_session(cfg, data, sample_csv, speed=None)
        count, dead, armed = 0, False, True
        real_commit = engine.store.commit

        def commit(durable=False, _real=real_commit):
            nonlocal count, dead
            count += 1
            if armed and count >= nth:                                # dead: nothing commits any more
                dead = True
                raise Crash(f"crash at commit {count}")
            _real(durable)

        engine.store.commit = commit
        try:
            await engine.start()
            await engine.wait_finished()
        except Crash:
            pass
        if not dead:
            armed = False
            await engine.stop()
            break
        crashes += 1                                          # die: nothing more is committed
        engine.store.close()
        engine.venue._conn.close()                           # dies: records nothing more
        engine._lock_file.release()
        await engine.orders.close()
        assert crashes < 500
    store = Store(data / "trades.db")
    got_trades = [(t.signal_ts, t.entry_price, t.exit_ts, t.exit_reason, t.pnl) for t in store.closed_trades()]
    got_signals = [(s.bar_ts, s.action, s.reason) for s in store.signals()]
    store.close()
    assert crashes >= 5
    assert got_trades == expected_trades
    assert got_signals == expected_signals
