"""The chart as traders know it: volume pane on the same time axis, a current-price line
tagged on the price axis, crosshair tags on both axes that follow a scroll under a still
mouse, a vertical fit that includes the EMAs, a price axis that scales when dragged, a
placeholder instead of an empty axis, and keyboard navigation."""
from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import QPointF, Qt
from PySide6.QtGui import QColor
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication

from ui import theme
from ui.chart.format import format_price, format_utc
from ui.chart.widget import PLACEHOLDER, SHORTCUTS, ChartWidget

pytestmark = pytest.mark.gui
BAR_MS = 900_000
T0_MS = 1_710_075_600_000


def candles(n: int, seed: int = 5) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    c = 50_000.0 + np.cumsum(rng.normal(0.0, 40.0, n))
    o = np.concatenate(([c[0]], c[:-1]))
    return {"ts_ms": T0_MS + np.arange(n, dtype=np.int64) * BAR_MS, "o": o,
            "h": np.maximum(o, c) + 15.0, "l": np.minimum(o, c) - 15.0, "c": c,
            "ema_fast": c.copy(), "ema_slow": c.copy(),
            "volume": rng.uniform(10.0, 100.0, n)}


@pytest.fixture
def chart(qtbot) -> ChartWidget:
    widget = ChartWidget()
    qtbot.addWidget(widget)
    widget.resize(1200, 700)
    widget.show()
    qtbot.waitExposed(widget)
    return widget


@pytest.fixture
def data(chart) -> dict[str, np.ndarray]:
    d = candles(400)
    chart.set_history(**d)
    return d


def test_an_empty_chart_says_it_waits_for_data(chart):
    assert chart.placeholder.isVisible() and chart.placeholder.text() == PLACEHOLDER
    assert not chart.price_axis.isVisible()           # no meaningless 0–1 axis
    chart.set_placeholder("Warming up: 120 of 672 bars")
    assert chart.placeholder.text() == "Warming up: 120 of 672 bars"


def test_the_placeholder_goes_with_the_first_candle(chart):
    chart.append_bar(T0_MS, 1.0, 2.0, 0.5, 1.5, 1.2, 1.1, 10.0)
    assert not chart.placeholder.isVisible() and chart.price_axis.isVisible()


def test_volume_pane_shares_the_time_axis_and_fits_the_visible_volume(chart, data):
    assert chart.volume_widget.isVisible()
    assert chart.volume_view.viewRange()[0] == pytest.approx(chart.view.viewRange()[0])
    x0, x1 = chart.view.viewRange()[0]
    chart.view.setXRange(x0 - 50 * 900, x1 - 50 * 900, padding=0.0)
    chart.fit_y()
    x0, x1 = chart.view.viewRange()[0]
    assert chart.volume_view.viewRange()[0] == pytest.approx([x0, x1])
    visible = data["volume"][(data["ts_ms"] / 1000 >= x0) & (data["ts_ms"] / 1000 <= x1)]
    lo, hi = chart.volume_view.viewRange()[1]
    assert lo == 0.0 and visible.max() <= hi <= visible.max() * 1.2


def test_volume_bars_are_painted_under_their_candles(chart, data):
    QApplication.processEvents()
    i = len(data["c"]) - 10
    x = data["ts_ms"][i] / 1000
    scene = chart.volume_view.mapViewToScene(QPointF(x, data["volume"][i] * 0.5))
    point = chart.volume_widget.mapFromScene(scene)
    color = chart.volume_widget.grab().toImage().pixelColor(point)
    assert color != QColor(theme.BACKGROUND)


def test_current_price_line_and_axis_tag_follow_the_price(chart, data, qtbot):
    last = float(data["c"][-1])
    assert chart.price_line.isVisible() and chart.price_line.value() == last
    assert chart.price_axis.tag("last")[:2] == (last, format_price(last))
    chart.update_live(int(data["ts_ms"][-1]) + BAR_MS, last, last + 80, last, last + 70)
    qtbot.waitUntil(lambda: chart.price_line.value() == last + 70)
    value, text, color = chart.price_axis.tag("last")
    assert (value, text, color) == (last + 70, format_price(last + 70), theme.UP)


def test_crosshair_tags_both_axes_and_follows_a_scroll_under_a_still_mouse(chart, data):
    x0, x1 = chart.view.viewRange()[0]
    y0, y1 = chart.view.viewRange()[1]
    scene = chart.view.mapViewToScene(QPointF((x0 + x1) / 2, (y0 + y1) / 2))
    chart.crosshair._on_mouse_moved((scene,))
    before = chart.readout.text()
    time_tag = chart.time_axis.tag("cross")
    assert time_tag is not None and time_tag[1] == format_utc(time_tag[0])
    assert chart.price_axis.tag("cross") is not None
    chart.pan(-0.2)                                   # the chart moves, the mouse does not
    assert chart.readout.text() != before
    assert chart.time_axis.tag("cross")[0] < time_tag[0]


def test_vertical_fit_includes_the_emas(chart):
    d = candles(300)
    d["ema_slow"] = d["c"] + 2_000.0                  # far above every high
    chart.set_history(**d)
    chart.fit_y()
    assert chart.view.viewRange()[1][1] >= d["ema_slow"][-200:].max()


def test_dragging_the_price_axis_scales_prices_until_end(chart, data):
    lo, hi = chart.view.viewRange()[1]
    chart.price_axis.scale_prices(2.0)
    lo2, hi2 = chart.view.viewRange()[1]
    assert hi2 - lo2 == pytest.approx(2 * (hi - lo))
    chart.fit_y()                                     # the operator's scale is kept
    assert chart.view.viewRange()[1] == pytest.approx([lo2, hi2])
    QTest.keyClick(chart, Qt.Key.Key_End)
    chart.fit_y()
    assert chart.view.viewRange()[1][1] - chart.view.viewRange()[1][0] < hi2 - lo2


def test_keys_zoom_pan_and_return_to_the_latest(chart, data):
    x0, x1 = chart.view.viewRange()[0]
    QTest.keyClick(chart, Qt.Key.Key_Minus)
    z0, z1 = chart.view.viewRange()[0]
    assert z1 - z0 == pytest.approx((x1 - x0) * 1.25)
    QTest.keyClick(chart, Qt.Key.Key_Plus)
    assert chart.view.viewRange()[0][1] - chart.view.viewRange()[0][0] == pytest.approx(x1 - x0)
    QTest.keyClick(chart, Qt.Key.Key_Left)
    assert chart.view.viewRange()[0][1] < x1 and not chart.following
    QTest.keyClick(chart, Qt.Key.Key_End)
    assert chart.following


def test_tooltips_name_the_shortcuts(chart, data):
    for key in ("End", "+ / −", "← / →"):
        assert key in SHORTCUTS
    assert SHORTCUTS in chart.keys_label.toolTip()
    assert SHORTCUTS in chart.latest_button.toolTip()
