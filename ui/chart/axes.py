"""Axes of the chart: time in UTC at the bottom, price on the right (where traders read it).

Both axes remember their last tick computation: the grid asks for the same ticks just before
the axis paints, and DateAxisItem's tick search costs about a millisecond per call. Sharing one
result also guarantees that grid lines sit exactly on the labelled ticks.
"""

from __future__ import annotations

from typing import Any

import pyqtgraph as pg
from PySide6.QtGui import QFont, QFontMetrics

from ui import theme

_SIZE_BUCKET_PX = 16.0


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


class UtcTimeAxis(_TickMemo, pg.DateAxisItem):
    """Date axis fixed to UTC (x in Unix seconds)."""

    def __init__(self) -> None:
        super().__init__(orientation="bottom", utcOffset=0)
        # DateAxisItem.tickValues reads self.fontMetrics, which it sets only on its first paint;
        # the grid asks for ticks before that, so give it the default font's metrics up front.
        self.fontMetrics = QFontMetrics(QFont())


class PriceAxis(_TickMemo, pg.AxisItem):
    """Plain numeric axis for prices."""


def make_axes() -> dict[str, pg.AxisItem]:
    """The UTC time axis, a right-hand price axis and a (hidden) left axis, themed."""
    axes: dict[str, pg.AxisItem] = {"bottom": UtcTimeAxis(), "right": PriceAxis("right"),
                                    "left": pg.AxisItem("left")}
    for axis in axes.values():
        axis.setPen(pg.mkPen(theme.BORDER))
        axis.setTextPen(pg.mkPen(theme.TEXT_SECONDARY))
    return axes
