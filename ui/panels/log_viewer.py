"""The live engine log: level colours, level filters, search, bounded memory, and a scroll
position that stays put while the operator reads older lines.

The last MAX_LINES lines are kept in a deque; the text view shows those that pass the filters
and is capped at the same number of blocks, so memory stays bounded on a run of months. New
lines are appended in one edit per batch. Changing a filter re-renders from the deque."""
from __future__ import annotations

import logging
from collections import deque

from PySide6.QtCore import QTimer
from PySide6.QtGui import QColor, QFont, QTextCharFormat, QTextCursor
from PySide6.QtWidgets import (QCheckBox, QFrame, QHBoxLayout, QLabel, QLineEdit,
                               QPlainTextEdit, QPushButton, QVBoxLayout, QWidget)

from ui.log_handler import LogLine
from ui.panels.style import LEVEL_COLORS

MAX_LINES = 10_000
SEARCH_DEBOUNCE_MS = 200
FILTER_LEVELS = (("DEBUG", logging.DEBUG), ("INFO", logging.INFO),
                 ("WARNING", logging.WARNING), ("ERROR", logging.ERROR))


class LogViewer(QFrame):
    """Shows LogLine batches; see the module docstring for the guarantees."""

    def __init__(self, parent: QWidget | None = None, max_lines: int = MAX_LINES) -> None:
        super().__init__(parent)
        self._lines: deque[LogLine] = deque(maxlen=max_lines)
        self.text = QPlainTextEdit()
        self.text.setObjectName("logText")
        self.text.setReadOnly(True)
        self.text.setMaximumBlockCount(max_lines)
        self.text.setLineWrapMode(QPlainTextEdit.LineWrapMode.NoWrap)
        self.text.setStyleSheet("font-family: monospace; font-size: 12px;")
        self.filters: dict[int, QCheckBox] = {}
        self.search = QLineEdit()
        self.search.setObjectName("logSearch")
        self.search.setPlaceholderText("Search the log…")
        self.search.setClearButtonEnabled(True)
        self._search_debounce = QTimer(self)
        self._search_debounce.setSingleShot(True)
        self._search_debounce.setInterval(SEARCH_DEBOUNCE_MS)
        self._search_debounce.timeout.connect(self.rerender)
        self.search.textChanged.connect(self._search_debounce.start)
        self.follow_button = QPushButton("Follow")
        self.follow_button.setObjectName("followLogButton")
        self.follow_button.setToolTip("Scroll to the newest line and keep following")
        self.follow_button.clicked.connect(self.scroll_to_end)
        self.paused_label = QLabel()
        self.paused_label.setProperty("role", "caption")
        self._unseen = 0

        bar = QHBoxLayout()
        bar.setContentsMargins(0, 0, 0, 0)
        for name, level in FILTER_LEVELS:
            box = QCheckBox(name)
            box.setObjectName(f"logFilter{name}")
            box.setChecked(level != logging.DEBUG)
            box.setStyleSheet(f"color: {LEVEL_COLORS[level]};")
            box.toggled.connect(self.rerender)
            self.filters[level] = box
            bar.addWidget(box)
        bar.addWidget(self.search, 1)
        bar.addWidget(self.paused_label)
        bar.addWidget(self.follow_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addLayout(bar)
        layout.addWidget(self.text, 1)
        self.text.verticalScrollBar().valueChanged.connect(self._scrolled)
        self._update_paused()

    @property
    def following(self) -> bool:
        """True while the view sits at the newest line (new lines then scroll it along)."""
        bar = self.text.verticalScrollBar()
        return bar.value() >= bar.maximum() - 1

    def line_count(self) -> int:
        return len(self._lines)

    def visible_text(self) -> str:
        return self.text.toPlainText()

    def append_lines(self, lines: list[LogLine]) -> None:
        """Keep every line; show those passing the filters without moving a reader's view."""
        self._lines.extend(lines)
        shown = [line for line in lines if self._passes(line)]
        if not shown:
            return
        follow = self.following
        bar = self.text.verticalScrollBar()
        position = bar.value()
        self._insert(shown)
        if follow:
            bar.setValue(bar.maximum())
        else:
            bar.setValue(min(position, bar.maximum()))
            self._unseen += len(shown)
        self._update_paused()

    def rerender(self) -> None:
        """Rebuild the view from the kept lines after a filter or search change."""
        self.text.clear()
        self._insert([line for line in self._lines if self._passes(line)])
        self.scroll_to_end()

    def scroll_to_end(self) -> None:
        bar = self.text.verticalScrollBar()
        bar.setValue(bar.maximum())
        self._unseen = 0
        self._update_paused()

    def _passes(self, line: LogLine) -> bool:
        if not self.filters[_bucket(line.levelno)].isChecked():
            return False
        needle = self.search.text().strip().lower()
        return not needle or needle in line.text.lower()

    def _insert(self, lines: list[LogLine]) -> None:
        """One block per line (tracebacks span several), so the block cap bounds memory."""
        if not lines:
            return
        cursor = QTextCursor(self.text.document())
        cursor.movePosition(QTextCursor.MoveOperation.End)
        cursor.beginEditBlock()
        first = self.text.document().isEmpty()
        for line in lines:
            if not first:
                cursor.insertBlock()
            first = False
            cursor.insertText(line.text, _format(line.levelno))
        cursor.endEditBlock()

    def _scrolled(self, _value: int) -> None:
        if self.following and self._unseen:
            self._unseen = 0
        self._update_paused()

    def _update_paused(self) -> None:
        paused = not self.following
        self.follow_button.setVisible(paused)
        self.paused_label.setVisible(paused)
        self.paused_label.setText(f"scroll paused · {self._unseen} new" if self._unseen
                                  else "scroll paused")


def _bucket(levelno: int) -> int:
    """The filter a level belongs to (custom levels fall to the one below them)."""
    if levelno >= logging.ERROR:
        return logging.ERROR
    if levelno >= logging.WARNING:
        return logging.WARNING
    return logging.INFO if levelno >= logging.INFO else logging.DEBUG


_FORMATS: dict[int, QTextCharFormat] = {}


def _format(levelno: int) -> QTextCharFormat:
    key = logging.CRITICAL if levelno >= logging.CRITICAL else _bucket(levelno)
    fmt = _FORMATS.get(key)
    if fmt is None:
        fmt = QTextCharFormat()
        fmt.setForeground(QColor(LEVEL_COLORS[key]))
        if key == logging.CRITICAL:
            fmt.setFontWeight(QFont.Weight.Bold)
        _FORMATS[key] = fmt
    return fmt
