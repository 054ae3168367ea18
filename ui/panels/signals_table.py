"""Every signal bar with its decision: ENTERED, or SKIPPED and why (in position, paused, no
Fibonacci levels, a risk rule...). Newest first; selecting one asks the chart to show it."""
from __future__ import annotations

from collections.abc import Sequence

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (QAbstractItemView, QHeaderView, QTableWidget, QTableWidgetItem,
                               QWidget)

from persistence.records import SignalRecord
from ui import theme
from ui.panels.style import format_price, format_utc_minute

COLUMNS = ("Signal bar (UTC)", "Close", "Decision", "Reason", "Target")
MAX_ROWS = 5_000          # the newest; older signals stay in the store


class SignalsTable(QTableWidget):
    """One row per signal bar (a later decision on the same bar replaces the row)."""

    signal_selected = Signal(object)   # SignalRecord

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(0, len(COLUMNS), parent)
        self.setObjectName("signalsTable")
        self._signals: list[SignalRecord] = []       # newest first, as the rows
        self.setHorizontalHeaderLabels(COLUMNS)
        self.verticalHeader().setVisible(False)
        self.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.setShowGrid(False)
        self.setToolTip("Click a signal to show it and its Fibonacci ladder on the chart")
        header = self.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        header.setStretchLastSection(True)
        self.itemSelectionChanged.connect(self._selection_changed)

    @property
    def signals(self) -> list[SignalRecord]:
        """Newest first."""
        return list(self._signals)

    def set_signals(self, signals: Sequence[SignalRecord]) -> None:
        """Replace the rows (signals oldest first, as the store returns them)."""
        newest = {}
        for s in signals:
            newest[s.bar_ts] = s
        self._signals = sorted(newest.values(), key=lambda s: s.bar_ts, reverse=True)[:MAX_ROWS]
        self.blockSignals(True)
        self.setRowCount(len(self._signals))
        for row, s in enumerate(self._signals):
            self._fill(row, s)
        self.blockSignals(False)
        self.resizeColumnsToContents()

    def add_signal(self, signal: SignalRecord) -> None:
        """A new decision: on top, or replacing the row of the same bar."""
        for row, known in enumerate(self._signals):
            if known.bar_ts == signal.bar_ts:
                self._signals[row] = signal
                self._fill(row, signal)
                return
        self._signals.insert(0, signal)
        self.blockSignals(True)
        self.insertRow(0)
        self._fill(0, signal)
        if len(self._signals) > MAX_ROWS:
            self._signals.pop()
            self.removeRow(self.rowCount() - 1)
        self.blockSignals(False)
        if self.rowCount() <= 2:
            self.resizeColumnsToContents()

    def _fill(self, row: int, s: SignalRecord) -> None:
        entered = s.action == "ENTERED"
        cells = (format_utc_minute(s.bar_ts), format_price(s.close), s.action,
                 s.reason,
                 format_price(s.target_price) if s.target_price is not None else "—")
        for column, text in enumerate(cells):
            item = QTableWidgetItem(text)
            if column == 2:
                item.setForeground(QColor(theme.UP if entered else theme.NEUTRAL))
            if column in (1, 4):
                item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            self.setItem(row, column, item)

    def _selection_changed(self) -> None:
        rows = {index.row() for index in self.selectedIndexes()}
        if len(rows) == 1:
            self.signal_selected.emit(self._signals[rows.pop()])
