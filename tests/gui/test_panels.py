"""The window's parts on their own: bridge coalescing, log plumbing, panels, dialogs, toasts."""
from __future__ import annotations

import asyncio
import logging
import threading

import pytest
from PySide6.QtCore import QSettings, Qt
from PySide6.QtWidgets import QApplication, QMessageBox, QPushButton, QWidget

from agent.events import (BalanceChanged, BarClosed, EngineStateChanged, EventBus, PositionOpened,
                          PriceTick)
from agent.strategy import Decision
from data.bar import Bar
from persistence.records import Stats, TradeRecord
from ui import dialogs
from ui.bridge import EngineBridge, TickSummary
from ui.log_handler import LogLine, LogPump, QueueLogHandler
from ui.notifications import BURST, Notifier
from ui.panels.chart_sync import ChartSync
from ui.panels.control_bar import ControlBar
from ui.panels.log_viewer import LogViewer
from ui.panels.position import PositionPanel
from ui.panels.stats import StatsPanel
from ui.panels.trades_table import COLUMNS, TradesTable, exit_marker_kind

TF = 15 * 60_000
T0 = 1_704_067_200_000


def bar(i: int, close: float = 100.0) -> Bar:
    return Bar(T0 + i * TF, close - 1, close + 2, close - 2, close, 10.0)


def decision(i: int, close: float = 100.0, signal: bool = False, fib=None,
             target: float | None = None) -> Decision:
    return Decision(bar(i, close), i, close, close, 1.0, 0.0, 0.0, 0.5, signal, fib, target, None)


def trade(**changes) -> TradeRecord:
    values = dict(pair="BTC/USDT", signal_ts=T0, entry_ts=T0 + TF, entry_price=100.0,
                  entry_reference=100.0, amount=2.0, entry_fee=0.1, mode="paper",
                  fib_target_level=0.618, target_price=106.18, stop_price=95.0, risk_stop=95.0,
                  swing_high=110.0, swing_low=100.0 - 0.0, id=1)
    values.update(changes)
    return TradeRecord(**values)


def closed_trade(**changes) -> TradeRecord:
    values = dict(status="closed", exit_ts=T0 + 5 * TF, exit_price=106.18, exit_reason="FIB_61.8",
                  pnl=12.0, pnl_percent=6.0, bars_held=4)
    values.update(changes)
    return trade(**values)


# ----- bridge ---------------------------------------------------------------------------------
@pytest.fixture
def bridge(qtbot):
    bus = EventBus()
    b = EngineBridge(bus, interval_ms=10_000)   # drained by hand in these tests
    yield bus, b
    b.close()


def record(signal) -> list:
    seen: list = []
    signal.connect(seen.append)
    return seen


def test_bridge_coalesces_consecutive_bars_into_one_batch(bridge):
    bus, b = bridge
    batches = record(b.bars_closed)
    for i in range(500):
        bus.publish(BarClosed(bar(i), decision(i)))
    b.drain()
    assert len(batches) == 1 and len(batches[0]) == 500
    assert [e.bar.ts for e in batches[0]] == [bar(i).ts for i in range(500)]


def test_bridge_keeps_only_the_latest_tick_with_the_range_of_the_dropped_ones(bridge):
    bus, b = bridge
    ticks = record(b.price_ticked)
    for ts, price in ((1, 100.0), (2, 103.0), (3, 98.0), (4, 101.0)):
        bus.publish(PriceTick(T0 + ts, price))
    b.drain()
    assert ticks == [TickSummary(T0 + 4, 101.0, 103.0, 98.0)]


def test_bridge_drops_ticks_that_a_later_bar_close_supersedes(bridge):
    bus, b = bridge
    ticks = record(b.price_ticked)
    bus.publish(PriceTick(T0 + 1, 100.0))
    bus.publish(BarClosed(bar(0), decision(0)))
    b.drain()
    assert ticks == []


def test_bridge_emits_bars_before_the_trade_that_follows_them(bridge):
    bus, b = bridge
    order: list[str] = []
    b.bars_closed.connect(lambda batch: order.append(f"bars:{len(batch)}"))
    b.position_opened.connect(lambda e: order.append("opened"))
    bus.publish(BarClosed(bar(0), decision(0)))
    bus.publish(BarClosed(bar(1), decision(1)))
    bus.publish(PositionOpened(trade()))
    bus.publish(BarClosed(bar(2), decision(2)))
    b.drain()
    assert order == ["bars:2", "opened", "bars:1"]


def test_bridge_emits_only_the_latest_balance(bridge):
    bus, b = bridge
    balances = record(b.balance_changed)
    for i in range(5):
        bus.publish(BalanceChanged(T0 + i, 1000.0 + i, 1000.0 + i, float(i), 0.0))
    b.drain()
    assert [e.balance for e in balances] == [1004.0]


def test_bridge_preserves_the_order_of_state_changes(bridge):
    bus, b = bridge
    states = record(b.state_changed)
    for state in ("STARTING", "RUNNING", "PAUSED"):
        bus.publish(EngineStateChanged(state, "MONITORING", None, T0))
    b.drain()
    assert [e.run_state for e in states] == ["STARTING", "RUNNING", "PAUSED"]


def test_bridge_stops_listening_when_closed(bridge):
    bus, b = bridge
    states = record(b.state_changed)
    b.close()
    bus.publish(EngineStateChanged("RUNNING", "MONITORING", None, T0))
    b.drain()
    assert states == [] and b.pending == 0


def test_bridge_drains_on_its_own_timer(qtbot):
    bus = EventBus()
    b = EngineBridge(bus, interval_ms=5)
    states = record(b.state_changed)
    bus.publish(EngineStateChanged("RUNNING", "MONITORING", None, T0))
    qtbot.waitUntil(lambda: len(states) == 1)
    b.close()


# ----- log handler and viewer -----------------------------------------------------------------
def test_log_handler_carries_records_from_another_thread_to_the_pump(qtbot):
    handler = QueueLogHandler()
    logger = logging.getLogger("test.gui.thread")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    pump = LogPump(handler, interval_ms=5)
    got: list[LogLine] = []
    pump.lines.connect(got.extend)
    try:
        worker = threading.Thread(target=lambda: logger.info("from a worker thread"))
        worker.start()
        worker.join()
        qtbot.waitUntil(lambda: any("from a worker thread" in line.text for line in got))
    finally:
        logger.removeHandler(handler)
        pump.stop()


def test_log_handler_masks_credentials_before_the_window_sees_them():
    handler = QueueLogHandler()
    record = logging.LogRecord("agent", logging.WARNING, __file__, 1,
                               "connect with api_key=abcdef123456", None, None)
    handler.emit(record)
    (line,) = handler.drain()
    assert "abcdef123456" not in line.text and "abcdef123456" not in line.message


def test_log_handler_keeps_only_the_newest_lines_when_nobody_drains():
    handler = QueueLogHandler(max_pending=10)
    for i in range(25):
        handler.emit(logging.LogRecord("agent", logging.INFO, __file__, 1, f"line {i}", None, None))
    lines = handler.drain()
    assert [line.message for line in lines] == [f"line {i}" for i in range(15, 25)]


def line(level: int, text: str) -> LogLine:
    return LogLine(level, logging.getLevelName(level), text, text)


@pytest.fixture
def viewer(qtbot) -> LogViewer:
    v = LogViewer(max_lines=200)
    qtbot.addWidget(v)
    v.resize(600, 200)
    v.show()
    return v


def test_log_viewer_hides_debug_by_default_and_shows_it_when_checked(viewer):
    viewer.append_lines([line(logging.DEBUG, "quiet detail"), line(logging.INFO, "hello")])
    assert "quiet detail" not in viewer.visible_text() and "hello" in viewer.visible_text()
    viewer.filters[logging.DEBUG].setChecked(True)
    assert "quiet detail" in viewer.visible_text()


def test_log_viewer_level_filter_hides_that_level(viewer):
    viewer.append_lines([line(logging.WARNING, "careful"), line(logging.ERROR, "broken")])
    viewer.filters[logging.WARNING].setChecked(False)
    assert "careful" not in viewer.visible_text() and "broken" in viewer.visible_text()


def test_log_viewer_search_shows_only_matching_lines(viewer, qtbot):
    viewer.append_lines([line(logging.INFO, "ENTERED trade 1"), line(logging.INFO, "new day")])
    viewer.search.setText("entered")
    qtbot.waitUntil(lambda: "new day" not in viewer.visible_text())
    assert "ENTERED trade 1" in viewer.visible_text()


def test_log_viewer_memory_is_bounded(viewer):
    viewer.append_lines([line(logging.INFO, f"line {i}") for i in range(1000)])
    assert viewer.line_count() == 200
    assert viewer.text.document().blockCount() == 200
    assert "line 999" in viewer.visible_text() and "line 799\n" not in viewer.visible_text()


def test_log_viewer_colours_errors_red(viewer):
    viewer.append_lines([line(logging.ERROR, "broken")])
    block = viewer.text.document().lastBlock()
    color = block.begin().fragment().charFormat().foreground().color().name()
    assert color == "#f44336"


def test_log_viewer_keeps_the_reader_position_when_scrolled_up(viewer):
    viewer.append_lines([line(logging.INFO, f"line {i}") for i in range(100)])
    bar = viewer.text.verticalScrollBar()
    assert viewer.following
    bar.setValue(10)
    viewer.append_lines([line(logging.INFO, f"more {i}") for i in range(20)])
    assert bar.value() == 10 and not viewer.following
    assert viewer.follow_button.isVisible()


def test_log_viewer_follows_new_lines_at_the_bottom(viewer):
    viewer.append_lines([line(logging.INFO, f"line {i}") for i in range(100)])
    viewer.append_lines([line(logging.INFO, f"more {i}") for i in range(20)])
    bar = viewer.text.verticalScrollBar()
    assert bar.value() == bar.maximum()


# ----- control bar ----------------------------------------------------------------------------
@pytest.fixture
def control_bar(qtbot) -> ControlBar:
    bar_ = ControlBar()
    qtbot.addWidget(bar_)
    bar_.show()
    return bar_


@pytest.mark.parametrize("state, start, pause_text, pause_enabled, stop, emergency", [
    ("STOPPED", True, "Pause", False, False, True),
    ("RUNNING", False, "Pause", True, True, True),
    ("PAUSED", False, "Resume", True, True, True),
    ("HALTED", False, "Pause", False, False, False),
])
def test_control_bar_enables_only_the_commands_of_the_state(control_bar, state, start,
                                                            pause_text, pause_enabled, stop,
                                                            emergency):
    control_bar.set_run_state(state, "MONITORING", None)
    assert control_bar.start_button.isEnabled() is start
    assert control_bar.pause_button.text() == pause_text
    assert control_bar.pause_button.isEnabled() is pause_enabled
    assert control_bar.stop_button.isEnabled() is stop
    assert control_bar.emergency_button.isEnabled() is emergency


def test_pause_says_it_means_no_new_entries(control_bar):
    control_bar.set_run_state("RUNNING", "MONITORING", None)
    assert "no new entries" in control_bar.pause_button.toolTip()
    control_bar.set_run_state("PAUSED", "MONITORING", None)
    assert "no new entries" in control_bar.state_label.toolTip()


def test_control_bar_shows_cash_and_equity_so_an_entry_is_not_a_loss(control_bar):
    control_bar.set_balance(9_000.0, -1.0, "USDT", equity=9_999.0)
    assert control_bar.balance_label.text() == "9,000.00 / 9,999.00 USDT"


def test_control_bar_offers_clear_halt_only_when_halted(control_bar):
    control_bar.set_run_state("RUNNING", "MONITORING", None)
    assert not control_bar.clear_halt_button.isVisible()
    control_bar.set_run_state("HALTED", "MONITORING", "emergency stop by the operator")
    assert control_bar.clear_halt_button.isVisible()
    assert "emergency stop" in control_bar.reason_label.text()


def test_control_bar_flashes_only_on_halted_and_error(control_bar):
    control_bar.set_run_state("HALTED", "MONITORING", "x")
    assert control_bar.flashing
    control_bar.set_run_state("STOPPED", "MONITORING", None)
    assert not control_bar.flashing


def test_control_bar_keeps_emergency_stop_usable_while_a_command_runs(control_bar):
    control_bar.set_run_state("RUNNING", "MONITORING", None)
    control_bar.set_busy(True)
    assert control_bar.emergency_button.isEnabled()
    assert not control_bar.pause_button.isEnabled()


def test_control_bar_pause_button_asks_to_resume_when_paused(control_bar, qtbot):
    control_bar.set_run_state("PAUSED", "MONITORING", None)
    with qtbot.waitSignal(control_bar.resume_requested):
        qtbot.mouseClick(control_bar.pause_button, Qt.MouseButton.LeftButton)


def test_control_bar_shows_mode_badge_and_coloured_day_pnl(control_bar):
    control_bar.set_mode("live")
    control_bar.set_balance(10_000.0, -12.5, "USDT")
    assert control_bar.mode_badge.text() == "LIVE"
    assert control_bar.day_pnl_label.text() == "-12.50 USDT"
    assert "#f44336" in control_bar.day_pnl_label.styleSheet()


# ----- position and stats panels --------------------------------------------------------------
def test_position_panel_says_no_open_position_when_flat(qtbot):
    panel = PositionPanel()
    qtbot.addWidget(panel)
    panel.show()
    panel.show_position(None, 101.0, 0.0, T0)
    assert panel.flat_label.isVisible() and not panel.rows.isVisible()
    assert not panel.close_button.isEnabled()


def test_position_panel_shows_the_trade_values(qtbot):
    panel = PositionPanel()
    qtbot.addWidget(panel)
    panel.show()
    panel.show_position(trade(), 105.0, 9.9, T0 + TF + 90 * 60_000)
    assert panel.text("entry") == "100.00"
    assert panel.text("price") == "105.00"
    assert panel.text("size") == "2 BTC"
    assert panel.text("notional") == "210.00 USDT"
    assert panel.text("unrealized") == "+9.90 USDT  (+4.95%)"
    assert panel.text("target") == "61.8% @ 106.18"
    assert panel.text("stop") == "95.00"
    assert panel.text("held") == "1h 30m"
    assert panel.close_button.isEnabled()


def test_position_panel_says_when_the_stop_is_disabled(qtbot):
    panel = PositionPanel()
    qtbot.addWidget(panel)
    panel.show_position(trade(stop_price=None), 100.0, 0.0, T0)
    assert panel.text("stop") == "disabled"


def test_stats_panel_shows_the_store_figures(qtbot):
    panel = StatsPanel()
    qtbot.addWidget(panel)
    panel.show_stats(Stats(today_trades=3, today_wins=2, today_losses=1, today_pnl=12.5,
                           total_trades=10, total_wins=6, total_pnl=-20.0,
                           max_drawdown_percent=3.25, sharpe=0.42, avg_duration_minutes=135.0),
                     "USDT")
    assert panel.text("today_trades") == "3"
    assert panel.text("today_wl") == "2 / 1"
    assert panel.text("today_win_rate") == "66.7%"
    assert panel.text("today_pnl") == "+12.50 USDT"
    assert panel.text("total_pnl") == "-20.00 USDT"
    assert panel.text("win_rate") == "60.0%"
    assert panel.text("max_dd") == "3.25%"
    assert panel.text("sharpe") == "0.42"
    assert panel.text("avg_duration") == "2h 15m"


def test_stats_panel_marks_a_broken_feed_red(qtbot):
    panel = StatsPanel()
    qtbot.addWidget(panel)
    panel.show_health("disconnected", "paper", 12.0, T0, T0, 900_000)
    assert "#f44336" in panel._values["feed"].styleSheet()
    assert panel.text("latency") == "12 ms"


# ----- trades table ---------------------------------------------------------------------------
@pytest.mark.parametrize("reason, pnl, kind", [
    ("FIB_61.8", 5.0, "target"), ("TP_2.0R", 5.0, "target"), ("STOP", -5.0, "stop"),
    ("STOP_GAP", -5.0, "stop"), ("DAILY_LOSS_LIMIT", -5.0, "stop"), ("EMERGENCY", -5.0, "stop"),
    ("EMERGENCY", 5.0, "neutral"), ("TIME", -5.0, "neutral"), ("MANUAL", -5.0, "neutral"),
])
def test_exit_reason_maps_to_the_marker_kind(reason, pnl, kind):
    assert exit_marker_kind(reason, pnl) == kind


def test_trades_table_lists_newest_first_with_coloured_pnl(qtbot):
    table = TradesTable()
    qtbot.addWidget(table)
    table.set_trades([closed_trade(id=1, pnl=12.0), closed_trade(id=2, pnl=-3.0,
                                                                  exit_reason="STOP")], "USDT")
    assert table.item(0, 0).text() == "2" and table.item(1, 0).text() == "1"
    pnl = COLUMNS.index("PnL")
    assert table.item(0, pnl).text() == "-3.00 USDT"
    assert table.item(0, pnl).foreground().color().name() == "#f44336"
    assert table.item(1, pnl).foreground().color().name() == "#4caf50"


def test_trades_table_shows_size_fees_and_r_multiple(qtbot):
    table = TradesTable()
    qtbot.addWidget(table)
    trade = closed_trade(id=1, pnl=12.0)
    table.set_trades([trade], "USDT")
    row = {name: table.item(0, i).text() for i, name in enumerate(COLUMNS)}
    risk = (trade.entry_price - trade.risk_stop) * trade.amount
    assert row["Size"] == f"{trade.amount:.6g}"
    assert row["Fees"] == f"{trade.entry_fee + trade.exit_fee:,.2f}"
    assert row["R"] == f"{12.0 / risk:+.2f}R"


def test_trades_table_sorts_by_value_and_still_selects_the_right_trade(qtbot):
    table = TradesTable()
    qtbot.addWidget(table)
    trades = [closed_trade(id=1, pnl=5.0), closed_trade(id=2, pnl=-30.0),
              closed_trade(id=3, pnl=100.0)]
    table.set_trades(trades, "USDT")
    table.sortByColumn(COLUMNS.index("PnL"), Qt.SortOrder.AscendingOrder)
    assert [table.trade_at(r).id for r in range(3)] == [2, 1, 3]   # -30 < 5 < 100, not by text
    with qtbot.waitSignal(table.trade_selected) as chosen:
        table.selectRow(2)
    assert chosen.args[0].id == 3


def test_trades_table_pnl_columns_are_not_squeezed(qtbot):
    table = TradesTable()
    qtbot.addWidget(table)
    table.resize(500, 300)
    table.set_trades([closed_trade(id=1, pnl=-12345.67)], "USDT")
    for name in ("PnL", "PnL %"):
        column = COLUMNS.index(name)
        text = table.item(0, column).text()
        assert table.columnWidth(column) >= table.fontMetrics().horizontalAdvance(text)


def test_trades_table_selection_emits_the_trade(qtbot):
    table = TradesTable()
    qtbot.addWidget(table)
    table.set_trades([closed_trade(id=1), closed_trade(id=2)], "USDT")
    with qtbot.waitSignal(table.trade_selected) as blocker:
        table.selectRow(1)
    assert blocker.args[0].id == 1


# ----- chart sync (real ChartWidget) ----------------------------------------------------------
@pytest.fixture
def sync(qtbot):
    from ui.chart.widget import ChartWidget

    chart = ChartWidget()
    qtbot.addWidget(chart)
    return ChartSync(chart, TF)


def test_chart_sync_never_draws_a_bar_twice(sync):
    sync.seed([decision(i) for i in range(10)])
    sync.add_bars([decision(i) for i in range(8, 12)])
    assert sync.chart.candle_count() == 12


def test_chart_sync_rebuilds_a_large_batch_keeping_a_panned_view(sync):
    sync.seed([decision(i) for i in range(300)])
    x0, x1 = bar(100).ts / 1000, bar(150).ts / 1000
    sync.chart.view.setXRange(x0, x1, padding=0.0)
    sync.chart.following = False
    sync.add_bars([decision(i) for i in range(300, 400)])
    assert sync.chart.candle_count() == 400
    assert not sync.chart.following
    assert sync.chart.view.viewRange()[0] == pytest.approx([x0, x1])


def test_chart_sync_rebuilds_a_large_batch_still_following_the_newest_bar(sync):
    sync.seed([decision(i) for i in range(300)])
    before = sync.chart.view.viewRange()[0]
    sync.add_bars([decision(i) for i in range(300, 400)])
    after = sync.chart.view.viewRange()[0]
    assert sync.chart.following
    assert after[0] - before[0] == pytest.approx(100 * TF / 1000)
    assert after[1] - after[0] == pytest.approx(before[1] - before[0])


def test_chart_sync_shows_the_ladder_of_a_signal_bar(sync):
    from indicators.fibonacci import levels_between

    fib = levels_between(110.0, 100.0)
    sync.seed([decision(i) for i in range(10)])
    sync.add_bars([decision(10, signal=True, fib=fib, target=fib.price(0.618))])
    assert sync.ladder_source == "signal"
    assert sync.chart.fib.prices() == pytest.approx(list(fib.prices))


def test_chart_sync_draws_no_live_candle_for_a_tick_on_the_bar_boundary(sync):
    sync.seed([decision(i) for i in range(10)])
    sync.tick(TickSummary(bar(10).ts, 101.0, 101.0, 101.0))
    assert not sync.chart.live.isVisible()


def test_chart_sync_builds_the_forming_candle_from_ticks(sync):
    sync.seed([decision(i) for i in range(10)])
    sync.tick(TickSummary(bar(10).ts + 1000, 101.0, 103.0, 99.5))
    sync.tick(TickSummary(bar(10).ts + 2000, 102.0, 102.0, 102.0))
    x, o, h, l, c = sync.chart.live.ohlc
    assert (o, h, l, c) == (100.0, 103.0, 99.5, 102.0)


def test_chart_sync_keeps_the_open_trade_ladder_over_new_signals(sync):
    from indicators.fibonacci import levels_between

    sync.seed([decision(i) for i in range(10)])
    sync.position_opened(trade(signal_ts=bar(9).ts, entry_ts=bar(9).ts))
    other = levels_between(200.0, 150.0)
    sync.add_bars([decision(10, signal=True, fib=other, target=other.price(0.5))])
    assert sync.ladder_source == "trade"
    assert max(sync.chart.fib.prices()) == pytest.approx(110.0)


def test_chart_sync_marks_an_exit_and_clears_the_position(sync):
    sync.seed([decision(i) for i in range(10)])
    sync.position_opened(trade(signal_ts=bar(3).ts, entry_ts=bar(4).ts))
    sync.position_closed(closed_trade(signal_ts=bar(3).ts, entry_ts=bar(4).ts, exit_ts=bar(8).ts))
    assert sync.chart.markers.count() == 2
    assert not sync.chart.position.active


# ----- notifications --------------------------------------------------------------------------
@pytest.fixture
def notifier(qtbot, tmp_path):
    host = QWidget()
    host.resize(800, 600)
    qtbot.addWidget(host)
    host.show()
    settings = QSettings(str(tmp_path / "n.ini"), QSettings.Format.IniFormat)
    return Notifier(host, settings)


def test_a_warning_shows_a_toast(notifier):
    notifier.on_log_lines([line(logging.INFO, "fine"), line(logging.WARNING, "feed slow")])
    assert [t.label.text() for t in notifier.toasts] == ["feed slow"]


def test_a_burst_of_warnings_becomes_one_summary_toast(notifier):
    notifier.on_log_lines([line(logging.WARNING, f"w{i}") for i in range(BURST + 5)])
    (toast,) = notifier.toasts
    assert toast.label.text().startswith(f"{BURST + 5} warnings")


def test_an_error_beeps_unless_muted(notifier, monkeypatch):
    beeps: list[int] = []
    monkeypatch.setattr(QApplication, "beep", staticmethod(lambda: beeps.append(1)))
    notifier.on_log_lines([line(logging.ERROR, "order rejected")])
    notifier.set_sound_enabled(False)
    notifier.on_log_lines([line(logging.ERROR, "order rejected again")])
    assert beeps == [1]


def test_the_sound_choice_is_remembered(notifier):
    notifier.set_sound_enabled(False)
    again = Notifier(QWidget(), notifier._settings)
    assert again.sound_enabled is False


# ----- dialogs (real message boxes, no nested loop) -------------------------------------------
async def answer(button_name: str) -> None:
    for _ in range(200):
        box = QApplication.activeModalWidget() or next(
            (w for w in QApplication.topLevelWidgets()
             if isinstance(w, QMessageBox) and w.isVisible()), None)
        if box is not None:
            box.findChild(QPushButton, button_name).click()
            return
        await asyncio.sleep(0.01)
    raise AssertionError("no dialog appeared")


@pytest.mark.parametrize("button, expected", [("confirmButton", True), ("cancelButton", False)])
async def test_confirm_returns_the_operators_answer(qtbot, button, expected):
    parent = QWidget()
    qtbot.addWidget(parent)
    parent.show()
    asked = asyncio.ensure_future(dialogs.confirm(parent, "Emergency stop", "Sure?",
                                                  confirm_label="Emergency Stop"))
    await answer(button)
    assert await asked is expected


async def test_confirm_defaults_to_cancel(qtbot):
    parent = QWidget()
    qtbot.addWidget(parent)
    parent.show()
    asked = asyncio.ensure_future(dialogs.confirm(parent, "t", "x", confirm_label="Do it"))
    await asyncio.sleep(0.05)
    box = parent.findChild(QMessageBox, "confirmDialog")
    assert box.defaultButton().objectName() == "cancelButton"
    box.reject()
    assert await asked is False


def test_replay_bar_offers_speeds_down_to_half_a_bar_per_second(qtbot):
    from ui.panels.replay_bar import ReplayBar

    bar = ReplayBar()
    qtbot.addWidget(bar)
    bar.show_speed(37.0)
    assert bar.speed_combo.currentText() == "40 bars/s"
    assert bar.speed_combo.itemText(0) == "0.5 bar/s"
    with qtbot.waitSignal(bar.speed_requested) as blocker:
        bar.speed_combo.activated.emit(bar.speed_combo.findText("0.5 bar/s"))
    assert blocker.args == [0.5]


def test_replay_bar_shows_progress_as_bar_n_of_total(qtbot):
    from ui.panels.replay_bar import ReplayBar

    bar = ReplayBar()
    qtbot.addWidget(bar)
    bar.show_progress(4300, 9000)
    assert bar.progress_label.text() == "bar 4,300 of 9,000"
    assert (bar.slider.value(), bar.slider.maximum()) == (4300, 9000)


def test_replay_bar_step_is_usable_only_while_the_clock_is_held(qtbot):
    from ui.panels.replay_bar import ReplayBar

    bar = ReplayBar()
    qtbot.addWidget(bar)
    bar.show_clock(False)
    assert not bar.step_button.isEnabled() and bar.play_button.text() == "Pause replay"
    bar.show_clock(True)
    assert bar.step_button.isEnabled() and bar.play_button.text() == "Play replay"


def test_equity_curve_steps_at_each_exit_and_its_drawdown_is_measured():
    from ui.panels.performance import daily_pnl, equity_curve

    day = 86_400_000
    trades = [closed_trade(id=1, pnl=100.0, exit_ts=T0 + day),
              closed_trade(id=2, pnl=-150.0, exit_ts=T0 + day + 3_600_000),
              closed_trade(id=3, pnl=20.0, exit_ts=T0 + 3 * day)]
    curve = equity_curve(trades, 1000.0)
    assert list(curve.equity) == [1000.0, 1100.0, 950.0, 970.0]
    assert list(curve.peak) == [1000.0, 1100.0, 1100.0, 1100.0]
    assert curve.max_drawdown_percent == pytest.approx(150 / 1100 * 100)
    days, pnl = daily_pnl(trades)
    assert list(pnl) == [-50.0, 20.0] and len(days) == 2


def test_a_long_performance_summary_wraps_instead_of_widening_the_window(qtbot):
    from ui.panels.performance import PerformancePanel

    panel = PerformancePanel()
    qtbot.addWidget(panel)
    panel.show()
    QApplication.processEvents()
    narrow = panel.minimumSizeHint().width()
    panel.summary.setText("Realised equity 10,041.93 USDT (+41.93 USDT, +0.42%) · " * 8)
    QApplication.processEvents()
    assert panel.minimumSizeHint().width() <= narrow + 50, "the summary line set the window's width"
