"""The backtest shadow in the window: each trade beside the backtest app's own decision for
the same signal (a "vs backtest" column in Trades, the cause in its tooltip, a line in the
marker's card) and the live-vs-backtest review with the PRD's thresholds (a tab)."""
from __future__ import annotations

import pytest
from PySide6.QtCore import QPointF

from agent.shadow_review import Level, MetricCheck, PeriodReview, SideFigures
from ui import theme
from ui.panels.shadow import ShadowPanel
from ui.panels.trades_table import COLUMNS
from window_helpers import until

pytestmark = pytest.mark.gui
T0 = 1_704_067_200_000


async def _finished_replay(window) -> None:
    window.set_replay_speed(None)
    await window.start_engine()
    await until(lambda: window.engine.status().feed_state == "finished", "replay finished", 120)
    await until(lambda: window.bridge.pending == 0
                and len(window.trades_table.trades) == len(window.engine.store.closed_trades()),
                "trades shown")
    window.refresh()


async def test_every_trade_shows_its_difference_from_the_backtest_and_why(window):
    await _finished_replay(window)
    table = window.trades_table
    column = COLUMNS.index("vs backtest")
    assert table.rowCount() >= 2
    for row in range(table.rowCount()):
        item = table.item(row, column)
        assert item.text().endswith(" bps")
        tip = item.toolTip()
        assert tip.startswith("Cause: ")
        assert "Backtest: entry" in tip and "Agent: entry" in tip


async def test_the_marker_card_says_how_the_trade_compares_with_the_backtest(window):
    await _finished_replay(window)
    trade = window.trades_table.trades[0]
    chart = window.chart
    chart.focus_range(trade.entry_ts, trade.exit_ts)
    chart.fit_y()
    chart.crosshair._on_mouse_moved((chart.view.mapViewToScene(
        QPointF(trade.exit_ts / 1000, trade.exit_price)),))
    assert chart.marker_card.isVisible()
    assert "vs backtest (" in chart.marker_card.text()


async def test_the_backtest_tab_reviews_the_period_against_the_backtest(window):
    await _finished_replay(window)
    panel = window.shadow_panel
    count = len(window.trades_table.trades)
    assert f"agent {count} trades" in panel.headline.text()
    assert "backtest" in panel.headline.text()
    assert panel.reviews.rowCount() >= 1
    assert panel.comparisons.rowCount() >= count
    assert window.tabs.tabText(window.tabs.indexOf(panel)) == "vs Backtest"


def _review(agent_wins: int, back_wins: int, level: Level) -> PeriodReview:
    a = SideFigures(10, agent_wins, 0.5, 3.0)
    b = SideFigures(10, back_wins, 1.0, 6.0)
    checks = (MetricCheck("win rate", a.win_rate, b.win_rate, 0.6, level),
              MetricCheck("average R", 0.5, 1.0, 0.5, Level.WATCH),
              MetricCheck("trade count", 10.0, 10.0, 0.0, Level.NORMAL))
    return PeriodReview(T0, T0 + 31 * 86_400_000, a, b, checks)


def test_a_degradation_over_fifty_percent_is_an_alert_in_red(qtbot):
    panel = ShadowPanel()
    qtbot.addWidget(panel)
    review = _review(2, 6, Level.ALERT)
    panel.show_reviews([review], review)
    assert "ALERT" in panel.headline.text() and theme.DOWN in panel.headline.styleSheet()
    verdict = panel.reviews.item(0, 4)
    assert verdict.text() == "ALERT (win rate +60%)"
    assert verdict.foreground().color().name() == theme.DOWN
    assert "degradation +60% (alert)" in verdict.toolTip()
    assert panel.reviews.item(0, 0).text() == "2024-01"
