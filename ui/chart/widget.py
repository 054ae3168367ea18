"""ChartWidget: candles, EMAs, Fibonacci ladder, trade markers and the open position, a
volume pane under the candles on the same time axis, a current-price line tagged on the price
axis, and crosshair tags on both axes.

The chart knows nothing of the engine: it takes plain numbers. Timestamps come in Unix ms
UTC; the x axis is in Unix seconds and is labelled in UTC.

Guarantees:
- a tick (update_live) changes only the forming-candle item (and, when due, the price line,
  tag and labels below), so Qt repaints a few pixels and thin strips;
- while `following`, the newest candle is scrolled into view at once, or within one frame
  (FRAME_MS) when the previous scroll was less than a frame ago; a
  user pan or zoom that moves it out of view stops following, and the End key or the
  "⇥ Latest" button resumes it;
- the Y range fits the visible candles (plus the visible ladder and the position's prices),
  at most once per Y_FIT_INTERVAL_MS, so ticks do not force full repaints;
- the latest-price label, line and tag refresh at most every LABEL_INTERVAL_MS: at once when
  that long has passed since the last refresh (so Qt paints them with the tick's candle, in one
  pass), else when it has; the newest price is always shown within LABEL_INTERVAL_MS;
- dragging the price axis scales prices; the chart then stops fitting Y until End / Latest;
- keys: End latest, + / - zoom time, Left / Right pan (SHORTCUTS lists them for tooltips);
- with no candle yet a placeholder ("Waiting for market data…") replaces an empty 0–1 axis;
- hovering a trade marker shows its card (set_trade_card); clicking one emits
  trade_clicked(trade id); select_trade_markers rings the selected trade's markers.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QElapsedTimer, QEvent, QPointF, Qt, QTimer, Signal
from PySide6.QtGui import QColor, QKeyEvent, QPalette
from PySide6.QtWidgets import QHBoxLayout, QLabel, QPushButton, QSizePolicy, QVBoxLayout, QWidget

from ui import theme
from ui.chart.axes import make_axes
from ui.chart.candles import CandleHistoryItem, CandlePainter, LiveCandleItem
from ui.chart.crosshair import Crosshair
from ui.chart.ema import EmaLine
from ui.chart.errors import ChartDataError, UnknownLayer
from ui.chart.fib import FibLadder
from ui.chart.grid import GridItem
from ui.chart.format import format_change, format_price, format_utc
from ui.chart.markers import MarkerHit, TradeMarkers
from ui.chart.position import PositionOverlay
from ui.chart.series import CandleSeries
from ui.chart.spans import ViewLine, dashed_pen
from ui.chart.volume import VolumeItem

DEFAULT_VISIBLE_BARS = 200
RIGHT_MARGIN_BARS = 4
FOCUS_MARGIN_BARS = 8
Y_FIT_INTERVAL_MS = 50
LABEL_INTERVAL_MS = 100
FRAME_MS = 33
Y_PADDING = 0.06
LAYERS = ("ema", "fib", "markers", "volume")
AXIS_WIDTH_PX = 78
VOLUME_STRETCH = (4, 1)           # price pane : volume pane heights
ZOOM_STEP = 1.25
PAN_FRACTION = 0.15
VOLUME_HEADROOM = 1.1
PLACEHOLDER = "Waiting for market data…"
SHORTCUTS = ("End: follow the newest candle · + / −: zoom · ← / →: pan · "
             "drag the price axis: scale prices · wheel: zoom · drag: pan")


class ChartWidget(QWidget):
    """The price chart of the main window."""

    following_changed = Signal(bool)
    trade_clicked = Signal(int)        # the trade id of a clicked marker

    def __init__(self, parent: QWidget | None = None, *, frame_ms: int = FRAME_MS) -> None:
        """frame_ms: the shortest interval between two follow scrolls (0: next event loop pass)."""
        super().__init__(parent)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self._series = CandleSeries()
        self._extremes_key: tuple[int, ...] | None = None
        self._extremes: tuple[tuple[float, ...], tuple[float, ...]] = ((), ())
        self._following = True
        self._manual_y = False
        self._live_ts: int | None = None
        self._crosshair_scene = None

        self.plot_widget = pg.PlotWidget(background=theme.BACKGROUND, axisItems=make_axes())
        self.plot: pg.PlotItem = self.plot_widget.getPlotItem()
        self.view: pg.ViewBox = self.plot.getViewBox()
        self._configure_plot()
        # pyqtgraph applies a new range lazily, inside the next paint; the transform change it
        # makes there invalidates the whole view and Qt paints everything a second time
        # (measured: two full paints per pan step or candle close). Applying it as soon as the
        # range changes (connected before any item listens) leaves one paint.
        self.view.sigRangeChanged.connect(self._apply_range_now)

        self.grid = GridItem(self.view, self.plot.getAxis("bottom"), self.plot.getAxis("right"))
        self.view.addItem(self.grid, ignoreBounds=True)
        self.grid.setZValue(1)
        painter = CandlePainter()
        self.history = CandleHistoryItem(self._series, painter)
        self.live = LiveCandleItem(painter)
        for item in (self.history, self.live):
            self.view.addItem(item)
            item.setZValue(2)
        self.ema_fast = EmaLine(self._series, "ema_fast", theme.EMA_FAST)
        self.ema_slow = EmaLine(self._series, "ema_slow", theme.EMA_SLOW)
        for item in (self.ema_fast, self.ema_slow):
            self.view.addItem(item, ignoreBounds=True)
            item.setZValue(4)
        self.fib = FibLadder(self.view)
        self.markers = TradeMarkers(self.view)
        self.position = PositionOverlay(self.view)
        self.crosshair = Crosshair(self.plot)
        self.crosshair.moved.connect(self._on_crosshair)
        self.crosshair.left.connect(self._clear_readout)
        self.plot.scene().sigMouseClicked.connect(self._on_scene_click)
        price_color = QColor(theme.TEXT_SECONDARY)
        price_color.setAlpha(170)
        self.price_line = ViewLine(self.view, horizontal=True, pen=dashed_pen(price_color))
        self.view.addItem(self.price_line, ignoreBounds=True)
        self.price_line.setZValue(15)
        self.price_line.setVisible(False)
        self.price_axis = self.plot.getAxis("right")
        self.time_axis = self.plot.getAxis("bottom")
        self.price_axis.on_user_scale = self._on_user_scale
        self.price_axis.setWidth(AXIS_WIDTH_PX)
        self._build_volume_pane()

        self._y_fit_timer = QTimer(self)
        self._y_fit_timer.setSingleShot(True)
        self._y_fit_timer.setInterval(Y_FIT_INTERVAL_MS)
        self._y_fit_timer.timeout.connect(self.fit_y)
        self.view.sigXRangeChanged.connect(self._schedule_y_fit)
        self._frame_ms = frame_ms
        self._since_scroll = QElapsedTimer()
        self._since_scroll.start()
        self._scroll_timer = QTimer(self)
        self._scroll_timer.setSingleShot(True)
        self._scroll_timer.timeout.connect(self._scroll_to_newest)
        self._label_timer = QTimer(self)
        self._label_timer.setSingleShot(True)
        self._label_timer.setInterval(LABEL_INTERVAL_MS)
        self._label_timer.timeout.connect(self._update_price_label)
        self._since_label = QElapsedTimer()      # invalid until the first refresh
        self._change_up: bool | None = None      # the change label's colour: up (green)?
        self.view.sigRangeChangedManually.connect(self._on_user_range)
        self.view.sigRangeChanged.connect(self._refresh_crosshair)

        self._build_layout()

    def _build_volume_pane(self) -> None:
        """A second plot under the candles, X-linked: same time axis, its own volume scale."""
        axis = pg.AxisItem("right")
        axis.enableAutoSIPrefix(True)
        axis.setPen(pg.mkPen(theme.BORDER))
        axis.setTextPen(pg.mkPen(theme.TEXT_SECONDARY))
        axis.setWidth(AXIS_WIDTH_PX)
        self.volume_widget = pg.PlotWidget(background=theme.BACKGROUND,
                                           axisItems={"right": axis})
        self.volume_plot: pg.PlotItem = self.volume_widget.getPlotItem()
        self.volume_view: pg.ViewBox = self.volume_plot.getViewBox()
        vp = self.volume_plot
        vp.hideAxis("left")
        vp.hideAxis("bottom")
        vp.showAxis("right")
        _unlink_hidden_axes(vp, ("left", "bottom", "top"))
        vp.hideButtons()
        vp.setMenuEnabled(False)
        self.volume_view.setMouseEnabled(x=True, y=False)
        self.volume_view.disableAutoRange()
        self.volume_view.setDefaultPadding(0.0)
        # Same lazy-range double paint as the price view (see __init__): X-linked, the volume
        # view gets every scroll and would paint its pane twice per candle close.
        self.volume_view.sigRangeChanged.connect(self._apply_volume_range_now)
        self.volume_view.setXLink(self.view)
        self.volume_view.sigRangeChangedManually.connect(self._on_user_range)
        self.volume = VolumeItem(self._series)
        self.volume_view.addItem(self.volume)
        self.volume_widget.setFocusPolicy(Qt.FocusPolicy.NoFocus)

    # ----- layout -------------------------------------------------------------------------
    def _configure_plot(self) -> None:
        self.plot.hideAxis("left")
        self.plot.showAxis("right")
        _unlink_hidden_axes(self.plot, ("left", "top"))
        self.plot.hideButtons()
        self.plot.setMenuEnabled(False)
        self.view.setMouseEnabled(x=True, y=False)
        self.view.disableAutoRange()
        self.view.setDefaultPadding(0.0)

    def _build_layout(self) -> None:
        self.readout = QLabel("")
        self.readout.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.readout.setStyleSheet(f"color: {theme.TEXT_SECONDARY}; font-family: monospace;")
        self.price_label = QLabel("")
        self.price_label.setTextFormat(Qt.TextFormat.PlainText)
        self.price_label.setStyleSheet(f"color: {theme.TEXT}; font-weight: 600;")
        self.price_label.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        self.change_label = QLabel("")
        self.change_label.setTextFormat(Qt.TextFormat.PlainText)
        self.readout.setTextFormat(Qt.TextFormat.PlainText)
        self.latest_button = QPushButton("⇥ Latest")
        self.latest_button.setToolTip("Follow the newest candle again (End)\n" + SHORTCUTS)
        self.latest_button.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.latest_button.clicked.connect(self.follow_latest)
        self.latest_button.setVisible(False)
        header = QHBoxLayout()
        header.setContentsMargins(6, 2, 6, 2)
        header.addWidget(self.readout, 1)
        header.addWidget(self.price_label)
        header.addSpacing(8)
        header.addWidget(self.change_label)
        header.addSpacing(8)
        header.addWidget(self.latest_button)
        self.keys_label = QLabel("⌨")
        self.keys_label.setObjectName("chartKeys")
        self.keys_label.setToolTip(SHORTCUTS)
        self.keys_label.setStyleSheet(f"color: {theme.TEXT_SECONDARY};")
        header.addWidget(self.keys_label)
        self.plot_widget.setToolTip("")
        self.placeholder = QLabel(PLACEHOLDER, self.plot_widget)
        self.placeholder.setObjectName("chartPlaceholder")
        self.placeholder.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.placeholder.setStyleSheet(
            f"color: {theme.TEXT_SECONDARY}; font-size: 16px; background: transparent;")
        self.placeholder.setAttribute(Qt.WidgetAttribute.WA_TransparentForMouseEvents)
        self.marker_card = QLabel("", self.plot_widget)
        self.marker_card.setObjectName("markerCard")
        self.marker_card.setTextFormat(Qt.TextFormat.PlainText)
        self.marker_card.setStyleSheet(
            f"color: {theme.TEXT}; background: {theme.SURFACE}; border: 1px solid {theme.BORDER};"
            " border-radius: 4px; padding: 5px 8px; font-family: monospace;")
        self.marker_card.setAttribute(Qt.WidgetAttribute.WA_TransparentForMouseEvents)
        self.marker_card.hide()
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        layout.addLayout(header)
        layout.addWidget(self.plot_widget, VOLUME_STRETCH[0])
        layout.addWidget(self.volume_widget, VOLUME_STRETCH[1])
        self.plot_widget.installEventFilter(self)
        self._update_placeholder()
        self.setStyleSheet(f"ChartWidget {{ background: {theme.BACKGROUND}; }}")

    # ----- data ---------------------------------------------------------------------------
    def set_history(self, ts_ms: np.ndarray, o: np.ndarray, h: np.ndarray, l: np.ndarray,
                    c: np.ndarray, ema_fast: np.ndarray, ema_slow: np.ndarray,
                    volume: np.ndarray | None = None) -> None:
        """Replace every candle and EMA point; shows the newest candles and follows them."""
        self._series.replace(ts_ms, o, h, l, c, ema_fast, ema_slow, volume)
        self._extremes_key = None
        self.history.reset()
        self.volume.reset()
        self._update_placeholder()
        s = self._series
        self.ema_fast.reset()
        self.ema_slow.reset()
        self.live.setVisible(False)
        self._live_ts = None
        self._newest_moved()
        self._update_price_label()
        self._set_following(True)
        self._show_latest(DEFAULT_VISIBLE_BARS * s.bar_seconds)

    def append_bar(self, ts_ms: int, o: float, h: float, l: float, c: float,
                   ema_fast: float, ema_slow: float, volume: float = float("nan")) -> None:
        """A candle closed. Amortised O(1): only the new candle and the EMA tails repaint."""
        first = len(self._series) == 0
        self._series.append(int(ts_ms), o, h, l, c, ema_fast, ema_slow, volume)
        self.history.appended()
        self.volume.appended()
        if first:
            self._update_placeholder()
        self.ema_fast.appended()
        self.ema_slow.appended()
        if self._live_ts is not None and self._live_ts <= ts_ms:
            self.live.setVisible(False)
            self._live_ts = None
        self._newest_moved()
        self._schedule_price_label()
        self._schedule_y_fit()

    def update_live(self, ts_ms: int, o: float, h: float, l: float, c: float) -> None:
        """The forming candle changed (a tick): only its own small item repaints."""
        ts_ms = int(ts_ms)
        s = self._series
        if len(s) and ts_ms < s.ts[-1]:
            raise ChartDataError(
                f"update_live ts {ts_ms} is before the newest closed candle {int(s.ts[-1])}")
        new_bar = ts_ms != self._live_ts
        self._live_ts = ts_ms
        self.live.set_candle(ts_ms / 1000.0, o, h, l, c, s.bar_seconds)
        if new_bar:
            self._newest_moved()
        self._schedule_price_label()
        self._schedule_y_fit()

    def candle_count(self) -> int:
        """Number of closed candles (the forming candle is not counted)."""
        return len(self._series)

    # ----- overlays -----------------------------------------------------------------------
    def set_fib_ladder(self, levels: Sequence[tuple[float, float]], target_ratio: float | None,
                       start_ts_ms: int, end_ts_ms: int | None,
                       not_traded: str | None = None) -> None:
        """Show (ratio, price) levels from start to end; end None follows the newest candle.
        `not_traded`: the reason a signal was skipped; its ladder is drawn dim, no target."""
        end_x = None if end_ts_ms is None else end_ts_ms / 1000.0
        self.fib.set(levels, target_ratio, start_ts_ms / 1000.0, end_x, self._newest_x(),
                     not_traded)
        self._schedule_y_fit()

    def clear_fib_ladder(self) -> None:
        self.fib.clear()
        self._schedule_y_fit()

    def add_entry_marker(self, ts_ms: int, price: float, trade_id: int | None = None) -> None:
        self.markers.add_entry(ts_ms / 1000.0, price, trade_id)

    def add_exit_marker(self, ts_ms: int, price: float, kind: str,
                        trade_id: int | None = None) -> None:
        """kind: "target" (green), "stop" (red) or "neutral" (grey: time or manual exit)."""
        self.markers.add_exit(ts_ms / 1000.0, price, kind, trade_id)

    def set_trade_card(self, trade_id: int, text: str) -> None:
        """The card shown while the mouse is over one of the trade's markers."""
        self.markers.set_card(trade_id, text)

    def select_trade_markers(self, trade_id: int | None) -> None:
        """Ring the markers of the selected trade (None: no trade selected)."""
        self.markers.select(trade_id)

    def clear_markers(self) -> None:
        self.markers.clear()
        self.marker_card.hide()

    def set_position(self, entry_ts_ms: int, entry_price: float, stop_price: float | None) -> None:
        """Shade the open position from its entry to the newest candle; stop line if given."""
        self.position.set(entry_ts_ms / 1000.0, entry_price, stop_price, self._newest_x())
        self._schedule_y_fit()

    def clear_position(self) -> None:
        self.position.clear()
        self._schedule_y_fit()

    def set_layer_visible(self, layer: str, visible: bool) -> None:
        """Toggle "ema", "fib" or "markers"."""
        if layer == "ema":
            self.ema_fast.setVisible(visible)
            self.ema_slow.setVisible(visible)
        elif layer == "fib":
            self.fib.set_visible(visible)
        elif layer == "markers":
            self.markers.set_visible(visible)
        elif layer == "volume":
            self.volume_widget.setVisible(visible)
        else:
            raise UnknownLayer(f"layer {layer!r} is not one of {LAYERS}")

    # ----- navigation ---------------------------------------------------------------------
    @property
    def following(self) -> bool:
        """True while the view scrolls with the newest candle."""
        return self._following

    @following.setter
    def following(self, value: bool) -> None:
        if value:
            self.follow_latest()
        else:
            self._set_following(False)

    def set_placeholder(self, text: str | None) -> None:
        """What an empty chart says ("Warming up…"); None: the default. Hidden once candles
        are drawn."""
        self.placeholder.setText(text or PLACEHOLDER)
        self._update_placeholder()

    def _update_placeholder(self) -> None:
        empty = len(self._series) == 0
        self.placeholder.setVisible(empty)
        if empty:
            self.placeholder.setGeometry(self.plot_widget.rect())
            self.placeholder.raise_()
        for axis in ("right", "bottom"):
            self.plot.getAxis(axis).setVisible(not empty)

    def eventFilter(self, watched, event) -> bool:  # noqa: N802 (Qt override)
        if watched is self.plot_widget and event.type() == QEvent.Type.Resize:
            self.placeholder.setGeometry(self.plot_widget.rect())
        return False

    def zoom(self, factor: float) -> None:
        """Show `factor` times the time span (< 1 zooms in), anchored at the newest candle
        while following, else at the middle."""
        x0, x1 = self.view.viewRange()[0]
        width = (x1 - x0) * factor
        if self._following:
            self._show_latest(width)
            return
        mid = (x0 + x1) / 2.0
        self._set_x_range(mid - width / 2.0, mid + width / 2.0)

    def pan(self, fraction: float) -> None:
        """Move the time span by `fraction` of its width (negative: back in time)."""
        x0, x1 = self.view.viewRange()[0]
        shift = (x1 - x0) * fraction
        self._set_x_range(x0 + shift, x1 + shift)
        self._on_user_range(None)

    def follow_latest(self) -> None:
        """Scroll back to the newest candle (keeping the zoom) and follow it again; prices are
        fitted again if the operator had scaled them."""
        self._manual_y = False
        x0, x1 = self.view.viewRange()[0]
        self._set_following(True)
        self._show_latest(x1 - x0)

    def focus_range(self, start_ts_ms: int, end_ts_ms: int) -> None:
        """Show a time span (e.g. a selected trade) with a margin; stops following."""
        margin = FOCUS_MARGIN_BARS * self._series.bar_seconds
        x0, x1 = sorted((start_ts_ms / 1000.0, end_ts_ms / 1000.0))
        self._set_following(False)
        self._set_x_range(x0 - margin, x1 + margin)

    def fit_y(self) -> None:
        """Fit the Y range to what is visible: candles, the live candle, EMAs, ladder and
        position (unless the operator scaled the prices), and the volume pane to its bars."""
        self._y_fit_timer.stop()
        (x0, x1), current = self.view.viewRange()
        self._fit_volume(x0, x1)
        if self._manual_y:
            return
        y_range = self._fitted_y(x0, x1)
        if y_range is not None and list(y_range) != current:
            self.view.setYRange(*y_range, padding=0.0)

    def _fit_volume(self, x0: float, x1: float) -> None:
        top = self.volume.max_in(x0, x1)
        if top is not None and top > 0:
            wanted = [0.0, top * VOLUME_HEADROOM]
            if self.volume_view.viewRange()[1] != wanted:
                self.volume_view.setYRange(*wanted, padding=0.0)

    def _on_user_scale(self) -> None:
        self._manual_y = True
        self._y_fit_timer.stop()

    def keyPressEvent(self, event: QKeyEvent) -> None:
        key = event.key()
        actions = {
            Qt.Key.Key_End: self.follow_latest,
            Qt.Key.Key_Plus: lambda: self.zoom(1 / ZOOM_STEP),
            Qt.Key.Key_Equal: lambda: self.zoom(1 / ZOOM_STEP),
            Qt.Key.Key_Minus: lambda: self.zoom(ZOOM_STEP),
            Qt.Key.Key_Left: lambda: self.pan(-PAN_FRACTION),
            Qt.Key.Key_Right: lambda: self.pan(PAN_FRACTION),
        }
        action = actions.get(Qt.Key(key))
        if action is None:
            super().keyPressEvent(event)
            return
        action()
        event.accept()

    def leaveEvent(self, event: QEvent) -> None:
        """The mouse left the chart: a crosshair must not point at a stale place."""
        self.crosshair.hide()
        self._clear_readout()
        super().leaveEvent(event)

    def _apply_range_now(self, *_args: object) -> None:
        self.view.updateMatrix()

    def _apply_volume_range_now(self, *_args: object) -> None:
        self.volume_view.updateMatrix()

    # ----- internals ----------------------------------------------------------------------
    def _newest_x(self) -> float:
        live_x = self._live_ts / 1000.0 if self._live_ts is not None else -np.inf
        closed_x = float(self._series.x[-1]) if len(self._series) else -np.inf
        newest = max(live_x, closed_x)
        return newest if np.isfinite(newest) else 0.0

    def _newest_moved(self) -> None:
        """A new newest candle: stretch open-ended overlays now, scroll at the next frame."""
        newest = self._newest_x()
        self.fib.extend_to(newest)
        self.position.extend_to(newest)
        if not self._following or self._scroll_timer.isActive():
            return
        wait_ms = self._frame_ms - self._since_scroll.elapsed()
        if wait_ms <= 0:
            self._scroll_to_newest()  # now: its full repaint absorbs this bar's partial ones
        else:
            self._scroll_timer.start(wait_ms)

    def _scroll_to_newest(self) -> None:
        """Keep the newest candle in view. A scroll repaints everything, so it runs at most
        once per frame: a fast replay closing several bars per frame pays for one repaint."""
        self._since_scroll.restart()
        if not self._following:
            return
        x0, x1 = self.view.viewRange()[0]
        overshoot = self._newest_x() + RIGHT_MARGIN_BARS * self._series.bar_seconds - x1
        if overshoot > 0:
            self._set_x_range(x0 + overshoot, x1 + overshoot)

    def _show_latest(self, width: float) -> None:
        bar = self._series.bar_seconds
        if not np.isfinite(width) or width < 10 * bar:
            width = DEFAULT_VISIBLE_BARS * bar
        right = self._newest_x() + RIGHT_MARGIN_BARS * bar
        self._set_x_range(right - width, right)

    def _set_x_range(self, x0: float, x1: float) -> None:
        """Move X and fit Y in one range change: one repaint instead of two."""
        self._y_fit_timer.stop()
        y_range = None if self._manual_y else self._fitted_y(x0, x1)
        self._fit_volume(x0, x1)
        if y_range is None:
            self.view.setXRange(x0, x1, padding=0.0)
        else:
            self.view.setRange(xRange=(x0, x1), yRange=y_range, padding=0.0)

    def _fitted_y(self, x0: float, x1: float) -> tuple[float, float] | None:
        lows, highs = self._visible_extremes(x0, x1)
        if not lows:
            return None
        lo, hi = min(lows), max(highs)
        if hi <= lo:
            lo, hi = lo - 1.0, hi + 1.0
        pad = (hi - lo) * Y_PADDING
        return lo - pad, hi + pad

    def _visible_extremes(self, x0: float, x1: float) -> tuple[list[float], list[float]]:
        s = self._series
        hw = s.bar_seconds / 2.0
        i0, i1 = s.index_range(x0 - hw, x1 + hw)
        lows, highs = (list(v) for v in self._closed_extremes(i0, i1))
        if self.live.isVisible():
            x, _, h, l, _ = self.live.ohlc
            if x0 - hw <= x <= x1 + hw:
                lows.append(l)
                highs.append(h)
        if not lows:
            return lows, highs
        span = self.fib.span()
        extra: list[float] = []
        ladder_shown = span is not None and self.fib.levels[0].line.isVisible()
        if ladder_shown and span[0] <= x1 and span[1] >= x0:
            extra += self.fib.prices()
        extra += self.position.prices()
        return lows + extra, highs + extra

    def _closed_extremes(self, i0: int, i1: int) -> tuple[tuple[float, ...], tuple[float, ...]]:
        """Lows and highs of closed candles i0..i1 (and their EMAs when shown). Kept for the
        same candles: every tick fits Y, and only the forming candle changes between closes."""
        s = self._series
        key = (i0, i1, len(s), s.capacity, self.ema_fast.isVisible())
        if key == self._extremes_key:
            return self._extremes
        lows: list[float] = []
        highs: list[float] = []
        if i1 > i0:
            lo, hi = np.nanmin(s.low[i0:i1]), np.nanmax(s.high[i0:i1])
            if np.isfinite(lo) and np.isfinite(hi):
                lows.append(float(lo))
                highs.append(float(hi))
            if self.ema_fast.isVisible():
                for column in (s.ema_fast[i0:i1], s.ema_slow[i0:i1]):
                    finite = column[np.isfinite(column)]
                    if finite.shape[0]:
                        lows.append(float(finite.min()))
                        highs.append(float(finite.max()))
        self._extremes_key, self._extremes = key, (tuple(lows), tuple(highs))
        return self._extremes

    def _schedule_y_fit(self) -> None:
        if not self._y_fit_timer.isActive():
            self._y_fit_timer.start()

    def _on_user_range(self, _mask: object) -> None:
        """A mouse pan or zoom: keep following only while the newest candle stays in view."""
        x0, x1 = self.view.viewRange()[0]
        self._set_following(x0 <= self._newest_x() <= x1)

    def _set_following(self, value: bool) -> None:
        self.latest_button.setVisible(not value)
        if value != self._following:
            self._following = value
            self.following_changed.emit(value)

    def _schedule_price_label(self) -> None:
        """Refresh now if the last refresh is LABEL_INTERVAL_MS old, else when it will be.

        Why now and not on a timer: a refresh of its own costs a paint pass of its own (~0.3 ms
        before anything is drawn); done inside the tick, the line, tag and labels are painted
        in the same pass as the forming candle."""
        if self._label_timer.isActive():
            return
        elapsed = self._since_label.elapsed() if self._since_label.isValid() else None
        if elapsed is None or elapsed >= LABEL_INTERVAL_MS:
            self._update_price_label()
        else:
            self._label_timer.start(LABEL_INTERVAL_MS - elapsed)

    def _update_price_label(self) -> None:
        """Latest price and its change since the previous close, green up / red down."""
        self._label_timer.stop()
        self._since_label.start()
        s = self._series
        previous: float | None = None
        if self.live.isVisible():
            last = self.live.ohlc[4]
            previous = float(s.close[-1]) if len(s) else None
        elif len(s):
            last = float(s.close[-1])
            previous = float(s.close[-2]) if len(s) > 1 else None
        else:
            self.price_label.setText("")
            self.change_label.setText("")
            self.price_line.setVisible(False)
            self.price_axis.clear_tag("last")
            return
        text = format_price(last)
        _set_steady_text(self.price_label, text)
        up = previous is None or last >= previous
        self.price_line.setValue(last)
        self.price_line.setVisible(True)
        self.price_axis.set_tag("last", last, text, theme.UP if up else theme.DOWN)
        if previous is None:
            self.change_label.setText("")
            return
        _set_steady_text(self.change_label, format_change(last, previous))
        if up != self._change_up:           # the palette is touched only when the sign flips
            self._change_up = up
            palette = self.change_label.palette()
            palette.setColor(QPalette.ColorRole.WindowText, QColor(theme.UP if up else theme.DOWN))
            self.change_label.setPalette(palette)

    def _on_crosshair(self, x: float, y: float) -> None:
        """Snap the vertical line to the nearest candle and show its time, OHLC, volume and the
        price, with tags on both axes; over a trade marker, show the trade's card."""
        self._show_marker_card(self.markers.hit(x, y))
        candle = self._candle_near(x)
        self.price_axis.set_tag("cross", y, format_price(y), theme.CROSSHAIR)
        if candle is None:
            self.crosshair.set_position(x, y)
            self.time_axis.set_tag("cross", x, format_utc(x), theme.CROSSHAIR)
            self.readout.setText(f"{format_utc(x)}   price {format_price(y)}")
            return
        cx, o, h, l, c = candle
        self.crosshair.set_position(cx, y)
        self.time_axis.set_tag("cross", cx, format_utc(cx), theme.CROSSHAIR)
        i = self._series.nearest_index(cx)
        volume = ""
        if i is not None and float(self._series.x[i]) == cx and np.isfinite(self._series.volume[i]):
            volume = f"  V {self._series.volume[i]:,.4g}"
        self.readout.setText(
            f"{format_utc(cx)}  O {format_price(o)}  H {format_price(h)}  L {format_price(l)}"
            f"  C {format_price(c)}{volume}   price {format_price(y)}")

    def _refresh_crosshair(self, *_args: object) -> None:
        """The chart scrolled under a still mouse: the readout follows what is now under it."""
        if self.crosshair.vline.isVisible():
            self.crosshair.refresh()

    def _candle_near(self, x: float) -> tuple[float, float, float, float, float] | None:
        """(x, o, h, l, c) of the closed or forming candle nearest to x."""
        s = self._series
        i = s.nearest_index(x)
        best = None
        if i is not None:
            best = (float(s.x[i]), float(s.open[i]), float(s.high[i]), float(s.low[i]),
                    float(s.close[i]))
        if self.live.isVisible():
            live = self.live.ohlc
            if best is None or abs(live[0] - x) < abs(best[0] - x):
                best = live
        return best

    def _show_marker_card(self, hit: MarkerHit | None) -> None:
        text = self.markers.cards.get(hit.trade_id) if hit is not None else None
        if hit is None or not text:
            self.marker_card.hide()
            return
        self.marker_card.setText(text)
        self.marker_card.adjustSize()
        scene = self.view.mapViewToScene(QPointF(hit.x, hit.price))
        anchor = self.plot_widget.mapFromScene(scene)
        area = self.plot_widget.rect()
        card = self.marker_card.size()
        left = anchor.x() + 14
        if left + card.width() > area.width() - AXIS_WIDTH_PX:
            left = anchor.x() - 14 - card.width()      # flip to the left of the marker
        top = anchor.y() + 14
        if top + card.height() > area.height():
            top = anchor.y() - 14 - card.height()
        self.marker_card.move(max(0, left), max(0, top))
        self.marker_card.show()
        self.marker_card.raise_()

    def _on_scene_click(self, event) -> None:
        """A left click on a trade marker selects its trade."""
        if event.button() != Qt.MouseButton.LeftButton:
            return
        scene_pos = event.scenePos()
        if not self.view.sceneBoundingRect().contains(scene_pos):
            return
        point = self.view.mapSceneToView(scene_pos)
        hit = self.markers.hit(point.x(), point.y())
        if hit is not None:
            event.accept()
            self.trade_clicked.emit(hit.trade_id)

    def _clear_readout(self) -> None:
        self.marker_card.hide()
        self.readout.setText("")
        self.price_axis.clear_tag("cross")
        self.time_axis.clear_tag("cross")


def _unlink_hidden_axes(plot: pg.PlotItem, names: Sequence[str]) -> None:
    """Axes that are never shown stop listening to their view: otherwise each range change
    re-ranges them and re-renders their (SI-prefixed, HTML) label, ~0.1 ms per candle close."""
    for name in names:
        plot.getAxis(name).unlinkFromView()


def _set_steady_text(label: QLabel, text: str) -> None:
    """Set a header label's text; its width only grows, to the widest text it has shown.

    Why: a price or change one character narrower re-laid the header out and repainted the
    whole readout beside it, ~0.3 ms of every 100 ms price refresh. The price is right-aligned,
    so it stays next to the change label either way."""
    label.setText(text)
    hint = label.sizeHint()
    if hint.width() > label.maximumWidth() or label.maximumHeight() != hint.height():
        # a fixed size also spares the layout pass every setText would otherwise ask for
        label.setFixedSize(max(hint.width(), label.minimumWidth()), hint.height())
