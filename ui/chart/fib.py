"""The Fibonacci ladder of one trade: a labelled horizontal segment per level.

Colours and widths follow the backtest app (0.618 gold and thicker); the target level is
emphasised further (thicker line, bold label, "◀ target") because it is where the trade takes
profit. A ladder of a signal that was not traded is drawn dim and dashed, with no target
emphasis and a "not traded: REASON" note: nothing there will take profit.

Labels sit in a column to the LEFT of the ladder's first bar (or at the view's left edge once
that bar scrolls out of view), never over the newest candles, and under the trade markers
(lower z), so they cannot hide a marker either.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pyqtgraph as pg
from PySide6.QtCore import QLineF, Qt
from PySide6.QtGui import QColor, QFont, QPen
from PySide6.QtWidgets import QGraphicsLineItem

from ui import theme
from ui.chart.format import format_price

BASE_WIDTH = 1.0
GOLDEN_WIDTH = 2.0
TARGET_EXTRA_WIDTH = 1.0
GOLDEN_RATIO = 0.618
_RATIO_TOLERANCE = 1e-9
LABEL_FILL_ALPHA = 210
LABEL_GAP_PX = 16.0
LABEL_MARGIN_PX = 12.0      # between the label column and the ladder's first bar
DIM_ALPHA = 110             # a not-traded ladder's lines and labels
LABEL_Z = 19                # above candles and EMAs, below trade markers (20)


def level_color(ratio: float) -> str:
    """The backtest app's colour for a ratio; unknown ratios get the secondary text colour."""
    for known, color in theme.FIB_COLORS.items():
        if abs(known - ratio) < _RATIO_TOLERANCE:
            return color
    return theme.FIB_DEFAULT_COLOR


def _label_priority(level: FibLevel) -> tuple[int, float]:
    return (0 if level.is_target else 1 if abs(level.ratio - GOLDEN_RATIO) < _RATIO_TOLERANCE
            else 2, level.ratio)


def level_label(ratio: float, price: float) -> str:
    """"61.8%  117,411.27": the ratio as a percentage, then the price."""
    return f"{ratio * 100:.1f}%  {format_price(price)}"


def _dim(color: str) -> QColor:
    c = QColor(color)
    c.setAlpha(DIM_ALPHA)
    return c


def label_fill() -> QColor:
    """Dark, mostly opaque backing so labels stay readable over candles and EMAs."""
    fill = QColor(theme.BACKGROUND)
    fill.setAlpha(LABEL_FILL_ALPHA)
    return fill


@dataclass
class FibLevel:
    """The drawn parts of one level (kept so tests and toggles can reach them)."""

    ratio: float
    price: float
    is_target: bool
    line: QGraphicsLineItem
    label: pg.TextItem


class FibLadder:
    """Segments from the trade's start to its end (or to the newest candle while open)."""

    def __init__(self, view: pg.ViewBox) -> None:
        self._view = view
        self.levels: list[FibLevel] = []
        self._start_x = 0.0
        self._end_x: float | None = None
        self._visible = True
        self.note: pg.TextItem | None = None      # "not traded: REASON"
        self._in_view = True                      # some of the segments are in the X range
        self._label_width: float | None = None    # widest label in pixels (texts are fixed)
        self._newest_x = 0.0
        view.sigYRangeChanged.connect(self._declutter)
        view.sigXRangeChanged.connect(self._place_labels)

    @property
    def open_ended(self) -> bool:
        """True when the ladder follows the newest candle."""
        return bool(self.levels) and self._end_x is None

    @property
    def dimmed(self) -> bool:
        """True for the ladder of a signal that was not traded."""
        return self.note is not None

    def set(self, levels: Sequence[tuple[float, float]], target_ratio: float | None,
            start_x: float, end_x: float | None, newest_x: float,
            not_traded: str | None = None) -> None:
        """Replace the ladder; end_x None extends every segment to newest_x. `not_traded` (the
        skip reason) draws it dim, without a target."""
        self.clear()
        self._label_width = None
        self._start_x, self._end_x = start_x, end_x
        for ratio, price in levels:
            is_target = (not_traded is None and target_ratio is not None
                         and abs(ratio - target_ratio) < _RATIO_TOLERANCE)
            self.levels.append(self._make_level(ratio, price, is_target, not_traded is not None))
        if not_traded is not None and self.levels:
            self.note = pg.TextItem(f"not traded: {not_traded}", color=_dim(theme.TEXT_SECONDARY),
                                    anchor=(1.0, 0.0), fill=label_fill())
            self.note.setZValue(LABEL_Z)
            self.note.setVisible(self._visible)
            self._view.addItem(self.note, ignoreBounds=True)
        self._place(newest_x)

    def extend_to(self, newest_x: float) -> None:
        """The newest candle moved: an open-ended ladder follows it."""
        if self.open_ended:
            self._place(newest_x)

    def clear(self) -> None:
        for level in self.levels:
            self._view.removeItem(level.line)
            self._view.removeItem(level.label)
        self.levels = []
        if self.note is not None:
            self._view.removeItem(self.note)
            self.note = None

    def set_visible(self, visible: bool) -> None:
        self._visible = visible
        for level in self.levels:
            level.line.setVisible(visible)
        if self.note is not None:
            self.note.setVisible(visible and self._in_view)
        self._declutter()

    def _declutter(self) -> None:
        """Show only labels at least LABEL_GAP_PX apart, the target's and 61.8%'s first, so a
        zoomed-out ladder does not print prices on top of each other."""
        if not self.levels:
            return
        y0, y1 = self._view.viewRange()[1]
        height = self._view.height()
        price_per_px = (y1 - y0) / height if height > 0 and y1 > y0 else 1.0
        shown: list[float] = []
        for level in sorted(self.levels, key=_label_priority):
            keep = all(abs(level.price - p) / price_per_px >= LABEL_GAP_PX for p in shown)
            level.label.setVisible(bool(self._visible and keep and self._in_view))
            if keep:
                shown.append(level.price)

    def prices(self) -> list[float]:
        return [level.price for level in self.levels]

    def span(self) -> tuple[float, float] | None:
        """(start_x, end_x) of the drawn segments, None without a ladder."""
        if not self.levels:
            return None
        line = self.levels[0].line.line()
        return line.x1(), line.x2()

    def _make_level(self, ratio: float, price: float, is_target: bool, dim: bool) -> FibLevel:
        color = _dim(level_color(ratio)) if dim else QColor(level_color(ratio))
        width = GOLDEN_WIDTH if abs(ratio - GOLDEN_RATIO) < _RATIO_TOLERANCE else BASE_WIDTH
        if is_target:
            width += TARGET_EXTRA_WIDTH
        pen = QPen(color, BASE_WIDTH if dim else width)
        pen.setCosmetic(True)
        if dim:
            pen.setStyle(Qt.PenStyle.DashLine)
        line = QGraphicsLineItem()
        line.setPen(pen)
        line.setZValue(5)
        text = level_label(ratio, price) + ("  ◀ target" if is_target else "")
        label = pg.TextItem(text, color=color, anchor=(1.0, 1.0), fill=label_fill())
        font = QFont()
        font.setPointSizeF(8.5)
        font.setBold(is_target)
        label.setFont(font)
        label.setZValue(LABEL_Z)
        for item in (line, label):
            item.setVisible(self._visible)
            self._view.addItem(item, ignoreBounds=True)
        return FibLevel(ratio, price, is_target, line, label)

    def _place(self, newest_x: float) -> None:
        self._newest_x = newest_x
        self._declutter()
        end_x = self._end_x if self._end_x is not None else newest_x
        for level in self.levels:
            level.line.setLine(QLineF(self._start_x, level.price, end_x, level.price))
        self._place_labels()

    def _place_labels(self, *_args: object) -> None:
        """The label column: right-aligned just left of the ladder's first bar; once that bar
        is left of the view, left-aligned at the view's left edge (over the oldest candles
        shown, never the newest)."""
        if not self.levels:
            return
        x0, x1 = self._view.viewRange()[0]
        end_x = self._end_x if self._end_x is not None else self._newest_x
        in_view = bool(end_x >= x0 and self._start_x <= x1)
        if in_view != self._in_view:
            self._in_view = in_view          # labels of a ladder out of view would float alone
            self._declutter()
            if self.note is not None:
                self.note.setVisible(self._visible and in_view)
        width_px = self._view.width()
        px = (x1 - x0) / width_px if width_px > 0 else 0.0    # cheaper than viewPixelSize()
        right = self._start_x - LABEL_MARGIN_PX * px
        if self._label_width is None:
            self._label_width = max(level.label.boundingRect().width() for level in self.levels)
        widest = self._label_width
        x, anchor_x = (x0, 0.0) if right - widest * px < x0 else (right, 1.0)
        for level in self.levels:
            if level.label.anchor.x() != anchor_x:
                level.label.setAnchor((anchor_x, 1.0))
            level.label.setPos(x, level.price)
        if self.note is not None:
            if self.note.anchor.x() != anchor_x:
                self.note.setAnchor((anchor_x, 0.0))
            self.note.setPos(x, min(level.price for level in self.levels))
