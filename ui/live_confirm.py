"""The window's second step before real money: the config says live, and the operator types the
pair into a dialog that lists what is at stake. Shown before the engine and its loop exist, so a
plain exec() is safe here (no qasync loop yet, QT_NOTES.md)."""
from __future__ import annotations

import html
import sys

from PySide6.QtWidgets import (QApplication, QDialog, QDialogButtonBox, QLabel, QLineEdit,
                               QVBoxLayout)

from agent.config import AgentConfig


def risk_lines(config: AgentConfig) -> list[str]:
    rm, ex = config.risk_management, config.exchange
    return [
        f"Orders go to {ex.exchange_name} with your API key: real money, real fees.",
        f"Pair {ex.trading_pair}, timeframe {config.timeframe}.",
        f"Risk per trade {rm.risk_per_trade_percent:g}% of equity; position at most "
        f"{rm.max_position_size_percent:g}% of equity.",
        f"Trading halts for the day after a {rm.max_daily_loss_percent:g}% loss or "
        f"{rm.max_daily_trades} trades.",
        "Exits rest on the exchange; closing the window leaves them there.",
        "Emergency Stop cancels the exits and sells at market.",
    ]


class LiveConfirmDialog(QDialog):
    """OK only once the exact pair is typed; Cancel is the default button."""

    def __init__(self, config: AgentConfig, parent=None) -> None:
        super().__init__(parent)
        self.pair = config.exchange.trading_pair
        self.setWindowTitle("LIVE trading: real money")
        layout = QVBoxLayout(self)
        items = "".join(f"<li>{html.escape(line)}</li>" for line in risk_lines(config))
        text = QLabel(f"<b>This config trades REAL money.</b><ul>{items}</ul>"
                      f"Type <b>{html.escape(self.pair)}</b> to start live trading.")
        text.setWordWrap(True)
        layout.addWidget(text)
        self.typed = QLineEdit()
        self.typed.setPlaceholderText(self.pair)
        layout.addWidget(self.typed)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok
                                        | QDialogButtonBox.StandardButton.Cancel)
        self.ok = self.buttons.button(QDialogButtonBox.StandardButton.Ok)
        self.ok.setText("Start LIVE trading")
        self.ok.setEnabled(False)
        self.ok.setAutoDefault(False)
        cancel = self.buttons.button(QDialogButtonBox.StandardButton.Cancel)
        cancel.setDefault(True)
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        self.typed.textChanged.connect(lambda text: self.ok.setEnabled(text.strip() == self.pair))
        layout.addWidget(self.buttons)


def confirm_live(config: AgentConfig) -> bool:
    """Ask before the window opens; True only when the operator typed the pair and confirmed."""
    app = QApplication.instance() or QApplication(sys.argv[:1])   # noqa: F841 - kept alive
    dialog = LiveConfirmDialog(config)
    return dialog.exec() == QDialog.DialogCode.Accepted
