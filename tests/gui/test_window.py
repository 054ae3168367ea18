"""The main window over the REAL engine replaying a small generated sample (paper broker)."""
from __future__ import annotations

import json

import pytest

from agent.config import default_config
from ui import dialogs, theme
from ui.main_window import MainWindow
from window_helpers import (answer_dialogs, capture_messages, click, freeze_on_first_entry,
                            make_engine, until)

pytestmark = pytest.mark.gui


async def test_window_opens_on_a_replay_and_shows_its_candles(window):
    assert window.isVisible()
    assert window.control_bar.state_label.text() == "STOPPED"
    assert window.control_bar.mode_badge.text() == "PAPER"
    click(window.control_bar.start_button)
    await until(lambda: window.chart.candle_count() >= 500, "candles on the chart")
    assert window.windowTitle().startswith("RUNNING")


async def test_start_button_starts_the_engine(window):
    click(window.control_bar.start_button)
    await window.wait_idle()
    assert window.engine.run_state == "RUNNING"
    await until(lambda: window.control_bar.state_label.text() == "RUNNING", "RUNNING shown")


async def test_pause_and_resume_buttons_change_the_engine_state(window):
    await window.start_engine()
    await until(lambda: window.control_bar.pause_button.isEnabled(), "pause usable")
    click(window.control_bar.pause_button)
    await window.wait_idle()
    assert window.engine.run_state == "PAUSED"
    await until(lambda: window.control_bar.pause_button.text() == "Resume", "resume offered")
    click(window.control_bar.pause_button)
    await window.wait_idle()
    assert window.engine.run_state == "RUNNING"


async def test_emergency_stop_halts_when_confirmed(window, monkeypatch):
    asked = answer_dialogs(monkeypatch, True)
    await window.start_engine()
    click(window.control_bar.emergency_button)
    await window.wait_idle()
    assert window.engine.run_state == "HALTED"
    assert "HALT" in asked[0]
    await until(lambda: window.control_bar.clear_halt_button.isVisible(), "clear halt offered")


async def test_emergency_stop_does_nothing_when_cancelled(window, monkeypatch):
    answer_dialogs(monkeypatch, False)
    await window.start_engine()
    click(window.control_bar.emergency_button)
    await window.wait_idle()
    assert window.engine.run_state == "RUNNING"


async def test_emergency_stop_flattens_an_open_position(window, monkeypatch):
    asked = answer_dialogs(monkeypatch, True)
    freeze_on_first_entry(window.engine)
    await window.start_engine()
    await until(lambda: window.engine.status().open_trade is not None, "a position opens")
    click(window.control_bar.emergency_button)
    await window.wait_idle()
    (last,) = window.engine.store.closed_trades(limit=1)
    assert last.exit_reason == "EMERGENCY" and window.engine.status().open_trade is None
    assert "close the open position" in asked[0]


async def test_clear_halt_returns_to_stopped(window, monkeypatch):
    answer_dialogs(monkeypatch, True)
    await window.start_engine()
    await window.emergency_stop()
    await until(lambda: window.control_bar.clear_halt_button.isVisible(), "clear halt offered")
    click(window.control_bar.clear_halt_button)
    await window.wait_idle()
    assert window.engine.run_state == "STOPPED"


async def test_manual_close_closes_the_open_position(window, monkeypatch):
    answer_dialogs(monkeypatch, True)
    freeze_on_first_entry(window.engine)
    await window.start_engine()
    await until(lambda: window.position_panel.close_button.isEnabled(), "manual close usable")
    trade_id = window.engine.status().open_trade.id
    click(window.position_panel.close_button)
    await window.wait_idle()
    assert window.engine.status().open_trade is None
    (last,) = window.engine.store.closed_trades(limit=1)
    assert (last.id, last.exit_reason) == (trade_id, "MANUAL")
    await until(lambda: window.position_panel.flat_label.isVisible(), "flat shown")
    await until(lambda: window.trades_table.rowCount() >= 1, "trade listed")
    assert window.trades_table.trade_at(0).exit_reason == "MANUAL"


async def test_manual_close_keeps_the_position_when_cancelled(window, monkeypatch):
    answer_dialogs(monkeypatch, False)
    freeze_on_first_entry(window.engine)
    await window.start_engine()
    await until(lambda: window.position_panel.close_button.isEnabled(), "manual close usable")
    click(window.position_panel.close_button)
    await window.wait_idle()
    assert window.engine.status().open_trade is not None


async def test_import_config_refuses_an_invalid_file_naming_every_field_in_full(
        window, monkeypatch, tmp_path):
    from PySide6.QtWidgets import QMessageBox

    from agent.config import ConfigError, load_config

    bad = tmp_path / "config.json"
    raw = json.loads(default_config().model_dump_json(by_alias=True))
    raw["backtest_params"]["fib_target_level"] = 0.236
    raw["backtest_params"]["ema_fastt"] = 3
    bad.write_text(json.dumps(raw))
    with pytest.raises(ConfigError) as rejected:
        load_config(bad)

    async def choose(*args, **kwargs):
        return bad

    monkeypatch.setattr(dialogs, "choose_open_file", choose)
    task = window.import_config()
    await until(lambda: window.findChild(QMessageBox, "problemsDialog") is not None,
                "the invalid-config dialog")
    box = window.findChild(QMessageBox, "problemsDialog")
    text = box.text()
    assert box.windowTitle() == "Invalid config"
    assert str(tmp_path) not in text                  # the path is not repeated
    assert "config.json was not imported (2 problems)" in text
    for field in ("backtest_params.fib_target_level", "backtest_params.ema_fastt"):
        assert f'<b style="white-space: nowrap">{field}</b>' in text   # never cut or wrapped
    assert len(rejected.value.problems) == 2
    box.accept()
    await task


async def test_import_config_is_refused_while_the_engine_runs(window, monkeypatch):
    shown = capture_messages(monkeypatch)
    opened: list[int] = []

    async def choose(*args, **kwargs):
        opened.append(1)
        return None

    monkeypatch.setattr(dialogs, "choose_open_file", choose)
    await window.start_engine()
    await window.import_config()
    assert opened == [] and "stop the engine" in shown[-1][1]


async def test_chart_shows_candles_emas_and_a_fibonacci_ladder_after_a_signal(window):
    await window.start_engine()
    await until(lambda: window.chart_sync.ladder_source is not None, "a Fibonacci ladder")
    chart = window.chart
    assert chart.candle_count() > 0
    assert len(chart.fib.prices()) == 5
    for ema in (chart.ema_fast, chart.ema_slow):
        assert ema.isVisible() and not ema.boundingRect().isEmpty()


async def test_panels_show_what_the_store_holds(window):
    freeze_on_first_entry(window.engine)
    await window.start_engine()
    await until(lambda: window.engine.status().open_trade is not None, "a position opens")
    window.refresh()
    trade = window.engine.store.open_trade()
    stats = window.engine.store.stats(window.engine.clock.now_ms())
    from ui.panels.style import format_price

    assert window.position_panel.text("entry") == format_price(trade.entry_price)
    assert window.stats_panel.text("total_trades") == str(stats.total_trades)
    assert window.stats_panel.text("today_trades") == str(stats.today_trades)


async def test_trades_table_and_stats_match_the_store_after_a_full_replay(window):
    await window.start_engine()
    await until(lambda: window.engine.status().feed_state == "finished", "replay finished")
    await until(lambda: window.bridge.pending == 0, "events delivered")
    window.bridge.drain()
    window.refresh()
    closed = window.engine.store.closed_trades()
    assert len(closed) >= 1
    assert [t.id for t in window.trades_table.trades] == [t.id for t in closed]
    assert window.stats_panel.text("total_trades") == str(len(closed))


async def test_log_viewer_receives_engine_logs(window):
    await window.start_engine()
    await window.engine.pause()
    await until(lambda: "paused: no new entries" in window.log_viewer.visible_text(),
                "the engine's log line in the viewer")


async def test_selecting_a_trade_draws_its_ladder(window):
    await window.start_engine()
    await until(lambda: window.trades_table.rowCount() >= 1, "a closed trade")
    window.trades_table.selectRow(0)
    selected = window.trades_table.trade_at(0)
    assert window.chart_sync.ladder_source == "selected"
    assert max(window.chart.fib.prices()) == pytest.approx(selected.swing_high)
    assert not window.chart.following


async def test_closing_the_window_stops_the_engine_and_persists_state(tmp_path, sample_csv):
    engine = make_engine(tmp_path, sample_csv)
    w = MainWindow(engine)
    w.show()
    await w.start_engine()
    w.close()
    assert await w.wait_closed() == 0
    assert not w.isVisible()
    assert (engine.data_dir / "state.json").exists()
    assert engine.run_state == "STOPPED"


async def test_window_remembers_its_splitter_sizes(tmp_path, sample_csv):
    first = MainWindow(make_engine(tmp_path / "a", sample_csv))
    first.show()
    first.main_splitter.setSizes([300, 600])
    sizes = first.main_splitter.sizes()
    first.close()
    await first.wait_closed()
    second = MainWindow(make_engine(tmp_path / "b", sample_csv))
    second.show()
    try:
        assert second.main_splitter.sizes() == sizes
    finally:
        second.close()
        await second.wait_closed()


async def test_the_replay_speed_choice_changes_the_engines_pace(window):
    bar = window.replay_bar
    assert bar.speed_combo.isVisibleTo(window)
    bar.speed_combo.activated.emit(bar.speed_combo.findText("max"))
    assert window.engine.replay_speed is None
    bar.speed_combo.activated.emit(bar.speed_combo.findText("10 bars/s"))
    assert window.engine.replay_speed == 10.0


async def test_window_title_shows_the_run_state_and_todays_pnl(window):
    await window.start_engine()
    await until(lambda: window.windowTitle().startswith("RUNNING"), "RUNNING in the title")
    pair = window.engine.config.exchange.trading_pair
    assert pair in window.windowTitle() and "Today" in window.windowTitle()


async def test_performance_tab_shows_the_equity_curve_and_daily_pnl_of_the_trades(window):
    from ui.panels.performance import daily_pnl

    await window.start_engine()
    await until(lambda: window.engine.status().feed_state == "finished", "replay finished")
    await until(lambda: window.bridge.pending == 0, "events delivered")
    window.bridge.drain()
    closed = window.engine.store.closed_trades()
    assert window.tabs.tabText(window.tabs.indexOf(window.performance)) == "Performance"
    curve = window.performance.curve
    initial = window.engine.config.exchange.paper_initial_balance
    assert curve.equity[-1] == pytest.approx(initial + sum(t.pnl for t in closed))
    assert len(curve.equity) == len(closed) + 1
    days, pnl = daily_pnl(closed)
    assert list(window.performance.daily_bars.opts["height"]) == pytest.approx(list(pnl))
    assert "max drawdown" in window.performance.summary.text()


async def test_performance_tab_shows_the_operating_kpis_with_a_crossed_threshold_in_red(window):
    from persistence.records import SignalRecord

    def signal(ts: int, action: str, reason: str) -> SignalRecord:
        return SignalRecord(bar_ts=ts, close=1.0, ema_fast=1.0, ema_slow=1.0, vol_z=1.0, tr_z=1.0,
                            cloc=1.0, fib_swing_high=None, fib_levels=None, target_price=None,
                            action=action, reason=reason)

    store = window.engine.store
    store.insert_signal(signal(1_754_051_400_000, "ENTERED", "trade 1"))
    store.insert_signal(signal(1_754_052_300_000, "SKIPPED", "entry order rejected: insufficient balance"))
    store.add_link_checks(1_754_052_300_000, 120, 120)
    store.commit()
    window.tabs.setCurrentWidget(window.performance)       # read at once when the tab is shown
    text = window.performance.kpis.text()
    assert "execution rate: 50.0% (1 of 2 signals traded)" in text
    assert "WARNING: below 90%" in text and theme.DOWN in text
    assert "connection uptime: 100.0% of 120 health checks" in text
