"""The issue's repro, driven through the window: a position opens, the window closes, the same
data folder is relaunched at --speed 2 and Manual Close is confirmed at once. Before the engine
was made for live markets this stored an exit in January for a March entry at -12 %. Now the
committed bars are caught up unpaced, the close waits for the first live price, and the exit is
never before its entry nor at a price from the catch-up."""
from __future__ import annotations

import pytest

from agent.events import PositionOpened
from ui.main_window import MainWindow
from window_helpers import answer_dialogs, make_engine, until

pytestmark = pytest.mark.gui


async def test_manual_close_right_after_a_restart_exits_after_its_entry_at_a_live_price(
        tmp_path, sample_csv, monkeypatch):
    answer_dialogs(monkeypatch, True)
    first = make_engine(tmp_path, sample_csv, speed=None)

    def freeze(event) -> None:
        if isinstance(event, PositionOpened):
            first.pacer.set_paused(True)              # the position stays open when we leave
    first.bus.subscribe(freeze)
    w = MainWindow(first)
    w.show()
    w.start_engine()
    await until(lambda: first.status().open_trade is not None, "a position opens", 120)
    entry = first.status().open_trade
    w.shutdown_now()
    await w.wait_closed()
    resume_after = first.status().last_bar_ts             # the catch-up covers up to here

    second = make_engine(tmp_path, sample_csv, speed=2.0)
    w2 = MainWindow(second)
    w2.show()
    try:
        w2.start_engine()
        await until(lambda: second.status().run_state == "RUNNING", "the engine runs", 30)
        await w2.manual_close()
        await until(lambda: second.status().open_trade is None, "the position is closed", 60)
        trade = second.store.closed_trades()[-1]
        assert trade.id == entry.id
        assert trade.exit_ts >= trade.entry_ts
        assert trade.exit_ts > resume_after, "the exit came from a live price, not the catch-up"
        assert trade.exit_reason.lower().startswith("manual")
    finally:
        w2.shutdown_now()
        await w2.wait_closed()
