"""The always-visible strip at the top: what the agent is doing, with what money, and the
buttons that change it.

Which buttons are usable in which run state is one table (BUTTONS), not scattered ifs.
Emergency Stop stays usable in every state except HALTED, even while another command is in
flight: it is the operator's way out. Long texts (a halt reason) are elided with the full text
in a tooltip, so the strip never decides the window's minimum width. A replay's clock has its
own strip (ui.panels.replay_bar)."""
from __future__ import annotations

from dataclasses import dataclass

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget

from ui import theme
from ui.panels.elided import ElidedLabel
from ui.panels.style import (FLASHING_STATES, MODE_BADGES, RUN_STATE_COLORS, format_money,
                             pnl_color)

FLASH_MS = 500
PAUSE_TIP = ("Pause: no new entries. An open position is still managed by its stop and target; "
             "market data keeps coming (a replay keeps playing: use Pause replay to hold it).")
RESUME_TIP = "Resume: new entries allowed again"
STOP_TIP = ("Stop: no new entries and no more market data. An open position is kept: its stop "
            "and target stay resting (on paper it resumes with the next Start).")
START_TIP = "Start trading: connect to the market data and enter on new signals"
STATE_MEANINGS: dict[str, str] = {
    "STOPPED": "not trading and not following the market",
    "STARTING": "connecting and warming up the indicators",
    "RUNNING": "trading: new signals are entered",
    "PAUSED": "no new entries; an open position is still managed",
    "HALTED": "halted: nothing is traded until you clear the halt",
    "ERROR": "stopped by an error (see the log)",
}


@dataclass(frozen=True, slots=True)
class ButtonStates:
    start: bool
    pause_resume: str | None      # "Pause" | "Resume" | None (disabled)
    stop: bool
    emergency: bool
    clear_halt: bool


BUTTONS: dict[str, ButtonStates] = {
    "STOPPED": ButtonStates(start=True, pause_resume=None, stop=False, emergency=True,
                            clear_halt=False),
    "STARTING": ButtonStates(start=False, pause_resume=None, stop=True, emergency=True,
                             clear_halt=False),
    "RUNNING": ButtonStates(start=False, pause_resume="Pause", stop=True, emergency=True,
                            clear_halt=False),
    "PAUSED": ButtonStates(start=False, pause_resume="Resume", stop=True, emergency=True,
                           clear_halt=False),
    "HALTED": ButtonStates(start=False, pause_resume=None, stop=False, emergency=False,
                           clear_halt=True),
    "ERROR": ButtonStates(start=True, pause_resume=None, stop=True, emergency=True,
                          clear_halt=False),
}


class ControlBar(QFrame):
    """Status light and word, mode badge, market, balance, day PnL, and the command buttons."""

    start_requested = Signal()
    pause_requested = Signal()
    resume_requested = Signal()
    stop_requested = Signal()
    emergency_requested = Signal()
    clear_halt_requested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("panel")
        self.run_state = "STOPPED"
        self._busy = False
        self._flash_on = True
        self._flash = QTimer(self)
        self._flash.setInterval(FLASH_MS)
        self._flash.timeout.connect(self._toggle_flash)

        self.light = QLabel()
        self.light.setFixedSize(16, 16)
        self.state_label = QLabel()
        self.state_label.setObjectName("runState")
        self.position_label = ElidedLabel()
        self.position_label.setObjectName("positionState")
        self.position_label.setProperty("role", "caption")
        self.reason_label = ElidedLabel()
        self.reason_label.setObjectName("haltReason")
        self.reason_label.setStyleSheet(f"color: {theme.DOWN};")
        self.mode_badge = QLabel()
        self.mode_badge.setObjectName("modeBadge")
        self.market_label = ElidedLabel("—")
        self.market_label.setObjectName("market")
        self.market_label.setStyleSheet("font-weight: bold;")
        self.balance_label = QLabel("—")
        self.balance_label.setObjectName("balance")
        self.balance_label.setToolTip("Cash / equity (cash plus the open position at the latest "
                                      "price): an entry moves cash into the position, not a loss")
        self.day_pnl_label = QLabel("—")
        self.day_pnl_label.setObjectName("dayPnl")
        self.day_pnl_label.setToolTip("Today's change of equity since 00:00 UTC")

        self.start_button = QPushButton("Start")
        self.start_button.setObjectName("startButton")
        self.start_button.setToolTip(START_TIP)
        self.pause_button = QPushButton("Pause")
        self.pause_button.setObjectName("pauseButton")
        self.pause_button.setToolTip(PAUSE_TIP)
        self.stop_button = QPushButton("Stop")
        self.stop_button.setObjectName("stopButton")
        self.stop_button.setToolTip(STOP_TIP)
        self.emergency_button = QPushButton("Emergency Stop")
        self.emergency_button.setObjectName("emergencyButton")
        self.emergency_button.setToolTip("Close any position at market NOW and halt trading "
                                         "until you clear the halt")
        self.clear_halt_button = QPushButton("Clear Halt")
        self.clear_halt_button.setObjectName("clearHaltButton")
        self.clear_halt_button.setToolTip("Clear the halt: the engine goes to STOPPED; Start "
                                          "trades again")

        self.start_button.clicked.connect(self.start_requested)
        self.pause_button.clicked.connect(self._pause_or_resume)
        self.stop_button.clicked.connect(self.stop_requested)
        self.emergency_button.clicked.connect(self.emergency_requested)
        self.clear_halt_button.clicked.connect(self.clear_halt_requested)

        layout = QHBoxLayout(self)
        layout.setContentsMargins(8, 4, 8, 4)
        layout.setSpacing(6)
        for widget in (self.light, self.state_label, self.position_label):
            layout.addWidget(widget)
        layout.addWidget(self.reason_label, 1)
        layout.addSpacing(6)
        layout.addWidget(self.mode_badge)
        layout.addWidget(self.market_label)
        layout.addStretch(1)
        layout.addWidget(_stacked("Cash / equity", self.balance_label))
        layout.addWidget(_stacked("Today", self.day_pnl_label))
        layout.addSpacing(4)
        for button in (self.start_button, self.pause_button, self.stop_button,
                       self.clear_halt_button, self.emergency_button):
            layout.addWidget(button)
        self.set_mode("paper")
        self.set_run_state("STOPPED", None, None)

    def set_run_state(self, run_state: str, position_state: str | None,
                      halt_reason: str | None) -> None:
        """Show the state and make only the meaningful buttons usable."""
        self.run_state = run_state
        self.state_label.setText(run_state)
        meaning = STATE_MEANINGS.get(run_state, "")
        self.state_label.setToolTip(f"{run_state}: {meaning}" if meaning else run_state)
        self.position_label.setText(position_state or "")
        self.reason_label.setText(halt_reason or "")
        self.reason_label.setVisible(bool(halt_reason))
        self._paint_state(visible=True)
        if run_state in FLASHING_STATES:
            self._flash.start()
        else:
            self._flash.stop()
        self._apply_buttons()

    def set_busy(self, busy: bool) -> None:
        """While a command is in flight only Emergency Stop stays usable."""
        self._busy = busy
        self._apply_buttons()

    def set_mode(self, mode: str) -> None:
        text, color = MODE_BADGES.get(mode, (mode.upper(), theme.NEUTRAL))
        weight = "900" if mode == "live" else "bold"
        self.mode_badge.setText(text)
        self.mode_badge.setStyleSheet(
            f"color: {theme.BACKGROUND}; background: {color}; border-radius: 3px;"
            f" padding: 2px 6px; font-weight: {weight};")

    def set_market(self, pair: str, timeframe: str) -> None:
        self.market_label.setText(f"{pair} · {timeframe}")

    def set_balance(self, balance: float | None, day_pnl: float | None, currency: str,
                    equity: float | None = None) -> None:
        """Cash and equity side by side, so an entry (cash into the position) never looks like
        a loss; today's equity change beside them."""
        cash = format_money(balance, "", signed=False)
        worth = format_money(equity if equity is not None else balance, currency, signed=False)
        self.balance_label.setText(f"{cash} / {worth}")
        self.day_pnl_label.setText(format_money(day_pnl, currency))
        self.day_pnl_label.setStyleSheet(f"color: {pnl_color(day_pnl)}; font-weight: bold;")

    @property
    def flashing(self) -> bool:
        return self._flash.isActive()

    def _apply_buttons(self) -> None:
        states = BUTTONS.get(self.run_state, BUTTONS["ERROR"])
        idle = not self._busy
        self.start_button.setEnabled(states.start and idle)
        self.pause_button.setText(states.pause_resume or "Pause")
        self.pause_button.setToolTip(RESUME_TIP if states.pause_resume == "Resume" else PAUSE_TIP)
        self.pause_button.setEnabled(states.pause_resume is not None and idle)
        self.stop_button.setEnabled(states.stop and idle)
        for button in (self.start_button, self.pause_button, self.stop_button):
            button.setVisible(not states.clear_halt)    # halted: only Clear Halt means anything
        self.emergency_button.setEnabled(states.emergency)
        self.clear_halt_button.setVisible(states.clear_halt)
        self.clear_halt_button.setEnabled(states.clear_halt and idle)

    def _pause_or_resume(self) -> None:
        if self.pause_button.text() == "Resume":
            self.resume_requested.emit()
        else:
            self.pause_requested.emit()

    def _toggle_flash(self) -> None:
        self._flash_on = not self._flash_on
        self._paint_state(self._flash_on)

    def _paint_state(self, visible: bool) -> None:
        color = RUN_STATE_COLORS.get(self.run_state, theme.NEUTRAL)
        shown = color if visible else theme.SURFACE
        self.light.setStyleSheet(f"background: {shown}; border-radius: 8px;"
                                 f" border: 1px solid {theme.BORDER};")
        self.state_label.setStyleSheet(f"color: {color}; font-weight: bold; font-size: 14px;")


def _stacked(caption: str, value: QLabel) -> QWidget:
    """A small caption above its value: two short lines instead of one long one."""
    box = QWidget()
    box.setObjectName("stacked")
    box.setStyleSheet("QWidget#stacked { background: transparent; }")
    column = QVBoxLayout(box)
    column.setContentsMargins(4, 0, 4, 0)
    column.setSpacing(0)
    label = QLabel(caption)
    label.setProperty("role", "caption")
    label.setStyleSheet("font-size: 10px;")
    for widget in (label, value):
        widget.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        column.addWidget(widget)
    return box
