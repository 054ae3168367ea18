"""Closed trades, newest first, PnL colour-coded; selecting one asks the chart to show it.

Columns sort by their value (numbers as numbers, times as times): each cell keeps its sort key,
and each row keeps the index of its trade, so a sorted table still selects the right trade.
The R multiple is the PnL over the amount risked at entry (entry minus the sizing stop)."""
from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QColor
from PySide6.QtWidgets import QAbstractItemView, QHeaderView, QTableWidget, QTableWidgetItem, QWidget

from persistence.records import TradeRecord
from ui import theme
from ui.panels.shadow_cell import ShadowCell
from ui.panels.style import (format_money, format_percent, format_price, format_utc_minute,
                             pnl_color)

COLUMNS = ("#", "Opened (UTC)", "Entry", "Closed (UTC)", "Exit", "Reason", "Bars",
           "Size", "Fees", "R", "PnL", "PnL %", "vs backtest")
NUMERIC = frozenset({0, 2, 4, 6, 7, 8, 9, 10, 11, 12})
SHADOW_COLUMN = 12
PNL_MIN_WIDTHS = {10: 96, 11: 70}    # PnL is what the operator reads: never squeezed
TRADE_ROLE = Qt.ItemDataRole.UserRole + 1
SORT_ROLE = Qt.ItemDataRole.UserRole + 2
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


def r_multiple(trade: TradeRecord) -> float | None:
    """PnL in units of the amount risked at entry; None without a sizing stop below entry."""
    if trade.pnl is None or trade.risk_stop is None:
        return None
    risk = (trade.entry_price - trade.risk_stop) * trade.amount
    return trade.pnl / risk if risk > 0 else None


def _shadow_item(cell: ShadowCell) -> QTableWidgetItem:
    item = _SortItem(cell.text)
    item.setData(SORT_ROLE, cell.sort_key)
    item.setToolTip(cell.tooltip)
    item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
    if cell.color is not None:
        item.setForeground(QColor(cell.color))
    return item


class _SortItem(QTableWidgetItem):
    """Sorts by its SORT_ROLE value (a number), not by its text."""

    def __lt__(self, other: QTableWidgetItem) -> bool:
        mine, theirs = self.data(SORT_ROLE), other.data(SORT_ROLE)
        if mine is None or theirs is None:
            return (mine is None) and (theirs is not None)
        return mine < theirs


class TradesTable(QTableWidget):
    """One row per closed trade; `trade_selected` carries the record of the clicked row."""

    trade_selected = Signal(object)   # TradeRecord

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(0, len(COLUMNS), parent)
        self.setObjectName("tradesTable")
        self.currency = ""
        self._trades: list[TradeRecord] = []
        self._shadow: dict[int, ShadowCell] = {}      # trade id -> "vs backtest" cell
        self.setHorizontalHeaderLabels(COLUMNS)
        self.verticalHeader().setVisible(False)
        self.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.setAlternatingRowColors(False)
        self.setShowGrid(False)
        header = self.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        header.setStretchLastSection(True)
        header.setSortIndicatorShown(True)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAsNeeded)
        self.setSortingEnabled(True)
        self.sortByColumn(0, Qt.SortOrder.DescendingOrder)
        self.itemSelectionChanged.connect(self._selection_changed)

    @property
    def trades(self) -> list[TradeRecord]:
        """Oldest first, as they were added."""
        return list(self._trades)

    def set_trades(self, trades: list[TradeRecord], currency: str) -> None:
        """Replace the table with `trades` (oldest first)."""
        self.currency = currency
        self.clearSelection()
        self.setSortingEnabled(False)
        self.setRowCount(0)
        self._trades = []
        for trade in trades:
            self._insert(trade)
        self._resort()

    def add_trade(self, trade: TradeRecord) -> None:
        """Insert a closed trade at the top (a trade already shown, by id, is replaced)."""
        self.setSortingEnabled(False)
        self._insert(trade)
        self._resort()

    def _insert(self, trade: TradeRecord) -> None:
        if trade.id is not None:
            for index, known in enumerate(self._trades):
                if known.id == trade.id:
                    self._trades[index] = trade
                    self._fill_row(self._row_of(index), trade, index)
                    return
        self._trades.append(trade)
        self.blockSignals(True)
        self.insertRow(0)
        self.blockSignals(False)
        self._fill_row(0, trade, len(self._trades) - 1)

    def _resort(self) -> None:
        self.setSortingEnabled(True)
        self.resizeColumnsToContents()
        for column, width in PNL_MIN_WIDTHS.items():
            self.setColumnWidth(column, max(self.columnWidth(column), width))

    def _row_of(self, index: int) -> int:
        for row in range(self.rowCount()):
            item = self.item(row, 0)
            if item is not None and item.data(TRADE_ROLE) == index:
                return row
        return 0

    def set_shadow(self, cells: dict[int, ShadowCell]) -> None:
        """The backtest's outcome beside each trade (by trade id): its diff in bps, the cause
        and both outcomes in the tooltip."""
        self._shadow.update(cells)
        sorting = self.isSortingEnabled()
        self.setSortingEnabled(False)
        for row in range(self.rowCount()):
            trade = self.trade_at(row)
            if trade.id in cells:
                self.setItem(row, SHADOW_COLUMN, _shadow_item(cells[trade.id]))
        self.setSortingEnabled(sorting)

    def shadow_cell(self, trade_id: int) -> ShadowCell | None:
        return self._shadow.get(trade_id)

    def select_trade_id(self, trade_id: int) -> bool:
        """Select and show the row of a trade (emits trade_selected); False if not listed."""
        for row in range(self.rowCount()):
            if self.trade_at(row).id == trade_id:
                self.selectRow(row)
                self.scrollToItem(self.item(row, 0))
                return True
        return False

    def deselect(self) -> None:
        """Clear the selection without announcing a trade."""
        self.blockSignals(True)
        self.clearSelection()
        self.blockSignals(False)

    def trade_at(self, row: int) -> TradeRecord:
        return self._trades[self.item(row, 0).data(TRADE_ROLE)]

    def _fill_row(self, row: int, trade: TradeRecord, index: int) -> None:
        number = trade.id if trade.id is not None else len(self._trades)
        kind = exit_marker_kind(trade.exit_reason, trade.pnl)
        reason_color = {"target": theme.UP, "stop": theme.DOWN}.get(kind, theme.NEUTRAL)
        r = r_multiple(trade)
        fees = trade.entry_fee + trade.exit_fee
        cells = (
            (str(number), None, number),
            (format_utc_minute(trade.entry_ts), None, trade.entry_ts),
            (format_price(trade.entry_price), None, trade.entry_price),
            (format_utc_minute(trade.exit_ts), None, trade.exit_ts),
            (format_price(trade.exit_price) if trade.exit_price is not None else "—", None,
             trade.exit_price),
            (trade.exit_reason or "—", reason_color, trade.exit_reason or ""),
            (str(trade.bars_held), None, trade.bars_held),
            (f"{trade.amount:.6g}", None, trade.amount),
            (f"{fees:,.2f}", None, fees),
            (f"{r:+.2f}R" if r is not None else "—", pnl_color(r), r),
            (format_money(trade.pnl, self.currency), pnl_color(trade.pnl), trade.pnl),
            (format_percent(trade.pnl_percent), pnl_color(trade.pnl), trade.pnl_percent),
        )
        shadow = self._shadow.get(trade.id) if trade.id is not None else None
        self.setItem(row, SHADOW_COLUMN, _shadow_item(shadow) if shadow is not None
                     else _shadow_item(ShadowCell("…", "The backtest's outcome is not known yet",
                                                  None, theme.NEUTRAL)))
        for column, (text, color, key) in enumerate(cells):
            item = _SortItem(text)
            item.setData(SORT_ROLE, key)
            if column == 0:
                item.setData(TRADE_ROLE, index)
            if column in NUMERIC:
                item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            if color is not None:
                item.setForeground(QColor(color))
            self.setItem(row, column, item)

    def _selection_changed(self) -> None:
        rows = {index.row() for index in self.selectedIndexes()}
        if len(rows) == 1:
            self.trade_selected.emit(self.trade_at(rows.pop()))
