"""SIGKILL of a real agent process after its entry order was accepted by the exchange but before
the reply was stored; a restart on the same data folder against the same simulator ends with
exactly one entry on the exchange and in the store, and the exits resting at the exchange.

The child (this module run with `python -m tests.exchange_sim.test_reconcile_kill CHILD ...`)
runs the real engine (agent.session.exchange_session, real ccxt client) on the sample's bars up
to the entry bar's open; the simulator (in the test process) books the market entry and never
answers (`lost_reply`); the test kills the child with SIGKILL the moment the order is booked.
"""
from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

from tests.exchange_sim.test_reconcile import (BARS, ENTRY, FIRST_SIGNAL, TF, _all_orders, config,
                                               entry_orders, new_engine, oco_legs_open, until)

ROOT = Path(__file__).resolve().parents[2]


class ChildMarket:
    """History, then the live signal bar's close and the entry bar's open; then nothing, ever."""

    async def events(self, resume_after_ts: int | None) -> AsyncIterator:
        from data import market as mk
        for i, bar in enumerate(BARS[:ENTRY]):
            yield mk.BarClosed(bar, bar.ts + TF, live=i >= FIRST_SIGNAL - 3)
        yield mk.BarOpened(BARS[ENTRY].ts, BARS[ENTRY].open)
        await asyncio.Event().wait()


async def child(url: str, data_dir: str) -> None:
    from agent.clock import ReplayClock
    from agent.session import exchange_session
    from data.exchange import ExchangeClient, ExchangeSettings
    client = ExchangeClient(ExchangeSettings(exchange_url=url, timeout_ms=60_000),
                            api_key="sim-key", secret="sim-secret")
    engine = exchange_session(config(), Path(data_dir), ChildMarket(), client,
                              clock=ReplayClock(BARS[FIRST_SIGNAL - 3].ts), poll_interval_s=0.05)
    print("child: engine built", flush=True)
    await engine.start()
    await engine.wait_finished()           # never: the parent kills this process


async def test_sigkill_after_entry_accepted_before_reply_stored(sim, tmp_path):
    sim.price = sim._tick_down(sim.price.__class__(str(BARS[ENTRY].open)))
    sim.clock = lambda: BARS[ENTRY].ts + 500
    sim.hang_seconds = 120.0
    sim.fault("order", "lost_reply", method="POST")
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.exchange_sim.test_reconcile_kill", "CHILD", sim.url, str(tmp_path),
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    try:
        await until(lambda: sim.count("POST", "order") == 1 or proc.returncode is not None,
                    "the child's entry order", timeout=120)
        assert proc.returncode is None, (await proc.stdout.read()).decode()[-3000:]
        booked = next(iter(sim.orders.values()))
        assert booked.status == "FILLED" and booked.side == "BUY"
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGKILL)
        await proc.wait()
    assert proc.returncode == -signal.SIGKILL

    engine, _ = new_engine(sim, tmp_path, ENTRY)
    before = [o for o in _all_orders(engine)]
    assert [(o.purpose, o.status) for o in before] == [("entry", "new")], \
        "the child stored the order before sending it, and died before storing the reply"
    await engine.start()
    assert engine.halt_reason is None, engine.halt_reason
    t = engine.store.open_trade()
    assert t is not None and engine.position_state == "IN_POSITION"
    assert t.entry_ts == BARS[ENTRY].ts + 500
    assert len(oco_legs_open(sim)) == 2, "exits resting at the exchange right after the restart"
    stored = entry_orders(engine)
    assert len(stored) == 1 and stored[0].status == "filled"
    assert stored[0].exchange_order_id == str(booked.order_id)
    await asyncio.wait_for(engine.wait_finished(), 45)
    trades = engine.store.closed_trades()
    await engine.stop()
    assert sim.count("POST", "order") == 1, "the entry was never sent again"
    assert sim.count("POST", "orderList/oco") == 1
    assert len(trades) == 1 and trades[0].exit_reason == "STOP"
    assert len([o for o in sim.orders.values() if o.side == "BUY"]) == 1


if __name__ == "__main__" and sys.argv[1:2] == ["CHILD"]:
    asyncio.run(child(sys.argv[2], sys.argv[3]))
