"""Items that span the whole view: a horizontal or vertical line, and a vertical band.

Why not pyqtgraph's InfiniteLine / LinearRegionItem: they recompute their view-sized bounding
rect lazily inside paint(), and the geometry change this causes makes Qt repaint the whole
chart a second time after every pan, zoom or follow scroll (measured: two full paints per
candle close). These items update their bounds when the view range changes, before the paint.
"""

from __future__ import annotations

import pyqtgraph as pg
from PySide6.QtCore import QLineF, QRectF, Qt
from PySide6.QtGui import QBrush, QColor, QPainter, QPen, QPixmap, QTransform
from PySide6.QtWidgets import QStyleOptionGraphicsItem, QWidget

_PAD_PX = 2.0
LABEL_AT = 0.02  # a line's label sits this fraction of the view width from the left edge


class _ViewSpan(pg.GraphicsObject):
    """Base: bounds derived from the view range, refreshed when it changes."""

    def __init__(self, view: pg.ViewBox) -> None:
        super().__init__()
        self._view = view
        self._rect = QRectF()
        # option.exposedRect is then the part Qt repaints, not the whole bounding rect
        self.setFlag(self.GraphicsItemFlag.ItemUsesExtendedStyleOption, True)

    def boundingRect(self) -> QRectF:
        return self._rect

    def viewRangeChanged(self) -> None:
        self._refresh()

    def _refresh(self) -> None:
        """Subclasses compute their rect from the view range and hand it to _set_rect."""

    def _set_rect(self, rect: QRectF, pad_x: bool = True, pad_y: bool = True) -> None:
        (x0, x1), (y0, y1) = self._view.viewRange()
        width, height = self._view.width(), self._view.height()
        # the view's pixel size from its range: pyqtgraph's pixelWidth/Height invert the
        # device transform on each call, and every span refreshes on every range change
        pw = (x1 - x0) / width * _PAD_PX if pad_x and width > 0 else 0.0
        ph = (y1 - y0) / height * _PAD_PX if pad_y and height > 0 else 0.0
        self.prepareGeometryChange()
        self._rect = rect.normalized().adjusted(-pw, -ph, pw, ph)
        self.update()


class ViewLine(_ViewSpan):
    """A line across the view at `value` (a price when horizontal, a time when vertical)."""

    def __init__(self, view: pg.ViewBox, horizontal: bool, pen: QPen,
                 label: pg.TextItem | None = None) -> None:
        super().__init__(view)
        self._horizontal = horizontal
        self._pen = QPen(pen)
        self._pen.setCosmetic(True)
        self._dash = _dash_brush(self._pen, horizontal)
        self._dash_at: tuple[float, QBrush] | None = None
        self._value = 0.0
        self.label = label
        if label is not None:
            label.setParentItem(self)

    def value(self) -> float:
        return self._value

    def pen(self) -> QPen:
        return QPen(self._pen)

    def setValue(self, value: float) -> None:  # noqa: N802 (Qt naming, like InfiniteLine)
        self._value = float(value)
        self._refresh()

    def _refresh(self) -> None:
        (x0, x1), (y0, y1) = self._view.viewRange()
        v = self._value
        if self.label is not None:
            self.label.setPos(x0 + LABEL_AT * (x1 - x0), v)
        # Padded across the line only: along it the line ends at the view's edge, and padding
        # there reached into the axis, which then repainted with every price-line move.
        if self._horizontal:
            self._set_rect(QRectF(x0, v, x1 - x0, 0.0), pad_x=False)
        else:
            self._set_rect(QRectF(v, y0, 0.0, y1 - y0), pad_y=False)

    def paint(self, p: QPainter, option: QStyleOptionGraphicsItem,
              widget: QWidget | None = None) -> None:
        (x0, x1), (y0, y1) = self._view.viewRange()
        if self._horizontal:
            line = QLineF(x0, self._value, x1, self._value)
        else:
            line = QLineF(self._value, y0, self._value, y1)
        device = p.transform().map(line)
        exposed = p.transform().mapRect(option.exposedRect)
        p.save()
        p.resetTransform()
        p.setRenderHint(QPainter.RenderHint.Antialiasing, False)
        if self._dash is None:
            p.setPen(self._pen)
            p.drawLine(device)
        else:
            p.fillRect(self._dash_rect(device, exposed), self._dash_brush_at(device))
        p.restore()

    def _dash_rect(self, device: QLineF, exposed: QRectF) -> QRectF:
        """The exposed part of the line as a rect as thick as the pen."""
        width = max(1.0, round(self._pen.widthF()))
        if self._horizontal:
            x0, x1 = sorted((device.x1(), device.x2()))
            x0, x1 = max(x0, exposed.left()), min(x1, exposed.right())
            return QRectF(x0, round(device.y1() - width / 2), max(0.0, x1 - x0), width)
        y0, y1 = sorted((device.y1(), device.y2()))
        y0, y1 = max(y0, exposed.top()), min(y1, exposed.bottom())
        return QRectF(round(device.x1() - width / 2), y0, width, max(0.0, y1 - y0))

    def _dash_brush_at(self, device: QLineF) -> QBrush:
        """The dash pattern anchored at the line's start, so a partial repaint continues the
        dashes exactly where the rest of the line has them."""
        assert self._dash is not None
        origin = min(device.x1(), device.x2()) if self._horizontal else min(device.y1(), device.y2())
        if self._dash_at is not None and self._dash_at[0] == origin:
            return self._dash_at[1]           # the same start as the last paint (most paints)
        brush = QBrush(self._dash)
        brush.setTransform(QTransform.fromTranslate(origin, 0.0) if self._horizontal
                           else QTransform.fromTranslate(0.0, origin))
        self._dash_at = (origin, brush)
        return brush


class ViewBand(_ViewSpan):
    """A vertical band between two times, the view's full height, in one opaque colour."""

    def __init__(self, view: pg.ViewBox, color: QColor) -> None:
        super().__init__(view)
        self.brush = QBrush(color)
        self._x0 = 0.0
        self._x1 = 0.0

    def region(self) -> tuple[float, float]:
        return self._x0, self._x1

    def set_region(self, x0: float, x1: float) -> None:
        self._x0, self._x1 = float(x0), float(x1)
        self._refresh()

    def _refresh(self) -> None:
        (_, _), (y0, y1) = self._view.viewRange()
        self._set_rect(QRectF(self._x0, y0, self._x1 - self._x0, y1 - y0))

    def paint(self, p: QPainter, option: QStyleOptionGraphicsItem,
              widget: QWidget | None = None) -> None:
        (_, _), (y0, y1) = self._view.viewRange()
        rect = p.transform().mapRect(QRectF(self._x0, y0, self._x1 - self._x0, y1 - y0))
        p.save()
        p.resetTransform()
        p.fillRect(rect.toAlignedRect(), self.brush)
        p.restore()


def _dash_brush(pen: QPen, horizontal: bool) -> QBrush | None:
    """A dashed pen as a texture brush (Qt's DashLine: 4 on, 2 off, in pen widths). Stroking
    a cosmetic dashed line across the chart costs ~0.2 ms per paint in the raster engine; a
    texture fill of the same pixels a few microseconds. None for a solid pen."""
    if pen.style() != Qt.PenStyle.DashLine:
        return None
    width = max(1, round(pen.widthF()))
    on, off = 4 * width, 2 * width
    size = (on + off, width) if horizontal else (width, on + off)
    pixmap = QPixmap(*size)
    pixmap.fill(Qt.GlobalColor.transparent)
    painter = QPainter(pixmap)
    painter.fillRect(QRectF(0, 0, on, width) if horizontal else QRectF(0, 0, width, on),
                     pen.color())
    painter.end()
    return QBrush(pixmap)


def dashed_pen(color: QColor | str, width: float = 1.0) -> QPen:
    pen = QPen(QColor(color), width, Qt.PenStyle.DashLine)
    pen.setCosmetic(True)
    return pen
