"""Trade markers a trader can use: hovering one shows the trade's card (reason, PnL, R, bars
held); clicking one selects its trade (ringed on the chart, its row in the Trades table);
Esc deselects; a selected old trade lets go of the view when a new position opens."""
from __future__ import annotations

import pytest
from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtTest import QTest

from agent.events import PositionClosed, PositionOpened
from agent.strategy import Decision
from data.bar import Bar
from persistence.records import TradeRecord
from ui.panels.chart_sync import ChartSync
from window_helpers import SLOW, until

pytestmark = pytest.mark.gui
T0 = 1_704_067_200_000
TF = 900_000


def bar(i: int, close: float = 100.0) -> Bar:
    return Bar(T0 + i * TF, close - 1, close + 2, close - 2, close, 10.0)


def decision(i: int) -> Decision:
    return Decision(bar(i), i, 100.0, 100.0, 1.0, 0.0, 0.0, 0.5, False, None, None, None)


def closed(trade_id: int, entry_bar: int, exit_bar: int, pnl: float = 12.0,
           reason: str = "FIB_61.8") -> TradeRecord:
    return TradeRecord(pair="BTC/USDT", signal_ts=bar(entry_bar - 1).ts, entry_ts=bar(entry_bar).ts,
                       entry_price=99.0, entry_reference=99.0, amount=2.0, entry_fee=0.1,
                       mode="paper", fib_target_level=0.618, target_price=104.0, stop_price=97.0,
                       risk_stop=96.0, swing_high=110.0, swing_low=95.0, status="closed",
                       exit_ts=bar(exit_bar).ts, exit_price=101.0 if pnl > 0 else 98.5,
                       exit_reason=reason, bars_held=exit_bar - entry_bar, pnl=pnl,
                       pnl_percent=pnl / 198 * 100, id=trade_id)


@pytest.fixture
def sync(qtbot) -> ChartSync:
    from ui.chart.widget import ChartWidget

    chart = ChartWidget()
    qtbot.addWidget(chart)
    chart.resize(1200, 700)
    chart.show()
    qtbot.waitExposed(chart)
    s = ChartSync(chart, TF, "USDT")
    s.seed([decision(i) for i in range(120)])
    s.seed_trades([closed(1, 20, 26), closed(2, 60, 63, pnl=-8.0, reason="STOP")], None)
    chart.fit_y()
    return s


def viewport_point(chart, x_s: float, price: float) -> QPoint:
    scene = chart.view.mapViewToScene(QPointF(x_s, price))
    return chart.plot_widget.mapFromScene(scene)


def hover(chart, x_s: float, price: float) -> None:
    chart.crosshair._on_mouse_moved((chart.view.mapViewToScene(QPointF(x_s, price)),))


def test_hovering_an_exit_marker_shows_the_trade_card(sync):
    chart = sync.chart
    hover(chart, bar(26).ts / 1000, 101.0)
    card = chart.marker_card
    assert card.isVisible()
    text = card.text()
    assert "Trade #1 · FIB_61.8" in text
    assert "+12.00 USDT" in text                      # PnL
    assert "+2.00R" in text                           # 12 / ((99 - 96) * 2)
    assert "Held     6 bars" in text


def test_the_card_is_inside_the_chart_and_goes_when_the_mouse_leaves_the_marker(sync):
    chart = sync.chart
    hover(chart, bar(63).ts / 1000, 98.5)
    assert chart.marker_card.isVisible() and "STOP" in chart.marker_card.text()
    assert chart.plot_widget.rect().contains(chart.marker_card.geometry())
    hover(chart, bar(90).ts / 1000, 100.0)            # plain candles: no card
    assert not chart.marker_card.isVisible()


def test_clicking_a_marker_announces_its_trade(sync, qtbot):
    chart = sync.chart
    point = viewport_point(chart, bar(60).ts / 1000, 99.0)      # trade 2's entry
    with qtbot.waitSignal(chart.trade_clicked) as blocker:
        QTest.mouseClick(chart.plot_widget.viewport(), Qt.MouseButton.LeftButton, pos=point)
    assert blocker.args == [2]


def test_clicking_beside_the_markers_selects_nothing(sync, qtbot):
    chart = sync.chart
    clicked: list[int] = []
    chart.trade_clicked.connect(clicked.append)
    QTest.mouseClick(chart.plot_widget.viewport(), Qt.MouseButton.LeftButton,
                     pos=viewport_point(chart, bar(90).ts / 1000, 100.0))
    assert clicked == []


def test_a_selected_trade_is_ringed_and_focused_then_esc_style_deselect_follows_again(sync):
    chart = sync.chart
    sync.select_trade(closed(1, 20, 26))
    assert chart.markers.selected == 1 and len(chart.markers.ring.data) == 2
    x0, x1 = chart.view.viewRange()[0]
    assert x0 <= bar(19).ts / 1000 and bar(26).ts / 1000 <= x1 < bar(60).ts / 1000
    assert not chart.following
    sync.select_trade(None)
    assert chart.markers.selected is None and len(chart.markers.ring.data) == 0
    assert chart.following


def test_a_new_position_releases_a_selected_old_trade(sync):
    chart = sync.chart
    sync.select_trade(closed(1, 20, 26))
    new = TradeRecord(pair="BTC/USDT", signal_ts=bar(118).ts, entry_ts=bar(119).ts,
                      entry_price=100.0, entry_reference=100.0, amount=1.0, entry_fee=0.1,
                      mode="paper", stop_price=97.0, risk_stop=96.0, swing_high=110.0,
                      swing_low=95.0, id=3)
    sync.position_opened(new)
    assert sync.selected is None and chart.markers.selected is None
    assert chart.following
    assert chart.view.viewRange()[0][0] <= bar(119).ts / 1000 <= chart.view.viewRange()[0][1]
    assert sync.ladder_source == "trade"


# ----- in the window, over the real engine ----------------------------------------------------
async def _two_closed_trades(window) -> list[TradeRecord]:
    """Replay at full speed and hold the replay clock the moment the second trade closes."""
    engine = window.engine
    closed_ids: list[int] = []

    def hold_after_two(event) -> None:
        if isinstance(event, PositionClosed):
            closed_ids.append(event.trade.id)
            if len(closed_ids) == 2:
                engine.pacer.set_paused(True)
    engine.bus.subscribe(hold_after_two)
    window.set_replay_speed(None)
    await window.start_engine()
    await until(lambda: len(window.trades_table.trades) >= 2, "two closed trades", 120)
    return window.trades_table.trades


def _selected_ids(window) -> set[int]:
    table = window.trades_table
    return {table.trade_at(i.row()).id for i in table.selectedIndexes()}


async def test_clicking_a_marker_selects_the_row_and_esc_deselects(window):
    first = (await _two_closed_trades(window))[0]
    chart = window.chart
    chart.focus_range(first.entry_ts, first.exit_ts)
    point = viewport_point(chart, first.exit_ts / 1000, first.exit_price)
    QTest.mouseClick(chart.plot_widget.viewport(), Qt.MouseButton.LeftButton, pos=point)
    assert _selected_ids(window) == {first.id}
    assert window.tabs.currentWidget() is window.trades_table
    assert chart.markers.selected == first.id and not chart.following
    assert window.deselect_action.shortcut().toString() == "Esc"
    window.activateWindow()
    QTest.keyClick(window, Qt.Key.Key_Escape)
    assert _selected_ids(window) == set()
    assert chart.markers.selected is None and chart.following


async def test_a_new_position_takes_the_view_from_a_selected_old_trade(window):
    first = (await _two_closed_trades(window))[0]
    window.select_trade_id(first.id)
    assert not window.chart.following
    opened: list[int] = []

    def freeze_on_entry(event) -> None:
        if isinstance(event, PositionOpened):
            opened.append(event.trade.id)
            window.engine.pacer.speed = SLOW       # the new position stays open on screen
    window.engine.bus.subscribe(freeze_on_entry)
    window.set_replay_clock_paused(False)
    await until(lambda: opened and window.chart_sync.open_trade is not None
                and window.chart_sync.open_trade.id == opened[0], "a new position on the chart", 120)
    assert window.chart.following
    assert _selected_ids(window) == set() and window.chart.markers.selected is None
