"""The open position: a shaded band from the entry to the newest candle, the entry price line
and, when a stop is enabled, a labelled stop line across the chart (a stop must stay visible
even when the entry has scrolled out of view)."""

from __future__ import annotations

import pyqtgraph as pg
from PySide6.QtCore import QLineF
from PySide6.QtGui import QColor
from PySide6.QtWidgets import QGraphicsLineItem

from ui import theme
from ui.chart.fib import label_fill
from ui.chart.format import format_price
from ui.chart.spans import ViewBand, ViewLine, dashed_pen

SHADE_ALPHA = 34


def _blend(background: str, color: str, alpha: float) -> QColor:
    """`color` at `alpha` over the background, as an opaque colour.

    Why: a translucent band is alpha-blended per pixel on every full repaint (measured ~2 ms at
    1600x900); the band lies directly on the background, so the opaque mix looks the same.
    """
    bg, fg = QColor(background), QColor(color)
    mix = [round(b + (f - b) * alpha) for b, f in
           ((bg.red(), fg.red()), (bg.green(), fg.green()), (bg.blue(), fg.blue()))]
    return QColor(*mix)


class PositionOverlay:
    """Draws one open position; hidden until set()."""

    def __init__(self, view: pg.ViewBox) -> None:
        shade = _blend(theme.BACKGROUND, theme.POSITION_SHADE, SHADE_ALPHA / 255.0)
        self.band = ViewBand(view, shade)
        self.entry_line = QGraphicsLineItem()
        self.entry_line.setPen(dashed_pen(theme.ENTRY_LINE))
        label = pg.TextItem("", color=theme.STOP_LINE, anchor=(0.0, 1.0), fill=label_fill())
        self.stop_line = ViewLine(view, horizontal=True, pen=dashed_pen(theme.STOP_LINE),
                                  label=label)
        for z, item in ((0.5, self.band), (3, self.entry_line), (3, self.stop_line)):
            view.addItem(item, ignoreBounds=True)
            item.setZValue(z)
        self.entry_x: float | None = None
        self.entry_price = 0.0
        self.stop_price: float | None = None
        self._hide()

    @property
    def active(self) -> bool:
        return self.entry_x is not None

    def set(self, entry_x: float, entry_price: float, stop_price: float | None,
            newest_x: float) -> None:
        self.entry_x, self.entry_price, self.stop_price = entry_x, entry_price, stop_price
        self.band.setVisible(True)
        self.entry_line.setVisible(True)
        if stop_price is None:
            self.stop_line.setVisible(False)
        else:
            self.stop_line.label.setText(f"Stop {format_price(stop_price)}")
            self.stop_line.setValue(stop_price)
            self.stop_line.setVisible(True)
        self.extend_to(newest_x)

    def extend_to(self, newest_x: float) -> None:
        """Stretch the band and entry line to the newest candle."""
        if self.entry_x is None:
            return
        end = max(newest_x, self.entry_x)
        self.band.set_region(self.entry_x, end)
        self.entry_line.setLine(QLineF(self.entry_x, self.entry_price, end, self.entry_price))

    def clear(self) -> None:
        self.entry_x = None
        self.stop_price = None
        self._hide()

    def prices(self) -> list[float]:
        """Prices the Y range should include while the position is shown."""
        if self.entry_x is None:
            return []
        return [self.entry_price] + ([self.stop_price] if self.stop_price is not None else [])

    def _hide(self) -> None:
        for item in (self.band, self.entry_line, self.stop_line):
            item.setVisible(False)
