"""Trade markers: entries as green up-triangles, exits as down-triangles coloured by outcome,
each tied to its trade so the chart can show a hover card and select the trade on a click.

One ScatterPlotItem per kind, so a kind's colour and symbol are set once and adding a marker
appends one point instead of restyling every point. Hit tests run on numpy copies of the
positions (rebuilt only after markers were added), in pixels, so a marker is as easy to hit
zoomed in as zoomed out. The selected trade's markers get a ring drawn by one more item.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QRectF

from ui import theme
from ui.chart.errors import UnknownMarkerKind

SIZE_PX = 13
RING_PX = 25
HIT_RADIUS_PX = 10.0
ENTRY = "entry"
EXIT_KINDS = ("target", "stop", "neutral")


@dataclass(frozen=True)
class MarkerStyle:
    symbol: str
    color: str


STYLES: dict[str, MarkerStyle] = {
    ENTRY: MarkerStyle("t1", theme.MARKER_ENTRY),          # pyqtgraph 't1': up triangle
    "target": MarkerStyle("t", theme.MARKER_EXIT_TARGET),  # 't': down triangle
    "stop": MarkerStyle("t", theme.MARKER_EXIT_STOP),
    "neutral": MarkerStyle("t", theme.MARKER_EXIT_NEUTRAL),
}


class _MarkerScatter(pg.ScatterPlotItem):
    """pyqtgraph's scatter with its bounding rect kept until the points or the view change.

    Why: Qt asks every item for its bounds on every paint pass, and pyqtgraph's scatter works
    them out anew from the view's pixel size each time (~25 us; four kinds, twice per pass).
    Every change that moves the bounds goes through prepareGeometryChange (new points, the
    view's transform) or invalidate (clear, restyle); both drop the kept rect."""

    _kept_bounds: QRectF | None = None

    def boundingRect(self) -> QRectF:  # noqa: N802 (Qt override)
        if self._kept_bounds is None:
            self._kept_bounds = super().boundingRect()
        return QRectF(self._kept_bounds)

    def prepareGeometryChange(self) -> None:  # noqa: N802 (Qt override)
        self._kept_bounds = None
        super().prepareGeometryChange()

    def invalidate(self) -> None:
        self._kept_bounds = None
        super().invalidate()

    def viewTransformChanged(self) -> None:  # noqa: N802 (pyqtgraph override)
        self._kept_bounds = None
        super().viewTransformChanged()


@dataclass(frozen=True)
class MarkerHit:
    """The marker nearest to a point: its trade, position and kind."""

    trade_id: int
    x: float
    price: float
    kind: str


class TradeMarkers:
    """Entry and exit markers at (x seconds, price), each optionally tied to a trade id."""

    def __init__(self, view: pg.ViewBox) -> None:
        self._view = view
        self.items: dict[str, pg.ScatterPlotItem] = {}
        for kind, style in STYLES.items():
            item = _MarkerScatter(symbol=style.symbol, size=SIZE_PX,
                                      brush=pg.mkBrush(style.color),
                                      pen=pg.mkPen(theme.BACKGROUND, width=1), pxMode=True)
            item.setZValue(20)
            view.addItem(item, ignoreBounds=True)
            self.items[kind] = item
        self.ring = _MarkerScatter(symbol="o", size=RING_PX, brush=None,
                                       pen=pg.mkPen(theme.SELECTION, width=2), pxMode=True)
        self.ring.setZValue(21)
        self.ring.setVisible(False)
        view.addItem(self.ring, ignoreBounds=True)
        self.selected: int | None = None
        self.cards: dict[int, str] = {}
        self._points: list[tuple[float, float, int, str]] = []   # x, price, trade id, kind
        self._arrays: tuple[np.ndarray, np.ndarray] | None = None
        self._visible = True

    def add_entry(self, x: float, price: float, trade_id: int | None = None) -> None:
        self.items[ENTRY].addPoints(x=[x], y=[price])
        self._remember(x, price, trade_id, ENTRY)

    def add_exit(self, x: float, price: float, kind: str, trade_id: int | None = None) -> None:
        """kind: "target" (green), "stop" (red) or "neutral" (grey, time or manual exit)."""
        if kind not in EXIT_KINDS:
            raise UnknownMarkerKind(f"exit marker kind {kind!r} is not one of {EXIT_KINDS}")
        self.items[kind].addPoints(x=[x], y=[price])
        self._remember(x, price, trade_id, kind)

    def set_card(self, trade_id: int, text: str) -> None:
        """What hovering one of the trade's markers shows."""
        self.cards[trade_id] = text

    def clear(self) -> None:
        for item in self.items.values():
            item.clear()
        self.ring.clear()
        self.ring.setVisible(False)
        self.selected = None
        self.cards.clear()
        self._points = []
        self._arrays = None

    def set_visible(self, visible: bool) -> None:
        self._visible = visible
        for item in self.items.values():
            item.setVisible(visible)
        self.ring.setVisible(visible and self.selected is not None)

    def count(self) -> int:
        return sum(len(item.data) for item in self.items.values())

    def select(self, trade_id: int | None) -> None:
        """Ring the trade's markers (None: no ring)."""
        self.selected = trade_id
        points = [(x, y) for x, y, tid, _ in self._points if trade_id is not None and tid == trade_id]
        if points:
            xs, ys = zip(*points)
            self.ring.setData(x=list(xs), y=list(ys))
        else:
            self.ring.clear()
        self.ring.setVisible(bool(points) and self._visible)   # an empty item still costs paints

    def positions(self, trade_id: int) -> list[tuple[float, float, str]]:
        """(x, price, kind) of the trade's markers, entry first."""
        return [(x, y, kind) for x, y, tid, kind in self._points if tid == trade_id]

    def hit(self, x: float, y: float, radius_px: float = HIT_RADIUS_PX) -> MarkerHit | None:
        """The trade marker nearest to (x, y) within radius_px pixels, if shown."""
        if not self._visible or self._arrays is None and not self._points:
            return None
        if self._arrays is None:
            self._arrays = (np.array([p[0] for p in self._points]),
                            np.array([p[1] for p in self._points]))
        (x0, x1), (y0, y1) = self._view.viewRange()
        width, height = self._view.width(), self._view.height()
        if width <= 0 or height <= 0 or x1 <= x0 or y1 <= y0:
            return None
        sx, sy = (x1 - x0) / width, (y1 - y0) / height     # cheaper than viewPixelSize()
        xs, ys = self._arrays
        d2 = ((xs - x) / sx) ** 2 + ((ys - y) / sy) ** 2
        i = int(np.argmin(d2))
        if d2[i] > radius_px ** 2:
            return None
        px, py, tid, kind = self._points[i]
        return MarkerHit(tid, px, py, kind)

    def _remember(self, x: float, price: float, trade_id: int | None, kind: str) -> None:
        if trade_id is None:
            return
        self._points.append((x, price, trade_id, kind))
        self._arrays = None
        if trade_id == self.selected:
            self.select(trade_id)
