"""Axes of the chart: time in UTC at the bottom, price on the right (where traders read it).

Why a time axis of our own: pyqtgraph's DateAxisItem(utcOffset=0) still searches ticks in the
machine's local zone, so in a half-hour zone (India, UTC+05:30) the UTC ticks land on :30, and
its tick search costs ~1 ms per range change. UtcTimeAxis places ticks on round UTC times with
numpy. Both axes remember their last ticks: the grid asks for the same ticks just before the
axis paints, and sharing one result keeps grid lines exactly on the labelled ticks.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QColor, QPainter, QPen, QPixmap, QTransform

from ui import theme

_SIZE_BUCKET_PX = 16.0
LABEL_SPACING_PX = 90.0
MINUTE, HOUR, DAY = 60, 3600, 86400
_MONDAY_OFFSET = 4 * DAY  # 1970-01-01 was a Thursday: weekly ticks fall on Mondays
_FIXED_STEPS = (MINUTE, 5 * MINUTE, 15 * MINUTE, 30 * MINUTE, HOUR, 2 * HOUR, 3 * HOUR,
                4 * HOUR, 6 * HOUR, 12 * HOUR, DAY, 2 * DAY, 7 * DAY)
_MONTH_STEPS = (1, 3, 6, 12, 24, 60, 120)
_AVG_MONTH = 30.44 * DAY


class _TickMemo:
    """Caches tickValues per (range, size rounded to a 16 px bucket).

    The grid passes the view's width and the axis its own span, which differ by the axis' end
    offsets (~2 px); the bucket lets both share one result.
    """

    _tick_key: tuple[float, float, int] | None = None
    _tick_levels: Any = None

    def tickValues(self, minVal: float, maxVal: float, size: float) -> Any:  # noqa: N802,N803
        key = (minVal, maxVal, round(size / _SIZE_BUCKET_PX))
        if key != self._tick_key:
            self._tick_levels = super().tickValues(minVal, maxVal, size)  # type: ignore[misc]
            self._tick_key = key
        return self._tick_levels


class _UtcTicks(pg.AxisItem):
    """Round UTC ticks for x in Unix seconds: minutes to days, Monday weeks, months, years."""

    def __init__(self) -> None:
        super().__init__(orientation="bottom")

    def tickValues(self, minVal: float, maxVal: float,  # noqa: N802,N803
                   size: float) -> list[tuple[float, list[float]]]:
        if not (size > 0 and maxVal > minVal and np.isfinite(minVal) and np.isfinite(maxVal)):
            return []
        needed = (maxVal - minVal) / size * LABEL_SPACING_PX
        for step in _FIXED_STEPS:
            if step >= needed:
                offset = _MONDAY_OFFSET if step == 7 * DAY else 0
                first = np.ceil((minVal - offset) / step) * step + offset
                return [(float(step), np.arange(first, maxVal + 1e-9, step).tolist())]
        months = next((m for m in _MONTH_STEPS if m * _AVG_MONTH >= needed), _MONTH_STEPS[-1])
        return [(months * _AVG_MONTH, _month_ticks(minVal, maxVal, months))]

    def tickStrings(self, values: list[float], scale: float,  # noqa: N802
                    spacing: float) -> list[str]:
        """Labels, remembered per time and kind: a scroll by one candle relabels the same
        round times (strftime is most of a time-axis redraw otherwise)."""
        memo = self.__dict__.setdefault("_labels", {})
        kind = _label_kind(spacing)
        if len(memo) > 4096:
            memo.clear()
        out = []
        for v in values:
            text = memo.get((v, kind))
            if text is None:
                text = memo[(v, kind)] = _label(v, spacing)
            out.append(text)
        return out


def _month_ticks(lo: float, hi: float, months: int) -> list[float]:
    start = np.datetime64(int(lo), "s").astype("datetime64[M]")
    stop = np.datetime64(int(hi), "s").astype("datetime64[M]") + np.timedelta64(1, "M")
    # months since 1970, aligned to the step so ticks stay put while panning
    first = start + np.timedelta64(int(-start.astype(np.int64)) % months, "M")
    ticks = np.arange(first, stop, np.timedelta64(months, "M"))
    ticks = ticks.astype("datetime64[s]").astype(np.int64)
    return [float(t) for t in ticks if lo <= t <= hi]


def _label_kind(spacing: float) -> int:
    """Which of _label's formats a tick spacing selects."""
    return 0 if spacing < DAY else 1 if spacing < 28 * DAY else 2 if spacing < 365 * DAY else 3


def _label(seconds: float, spacing: float) -> str:
    t = datetime.fromtimestamp(seconds, tz=UTC)
    if spacing < DAY:
        return t.strftime("%b %d") if (t.hour, t.minute) == (0, 0) else t.strftime("%H:%M")
    if spacing < 28 * DAY:
        return t.strftime("%b %d")
    if spacing < 365 * DAY:
        return t.strftime("%Y") if t.month == 1 else t.strftime("%b")
    return t.strftime("%Y")


TAG_BAND_PX = 16.0     # half the height of the strip a tag repaints (a tag is ~15 px high)


class _Tags:
    """Labelled tags painted on the axis at a value: the current price, the crosshair's price
    or time. A tag repaints only the axis (a narrow strip), never the plot."""

    _tags: dict[str, tuple[float, str, str]]

    def set_tag(self, key: str, value: float, text: str, color: str) -> None:
        tags = self.__dict__.setdefault("_tags", {})
        old = tags.get(key)
        if old != (value, text, color):
            tags[key] = (value, text, color)
            self._update_band(value)
            if old is not None and old[0] != value:
                self._update_band(old[0])

    def clear_tag(self, key: str) -> None:
        tags = self.__dict__.setdefault("_tags", {})
        old = tags.pop(key, None)
        if old is not None:
            self._update_band(old[0])

    def _update_band(self, value: float) -> None:
        """Repaint only the band of the axis where a tag at `value` is drawn (a tick moves the
        price tag every 100 ms: repainting the whole axis cost ~1 ms, the band a fraction)."""
        view = self.linkedView()  # type: ignore[attr-defined]
        bounds = self.boundingRect()  # type: ignore[attr-defined]
        if view is None:
            self.update()  # type: ignore[attr-defined]
            return
        horizontal = self.orientation in ("bottom", "top")  # type: ignore[attr-defined]
        point = QPointF(value, 0.0) if horizontal else QPointF(0.0, value)
        local = self._view_to_local(view).map(point)
        if horizontal:
            band = QRectF(local.x() - TAG_BAND_PX * 4, bounds.top(), TAG_BAND_PX * 8,
                          bounds.height())
        else:
            band = QRectF(bounds.left(), local.y() - TAG_BAND_PX, bounds.width(),
                          2 * TAG_BAND_PX)
        band = band.intersected(bounds)
        if not band.isEmpty():
            self.update(band)  # type: ignore[attr-defined]

    def _view_to_local(self, view: Any) -> QTransform:
        """View (data) coordinates to this axis' own: one Qt call, where pyqtgraph's
        mapViewToScene + mapFromScene cost ~25 us per point."""
        view.updateMatrix()          # a no-op unless a range change is still pending
        transform, _ = view.childGroup.itemTransform(self)
        return transform

    def tag(self, key: str) -> tuple[float, str, str] | None:
        return self.__dict__.get("_tags", {}).get(key)

    def paint(self, p: QPainter, *args: Any) -> None:
        self._paint_axis(p, *args)
        # what Qt repaints (with ItemUsesExtendedStyleOption set in make_axes): a tag outside
        # it, e.g. the crosshair's while the price tag moves, is not drawn for nothing
        exposed = args[0].exposedRect if args else None
        tags = self.__dict__.get("_tags")
        view = self.linkedView()  # type: ignore[attr-defined]
        if not tags or view is None:
            return
        horizontal = self.orientation in ("bottom", "top")  # type: ignore[attr-defined]
        bounds = self.boundingRect()  # type: ignore[attr-defined]
        metrics = p.fontMetrics()
        to_local = self._view_to_local(view)
        for value, text, color in tags.values():
            point = QPointF(value, 0.0) if horizontal else QPointF(0.0, value)
            local = to_local.map(point)
            w, h = metrics.horizontalAdvance(text) + 8, metrics.height() + 2
            if horizontal:
                if not bounds.left() <= local.x() <= bounds.right():
                    continue
                x = min(max(local.x() - w / 2, bounds.left()), bounds.right() - w)
                rect = QRectF(x, bounds.top() + 1, w, h)
            else:
                if not bounds.top() <= local.y() <= bounds.bottom():
                    continue
                rect = QRectF(bounds.left() + 1, local.y() - h / 2, max(w, bounds.width() - 2), h)
            if exposed is not None and not rect.adjusted(-1, -1, 1, 1).intersects(exposed):
                continue
            p.setPen(Qt.PenStyle.NoPen)
            p.setBrush(QColor(color))
            p.drawRect(rect)
            p.setPen(QColor(theme.BACKGROUND))
            p.drawText(rect, int(Qt.AlignmentFlag.AlignCenter), text)


class _LeanSpecs:
    """pyqtgraph's AxisItem.generateDrawSpecs for our two axes (right or bottom, no grid, ticks
    from tickValues, values shown), giving the same specs with less work.

    Why: it runs on every range change of the axis, i.e. for the time axis on every candle
    close and for the price axis whenever the Y fit moves, ~0.6-1 ms each, mostly Python
    overhead (a Point per coordinate, enum arithmetic per label) and a text measurement per
    label. Here labels are measured once per string and font and plain QPointF are used; the
    arithmetic and the order of decisions are pyqtgraph 0.14's, so the axis looks the same
    (tests compare it with pyqtgraph's). Any other configuration uses pyqtgraph's own.
    """

    _text_rects: dict[tuple[str, str], QRectF]

    def generateDrawSpecs(self, p: QPainter) -> Any:  # noqa: N802 (pyqtgraph override)
        style = self.style  # type: ignore[attr-defined]
        orientation = self.orientation  # type: ignore[attr-defined]
        grid, fixed_ticks = self.grid, self._tickLevels  # type: ignore[attr-defined]
        if (orientation not in ("right", "bottom") or grid is not False
                or fixed_ticks is not None
                or style["tickAlpha"] is not None or not style["showValues"]
                or tuple(style["stopAxisAtTick"]) != (False, False)):
            return super().generateDrawSpecs(p)  # type: ignore[misc]
        if style["tickFont"] is not None:
            p.setFont(style["tickFont"])
        bounds = self.mapRectFromParent(self.geometry())  # type: ignore[attr-defined]
        if orientation == "right":
            span = (bounds.topLeft() + QPointF(1.0, -1.0), bounds.bottomLeft() + QPointF(1.0, 1.0))
            tick_start, tick_stop, axis = bounds.left(), bounds.left(), 0
        else:
            span = (bounds.topLeft() + QPointF(-1.0, 1.0), bounds.topRight() + QPointF(1.0, 1.0))
            tick_start, tick_stop, axis = bounds.top(), bounds.top(), 1
        points = [self.mapToDevice(pt) for pt in span]  # type: ignore[attr-defined]
        if None in points:
            return None
        length_px = math.hypot(points[1].x() - points[0].x(), points[1].y() - points[0].y())
        if length_px == 0:
            return None
        lo, hi = self.range  # type: ignore[attr-defined]
        tick_levels = self.tickValues(lo, hi, length_px)  # type: ignore[attr-defined]
        dif = hi - lo
        if dif == 0:
            x_scale, offset = 1.0, 0.0
        elif axis == 0:
            x_scale = -bounds.height() / dif
            offset = lo * x_scale - bounds.height()
        else:
            x_scale = bounds.width() / dif
            offset = lo * x_scale
        x_min, x_max = sorted((lo * x_scale - offset, hi * x_scale - offset))

        tick_positions: list[list[float | None]] = []
        tick_specs = []
        base_pen = self.tickPen()  # type: ignore[attr-defined]
        for i, (_, ticks) in enumerate(tick_levels):
            positions: list[float | None] = []
            tick_positions.append(positions)
            tick_length = style["tickLength"] / ((i * 0.5) + 1.0)
            pen = base_pen
            if pen.brush().style() == Qt.BrushStyle.SolidPattern:
                pen = QPen(pen)
                color = QColor(pen.color())
                color.setAlpha(int(255 / (i + 1)))
                pen.setColor(color)
            for v in ticks:
                x = (v * x_scale) - offset
                if x < x_min or x > x_max:
                    positions.append(None)
                    continue
                positions.append(x)
                if axis == 0:
                    tick_specs.append((pen, QPointF(tick_start, x),
                                       QPointF(tick_stop + tick_length, x)))
                else:
                    tick_specs.append((pen, QPointF(x, tick_start),
                                       QPointF(x, tick_stop + tick_length)))
        axis_spec = (self.pen(), span[0], span[1])  # type: ignore[attr-defined]

        text_offset = style["tickTextOffset"][axis]
        text_size2 = 0.0
        last_text_size2 = 0.0
        text_rects: list[QRectF] = []
        text_specs: list[tuple[QRectF, Any, str]] = []
        measure = self._text_measure(p)
        own = self.boundingRect()  # type: ignore[attr-defined]
        if orientation == "right":
            align = Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter
        else:
            align = Qt.AlignmentFlag.AlignHCenter | Qt.AlignmentFlag.AlignTop
        flags = align | Qt.TextFlag.TextDontClip
        label_offset = max(0, style["tickLength"]) + text_offset
        scale = self.autoSIPrefixScale * self.scale  # type: ignore[attr-defined]
        for i in range(min(len(tick_levels), style["maxTextLevel"] + 1)):
            spacing, values = tick_levels[i]
            strings = self.tickStrings(values, scale, spacing)  # type: ignore[attr-defined]
            if len(strings) == 0:
                continue
            strings = [None if tick_positions[i][j] is None else text
                       for j, text in enumerate(strings)]
            rects: list[QRectF | None] = []
            for text in strings:
                if text is None:
                    rects.append(None)
                else:
                    rect = measure(text)
                    rects.append(rect)
                    text_rects.append(rect)
            if text_rects:
                if axis == 0:
                    text_size = np.sum([r.height() for r in text_rects])
                    text_size2 = max(r.width() for r in text_rects)
                else:
                    text_size = np.sum([r.width() for r in text_rects])
                    text_size2 = max(r.height() for r in text_rects)
            else:
                text_size = 0
                text_size2 = 0
            if i > 0:
                fill_ratio = float(text_size) / length_px
                if any(len(text_specs) >= n and fill_ratio >= limit
                       for n, limit in style["textFillLimits"]):
                    break
            last_text_size2 = text_size2
            for j, text in enumerate(strings):
                if text is None:
                    continue
                x = tick_positions[i][j]
                rect = rects[j]
                assert x is not None and rect is not None
                height, width = rect.height(), rect.width()
                if orientation == "right":
                    placed = QRectF(tick_stop + label_offset, x - (height / 2), width, height)
                else:
                    placed = QRectF(x - width / 2.0, tick_stop + label_offset, width, height)
                if own & placed != placed:
                    continue
                text_specs.append((placed, flags, text))
        self._updateMaxTextSize(last_text_size2)  # type: ignore[attr-defined]
        return axis_spec, tick_specs, text_specs

    def _text_measure(self, p: QPainter) -> Any:
        """The label's rect as pyqtgraph measures it (80 % of the painter's bounding height),
        remembered per text and font."""
        cache = self.__dict__.setdefault("_text_rects", {})
        font = p.font().key()
        box = QRectF(0, 0, 100, 100)

        def measure(text: str) -> QRectF:
            rect = cache.get((font, text))
            if rect is None:
                if len(cache) > 4096:
                    cache.clear()
                rect = p.boundingRect(box, Qt.AlignmentFlag.AlignCenter, text)
                rect.setHeight(rect.height() * 0.8)
                cache[(font, text)] = rect
            return QRectF(rect)
        return measure


_AXIS_MARGIN_PX = 2


class _PixmapAxis:
    """Keeps the axis (line, ticks, labels) as a pixmap of its device pixels.

    Why: pyqtgraph replays the axis' whole QPicture (every label's text) on each paint, even
    when only a thin band is exposed. The price line ends at the view's edge, inside the price
    axis' bounds (its ticks reach 5 px into the view), and a moving price tag repaints a band
    of the axis, so every 100 ms price refresh replayed the axis twice (~0.3 ms). A blit of the
    exposed band costs microseconds. The pixmap is redrawn whenever pyqtgraph drops its
    picture (any range, size or style change) or the axis moves on screen.
    """

    picture: Any
    style: dict[str, Any]
    _pixmap: QPixmap | None = None
    _pixmap_key: tuple[Any, ...] | None = None
    _bounds_key: tuple[Any, ...] | None = None
    _bounds = QRectF()

    def boundingRect(self) -> QRectF:  # noqa: N802 (Qt override)
        """pyqtgraph's bounds, worked out again only when the geometry or tick style
        changed: Qt asks for them several times per paint pass (~6 us each in Python)."""
        if self.grid is not False:  # type: ignore[attr-defined]  # then they follow the view
            return super().boundingRect()  # type: ignore[misc]
        key = (self.geometry(), self.style["tickLength"],  # type: ignore[attr-defined]
               self.style["hideOverlappingLabels"])
        if key != self._bounds_key:
            self._bounds = super().boundingRect()  # type: ignore[misc]
            self._bounds_key = key
        return QRectF(self._bounds)

    def _paint_axis(self, p: QPainter, *args: Any) -> None:
        t = p.transform()
        device = t.mapRect(self.boundingRect())  # type: ignore[attr-defined]
        # pyqtgraph draws the axis line a pixel past each end of the bounds: keep a margin
        left = math.floor(device.left()) - _AXIS_MARGIN_PX
        top = math.floor(device.top()) - _AXIS_MARGIN_PX
        width = math.ceil(device.right()) + _AXIS_MARGIN_PX - left
        height = math.ceil(device.bottom()) + _AXIS_MARGIN_PX - top
        if width <= 0 or height <= 0:
            return
        dpr = p.device().devicePixelRatioF()
        key = (self.picture, t.m11(), t.m12(), t.m21(), t.m22(), t.dx(), t.dy(), width, height,
               dpr, p.font().key())
        if self.picture is None or self._pixmap is None or key != self._pixmap_key:
            pixmap = QPixmap(math.ceil(width * dpr), math.ceil(height * dpr))
            pixmap.setDevicePixelRatio(dpr)
            pixmap.fill(Qt.GlobalColor.transparent)
            painter = QPainter(pixmap)
            painter.setRenderHints(p.renderHints())
            painter.setFont(p.font())
            painter.setPen(p.pen())
            painter.setTransform(t * QTransform.fromTranslate(-left, -top))
            super().paint(painter, *args)  # type: ignore[misc]  # builds the picture if dropped
            painter.end()
            self._pixmap = pixmap
            key = (self.picture,) + key[1:]
            self._pixmap_key = key
        p.save()
        p.resetTransform()
        p.drawPixmap(left, top, self._pixmap)
        p.restore()


class UtcTimeAxis(_Tags, _PixmapAxis, _LeanSpecs, _TickMemo, _UtcTicks):
    """Time axis in UTC (x in Unix seconds)."""


class PriceAxis(_Tags, _PixmapAxis, _LeanSpecs, _TickMemo, pg.AxisItem):
    """Price axis labelled like the rest of the chart: "117,400" with thousands separators.
    Dragging it up or down scales the prices (the chart stops fitting them until End)."""

    DRAG_SCALE_PER_PX = 1.01
    on_user_scale: Any = None          # called after the operator scaled the price range

    def mouseDragEvent(self, event: Any) -> None:  # noqa: N802 (pyqtgraph override)
        view = self.linkedView()
        if view is None or event.button() != Qt.MouseButton.LeftButton:
            super().mouseDragEvent(event)
            return
        event.accept()
        dy = event.pos().y() - event.lastPos().y()
        if dy:
            self.scale_prices(self.DRAG_SCALE_PER_PX ** dy)

    def scale_prices(self, factor: float) -> None:
        """Stretch (factor < 1) or squeeze (factor > 1) the price range about its middle."""
        view = self.linkedView()
        lo, hi = view.viewRange()[1]
        mid, half = (lo + hi) / 2.0, (hi - lo) / 2.0 * factor
        view.setYRange(mid - half, mid + half, padding=0.0)
        if self.on_user_scale is not None:
            self.on_user_scale()

    def wheelEvent(self, event: Any) -> None:  # noqa: N802 (pyqtgraph override)
        event.ignore()                  # the wheel zooms time, over the axis as in the plot

    def tickStrings(self, values: list[float], scale: float,  # noqa: N802
                    spacing: float) -> list[str]:
        decimals = max(0, -math.floor(math.log10(spacing))) if spacing > 0 else 2
        return [f"{v * scale:,.{decimals}f}" for v in values]


def make_axes() -> dict[str, pg.AxisItem]:
    """The UTC time axis, a right-hand price axis and a (hidden) left axis, themed."""
    axes: dict[str, pg.AxisItem] = {"bottom": UtcTimeAxis(), "right": PriceAxis("right"),
                                    "left": pg.AxisItem("left")}
    for axis in axes.values():
        axis.setFlag(axis.GraphicsItemFlag.ItemUsesExtendedStyleOption, True)
        # No SI prefix: prices stay "117,400", and the label is not re-rendered per range change.
        axis.enableAutoSIPrefix(False)
        axis.setPen(pg.mkPen(theme.BORDER))
        axis.setTextPen(pg.mkPen(theme.TEXT_SECONDARY))
    return axes
