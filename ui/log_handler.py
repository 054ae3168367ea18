"""Carries log records from any thread to the window without blocking the emitter.

The handler only formats and appends to a bounded deque (append/popleft are atomic in CPython,
so no lock is needed); a LogPump on the GUI thread drains it a few times a second and emits one
batch. A replay at full speed logs thousands of lines a second: one signal per record would
flood the Qt event queue, a batch per drain does not."""
from __future__ import annotations

import logging
import time
from collections import deque
from dataclasses import dataclass

from PySide6.QtCore import QObject, QTimer, Signal

from monitoring.logging_setup import HUMAN_FORMAT, RedactingFormatter, redact

MAX_PENDING = 10_000


@dataclass(frozen=True, slots=True)
class LogLine:
    """One formatted record, as the viewer and the notifier need it."""

    levelno: int
    levelname: str
    text: str          # the full formatted line (may span several lines with a traceback)
    message: str       # the bare message, for toasts


class QueueLogHandler(logging.Handler):
    """Thread-safe sink: formats (and redacts secrets, invariant 4) on the emitting thread,
    never touches Qt."""

    def __init__(self, level: int = logging.DEBUG, max_pending: int = MAX_PENDING) -> None:
        super().__init__(level)
        self._pending: deque[LogLine] = deque(maxlen=max_pending)
        formatter = RedactingFormatter(HUMAN_FORMAT, datefmt="%Y-%m-%d %H:%M:%S")
        formatter.converter = time.gmtime   # the agent prints UTC everywhere
        self.setFormatter(formatter)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = self.format(record)
            message = redact(record.getMessage())
            self._pending.append(LogLine(record.levelno, record.levelname, text, message))
        except Exception:
            self.handleError(record)

    def drain(self) -> list[LogLine]:
        """Take every pending line, oldest first (the oldest are dropped beyond max_pending)."""
        lines: list[LogLine] = []
        while True:
            try:
                lines.append(self._pending.popleft())
            except IndexError:
                return lines


class LogPump(QObject):
    """Drains a QueueLogHandler on the GUI thread and emits the batch."""

    lines = Signal(list)   # list[LogLine]

    def __init__(self, handler: QueueLogHandler, interval_ms: int = 100,
                 parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.handler = handler
        self._timer = QTimer(self)
        self._timer.setInterval(interval_ms)
        self._timer.timeout.connect(self.pump)
        self._timer.start()

    def pump(self) -> None:
        """Emit whatever arrived since the last drain (nothing if nothing did)."""
        batch = self.handler.drain()
        if batch:
            self.lines.emit(batch)

    def stop(self) -> None:
        self._timer.stop()
        self.pump()


def install(logger: logging.Logger | None = None,
            level: int = logging.DEBUG) -> QueueLogHandler:
    """Attach a new queue handler to `logger` (the root logger by default)."""
    handler = QueueLogHandler(level)
    (logger or logging.getLogger()).addHandler(handler)
    return handler


def uninstall(handler: QueueLogHandler, logger: logging.Logger | None = None) -> None:
    (logger or logging.getLogger()).removeHandler(handler)
