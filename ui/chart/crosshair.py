"""Crosshair lines following the mouse, rate-limited so a fast mouse cannot flood repaints."""

from __future__ import annotations

import pyqtgraph as pg
from PySide6.QtCore import QObject, QPointF, Signal
from PySide6.QtGui import QColor

from ui import theme
from ui.chart.spans import ViewLine, dashed_pen

RATE_LIMIT_HZ = 60
LINE_ALPHA = 150


class Crosshair(QObject):
    """Two dashed lines; `moved(x, y)` reports the mouse in data coordinates, `left()` when the
    mouse leaves the plot. Whoever owns it decides where the lines go (e.g. snapped to a
    candle) through set_position()."""

    moved = Signal(float, float)
    left = Signal()

    def __init__(self, plot: pg.PlotItem) -> None:
        super().__init__()
        self._plot = plot
        color = QColor(theme.CROSSHAIR)
        color.setAlpha(LINE_ALPHA)
        view = plot.getViewBox()
        self.vline = ViewLine(view, horizontal=False, pen=dashed_pen(color))
        self.hline = ViewLine(view, horizontal=True, pen=dashed_pen(color))
        for line in (self.vline, self.hline):
            view.addItem(line, ignoreBounds=True)
            line.setZValue(30)
        self.hide()
        self._scene_pos: QPointF | None = None
        self._proxy = pg.SignalProxy(plot.scene().sigMouseMoved, rateLimit=RATE_LIMIT_HZ,
                                     slot=self._on_mouse_moved)

    def refresh(self) -> None:
        """Report the data under the last mouse position again (the view moved, the mouse did
        not)."""
        if self._scene_pos is not None:
            self._on_mouse_moved((self._scene_pos,))

    def set_position(self, x: float, y: float) -> None:
        self.vline.setValue(x)
        self.hline.setValue(y)
        self.vline.setVisible(True)
        self.hline.setVisible(True)

    def hide(self) -> None:
        self.vline.setVisible(False)
        self.hline.setVisible(False)

    def _on_mouse_moved(self, args: tuple[QPointF]) -> None:
        scene_pos = args[0]
        view = self._plot.getViewBox()
        if not view.sceneBoundingRect().contains(scene_pos):
            self._scene_pos = None
            self.hide()
            self.left.emit()
            return
        self._scene_pos = QPointF(scene_pos)
        point = view.mapSceneToView(scene_pos)
        self.moved.emit(point.x(), point.y())
