"""What the open position is worth right now, and the button that closes it.

The panel only formats what the window hands it (trade record from the store, latest price,
the engine's unrealised PnL); it computes nothing that a trading decision depends on."""
from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QLabel, QPushButton, QWidget

from persistence.records import TradeRecord
from ui import theme
from ui.panels.form import ValuePanel
from ui.panels.style import (format_duration, format_money, format_percent, format_price,
                             format_utc_ms, pnl_color, split_pair)


class PositionPanel(ValuePanel):
    """Entry, price, size, unrealised PnL, target, stop, time held; "No open position" when flat."""

    manual_close_requested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("Position", parent)
        self.trade: TradeRecord | None = None
        for key, caption in (("entry", "Entry"), ("entry_time", "Entry time"),
                             ("price", "Current price"), ("size", "Size"),
                             ("notional", "Value"), ("unrealized", "Unrealised PnL"),
                             ("target", "Fibonacci target"), ("stop", "Stop"),
                             ("risk_stop", "Sizing stop"), ("held", "Time in position")):
            self.add_row(key, caption)
        self.flat_label = QLabel("No open position")
        self.flat_label.setObjectName("flatLabel")
        self.flat_label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.flat_label.setStyleSheet(f"color: {theme.TEXT_SECONDARY}; padding: 18px;")
        self.body.addWidget(self.flat_label)
        self.body.addStretch(1)
        self.close_button = QPushButton("Manual Close")
        self.close_button.setObjectName("manualCloseButton")
        self.close_button.setToolTip("Close the open position at market")
        self.close_button.clicked.connect(self.manual_close_requested)
        self.body.addWidget(self.close_button)
        self.show_position(None, None, None, None)

    def show_position(self, trade: TradeRecord | None, price: float | None,
                      unrealized: float | None, now_ms: int | None,
                      can_close: bool = True) -> None:
        """Refresh every value; `now_ms` is the engine's time (replay time in a replay)."""
        self.trade = trade
        open_ = trade is not None and trade.status == "open"
        self.rows.setVisible(open_)
        self.flat_label.setVisible(not open_)
        self.close_button.setEnabled(open_ and can_close)
        if not open_:
            return
        base, quote = split_pair(trade.pair)
        self.set("entry", format_price(trade.entry_price), bold=True)
        self.set("entry_time", format_utc_ms(trade.entry_ts))
        self.set("price", format_price(price) if price is not None else "—")
        self.set("size", f"{trade.amount:.8g} {base}")
        mark = price if price is not None else trade.entry_price
        self.set("notional", format_money(trade.amount * mark, quote, signed=False))
        notional = trade.entry_price * trade.amount
        pct = unrealized / notional * 100 if unrealized is not None and notional else None
        self.set("unrealized", f"{format_money(unrealized, quote)}  ({format_percent(pct)})",
                 color=pnl_color(unrealized), bold=True)
        if trade.target_price is not None and trade.fib_target_level is not None:
            self.set("target", f"{trade.fib_target_level * 100:.1f}% @ "
                     f"{format_price(trade.target_price)}", color=theme.GOLD)
        else:
            self.set("target", "none")
        self.set("stop", format_price(trade.stop_price) if trade.stop_price is not None
                 else "disabled", color=theme.DOWN if trade.stop_price is not None else None)
        self.set("risk_stop", format_price(trade.risk_stop) if trade.risk_stop is not None
                 else "—")
        held = now_ms - trade.entry_ts if now_ms is not None else None
        self.set("held", format_duration(held))
