"""Candle items: all closed candles in one numpy-backed item, the forming candle in its own.

Why (QT_NOTES.md, measured): a QPicture of every candle costs ~370 ms per tick at 50k candles;
painting only the visible index range clipped to the exposed rect, in two batched drawRects
calls per paint, keeps a tick under 1 ms and a full 50k pan under 10 ms. Candles narrower than
3 px are merged per pixel column (min low, max high, first open, last close) so a zoomed-out
paint costs one bar per column, not one per candle.
"""

from __future__ import annotations

import math

import numpy as np
import pyqtgraph as pg
from pyqtgraph.Qt import internals
from PySide6.QtCore import QRectF, Qt
from PySide6.QtGui import QBrush, QColor, QPainter, QTransform
from PySide6.QtWidgets import QGraphicsItem, QStyleOptionGraphicsItem, QWidget

from ui import theme
from ui.chart.bounds import grown
from ui.chart.series import DEFAULT_BAR_SECONDS, CandleSeries

MERGE_BELOW_PX = 3.0
BODY_FRACTION = 0.7
_PAD_PX = 2.0


class CandlePainter:
    """Draws candles given in data coordinates as pixel-aligned rectangles (wick + body).

    Drawing in device pixels (not data units) keeps edges crisp at any zoom and lets one
    drawRects call per colour draw wicks and bodies alike.
    """

    def __init__(self, up: str = theme.UP, down: str = theme.DOWN) -> None:
        self.up = QBrush(QColor(up))
        self.down = QBrush(QColor(down))
        # PrimitiveArray hands numpy memory to QPainter.drawRects without one Python object per
        # rect; it is pyqtgraph's internal helper (BarGraphItem uses it), kept behind this class.
        self._up_rects = internals.PrimitiveArray(QRectF, 4)
        self._down_rects = internals.PrimitiveArray(QRectF, 4)

    def paint(self, p: QPainter, x: np.ndarray, o: np.ndarray, h: np.ndarray, l: np.ndarray,
              c: np.ndarray, bar_seconds: float) -> None:
        """Paint candles x (seconds) with the painter's current data->device transform."""
        if x.shape[0] == 0:
            return
        self.draw(p, *device_rects(p.transform(), x, o, h, l, c, bar_seconds))

    def draw(self, p: QPainter, up_rects: np.ndarray, down_rects: np.ndarray) -> None:
        """Rows (x, y, w, h) in device pixels, up candles first."""
        p.save()
        p.resetTransform()
        p.setRenderHint(QPainter.RenderHint.Antialiasing, False)
        p.setPen(Qt.PenStyle.NoPen)
        self._draw(p, self._up_rects, up_rects, self.up)
        self._draw(p, self._down_rects, down_rects, self.down)
        p.restore()

    def paint_one(self, p: QPainter, x: float, o: float, h: float, l: float, c: float,
                  bar_seconds: float) -> None:
        """One candle (the forming one), the same pixels as paint() with plain floats: numpy's
        per-call overhead was most of a tick's candle paint."""
        t: QTransform = p.transform()
        sx, sy, dx, dy = t.m11(), t.m22(), t.dx(), t.dy()
        px = x * sx + dx
        spacing_px = abs(bar_seconds * sx)
        y_h, y_l = h * sy + dy, l * sy + dy
        wick_top = math.floor(min(y_h, y_l))
        wick_h = max(1.0, math.ceil(max(y_h, y_l)) - wick_top)
        if spacing_px < MERGE_BELOW_PX:
            rows = [(math.floor(px), wick_top, 1.0, wick_h)]
        else:
            body_w = max(1, int(spacing_px * BODY_FRACTION))
            if body_w % 2 == 0:
                body_w -= 1
            left = math.floor(px - body_w / 2.0 + 0.5)
            y_o, y_c = o * sy + dy, c * sy + dy
            body_top = math.floor(min(y_o, y_c))
            body_h = max(1.0, math.ceil(max(y_o, y_c)) - body_top)
            rows = [(left + body_w // 2, wick_top, 1.0, wick_h), (left, body_top, body_w, body_h)]
        store = self._up_rects if c >= o else self._down_rects
        p.save()
        p.resetTransform()
        p.setRenderHint(QPainter.RenderHint.Antialiasing, False)
        p.setPen(Qt.PenStyle.NoPen)
        self._draw(p, store, np.asarray(rows, dtype=np.float64), self.up if c >= o else self.down)
        p.restore()

    @staticmethod
    def _draw(p: QPainter, store: internals.PrimitiveArray, rects: np.ndarray,
              brush: QBrush) -> None:
        if rects.shape[0] == 0:
            return
        store.resize(rects.shape[0])
        store.ndarray()[:] = rects
        p.setBrush(brush)
        p.drawRects(*store.drawargs())


def device_rects(t: QTransform, x: np.ndarray, o: np.ndarray, h: np.ndarray, l: np.ndarray,
                 c: np.ndarray, bar_seconds: float) -> tuple[np.ndarray, np.ndarray]:
    """Up and down candles' rects in device pixels under the data->device transform t."""
    sx, sy, dx, dy = t.m11(), t.m22(), t.dx(), t.dy()
    px = x * sx + dx
    spacing_px = abs(bar_seconds * sx)
    if spacing_px < MERGE_BELOW_PX:
        return merged_rects(px, o, h, l, c, sy, dy)
    return candle_rects(px, o, h, l, c, sy, dy, spacing_px)


def _within(rows: np.ndarray, rect: QRectF) -> np.ndarray:
    """The rows that reach into rect (device pixels, a pixel of slack): the others would
    draw nothing inside it."""
    if rows.shape[0] == 0:
        return rows
    keep = ((rows[:, 0] <= rect.right() + 1.0) & (rows[:, 0] + rows[:, 2] >= rect.left() - 1.0)
            & (rows[:, 1] <= rect.bottom() + 1.0) & (rows[:, 1] + rows[:, 3] >= rect.top() - 1.0))
    return rows if keep.all() else rows[keep]


def candle_rects(px: np.ndarray, o: np.ndarray, h: np.ndarray, l: np.ndarray, c: np.ndarray,
                  sy: float, dy: float, spacing_px: float) -> tuple[np.ndarray, np.ndarray]:
    """Rows (x, y, w, h) in device pixels: one wick and one body per candle, split by colour."""
    body_w = max(1, int(spacing_px * BODY_FRACTION))
    if body_w % 2 == 0:
        body_w -= 1  # odd width so the 1 px wick sits exactly in the middle
    left = np.floor(px - body_w / 2.0 + 0.5)
    wick_x = left + body_w // 2
    y_o, y_c = o * sy + dy, c * sy + dy
    y_h, y_l = h * sy + dy, l * sy + dy
    wick_top = np.floor(np.minimum(y_h, y_l))
    wick_h = np.maximum(1.0, np.ceil(np.maximum(y_h, y_l)) - wick_top)
    body_top = np.floor(np.minimum(y_o, y_c))
    body_h = np.maximum(1.0, np.ceil(np.maximum(y_o, y_c)) - body_top)
    n = px.shape[0]
    rects = np.empty((2 * n, 4), dtype=np.float64)
    rects[:n, 0], rects[:n, 1], rects[:n, 2], rects[:n, 3] = wick_x, wick_top, 1.0, wick_h
    rects[n:, 0], rects[n:, 1], rects[n:, 2], rects[n:, 3] = left, body_top, body_w, body_h
    up = c >= o
    both = np.concatenate((up, up))
    return rects[both], rects[~both]


def merged_rects(px: np.ndarray, o: np.ndarray, h: np.ndarray, l: np.ndarray, c: np.ndarray,
                  sy: float, dy: float) -> tuple[np.ndarray, np.ndarray]:
    """One 1 px high-low bar per pixel column; coloured by the column's first open/last close."""
    col = np.floor(px)
    starts = np.flatnonzero(np.concatenate(([True], col[1:] != col[:-1])))
    ends = np.concatenate((starts[1:], [px.shape[0]])) - 1
    hi = np.maximum.reduceat(h, starts) * sy + dy
    lo = np.minimum.reduceat(l, starts) * sy + dy
    top = np.floor(np.minimum(hi, lo))
    rects = np.empty((starts.shape[0], 4), dtype=np.float64)
    rects[:, 0] = col[starts]
    rects[:, 1] = top
    rects[:, 2] = 1.0
    rects[:, 3] = np.maximum(1.0, np.ceil(np.maximum(hi, lo)) - top)
    up = c[ends] >= o[starts]
    return rects[up], rects[~up]


class CandleHistoryItem(pg.GraphicsObject):
    """Every closed candle; paints only candles inside the exposed rect."""

    def __init__(self, series: CandleSeries, painter: CandlePainter) -> None:
        super().__init__()
        self._series = series
        self._painter = painter
        self._bounds = QRectF()
        self._generation = 0           # bumped when the series is replaced
        self._rows_key: tuple[float, ...] | None = None
        self._rows: tuple[np.ndarray, np.ndarray] = (np.empty((0, 4)), np.empty((0, 4)))
        self.setFlag(QGraphicsItem.GraphicsItemFlag.ItemUsesExtendedStyleOption, True)

    def boundingRect(self) -> QRectF:
        return self._bounds

    def reset(self) -> None:
        """Recompute bounds after the series was replaced, and repaint."""
        s = self._series
        self._generation += 1
        self.prepareGeometryChange()
        if len(s) == 0:
            self._bounds = QRectF()
        else:
            hw = s.bar_seconds / 2.0
            lo, hi = float(np.nanmin(s.low)), float(np.nanmax(s.high))
            self._bounds = QRectF(s.x[0] - hw, lo, s.x[-1] - s.x[0] + 2 * hw, hi - lo)
        self.update()

    def appended(self) -> None:
        """The series grew by one candle: extend bounds and repaint just that candle."""
        s = self._series
        i = len(s) - 1
        hw = s.bar_seconds / 2.0
        rect = QRectF(s.x[i] - hw, s.low[i], 2 * hw, s.high[i] - s.low[i])
        bounds = grown(QRectF() if i == 0 else self._bounds, rect, s.bar_seconds)
        if bounds is not None:
            self.prepareGeometryChange()
            self._bounds = bounds
        self.update(_padded(self, rect))

    def paint(self, p: QPainter, option: QStyleOptionGraphicsItem,
              widget: QWidget | None = None) -> None:
        s = self._series
        if len(s) == 0:
            return
        t = p.transform()
        width = p.device().width()
        key = (t.m11(), t.m22(), t.dx(), t.dy(), width, len(s), self._generation)
        if key != self._rows_key:
            self._rows = self._visible_rows(t, width)
            self._rows_key = key
        # Only the rects reaching into what Qt repaints: a price-line strip crosses a few
        # candles, a tick's forming candle touches one or two.
        exposed = t.mapRect(option.exposedRect)
        up, down = self._rows
        self._painter.draw(p, _within(up, exposed), _within(down, exposed))

    def _visible_rows(self, t: QTransform, width: float) -> tuple[np.ndarray, np.ndarray]:
        """Device rects of every candle across the device's width, kept until the transform
        or the candles change: the small repaints between range changes (ticks, price-line
        strips) only pick the ones they need."""
        s = self._series
        sx, dx = t.m11(), t.dx()
        empty = np.empty((0, 4))
        if sx == 0:
            return empty, empty
        x0, x1 = sorted(((0.0 - dx) / sx, (width - dx) / sx))
        hw = s.bar_seconds / 2.0
        i0, i1 = s.index_range(x0 - hw, x1 + hw)
        if i1 <= i0:
            return empty, empty
        sl = slice(i0, i1)
        return device_rects(t, s.x[sl], s.open[sl], s.high[sl], s.low[sl], s.close[sl],
                            s.bar_seconds)


class LiveCandleItem(pg.GraphicsObject):
    """The forming candle: the only item a tick repaints."""

    def __init__(self, painter: CandlePainter) -> None:
        super().__init__()
        self._painter = painter
        self._ohlc = np.zeros(5, dtype=np.float64)  # x, open, high, low, close
        self._bar_seconds = DEFAULT_BAR_SECONDS
        self._bounds = QRectF()
        self._pixel: tuple[float, float] | None = None   # (width, height) of a device pixel
        self.setVisible(False)

    @property
    def ohlc(self) -> tuple[float, float, float, float, float]:
        """(x seconds, open, high, low, close) of the forming candle."""
        x, o, h, l, c = (float(v) for v in self._ohlc)
        return x, o, h, l, c

    def set_candle(self, x: float, o: float, h: float, l: float, c: float,
                   bar_seconds: float) -> None:
        """Move the forming candle; Qt repaints only the old and new bounds."""
        self._ohlc[:] = (x, o, h, l, c)
        self._bar_seconds = bar_seconds
        self._set_bounds()
        self.setVisible(True)

    def _set_bounds(self) -> None:
        x, _, h, l, _ = self._ohlc
        hw = self._bar_seconds / 2.0
        if self._pixel is None:            # pyqtgraph's pixel size costs ~20 us: once per zoom
            self._pixel = (self.pixelWidth() or 0.0, self.pixelHeight() or 0.0)
        pw, ph = self._pixel[0] * _PAD_PX, self._pixel[1] * _PAD_PX
        self.prepareGeometryChange()
        self._bounds = QRectF(x - hw, l, 2 * hw, h - l).normalized().adjusted(-pw, -ph, pw, ph)

    def viewTransformChanged(self) -> None:
        """The pixel padding of the bounds depends on the zoom: recompute it."""
        self._pixel = None
        if self.isVisible():
            self._set_bounds()

    def boundingRect(self) -> QRectF:
        return self._bounds

    def paint(self, p: QPainter, option: QStyleOptionGraphicsItem,
              widget: QWidget | None = None) -> None:
        x, o, h, l, c = self._ohlc.tolist()
        self._painter.paint_one(p, x, o, h, l, c, self._bar_seconds)


def _padded(item: pg.GraphicsObject, rect: QRectF) -> QRectF:
    """Rect grown by a few device pixels: pixel rounding may draw just outside the data rect."""
    pw = item.pixelWidth() or 0.0
    ph = item.pixelHeight() or 0.0
    return rect.normalized().adjusted(-_PAD_PX * pw, -_PAD_PX * ph, _PAD_PX * pw, _PAD_PX * ph)
