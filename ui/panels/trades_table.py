"""Closed trades, newest first, PnL colour-coded; selecting one asks the chart to show it."""
from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QColor
from PySide6.QtWidgets import QAbstractItemView, QHeaderView, QTableWidget, QTableWidgetItem, QWidget

from persistence.records import TradeRecord
from ui import theme
from ui.panels.style import format_money, format_percent, format_price, format_utc_ms, pnl_color

COLUMNS = ("#", "Entry time (UTC)", "Entry", "Exit time (UTC)", "Exit", "Reason", "Bars",
           "PnL", "PnL %")
TARGET_PREFIXES = ("FIB_", "TP_")
NEUTRAL_REASONS = frozenset({"TIME", "MANUAL"})


def exit_marker_kind(reason: str | None, pnl: float | None) -> str:
    """Chart marker for an exit: "target" for FIB_*/TP_*, "neutral" for TIME and MANUAL (a
    losing manual close is still the operator's choice), "stop" for any other exit that lost
    money (STOP, STOP_GAP, DAILY_LOSS_LIMIT, EMERGENCY, ...), else "neutral"."""
    reason = reason or ""
    if reason.startswith(TARGET_PREFIXES):
        return "target"
    if reason in NEUTRAL_REASONS:
        return "neutral"
    return "stop" if pnl is not None and pnl < 0 else "neutral"


class TradesTable(QTableWidget):
    """One row per closed trade; `trade_selected` carries the record of the clicked row."""

    trade_selected = Signal(object)   # TradeRecord

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(0, len(COLUMNS), parent)
        self.setObjectName("tradesTable")
        self.currency = ""
        self._trades: list[TradeRecord] = []
        self.setHorizontalHeaderLabels(COLUMNS)
        self.verticalHeader().setVisible(False)
        self.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.setAlternatingRowColors(False)
        self.setShowGrid(False)
        header = self.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setStretchLastSection(True)
        self.itemSelectionChanged.connect(self._selection_changed)

    @property
    def trades(self) -> list[TradeRecord]:
        """Oldest first, as they were added."""
        return list(self._trades)

    def set_trades(self, trades: list[TradeRecord], currency: str) -> None:
        """Replace the table with `trades` (oldest first)."""
        self.currency = currency
        self.clearSelection()
        self.setRowCount(0)
        self._trades = []
        for trade in trades:
            self.add_trade(trade)

    def add_trade(self, trade: TradeRecord) -> None:
        """Insert a closed trade at the top (a trade already shown, by id, is replaced)."""
        if trade.id is not None:
            for index, known in enumerate(self._trades):
                if known.id == trade.id:
                    self._trades[index] = trade
                    self._fill_row(len(self._trades) - 1 - index, trade)
                    return
        self._trades.append(trade)
        self.blockSignals(True)
        self.insertRow(0)
        self.blockSignals(False)
        self._fill_row(0, trade)

    def trade_at(self, row: int) -> TradeRecord:
        return self._trades[len(self._trades) - 1 - row]

    def _fill_row(self, row: int, trade: TradeRecord) -> None:
        number = trade.id if trade.id is not None else len(self._trades)
        kind = exit_marker_kind(trade.exit_reason, trade.pnl)
        reason_color = {"target": theme.UP, "stop": theme.DOWN}.get(kind, theme.NEUTRAL)
        cells = (
            (str(number), None),
            (format_utc_ms(trade.entry_ts), None),
            (format_price(trade.entry_price), None),
            (format_utc_ms(trade.exit_ts), None),
            (format_price(trade.exit_price) if trade.exit_price is not None else "—", None),
            (trade.exit_reason or "—", reason_color),
            (str(trade.bars_held), None),
            (format_money(trade.pnl, self.currency), pnl_color(trade.pnl)),
            (format_percent(trade.pnl_percent), pnl_color(trade.pnl)),
        )
        for column, (text, color) in enumerate(cells):
            item = QTableWidgetItem(text)
            if column in (0, 2, 4, 6, 7, 8):
                item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            if color is not None:
                item.setForeground(QColor(color))
            self.setItem(row, column, item)

    def _selection_changed(self) -> None:
        rows = {index.row() for index in self.selectedIndexes()}
        if len(rows) == 1:
            self.trade_selected.emit(self.trade_at(rows.pop()))
