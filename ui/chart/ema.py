"""One EMA line drawn as a static history curve plus a short tail curve.

Why (QT_NOTES.md): pushing a 50k-point curve with setData costs ~4 ms, too much per candle
close. The static curve is rebuilt only every REBUILD_EVERY closes; between rebuilds only the
tail (at most REBUILD_EVERY + 1 points, overlapping the static curve by one point so the line
is continuous) is re-pushed.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg

REBUILD_EVERY = 256


class EmaLine:
    """Static + tail PlotDataItems for one EMA series, added to a ViewBox."""

    def __init__(self, view: pg.ViewBox, color: str, width: float = 1.0) -> None:
        pen = pg.mkPen(color, width=width)
        self.static = pg.PlotDataItem(pen=pen)
        self.tail = pg.PlotDataItem(pen=pen)
        for item in (self.static, self.tail):
            view.addItem(item)
            # setClipToView only after addItem (pyqtgraph #1854).
            item.setClipToView(True)
            item.setDownsampling(auto=True, method="peak")
        self._split = 0

    @property
    def items(self) -> tuple[pg.PlotDataItem, pg.PlotDataItem]:
        return self.static, self.tail

    def rebuild(self, x: np.ndarray, y: np.ndarray) -> None:
        """Push all points to the static curve and empty the tail."""
        _set(self.static, x, y)
        self._split = x.shape[0]
        self.tail.setData([], [])

    def appended(self, x: np.ndarray, y: np.ndarray) -> None:
        """The series grew: extend the tail, folding it into the static curve when long."""
        if x.shape[0] - self._split >= REBUILD_EVERY:
            self.rebuild(x, y)
            return
        start = max(self._split - 1, 0)
        _set(self.tail, x[start:], y[start:])

    def set_visible(self, visible: bool) -> None:
        for item in self.items:
            item.setVisible(visible)


def _set(item: pg.PlotDataItem, x: np.ndarray, y: np.ndarray) -> None:
    """Leading NaNs (EMA warm-up) are dropped; the finite check is skipped when none remain."""
    finite = np.isfinite(y)
    first = int(np.argmax(finite)) if finite.any() else y.shape[0]
    xs, ys = x[first:], y[first:]
    all_finite = bool(finite[first:].all())
    item.setData(xs, ys, connect="all" if all_finite else "finite", skipFiniteCheck=all_finite)
