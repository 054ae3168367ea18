"""The always-visible strip at the top: what the agent is doing, with what money, and the
buttons that change it.

Which buttons are usable in which run state is one table (BUTTONS), not scattered ifs.
Emergency Stop stays usable in every state except HALTED, even while another command is in
flight: it is the operator's way out."""
from __future__ import annotations

from dataclasses import dataclass

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtWidgets import QComboBox, QFrame, QHBoxLayout, QLabel, QPushButton, QWidget

from ui import theme
from ui.panels.style import (FLASHING_STATES, MODE_BADGES, RUN_STATE_COLORS, format_money,
                             pnl_color)

FLASH_MS = 500
REPLAY_SPEEDS: tuple[float | None, ...] = (2.0, 10.0, 40.0, 100.0, 400.0, None)


@dataclass(frozen=True, slots=True)
class ButtonStates:
    start: bool
    pause_resume: str | None      # "Pause" | "Resume" | None (disabled)
    emergency: bool
    clear_halt: bool


BUTTONS: dict[str, ButtonStates] = {
    "STOPPED": ButtonStates(start=True, pause_resume=None, emergency=True, clear_halt=False),
    "STARTING": ButtonStates(start=False, pause_resume=None, emergency=True, clear_halt=False),
    "RUNNING": ButtonStates(start=False, pause_resume="Pause", emergency=True, clear_halt=False),
    "PAUSED": ButtonStates(start=False, pause_resume="Resume", emergency=True, clear_halt=False),
    "HALTED": ButtonStates(start=False, pause_resume=None, emergency=False, clear_halt=True),
    "ERROR": ButtonStates(start=True, pause_resume=None, emergency=True, clear_halt=False),
}


class ControlBar(QFrame):
    """Status light and word, mode badge, market, balance, day PnL, and the command buttons."""

    start_requested = Signal()
    pause_requested = Signal()
    resume_requested = Signal()
    emergency_requested = Signal()
    clear_halt_requested = Signal()
    speed_requested = Signal(object)          # bars per second, or None for "max"

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
        self.position_label = QLabel()
        self.position_label.setProperty("role", "caption")
        self.reason_label = QLabel()
        self.reason_label.setStyleSheet(f"color: {theme.DOWN};")
        self.mode_badge = QLabel()
        self.mode_badge.setObjectName("modeBadge")
        self.market_label = QLabel("—")
        self.market_label.setStyleSheet("font-weight: bold;")
        self.balance_label = QLabel("—")
        self.day_pnl_label = QLabel("—")

        self.start_button = QPushButton("Start")
        self.start_button.setObjectName("startButton")
        self.pause_button = QPushButton("Pause")
        self.pause_button.setObjectName("pauseButton")
        self.emergency_button = QPushButton("Emergency Stop")
        self.emergency_button.setObjectName("emergencyButton")
        self.emergency_button.setToolTip("Close any position at market and halt trading")
        self.clear_halt_button = QPushButton("Clear Halt")
        self.clear_halt_button.setObjectName("clearHaltButton")

        self.speed_combo = QComboBox()
        self.speed_combo.setToolTip("Replay speed (bars per second)")
        for speed in REPLAY_SPEEDS:
            self.speed_combo.addItem("max" if speed is None else f"{speed:g} bars/s", speed)
        self.speed_combo.activated.connect(
            lambda index: self.speed_requested.emit(self.speed_combo.itemData(index)))
        self.speed_combo.hide()                # only a replay has a speed

        self.start_button.clicked.connect(self.start_requested)
        self.pause_button.clicked.connect(self._pause_or_resume)
        self.emergency_button.clicked.connect(self.emergency_requested)
        self.clear_halt_button.clicked.connect(self.clear_halt_requested)

        layout = QHBoxLayout(self)
        layout.setContentsMargins(10, 6, 10, 6)
        layout.setSpacing(10)
        for widget in (self.light, self.state_label, self.position_label, self.reason_label):
            layout.addWidget(widget)
        layout.addSpacing(12)
        layout.addWidget(self.mode_badge)
        layout.addWidget(self.market_label)
        layout.addStretch(1)
        layout.addWidget(_caption("Balance"))
        layout.addWidget(self.balance_label)
        layout.addSpacing(8)
        layout.addWidget(_caption("Today (equity)"))
        layout.addWidget(self.day_pnl_label)
        layout.addSpacing(16)
        layout.addWidget(self.speed_combo)
        for button in (self.start_button, self.pause_button, self.clear_halt_button,
                       self.emergency_button):
            layout.addWidget(button)
        self.set_mode("paper")
        self.set_run_state("STOPPED", None, None)

    def set_run_state(self, run_state: str, position_state: str | None,
                      halt_reason: str | None) -> None:
        """Show the state and make only the meaningful buttons usable."""
        self.run_state = run_state
        self.state_label.setText(run_state)
        self.position_label.setText(position_state or "")
        self.reason_label.setText(halt_reason or "")
        self.reason_label.setVisible(bool(halt_reason))
        self._paint_state(visible=True)
        if run_state in FLASHING_STATES:
            self._flash.start()
        else:
            self._flash.stop()
        self._apply_buttons()

    def show_replay_speed(self, speed: float | None) -> None:
        """Show the speed choice, selecting the nearest offered speed."""
        speeds = [x for x in REPLAY_SPEEDS if x is not None]
        choice = None if speed is None else min(speeds, key=lambda x: abs(x - speed))
        self.speed_combo.setCurrentIndex(REPLAY_SPEEDS.index(choice))
        self.speed_combo.show()

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
            f" padding: 2px 8px; font-weight: {weight};")

    def set_market(self, pair: str, timeframe: str) -> None:
        self.market_label.setText(f"{pair} · {timeframe}")

    def set_balance(self, balance: float | None, day_pnl: float | None, currency: str) -> None:
        self.balance_label.setText(format_money(balance, currency, signed=False))
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
        self.pause_button.setEnabled(states.pause_resume is not None and idle)
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


def _caption(text: str) -> QLabel:
    label = QLabel(text)
    label.setProperty("role", "caption")
    label.setAlignment(Qt.AlignmentFlag.AlignVCenter | Qt.AlignmentFlag.AlignRight)
    return label
