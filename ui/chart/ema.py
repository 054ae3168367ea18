"""An EMA line that reads the candle series directly and paints only the exposed range.

Why not PlotDataItem (measured here at 50k candles): every range change re-clips and
re-downsamples each curve, and every candle close had to re-push data with setData; together
about a third of a pan or candle-close frame. Like the candles, this item needs no data push on
append (it reads the shared arrays), draws one polyline in device pixels, and beyond one point
per pixel column keeps each column's lowest and highest value (peak decimation), so a
zoomed-out line keeps its extremes.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QRectF
from PySide6.QtGui import QColor, QPainter, QPen, QPolygonF, QTransform
from PySide6.QtWidgets import QGraphicsItem, QStyleOptionGraphicsItem, QWidget

from ui.chart.bounds import grown
from ui.chart.series import CandleSeries

_PAD_PX = 2.0


class EmaLine(pg.GraphicsObject):
    """The EMA column `column` ("ema_fast" or "ema_slow") of the series as a line."""

    def __init__(self, series: CandleSeries, column: str, color: str, width: float = 1.0) -> None:
        super().__init__()
        self._series = series
        self._column = column
        self.pen = QPen(QColor(color), width)
        self.pen.setCosmetic(True)
        self._bounds = QRectF()
        self._polylines: list[QPolygonF] = []
        self._polylines_key: tuple[float, ...] | None = None
        self.setFlag(QGraphicsItem.GraphicsItemFlag.ItemUsesExtendedStyleOption, True)

    def _values(self) -> np.ndarray:
        return getattr(self._series, self._column)

    def boundingRect(self) -> QRectF:
        return self._bounds

    def reset(self) -> None:
        """The series was replaced: recompute bounds and repaint."""
        s, y = self._series, self._values()
        self._polylines_key = None
        self.prepareGeometryChange()
        finite = y[np.isfinite(y)]
        if finite.shape[0] == 0:
            self._bounds = QRectF()
        else:
            lo, hi = float(finite.min()), float(finite.max())
            self._bounds = QRectF(s.x[0], lo, s.x[-1] - s.x[0], hi - lo)
        self.update()

    def appended(self) -> None:
        """One point was appended: grow the bounds and repaint the last segment only."""
        s, y = self._series, self._values()
        n = len(s)
        if not np.isfinite(y[-1]):
            return
        segment = QRectF(s.x[-1], y[-1], 0.0, 0.0)
        if n > 1 and np.isfinite(y[-2]):
            segment = QRectF(s.x[-2], y[-2], s.x[-1] - s.x[-2], y[-1] - y[-2]).normalized()
        bounds = grown(self._bounds, segment, s.bar_seconds)
        if bounds is not None:
            self.prepareGeometryChange()
            self._bounds = bounds
        pw, ph = (self.pixelWidth() or 0.0) * _PAD_PX, (self.pixelHeight() or 0.0) * _PAD_PX
        self.update(segment.adjusted(-pw, -ph, pw, ph))

    def paint(self, p: QPainter, option: QStyleOptionGraphicsItem,
              widget: QWidget | None = None) -> None:
        s = self._series
        n = len(s)
        if n < 2:
            return
        exposed = option.exposedRect
        i0, i1 = s.index_range(exposed.left(), exposed.right())
        i0, i1 = max(0, i0 - 1), min(n, i1 + 1)  # one point beyond each edge: no gap at edges
        if i1 - i0 < 2:
            return
        t = p.transform()
        # The same range under the same transform (the small repaints between range changes:
        # ticks, price-line strips) reuses the polylines; an append changes n, so they are
        # rebuilt with the new point.
        key = (t.m11(), t.m22(), t.dx(), t.dy(), i0, i1, n)
        if key != self._polylines_key:
            self._polylines = self._make_polylines(t, i0, i1)
            self._polylines_key = key
        p.save()
        p.resetTransform()
        p.setPen(self.pen)
        p.setRenderHint(QPainter.RenderHint.Antialiasing, True)
        for polyline in self._polylines:
            p.drawPolyline(polyline)
        p.restore()

    def _make_polylines(self, t: QTransform, i0: int, i1: int) -> list[QPolygonF]:
        s = self._series
        px = s.x[i0:i1] * t.m11() + t.dx()
        py = self._values()[i0:i1] * t.m22() + t.dy()
        polylines = []
        for run_x, run_y in _finite_runs(px, py):
            if run_x.shape[0] > 2 * (run_x[-1] - run_x[0] + 1):
                run_x, run_y = _peak_decimate(run_x, run_y)
            if run_x.shape[0] >= 2:
                polylines.append(pg.functions.arrayToQPolygonF(run_x, run_y))
        return polylines


def _finite_runs(x: np.ndarray, y: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """Split at NaN (EMA warm-up or gaps): a line never bridges missing values."""
    finite = np.isfinite(y)
    if finite.all():
        return [(x, y)]
    edges = np.flatnonzero(np.diff(finite.astype(np.int8))) + 1
    bounds = np.concatenate(([0], edges, [y.shape[0]]))
    return [(x[a:b], y[a:b]) for a, b in zip(bounds[:-1], bounds[1:]) if finite[a]]


def _peak_decimate(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Two points per pixel column (its min and max), so extremes survive zooming out."""
    col = np.floor(x)
    starts = np.flatnonzero(np.concatenate(([True], col[1:] != col[:-1])))
    lo = np.minimum.reduceat(y, starts)
    hi = np.maximum.reduceat(y, starts)
    out_x = np.repeat(col[starts], 2)
    out_y = np.empty(2 * starts.shape[0])
    out_y[0::2], out_y[1::2] = lo, hi
    return out_x, out_y
