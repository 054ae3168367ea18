"""The volume pane's bars: every closed candle's volume in one numpy-backed item.

Same recipe as the candles (ui.chart.candles): paint only the exposed index range, in device
pixels, one batched drawRects call per colour, and merge bars narrower than 3 px per pixel
column (the column's largest volume), so the pane adds little to a pan at 50,000 candles and
nothing to a tick (the forming candle has no volume bar)."""
from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from pyqtgraph.Qt import internals
from PySide6.QtCore import QRectF, Qt
from PySide6.QtGui import QBrush, QColor, QPainter
from PySide6.QtWidgets import QGraphicsItem, QStyleOptionGraphicsItem, QWidget

from ui import theme
from ui.chart.candles import BODY_FRACTION, MERGE_BELOW_PX
from ui.chart.series import CandleSeries

VOLUME_ALPHA = 150


def _brush(color: str) -> QBrush:
    c = QColor(color)
    c.setAlpha(VOLUME_ALPHA)
    return QBrush(c)


class VolumeItem(pg.GraphicsObject):
    """Volume bars coloured like their candle (up green, down red), translucent."""

    def __init__(self, series: CandleSeries) -> None:
        super().__init__()
        self._series = series
        self._bounds = QRectF()
        self._up = _brush(theme.UP)
        self._down = _brush(theme.DOWN)
        self._up_store = internals.PrimitiveArray(QRectF, 4)
        self._down_store = internals.PrimitiveArray(QRectF, 4)
        self.setFlag(QGraphicsItem.GraphicsItemFlag.ItemUsesExtendedStyleOption, True)
        self._max_key: tuple[int, int, int] | None = None   # what max_in last answered for
        self._max: float | None = None

    def boundingRect(self) -> QRectF:
        return self._bounds

    def reset(self) -> None:
        s = self._series
        self._max_key = None
        self.prepareGeometryChange()
        if len(s) == 0:
            self._bounds = QRectF()
        else:
            hw = s.bar_seconds / 2.0
            top = float(np.nanmax(s.volume)) if np.isfinite(s.volume).any() else 1.0
            self._bounds = QRectF(s.x[0] - hw, 0.0, s.x[-1] - s.x[0] + 2 * hw, max(top, 1e-12))
        self.update()

    def appended(self) -> None:
        s = self._series
        i = len(s) - 1
        hw = s.bar_seconds / 2.0
        v = float(s.volume[i]) if np.isfinite(s.volume[i]) else 0.0
        rect = QRectF(s.x[i] - hw, 0.0, 2 * hw, v)
        self.prepareGeometryChange()
        self._bounds = rect if i == 0 or self._bounds.isNull() else self._bounds.united(rect)
        pw = (self.pixelWidth() or 0.0) * 2
        ph = (self.pixelHeight() or 0.0) * 2
        self.update(rect.normalized().adjusted(-pw, -ph, pw, ph))

    def max_in(self, x0: float, x1: float) -> float | None:
        """Largest volume of the candles in [x0, x1] (None when none is known)."""
        s = self._series
        i0, i1 = s.index_range(x0, x1)
        key = (i0, i1, len(s))
        if key != self._max_key:          # every tick fits the pane; the candles rarely change
            v = s.volume[i0:i1]
            top = float(np.nanmax(v)) if i1 > i0 and np.isfinite(v).any() else None
            self._max_key, self._max = key, top
        return self._max

    def paint(self, p: QPainter, option: QStyleOptionGraphicsItem,
              widget: QWidget | None = None) -> None:
        s = self._series
        if len(s) == 0:
            return
        exposed = option.exposedRect
        hw = s.bar_seconds / 2.0
        i0, i1 = s.index_range(exposed.left() - hw, exposed.right() + hw)
        if i1 <= i0:
            return
        t = p.transform()
        sx, sy, dx, dy = t.m11(), t.m22(), t.dx(), t.dy()
        px = s.x[i0:i1] * sx + dx
        vol = np.nan_to_num(s.volume[i0:i1], nan=0.0)
        up = s.close[i0:i1] >= s.open[i0:i1]
        spacing = abs(s.bar_seconds * sx)
        if spacing < MERGE_BELOW_PX:
            col = np.floor(px)
            starts = np.flatnonzero(np.concatenate(([True], col[1:] != col[:-1])))
            vol = np.maximum.reduceat(vol, starts)
            up = up[starts]
            left, width = col[starts], np.ones(starts.shape[0])
        else:
            w = max(1, int(spacing * BODY_FRACTION))
            left, width = np.floor(px - w / 2.0 + 0.5), np.full(px.shape[0], float(w))
        base = dy                         # volume 0 in device pixels
        top = np.floor(vol * sy + dy)
        rects = np.empty((left.shape[0], 4), dtype=np.float64)
        rects[:, 0], rects[:, 1], rects[:, 2] = left, top, width
        rects[:, 3] = np.maximum(1.0, np.ceil(base) - top)
        p.save()
        p.resetTransform()
        p.setRenderHint(QPainter.RenderHint.Antialiasing, False)
        p.setPen(Qt.PenStyle.NoPen)
        for store, chosen, brush in ((self._up_store, rects[up], self._up),
                                     (self._down_store, rects[~up], self._down)):
            if chosen.shape[0]:
                store.resize(chosen.shape[0])
                store.ndarray()[:] = chosen
                p.setBrush(brush)
                p.drawRects(*store.drawargs())
        p.restore()
