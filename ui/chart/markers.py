"""Trade markers: entries as green up-triangles, exits as down-triangles coloured by outcome.

One ScatterPlotItem per kind, so a kind's colour and symbol are set once and adding a marker
appends one point instead of restyling every point.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyqtgraph as pg

from ui import theme
from ui.chart.errors import UnknownMarkerKind

SIZE_PX = 13
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


class TradeMarkers:
    """Entry and exit markers at (x seconds, price)."""

    def __init__(self, view: pg.ViewBox) -> None:
        self.items: dict[str, pg.ScatterPlotItem] = {}
        for kind, style in STYLES.items():
            item = pg.ScatterPlotItem(symbol=style.symbol, size=SIZE_PX,
                                      brush=pg.mkBrush(style.color),
                                      pen=pg.mkPen(theme.BACKGROUND, width=1), pxMode=True)
            item.setZValue(20)
            view.addItem(item, ignoreBounds=True)
            self.items[kind] = item

    def add_entry(self, x: float, price: float) -> None:
        self.items[ENTRY].addPoints(x=[x], y=[price])

    def add_exit(self, x: float, price: float, kind: str) -> None:
        """kind: "target" (green), "stop" (red) or "neutral" (grey, time or manual exit)."""
        if kind not in EXIT_KINDS:
            raise UnknownMarkerKind(f"exit marker kind {kind!r} is not one of {EXIT_KINDS}")
        self.items[kind].addPoints(x=[x], y=[price])

    def clear(self) -> None:
        for item in self.items.values():
            item.clear()

    def set_visible(self, visible: bool) -> None:
        for item in self.items.values():
            item.setVisible(visible)

    def count(self) -> int:
        return sum(len(item.data) for item in self.items.values())
