"""The window fits a laptop: usable at 1024x700, comfortable at 1366x768, no control clipped
(even HALTED with a long reason), long texts elided with the full text in a tooltip, and the
chart gets the space."""
from __future__ import annotations

import pytest
from PySide6.QtCore import QRect
from PySide6.QtWidgets import QAbstractButton, QAbstractScrollArea, QComboBox, QLabel, QWidget

from ui.panels.elided import ElidedLabel
from window_helpers import answer_dialogs, until

pytestmark = pytest.mark.gui
LONG_REASON = ("emergency stop by the operator: THE POSITION IS STILL OPEN because the exchange "
               "rejected the market sell (insufficient balance after a partial fill)")


def in_scroll_area(widget: QWidget) -> bool:
    parent = widget.parentWidget()
    while parent is not None:
        if isinstance(parent, QAbstractScrollArea):
            return True
        parent = parent.parentWidget()
    return False


def clipped_controls(window: QWidget) -> list[str]:
    """Every visible button, combo box or label that is cut short or sticks out of the window
    (inside a scroll area a control may be scrolled away, but never cut sideways)."""
    problems = []
    frame = window.rect()
    for area in window.findChildren(QAbstractScrollArea):
        bar = area.horizontalScrollBar()
        if area.isVisibleTo(window) and bar.isVisible() and area.objectName() == "panelScroll":
            problems.append(f"{area.widget().objectName()}: needs a horizontal scroll bar")
    for widget in window.findChildren(QWidget):
        if not isinstance(widget, (QAbstractButton, QComboBox, QLabel)):
            continue
        if not widget.isVisibleTo(window) or widget.window() is not window:
            continue
        name = f"{type(widget).__name__} {widget.objectName()!r} {getattr(widget, 'text', str)()!r}"
        if isinstance(widget, ElidedLabel):
            if widget.toolTip() != widget.text():
                problems.append(f"{name}: elided without its text in a tooltip")
            continue
        if isinstance(widget, QLabel) and widget.wordWrap():
            continue
        needed = widget.minimumSizeHint() if isinstance(widget, QLabel) else widget.sizeHint()
        if widget.width() < needed.width():
            problems.append(f"{name}: {widget.width()} px wide, needs {needed.width()}")
        rect = QRect(widget.mapTo(window, widget.rect().topLeft()), widget.size())
        if not in_scroll_area(widget) and not frame.contains(rect):
            problems.append(f"{name}: outside the window at {rect}")
    return problems


async def resize(window, width: int, height: int) -> None:
    window.resize(width, height)
    await until(lambda: (window.width(), window.height()) == (width, height), "resized")
    window.centralWidget().layout().activate()


async def halt_with_a_long_reason(window, monkeypatch) -> None:
    answer_dialogs(monkeypatch, True)
    await window.start_engine()
    await window.emergency_stop()
    await until(lambda: window.control_bar.run_state == "HALTED", "HALTED shown")
    window.control_bar.set_run_state("HALTED", "IN_POSITION", LONG_REASON)


async def test_minimum_size_fits_a_1024x700_laptop_in_every_state(window, monkeypatch):
    hint = window.minimumSizeHint()
    assert hint.width() <= 1024 and hint.height() <= 700
    await halt_with_a_long_reason(window, monkeypatch)
    hint = window.minimumSizeHint()
    assert hint.width() <= 1024 and hint.height() <= 700


async def test_no_control_is_clipped_at_1024x700(window):
    await window.start_engine()
    await until(lambda: window.control_bar.run_state == "RUNNING", "RUNNING shown")
    await resize(window, 1024, 700)
    assert clipped_controls(window) == []


async def test_no_control_is_clipped_at_1024x700_when_halted_with_a_long_reason(window,
                                                                                monkeypatch):
    await halt_with_a_long_reason(window, monkeypatch)
    await resize(window, 1024, 700)
    assert clipped_controls(window) == []
    reason = window.control_bar.reason_label
    assert reason.is_elided() and reason.toolTip() == LONG_REASON
    assert window.control_bar.clear_halt_button.isVisible()
    assert window.control_bar.emergency_button.isVisible()


async def test_the_chart_gets_the_space_on_a_laptop(window):
    for width, height in ((1024, 700), (1366, 768)):
        await resize(window, width, height)
        chart, panels = window.main_splitter.sizes()
        assert chart >= 1.3 * panels, (width, height, chart, panels)


async def test_comfortable_at_1366x768(window):
    await window.start_engine()
    await resize(window, 1366, 768)
    assert clipped_controls(window) == []
    assert window.chart.height() >= 380


async def test_at_1600px_every_trades_column_shows_without_a_sideways_scroll(window, qtbot):
    from persistence.records import TradeRecord

    def trade(i: int) -> TradeRecord:
        return TradeRecord(pair="BTC/USDT", signal_ts=1_704_067_200_000 + i * 3_600_000,
                           entry_ts=1_704_068_100_000 + i * 3_600_000, entry_price=117_411.27,
                           entry_reference=117_400.0, amount=0.08519876, entry_fee=10.0,
                           mode="paper", risk_stop=115_000.0, status="closed",
                           exit_ts=1_704_111_300_000 + i * 3_600_000, exit_price=119_876.54,
                           exit_reason="STOP_GAP", exit_fee=10.2, bars_held=148,
                           pnl=-1_234.56, pnl_percent=-12.34, id=1000 + i)

    window.resize(1600, 1000)
    await until(lambda: window.width() == 1600, "1600 px wide")
    window.trades_table.set_trades([trade(i) for i in range(5)], "USDT")
    window.tabs.setCurrentWidget(window.trades_table)
    await until(lambda: window.trades_table.isVisible(), "the Trades tab")
    table = window.trades_table
    n = table.columnCount()
    last = max(table.sizeHintForColumn(n - 1), table.horizontalHeader().sectionSizeHint(n - 1))
    needed = sum(table.columnWidth(i) for i in range(n - 1)) + last
    assert needed <= table.viewport().width(), f"{needed} px of columns in {table.viewport().width()}"
