"""Ladders of signals that were not traded are dim with "not traded: REASON" and never carry
the live "◀ target" emphasis; ladder labels never cover the newest candles or the markers."""
from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import QPointF
from PySide6.QtWidgets import QApplication

from agent.strategy import Decision
from data.bar import Bar
from indicators.fibonacci import RATIOS, levels_between
from persistence.records import SignalRecord
from ui.chart.fib import DIM_ALPHA
from ui.chart.widget import ChartWidget
from ui.panels.chart_sync import ChartSync

pytestmark = pytest.mark.gui
T0 = 1_704_067_200_000
TF = 900_000
FIB = levels_between(110.0, 95.0)


def bar(i: int) -> Bar:
    return Bar(T0 + i * TF, 99.0, 102.0, 98.0, 100.0, 10.0)


def decision(i: int, signal: bool = False) -> Decision:
    return Decision(bar(i), i, 100.0, 100.0, 1.0, 0.0, 0.0, 0.5, signal,
                    FIB if signal else None, FIB.price(0.618) if signal else None, None)


def signal(i: int, action: str, reason: str) -> SignalRecord:
    return SignalRecord(bar_ts=bar(i).ts, close=100.0, ema_fast=100.0, ema_slow=100.0, vol_z=3.0,
                        tr_z=3.0, cloc=0.7, fib_swing_high=110.0,
                        fib_levels={str(r): p for r, p in zip(RATIOS, FIB.prices)},
                        target_price=FIB.price(0.618), action=action, reason=reason)


@pytest.fixture
def chart(qtbot) -> ChartWidget:
    widget = ChartWidget()
    qtbot.addWidget(widget)
    widget.resize(1200, 700)
    widget.show()
    qtbot.waitExposed(widget)
    return widget


@pytest.fixture
def sync(chart) -> ChartSync:
    s = ChartSync(chart, TF, "USDT")
    s.seed([decision(i) for i in range(100)])
    return s


def texts(chart) -> list[str]:
    return [level.label.toPlainText() for level in chart.fib.levels]


def test_a_signal_skipped_before_its_bar_arrives_is_drawn_dim_without_a_target(sync):
    chart = sync.chart
    sync.signal_seen(signal(100, "SKIPPED", "paused"))      # the engine says it first
    sync.add_bars([decision(100, signal=True)])
    assert chart.fib.dimmed and chart.fib.note.toPlainText() == "not traded: paused"
    assert not any("target" in t for t in texts(chart))
    assert not any(level.label.textItem.font().bold() for level in chart.fib.levels)
    assert all(level.line.pen().color().alpha() == DIM_ALPHA for level in chart.fib.levels)
    assert not chart.fib.open_ended                           # cut off: it is not live


def test_a_pending_entry_dropped_later_turns_its_live_ladder_dim(sync):
    chart = sync.chart
    sync.add_bars([decision(100, signal=True)])
    assert any(t.endswith("◀ target") for t in texts(chart)) and not chart.fib.dimmed
    sync.add_bars([decision(101)])
    sync.signal_seen(signal(100, "SKIPPED", "stale: the bar after the signal has passed"))
    assert chart.fib.dimmed
    assert chart.fib.note.toPlainText() == "not traded: stale: the bar after the signal has passed"
    assert not any("target" in t for t in texts(chart))


def test_an_entered_signal_keeps_its_live_ladder(sync):
    sync.add_bars([decision(100, signal=True)])
    sync.signal_seen(signal(100, "ENTERED", "entered"))
    assert not sync.chart.fib.dimmed and sync.chart.fib.open_ended


def _newest_candles_rect(chart, bars: int):
    s = chart._series
    left = chart.view.mapViewToScene(QPointF(float(s.x[-bars]) - s.bar_seconds / 2, 0)).x()
    return left


def test_ladder_labels_sit_left_of_the_ladder_not_over_the_newest_candles(sync):
    chart = sync.chart
    sync.add_bars([decision(100, signal=True)])
    sync.add_bars([decision(i) for i in range(101, 105)])
    chart.add_entry_marker(bar(101).ts, 99.0, 7)
    chart.fit_y()
    QApplication.processEvents()
    start = chart.view.mapViewToScene(QPointF(bar(100).ts / 1000, 0)).x()
    marker = chart.view.mapViewToScene(QPointF(bar(101).ts / 1000, 99.0))
    shown = [level.label for level in chart.fib.levels if level.label.isVisible()]
    assert shown
    for label in shown:
        rect = label.sceneBoundingRect()
        assert rect.right() < start                       # left of the signal bar
        assert not rect.contains(marker)
        assert label.zValue() < chart.markers.items["entry"].zValue()


def test_labels_of_a_long_ladder_move_to_the_left_edge_not_onto_new_candles(sync):
    chart = sync.chart
    sync.add_bars([decision(100, signal=True)])
    sync.add_bars([decision(i) for i in range(101, 400)])     # open-ended, 300 bars long
    chart.follow_latest()
    chart.fit_y()
    QApplication.processEvents()
    x0 = chart.view.viewRange()[0][0]
    assert x0 > bar(100).ts / 1000                            # the ladder's start is off-screen
    newest_left = _newest_candles_rect(chart, 100)             # the newest 100 of ~200 shown
    view_left = chart.view.sceneBoundingRect().left()
    for level in chart.fib.levels:
        if level.label.isVisible():
            rect = level.label.sceneBoundingRect()
            assert rect.left() >= view_left - 1 and rect.right() < newest_left


def test_the_labels_of_a_ladder_out_of_view_are_hidden(sync):
    chart = sync.chart
    sync.add_bars([decision(100, signal=True)])
    sync.signal_seen(signal(100, "SKIPPED", "paused"))
    sync.add_bars([decision(i) for i in range(101, 400)])
    chart.follow_latest()
    QApplication.processEvents()
    assert chart.view.viewRange()[0][0] > bar(101).ts / 1000        # the ladder is off-screen
    assert not any(level.label.isVisible() for level in chart.fib.levels)
    assert not chart.fib.note.isVisible()
    chart.focus_range(bar(95).ts, bar(110).ts)
    assert chart.fib.note.isVisible()
