"""Axes of the chart: time in UTC at the bottom, price on the right (where traders read it)."""

from __future__ import annotations

import pyqtgraph as pg

from ui import theme


def make_axes() -> dict[str, pg.AxisItem]:
    """A UTC DateAxisItem (x in Unix seconds) and a right-hand price axis, themed."""
    time_axis = pg.DateAxisItem(orientation="bottom", utcOffset=0)
    price_axis = pg.AxisItem(orientation="right")
    left_axis = pg.AxisItem(orientation="left")
    for axis in (time_axis, price_axis, left_axis):
        axis.setPen(pg.mkPen(theme.BORDER))
        axis.setTextPen(pg.mkPen(theme.TEXT_SECONDARY))
    return {"bottom": time_axis, "right": price_axis, "left": left_axis}
