"""Non-modal toasts for WARNING and above, and a short sound for ERROR and above; the window
also raises green INFO toasts to acknowledge the operator's own actions.

A toast never takes focus and never blocks: it sits over the window's bottom-right corner,
fades away after a few seconds or on a click. A burst of warnings (a replay at full speed, a
flapping feed) becomes one summary toast instead of a wall of them. The sound can be muted;
the choice is kept in QSettings."""
from __future__ import annotations

import logging

from PySide6.QtCore import QEvent, QObject, QSettings, Qt, QTimer, Signal
from PySide6.QtWidgets import QApplication, QFrame, QLabel, QVBoxLayout, QWidget

from ui import theme
from ui.log_handler import LogLine
from ui.panels.style import WARNING

SOUND_KEY = "notifications/sound"
TOAST_MS = 6000
MAX_TOASTS = 4
BURST = 3          # more WARNING+ lines than this in one batch: one summary toast
_MARGIN = 16


class Toast(QFrame):
    """A small coloured message box over the host window; click to dismiss."""

    dismissed = Signal(object)

    def __init__(self, host: QWidget, text: str, levelno: int, duration_ms: int = TOAST_MS) -> None:
        super().__init__(host)
        self.setObjectName("toast")
        self.levelno = levelno
        self.setAttribute(Qt.WidgetAttribute.WA_ShowWithoutActivating)
        self.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        color = (theme.DOWN if levelno >= logging.ERROR
                 else WARNING if levelno >= logging.WARNING else theme.ACCENT)
        self.color = color
        self.setStyleSheet(
            f"QFrame#toast {{ background: {theme.SURFACE}; border: 2px solid {color};"
            f" border-radius: 6px; }} QLabel {{ color: {theme.TEXT}; background: transparent; }}")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(10, 8, 10, 8)
        title = QLabel(logging.getLevelName(levelno))
        title.setStyleSheet(f"color: {color}; font-weight: bold;")
        self.label = QLabel(text)
        self.label.setWordWrap(True)
        self.label.setMaximumWidth(380)
        layout.addWidget(title)
        layout.addWidget(self.label)
        QTimer.singleShot(duration_ms, self.close)

    def mousePressEvent(self, event) -> None:  # noqa: N802 (Qt override)
        self.close()

    def closeEvent(self, event) -> None:  # noqa: N802 (Qt override)
        self.dismissed.emit(self)
        super().closeEvent(event)


class Notifier(QObject):
    """Turns log lines into toasts and sounds for the operator."""

    def __init__(self, host: QWidget, settings: QSettings) -> None:
        super().__init__(host)
        self._host = host
        self._settings = settings
        self._toasts: list[Toast] = []
        host.installEventFilter(self)

    @property
    def sound_enabled(self) -> bool:
        return _as_bool(self._settings.value(SOUND_KEY, True))

    def set_sound_enabled(self, enabled: bool) -> None:
        self._settings.setValue(SOUND_KEY, bool(enabled))

    @property
    def toasts(self) -> list[Toast]:
        return list(self._toasts)

    def on_log_lines(self, lines: list[LogLine]) -> None:
        """Toast WARNING+ lines (summarised when there are many) and beep once for ERROR+."""
        loud = [line for line in lines if line.levelno >= logging.WARNING]
        if not loud:
            return
        worst = max(line.levelno for line in loud)
        if len(loud) > BURST:
            self.toast(f"{len(loud)} warnings and errors; latest: {_short(loud[-1].message)}"
                       "\nSee the log for all of them.", worst)
        else:
            for line in loud:
                self.toast(_short(line.message), line.levelno)
        if worst >= logging.ERROR and self.sound_enabled:
            QApplication.beep()

    def toast(self, text: str, levelno: int) -> Toast:
        """Show one toast; the oldest goes when more than MAX_TOASTS are up."""
        while len(self._toasts) >= MAX_TOASTS:
            self._toasts[0].close()
        toast = Toast(self._host, text, levelno)
        toast.dismissed.connect(self._forget)
        self._toasts.append(toast)
        toast.adjustSize()
        toast.show()
        toast.raise_()
        self._layout()
        return toast

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 (Qt override)
        if watched is self._host and event.type() == QEvent.Type.Resize:
            self._layout()
        return False

    def _forget(self, toast: Toast) -> None:
        if toast in self._toasts:
            self._toasts.remove(toast)
            self._layout()

    def _layout(self) -> None:
        """Stack the toasts upwards from the host's bottom-right corner, newest at the bottom."""
        y = self._host.height() - _MARGIN
        for toast in reversed(self._toasts):
            y -= toast.height()
            toast.move(self._host.width() - toast.width() - _MARGIN, y)
            y -= 8


def _short(text: str, limit: int = 300) -> str:
    first = text.strip().splitlines()[0] if text.strip() else text
    return first if len(first) <= limit else first[: limit - 1] + "…"


def _as_bool(value: object) -> bool:
    """QSettings returns "true"/"false" strings from INI files."""
    if isinstance(value, str):
        return value.lower() in ("1", "true", "yes")
    return bool(value)
