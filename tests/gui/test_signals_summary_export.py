"""The Signals tab (every signal with its decision), the end-of-replay summary, and the trades
export that suggests a folder outside the data folder and says in one line why it refuses."""
from __future__ import annotations

import csv
from pathlib import Path

import pytest

from agent.shadow_compare import SHADOW_EXPORT_COLUMNS
from ui import dialogs
from ui.main_window import default_export_folder
from ui.panels.signals_table import COLUMNS
from window_helpers import capture_messages, until

pytestmark = pytest.mark.gui


async def _finish(window) -> None:
    window.set_replay_speed(None)
    await window.start_engine()
    await until(lambda: window.engine.status().feed_state == "finished", "replay finished", 120)
    await until(lambda: window.bridge.pending == 0, "events shown")


async def test_the_signals_tab_lists_every_signal_with_its_decision(window, monkeypatch):
    capture_messages(monkeypatch)
    await window.start_engine()
    await window.engine.pause()                       # signals now are SKIPPED: paused
    window.set_replay_speed(None)
    await until(lambda: window.engine.status().feed_state == "finished", "replay finished", 120)
    await until(lambda: window.bridge.pending == 0, "events shown")
    table = window.signals_table
    stored = {s.bar_ts for s in window.engine.store.signals()}
    assert table.rowCount() == len(stored) > 0
    decision, reason = COLUMNS.index("Decision"), COLUMNS.index("Reason")
    rows = [(table.item(r, decision).text(), table.item(r, reason).text())
            for r in range(table.rowCount())]
    assert ("SKIPPED", "engine paused") in rows
    assert [s.bar_ts for s in table.signals] == sorted(stored, reverse=True)   # newest first


async def test_picking_a_skipped_signal_shows_its_dim_ladder_on_its_bars(window, monkeypatch):
    capture_messages(monkeypatch)
    await window.start_engine()
    await window.engine.pause()
    window.set_replay_speed(None)
    await until(lambda: window.engine.status().feed_state == "finished", "replay finished", 120)
    await until(lambda: window.bridge.pending == 0, "events shown")
    table = window.signals_table
    row = next(r for r, s in enumerate(table.signals) if s.action == "SKIPPED" and s.fib_levels)
    table.selectRow(row)
    signal = table.signals[row]
    chart = window.chart
    assert chart.fib.dimmed and chart.fib.note.toPlainText() == f"not traded: {signal.reason}"
    x0, x1 = chart.view.viewRange()[0]
    assert x0 < signal.bar_ts / 1000 < x1 and not chart.following


async def test_picking_an_entered_signal_selects_its_trade(window, monkeypatch):
    capture_messages(monkeypatch)
    await _finish(window)
    table = window.signals_table
    row = next(r for r, s in enumerate(table.signals) if s.action == "ENTERED")
    table.selectRow(row)
    trade_id = int(table.signals[row].reason.removeprefix("trade "))
    selected = {window.trades_table.trade_at(i.row()).id
                for i in window.trades_table.selectedIndexes()}
    assert selected == {trade_id} and window.chart.markers.selected == trade_id


async def test_the_end_of_a_replay_shows_a_summary(window, monkeypatch):
    shown = capture_messages(monkeypatch)
    await _finish(window)
    await until(lambda: any(title == "Replay finished" for title, _ in shown), "summary shown")
    text = next(text for title, text in shown if title == "Replay finished")
    trades = window.engine.store.closed_trades()
    assert "3,000 bars processed" in text
    assert f"Trades: {len(trades)} (" in text
    assert "Realised PnL: +" in text and "Max drawdown: " in text
    assert "vs backtest: " in text and f"agent {len(trades)} trades" in text
    window.refresh_replay()                            # the progress timer keeps running
    assert window.replay_bar.progress_label.text().startswith("finished · bar 3,000 of 3,000")


def test_an_export_is_suggested_in_documents_or_home():
    from PySide6.QtCore import QStandardPaths

    documents = QStandardPaths.writableLocation(QStandardPaths.StandardLocation.DocumentsLocation)
    expected = Path(documents) if documents and Path(documents).is_dir() else Path.home()
    assert default_export_folder() == expected


async def test_an_export_into_the_data_folder_is_refused_in_one_line(window, monkeypatch):
    shown = capture_messages(monkeypatch)
    suggested: list[str] = []

    async def choose(parent, caption, name_filter, default_path, suffix):
        suggested.append(default_path)
        return window.engine.data_dir / "trades.csv"
    monkeypatch.setattr(dialogs, "choose_save_file", choose)
    await window.export_trades()
    assert not Path(suggested[0]).resolve().is_relative_to(window.engine.data_dir.resolve())
    (title, text), = shown
    assert text.startswith("Not exported: ") and "inside the data folder" in text
    assert "\n" not in text
    assert not (window.engine.data_dir / "trades.csv").exists()


async def test_an_export_carries_the_backtest_shadow_columns(window, monkeypatch, tmp_path):
    capture_messages(monkeypatch)
    await _finish(window)
    window.refresh()
    out = tmp_path / "export" / "trades.csv"
    out.parent.mkdir()

    async def choose(*args):
        return out
    monkeypatch.setattr(dialogs, "choose_save_file", choose)
    await window.export_trades()
    with out.open() as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == len(window.engine.store.closed_trades())
    assert set(SHADOW_EXPORT_COLUMNS) <= set(rows[0])
    assert all(row["shadow_cause"] for row in rows)
