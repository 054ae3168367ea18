"""The price chart as a trader sees it: candles, live tick, ladder, markers, following, UTC."""
from __future__ import annotations

import time

import numpy as np
import pyqtgraph as pg
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PySide6.QtCore import QEvent, QPoint, QPointF, Qt
from PySide6.QtGui import (QColor, QImage, QMouseEvent, QPainter, QPicture, QTransform,
                           QWheelEvent)
from PySide6.QtWidgets import QApplication

from ui import theme
from ui.chart import ChartDataError, ChartWidget, UnknownLayer, UnknownMarkerKind
from ui.chart.candles import CandlePainter, merged_rects
from ui.chart.format import format_change, format_price, format_utc
from ui.chart.series import CandleSeries

pytestmark = pytest.mark.gui

BAR_MS = 900_000
T0_MS = 1_710_075_600_000  # 2024-03-10 13:00 UTC


def candles(n: int, seed: int = 3) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    c = 50_000.0 + np.cumsum(rng.normal(0.0, 40.0, n))
    o = np.concatenate(([c[0]], c[:-1]))
    return {"ts_ms": T0_MS + np.arange(n, dtype=np.int64) * BAR_MS, "o": o,
            "h": np.maximum(o, c) + 15.0, "l": np.minimum(o, c) - 15.0, "c": c,
            "ema_fast": c.copy(), "ema_slow": c.copy()}


@pytest.fixture
def chart(qtbot) -> ChartWidget:
    widget = ChartWidget()
    qtbot.addWidget(widget)
    widget.resize(1200, 700)
    widget.show()
    qtbot.waitExposed(widget)
    return widget


@pytest.fixture
def loaded(chart: ChartWidget) -> ChartWidget:
    chart.set_history(**candles(300))
    return chart


def newest_x(chart: ChartWidget) -> float:
    return float(chart._series.x[-1])


def pixel_at(chart: ChartWidget, x_s: float, price: float) -> QColor:
    """Colour the user sees at data point (x seconds, price)."""
    QApplication.processEvents()
    scene_pt = chart.view.mapViewToScene(QPointF(x_s, price))
    view_pt = chart.plot_widget.mapFromScene(scene_pt)
    widget_pt = chart.plot_widget.viewport().mapTo(chart, view_pt)
    return chart.grab().toImage().pixelColor(widget_pt)


def change_color(chart: ChartWidget) -> QColor:
    return chart.change_label.palette().color(chart.change_label.foregroundRole())


def view_point(chart: ChartWidget, x_s: float, price: float) -> QPoint:
    return chart.plot_widget.mapFromScene(chart.view.mapViewToScene(QPointF(x_s, price)))


# ----- history and following ---------------------------------------------------------------
def test_history_sets_candle_count_and_shows_the_newest_candle(loaded: ChartWidget) -> None:
    x0, x1 = loaded.view.viewRange()[0]
    assert loaded.candle_count() == 300
    assert loaded.following
    assert x0 < newest_x(loaded) < x1


def test_appended_bars_keep_the_newest_candle_in_view_while_following(loaded: ChartWidget,
                                                                      qtbot) -> None:
    d = candles(500)
    for i in range(300, 500):
        loaded.append_bar(int(d["ts_ms"][i]), d["o"][i], d["h"][i], d["l"][i], d["c"][i],
                          d["ema_fast"][i], d["ema_slow"][i])
    assert loaded.candle_count() == 500
    qtbot.waitUntil(lambda: loaded.view.viewRange()[0][0] < newest_x(loaded)
                    < loaded.view.viewRange()[0][1])


def test_appending_past_the_initial_capacity_keeps_every_candle() -> None:
    series = CandleSeries()
    d = candles(3000)
    series.replace(d["ts_ms"][:1], d["o"][:1], d["h"][:1], d["l"][:1], d["c"][:1],
                   d["ema_fast"][:1], d["ema_slow"][:1])
    for i in range(1, 3000):
        series.append(int(d["ts_ms"][i]), d["o"][i], d["h"][i], d["l"][i], d["c"][i],
                      d["ema_fast"][i], d["ema_slow"][i])
    np.testing.assert_array_equal(series.ts, d["ts_ms"])
    np.testing.assert_array_equal(series.close, d["c"])
    assert series.bar_seconds == BAR_MS / 1000


def test_history_with_arrays_of_different_lengths_is_rejected(chart: ChartWidget) -> None:
    d = candles(10)
    d["c"] = d["c"][:-1]
    with pytest.raises(ChartDataError, match="close"):
        chart.set_history(**d)


def test_history_with_unordered_timestamps_is_rejected(chart: ChartWidget) -> None:
    d = candles(10)
    d["ts_ms"][5] = d["ts_ms"][4]
    with pytest.raises(ChartDataError, match="strictly increasing"):
        chart.set_history(**d)


def test_appending_a_bar_older_than_the_newest_is_rejected(loaded: ChartWidget) -> None:
    with pytest.raises(ChartDataError, match="not after"):
        loaded.append_bar(T0_MS, 1.0, 2.0, 0.5, 1.5, 1.0, 1.0)


def test_wheel_zoom_away_from_the_newest_candle_stops_following(loaded: ChartWidget) -> None:
    changes: list[bool] = []
    loaded.following_changed.connect(changes.append)
    x0, x1 = loaded.view.viewRange()[0]
    vp = loaded.plot_widget.viewport()
    pos = QPointF(view_point(loaded, x0 + 0.05 * (x1 - x0), float(loaded._series.close[-50])))
    for _ in range(3):
        event = QWheelEvent(pos, QPointF(vp.mapToGlobal(pos.toPoint())), QPoint(0, 0),
                            QPoint(0, 240), Qt.MouseButton.NoButton,
                            Qt.KeyboardModifier.NoModifier, Qt.ScrollPhase.NoScrollPhase, False)
        QApplication.sendEvent(vp, event)
    assert newest_x(loaded) > loaded.view.viewRange()[0][1]
    assert not loaded.following
    assert changes == [False]
    assert loaded.latest_button.isVisible()


def test_mouse_drag_into_history_stops_following(loaded: ChartWidget, qtbot) -> None:
    vp = loaded.plot_widget.viewport()
    start = QPoint(vp.width() // 4, vp.height() // 2)
    qtbot.mousePress(vp, Qt.MouseButton.LeftButton, pos=start)
    for step in range(1, 11):
        QApplication.sendEvent(vp, _mouse_move(start + QPoint(step * 60, 0)))
    qtbot.mouseRelease(vp, Qt.MouseButton.LeftButton, pos=start + QPoint(600, 0))
    assert newest_x(loaded) > loaded.view.viewRange()[0][1]
    assert not loaded.following


def _mouse_move(pos: QPoint) -> QMouseEvent:
    """A move with the left button held (QTest cannot send one)."""
    return QMouseEvent(QEvent.Type.MouseMove, QPointF(pos), QPointF(pos), Qt.MouseButton.NoButton,
                       Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier)


def test_end_key_resumes_following_and_shows_the_newest_candle(loaded: ChartWidget, qtbot) -> None:
    loaded.focus_range(T0_MS, T0_MS + 20 * BAR_MS)
    assert not loaded.following
    qtbot.keyClick(loaded, Qt.Key.Key_End)
    x0, x1 = loaded.view.viewRange()[0]
    assert loaded.following
    assert x0 < newest_x(loaded) < x1
    assert not loaded.latest_button.isVisible()


def test_latest_button_resumes_following(loaded: ChartWidget, qtbot) -> None:
    loaded.focus_range(T0_MS, T0_MS + 20 * BAR_MS)
    qtbot.mouseClick(loaded.latest_button, Qt.MouseButton.LeftButton)
    assert loaded.following


def test_focus_range_shows_the_selected_span_and_stops_following(loaded: ChartWidget) -> None:
    start, end = T0_MS + 100 * BAR_MS, T0_MS + 120 * BAR_MS
    loaded.focus_range(start, end)
    x0, x1 = loaded.view.viewRange()[0]
    assert x0 < start / 1000 and end / 1000 < x1 < newest_x(loaded)
    assert not loaded.following


def test_appends_do_not_scroll_a_chart_that_is_not_following(loaded: ChartWidget, qtbot) -> None:
    loaded.focus_range(T0_MS, T0_MS + 20 * BAR_MS)
    before = loaded.view.viewRange()[0]
    d = candles(320)
    for i in range(300, 320):
        loaded.append_bar(int(d["ts_ms"][i]), d["o"][i], d["h"][i], d["l"][i], d["c"][i],
                          d["ema_fast"][i], d["ema_slow"][i])
    qtbot.wait(100)  # longer than a frame: a pending scroll would have happened
    assert loaded.view.viewRange()[0] == before


# ----- what is painted -------------------------------------------------------------------
def test_live_candle_is_painted_green_when_up_and_red_when_down(loaded: ChartWidget) -> None:
    ts = int(loaded._series.ts[-1]) + BAR_MS
    last = float(loaded._series.close[-1])
    loaded.update_live(ts, last, last + 60.0, last - 5.0, last + 50.0)
    loaded.fit_y()
    assert pixel_at(loaded, ts / 1000, last + 25.0) == QColor(theme.UP)
    loaded.update_live(ts, last, last + 5.0, last - 60.0, last - 50.0)
    loaded.fit_y()
    assert pixel_at(loaded, ts / 1000, last - 25.0) == QColor(theme.DOWN)


def test_closed_down_candle_is_painted_red(loaded: ChartWidget) -> None:
    ts = int(loaded._series.ts[-1]) + BAR_MS
    last = float(loaded._series.close[-1])
    loaded.append_bar(ts, last, last + 5.0, last - 80.0, last - 70.0, last, last)
    loaded.fit_y()
    assert pixel_at(loaded, ts / 1000, last - 35.0) == QColor(theme.DOWN)


def test_closing_the_live_candle_hides_the_live_item(loaded: ChartWidget) -> None:
    ts = int(loaded._series.ts[-1]) + BAR_MS
    last = float(loaded._series.close[-1])
    loaded.update_live(ts, last, last + 10, last - 10, last + 5)
    loaded.append_bar(ts, last, last + 10, last - 10, last + 5, last, last)
    assert not loaded.live.isVisible()
    assert loaded.candle_count() == 301


def test_zoomed_out_chart_still_paints_candles(chart: ChartWidget) -> None:
    d = candles(5000)
    chart.set_history(**d)
    chart.set_layer_visible("ema", False)          # only candles under the probed pixel
    chart.view.setXRange(d["ts_ms"][0] / 1000, d["ts_ms"][-1] / 1000, padding=0.0)
    chart.fit_y()
    i = 2500
    color = pixel_at(chart, d["ts_ms"][i] / 1000, (d["h"][i] + d["l"][i]) / 2)
    assert color in (QColor(theme.UP), QColor(theme.DOWN))


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.floats(0, 50, allow_nan=False), st.floats(-1e3, 1e3),
                          st.floats(-1e3, 1e3), st.floats(0, 100), st.floats(0, 100)),
                min_size=1, max_size=60))
def test_merged_columns_span_each_pixel_columns_lowest_low_to_highest_high(rows) -> None:
    rows.sort(key=lambda r: r[0])
    px = np.array([r[0] for r in rows])
    o = np.array([r[1] for r in rows])
    c = np.array([r[2] for r in rows])
    h = np.maximum(o, c) + np.array([r[3] for r in rows])
    l = np.minimum(o, c) - np.array([r[4] for r in rows])
    up, down = merged_rects(px, o, h, l, c, sy=-1.0, dy=0.0)  # device y = -price
    rects = np.concatenate((up, down))
    assert sorted(rects[:, 0]) == sorted(set(np.floor(px)))
    for x, top, _w, height in rects:
        in_col = np.floor(px) == x
        assert top <= -h[in_col].max() and top + height >= -l[in_col].min()
        assert top >= -h[in_col].max() - 1 and top + height <= -l[in_col].min() + 1  # whole pixels


@settings(max_examples=60, deadline=None)
@given(st.floats(0.5, 40.0), st.floats(0.05, 4.0), st.floats(0.0, 1.0), st.floats(0.0, 1.0),
       st.floats(0.0, 60.0), st.floats(0.0, 60.0))
def test_forming_candle_is_drawn_like_a_closed_one(spacing_px: float, px_per_price: float,
                                                   open_frac: float, close_frac: float,
                                                   wick_up: float, wick_down: float) -> None:
    """The forming candle's own fast path paints exactly the pixels of the closed candles'."""
    painter_ = CandlePainter()
    o, c = 100.0 + 200.0 * open_frac, 100.0 + 200.0 * close_frac
    h, l = max(o, c) + wick_up, min(o, c) - wick_down
    sx, sy = spacing_px / 900.0, -px_per_price
    transform = QTransform(sx, 0.0, 0.0, sy, 100.0 - 5_000.0 * sx, 200.0 - 200.0 * sy)
    images = []
    for one in (False, True):
        image = QImage(200, 400, QImage.Format.Format_RGB32)
        image.fill(0)
        p = QPainter(image)
        p.setTransform(transform)
        if one:
            painter_.paint_one(p, 5_000.0, o, h, l, c, 900.0)
        else:
            painter_.paint(p, *(np.array([v]) for v in (5_000.0, o, h, l, c)), 900.0)
        p.end()
        images.append(image)
    assert images[0] == images[1]


# ----- price label, crosshair, UTC axis ----------------------------------------------------
def test_latest_price_shows_change_since_previous_close_in_colour(loaded: ChartWidget,
                                                                  qtbot) -> None:
    ts = int(loaded._series.ts[-1]) + BAR_MS
    prev = float(loaded._series.close[-1])
    loaded.update_live(ts, prev, prev + 200, prev - 10, prev + 120.5)
    qtbot.waitUntil(lambda: loaded.price_label.text() == format_price(prev + 120.5))
    assert loaded.change_label.text() == format_change(prev + 120.5, prev)
    assert change_color(loaded) == QColor(theme.UP)
    loaded.update_live(ts, prev, prev + 200, prev - 100, prev - 50.0)
    qtbot.waitUntil(lambda: loaded.change_label.text().startswith("-"))
    assert change_color(loaded) == QColor(theme.DOWN)


def test_a_tick_after_a_quiet_spell_shows_its_price_at_once(loaded: ChartWidget) -> None:
    """The price label, line and axis tag refresh with the tick itself when the last refresh
    is older than the refresh interval: no timer wait, and no event loop pass needed."""
    ts = int(loaded._series.ts[-1]) + BAR_MS
    prev = float(loaded._series.close[-1])
    time.sleep(0.15)                       # longer than the 100 ms refresh interval
    loaded.update_live(ts, prev, prev + 80, prev - 10, prev + 61.25)
    assert loaded.price_label.text() == format_price(prev + 61.25)
    assert loaded.price_line.value() == prev + 61.25
    assert loaded.price_axis.tag("last")[1] == format_price(prev + 61.25)


def test_fast_ticks_still_end_on_the_newest_price(loaded: ChartWidget, qtbot) -> None:
    ts = int(loaded._series.ts[-1]) + BAR_MS
    prev = float(loaded._series.close[-1])
    for step in range(20):
        loaded.update_live(ts, prev, prev + 100, prev - 100, prev - 50 + 5 * step)
    last = prev - 50 + 5 * 19
    qtbot.waitUntil(lambda: loaded.price_label.text() == format_price(last))
    assert loaded.price_line.value() == last


def test_partial_repaints_leave_no_stale_pixels(loaded: ChartWidget) -> None:
    """After ticks that move the price line and tag up and down, and candle closes, what is
    on screen is what a full repaint of the chart draws: nothing left over from before."""
    s = loaded._series
    prev = float(s.close[-1])
    loaded.set_fib_ladder([(0.0, prev + 300), (0.618, prev + 100), (1.0, prev - 200)], 0.618,
                          int(s.ts[-40]), None)
    loaded.add_entry_marker(int(s.ts[-30]), float(s.low[-30]))
    loaded.set_position(int(s.ts[-20]), float(s.close[-20]), float(s.close[-20]) - 150.0)
    QApplication.processEvents()
    ts = int(s.ts[-1]) + BAR_MS
    for step in range(30):
        price = prev - 120 + 240 * ((step * 0.37) % 1.0)
        if step % 2:
            loaded._since_label.invalidate()   # the refresh is due: done with the tick
        loaded.update_live(ts, prev, max(prev, price), min(prev, price), price)
        loaded.fit_y()
        QApplication.processEvents()
        if not step % 2:
            loaded._update_price_label()       # what the refresh timer runs between fast ticks
            QApplication.processEvents()
        if step in (9, 19):               # closes between ticks; ticks come last
            loaded.append_bar(ts, prev, max(prev, price), min(prev, price), price, price, price,
                              5.0)
            QApplication.processEvents()
            QApplication.processEvents()
            ts += BAR_MS
    QApplication.processEvents()
    on_screen = _rgb(loaded.screen().grabWindow(loaded.winId()).toImage())
    repainted = _rgb(loaded.grab().toImage())
    assert on_screen.shape == repainted.shape
    off = np.abs(on_screen - repainted).max(axis=2)
    # Antialiased 1 px lines clipped to a small repaint round a few edge pixels differently
    # from a full repaint (Qt's cosmetic stroker); a stale candle, line or tag differs by far
    # more, over far more pixels.
    assert int((off > 0).sum()) < 150
    assert int(off.max()) < 100


def _rgb(image: QImage) -> np.ndarray:
    image = image.convertToFormat(QImage.Format.Format_RGB32)
    rows = np.frombuffer(image.constBits(), dtype=np.uint8)
    rows = rows.reshape(image.height(), image.bytesPerLine() // 4, 4)
    return rows[:, : image.width(), :3].astype(np.int16)


def test_crosshair_readout_shows_the_candle_time_in_utc_and_the_price(loaded: ChartWidget) -> None:
    i = 40
    x = float(loaded._series.x[i]) + 100.0  # near, not on, the candle: the readout snaps
    loaded.crosshair.moved.emit(x, 50_123.45)
    text = loaded.readout.text()
    assert "2024-03-10 23:00 UTC" in text
    assert format_price(float(loaded._series.close[i])) in text
    assert "50,123.45" in text
    assert loaded.crosshair.vline.value() == pytest.approx(float(loaded._series.x[i]))


def test_time_axis_labels_are_utc_whatever_the_local_zone(loaded: ChartWidget, monkeypatch) -> None:
    monkeypatch.setenv("TZ", "Asia/Kolkata")  # UTC+05:30: a local label would read 18:30
    time.tzset()
    try:
        axis = loaded.plot.getAxis("bottom")
        x0, x1 = T0_MS / 1000 - 3 * 3600, T0_MS / 1000 + 3 * 3600
        levels = axis.tickValues(x0, x1, 1200)
        spacing = next(spacing for spacing, values in levels if T0_MS / 1000 in values)
        assert axis.tickStrings([T0_MS / 1000], 1.0, spacing) == ["13:00"]
    finally:
        monkeypatch.undo()
        time.tzset()


@pytest.mark.parametrize("x_factor, y_factor", [(1.0, 1.0), (0.3, 1.0), (8.0, 1.0), (1.0, 0.2),
                                                 (1.0, 6.0), (40.0, 3.0)])
def test_axes_draw_the_ticks_and_labels_pyqtgraph_would(loaded: ChartWidget, x_factor: float,
                                                        y_factor: float) -> None:
    """Our faster axis layout places every tick and label exactly as pyqtgraph's does."""
    (x0, x1), (y0, y1) = loaded.view.viewRange()
    xm, ym = (x0 + x1) / 2, (y0 + y1) / 2
    loaded.view.setRange(xRange=(xm - (x1 - x0) * x_factor / 2, xm + (x1 - x0) * x_factor / 2),
                         yRange=(ym - (y1 - y0) * y_factor / 2, ym + (y1 - y0) * y_factor / 2),
                         padding=0.0)
    QApplication.processEvents()
    for axis in (loaded.price_axis, loaded.time_axis):
        picture = QPicture()
        painter = QPainter(picture)
        ours = _flat_specs(type(axis).generateDrawSpecs(axis, painter))
        theirs = _flat_specs(pg.AxisItem.generateDrawSpecs(axis, painter))
        painter.end()
        assert ours == theirs
        assert len(ours[2]) > 1                 # labels were drawn


def _flat_specs(specs) -> tuple:
    (pen, a, b), ticks, texts = specs
    return ((pen.color().rgba(), a.x(), a.y(), b.x(), b.y()),
            [(p.color().rgba(), p1.x(), p1.y(), p2.x(), p2.y()) for p, p1, p2 in ticks],
            [(r.x(), r.y(), r.width(), r.height(), int(f), t) for r, f, t in texts])


def test_utc_format_ignores_the_local_zone() -> None:
    assert format_utc(T0_MS / 1000) == "2024-03-10 13:00 UTC"


def test_prices_are_formatted_with_thousands_separators_and_enough_decimals() -> None:
    assert format_price(117_411.27) == "117,411.27"
    assert format_price(0.00012345) == "0.0001234"  # four significant digits (round-half-even)
    assert format_change(101.0, 100.0) == "+1.00 (+1.00%)"
    assert format_change(88_894.30, 88_896.20) == "-1.90 (-0.002%)"


# ----- Fibonacci ladder, markers, position, layers -----------------------------------------
LEVELS = [(0.382, 117_900.0), (0.5, 117_700.0), (0.618, 117_411.27), (0.786, 117_100.0),
          (1.0, 116_800.0)]


def test_fib_labels_show_level_and_formatted_price(loaded: ChartWidget) -> None:
    loaded.set_fib_ladder(LEVELS, 0.618, T0_MS, None)
    texts = [level.label.toPlainText() for level in loaded.fib.levels]
    assert texts[0].startswith("38.2%  117,900.00")
    assert texts[2].startswith("61.8%  117,411.27")


def test_golden_level_is_gold_and_thicker_than_the_others(loaded: ChartWidget) -> None:
    loaded.set_fib_ladder(LEVELS, None, T0_MS, None)
    by_ratio = {level.ratio: level.line.pen() for level in loaded.fib.levels}
    assert by_ratio[0.618].color() == QColor(theme.GOLD)
    assert all(by_ratio[0.618].widthF() > by_ratio[r].widthF() for r in (0.382, 0.5, 0.786, 1.0))
    assert by_ratio[0.382].color() == QColor("#2196F3")


def test_target_level_is_emphasised(loaded: ChartWidget) -> None:
    loaded.set_fib_ladder(LEVELS, 0.5, T0_MS, None)
    target = next(level for level in loaded.fib.levels if level.ratio == 0.5)
    other = next(level for level in loaded.fib.levels if level.ratio == 0.382)
    assert target.line.pen().widthF() > other.line.pen().widthF()
    assert target.label.textItem.font().bold() and not other.label.textItem.font().bold()


def test_open_ended_ladder_follows_the_newest_candle(loaded: ChartWidget) -> None:
    loaded.set_fib_ladder(LEVELS, 0.618, T0_MS, None)
    ts = int(loaded._series.ts[-1]) + BAR_MS
    loaded.append_bar(ts, 1.0, 2.0, 0.5, 1.5, 1.0, 1.0)
    assert loaded.fib.span() == (T0_MS / 1000, ts / 1000)


def test_closed_ladder_ends_at_its_end_time(loaded: ChartWidget) -> None:
    end = T0_MS + 50 * BAR_MS
    loaded.set_fib_ladder(LEVELS, 0.618, T0_MS, end)
    loaded.append_bar(int(loaded._series.ts[-1]) + BAR_MS, 1.0, 2.0, 0.5, 1.5, 1.0, 1.0)
    assert loaded.fib.span() == (T0_MS / 1000, end / 1000)


def test_clearing_the_ladder_removes_its_lines(loaded: ChartWidget) -> None:
    loaded.set_fib_ladder(LEVELS, 0.618, T0_MS, None)
    line = loaded.fib.levels[0].line
    loaded.clear_fib_ladder()
    assert loaded.fib.levels == [] and line.scene() is None


@pytest.mark.parametrize(("kind", "symbol", "color"), [
    ("target", "t", theme.UP), ("stop", "t", theme.DOWN), ("neutral", "t", theme.NEUTRAL)])
def test_exit_markers_are_down_triangles_coloured_by_kind(loaded: ChartWidget, kind: str,
                                                          symbol: str, color: str) -> None:
    loaded.add_exit_marker(T0_MS + 10 * BAR_MS, 50_000.0, kind)
    points = loaded.markers.items[kind].points()
    assert len(points) == 1
    assert points[0].symbol() == symbol
    assert points[0].brush().color() == QColor(color)
    assert points[0].pos() == QPointF((T0_MS + 10 * BAR_MS) / 1000, 50_000.0)


def test_entry_marker_is_a_green_up_triangle(loaded: ChartWidget) -> None:
    loaded.add_entry_marker(T0_MS, 49_900.0)
    (point,) = loaded.markers.items["entry"].points()
    assert point.symbol() == "t1" and point.brush().color() == QColor(theme.UP)


def test_unknown_exit_kind_is_rejected(loaded: ChartWidget) -> None:
    with pytest.raises(UnknownMarkerKind, match="'tp'"):
        loaded.add_exit_marker(T0_MS, 1.0, "tp")


def test_clear_markers_removes_every_marker(loaded: ChartWidget) -> None:
    loaded.add_entry_marker(T0_MS, 1.0)
    loaded.add_exit_marker(T0_MS, 1.0, "stop")
    loaded.clear_markers()
    assert loaded.markers.count() == 0


def test_position_is_shaded_from_entry_to_the_newest_candle_with_a_stop_line(
        loaded: ChartWidget) -> None:
    entry_ts = int(loaded._series.ts[-30])
    loaded.set_position(entry_ts, 50_000.0, 49_250.5)
    assert loaded.position.band.region() == (entry_ts / 1000, newest_x(loaded))
    assert loaded.position.stop_line.isVisible()
    assert loaded.position.stop_line.value() == 49_250.5
    assert loaded.position.stop_line.label.toPlainText() == "Stop 49,250.50"


def test_position_without_stop_shows_no_stop_line(loaded: ChartWidget) -> None:
    loaded.set_position(int(loaded._series.ts[-30]), 50_000.0, None)
    assert loaded.position.band.isVisible() and not loaded.position.stop_line.isVisible()


def test_clear_position_hides_the_band(loaded: ChartWidget) -> None:
    loaded.set_position(int(loaded._series.ts[-30]), 50_000.0, 49_000.0)
    loaded.clear_position()
    assert not loaded.position.band.isVisible() and not loaded.position.stop_line.isVisible()


def test_layer_toggles_hide_and_show_their_items(loaded: ChartWidget) -> None:
    loaded.set_fib_ladder(LEVELS, 0.618, T0_MS, None)
    loaded.add_entry_marker(T0_MS, 1.0)
    layers = {"ema": [loaded.ema_fast, loaded.ema_slow],
              "fib": [loaded.fib.levels[0].line, loaded.fib.levels[0].label],
              "markers": list(loaded.markers.items.values())}
    for name, items in layers.items():
        loaded.set_layer_visible(name, False)
        assert not any(item.isVisible() for item in items), name
        loaded.set_layer_visible(name, True)
        assert all(item.isVisible() for item in items), name


def test_hidden_fib_layer_stays_hidden_for_a_new_ladder(loaded: ChartWidget) -> None:
    loaded.set_layer_visible("fib", False)
    loaded.set_fib_ladder(LEVELS, 0.618, T0_MS, None)
    assert not loaded.fib.levels[0].line.isVisible()


def test_unknown_layer_is_rejected(loaded: ChartWidget) -> None:
    with pytest.raises(UnknownLayer, match="'orderbook'"):
        loaded.set_layer_visible("orderbook", False)


@settings(max_examples=150, deadline=None)
@given(st.floats(1.5e9, 1.9e9), st.floats(600, 3e8), st.floats(200, 3000))
def test_time_ticks_are_round_utc_times_inside_the_range(lo: float, span: float,
                                                         size: float) -> None:
    from ui.chart.axes import DAY, UtcTimeAxis

    ((spacing, values),) = UtcTimeAxis().tickValues(lo, lo + span, size)
    assert values == sorted(values) and all(lo <= v <= lo + span for v in values)
    assert len(values) <= size / 60 + 2  # labels never crowd closer than ~60 px
    if spacing <= DAY:
        assert all(v % spacing == 0 for v in values)
    elif spacing == 7 * DAY:
        assert all(datetime_utc(v).weekday() == 0 and v % DAY == 0 for v in values)
    elif spacing > 7 * DAY:
        assert all(datetime_utc(v).day == 1 and datetime_utc(v).hour == 0 for v in values)


def datetime_utc(seconds: float):
    from datetime import UTC, datetime

    return datetime.fromtimestamp(seconds, tz=UTC)


def test_leaving_the_chart_hides_the_crosshair_and_readout(loaded: ChartWidget) -> None:
    loaded.crosshair.moved.emit(float(loaded._series.x[10]), 50_000.0)
    QApplication.sendEvent(loaded, QEvent(QEvent.Type.Leave))
    assert not loaded.crosshair.vline.isVisible() and loaded.readout.text() == ""


def test_crowded_fib_labels_keep_only_the_target_visible(loaded: ChartWidget) -> None:
    close_levels = [(0.382, 50_004.0), (0.5, 50_003.0), (0.618, 50_002.0), (0.786, 50_001.0)]
    loaded.set_fib_ladder(close_levels, 0.5, T0_MS, None)
    loaded.view.setYRange(45_000.0, 55_000.0, padding=0.0)  # 1 price unit << 1 px
    shown = [level.ratio for level in loaded.fib.levels if level.label.isVisible()]
    assert shown == [0.5]
    loaded.view.setYRange(49_995.0, 50_010.0, padding=0.0)  # 1 price unit ~ 40 px
    assert all(level.label.isVisible() for level in loaded.fib.levels)
