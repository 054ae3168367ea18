"""A titled panel of caption/value rows: the shape of the position and stats panels."""
from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QFrame, QGridLayout, QLabel, QVBoxLayout, QWidget

from ui import theme
from ui.panels.elided import ElidedLabel


class ValuePanel(QFrame):
    """Rows of "caption  value"; values are addressed by a key and may carry a colour."""

    def __init__(self, title: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("panel")
        self._values: dict[str, QLabel] = {}
        outer = QVBoxLayout(self)
        outer.setContentsMargins(10, 8, 10, 8)
        outer.setSpacing(6)
        heading = QLabel(title)
        heading.setProperty("role", "title")
        outer.addWidget(heading)
        self.rows = QWidget()
        self.rows.setObjectName("panelRows")
        self._grid = QGridLayout(self.rows)
        self._grid.setContentsMargins(0, 0, 0, 0)
        self._grid.setHorizontalSpacing(14)
        self._grid.setVerticalSpacing(3)
        self._grid.setColumnStretch(1, 1)
        outer.addWidget(self.rows)
        self.body = outer

    def add_section(self, text: str) -> None:
        label = QLabel(text)
        label.setProperty("role", "title")
        label.setStyleSheet("margin-top: 6px;")
        self._grid.addWidget(label, self._grid.rowCount(), 0, 1, 2)

    def add_row(self, key: str, caption: str) -> QLabel:
        row = self._grid.rowCount()
        cap = QLabel(caption)
        cap.setProperty("role", "caption")
        value = ElidedLabel("—")       # a narrow panel elides, never scrolls sideways
        value.setObjectName(key)
        value.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        value.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self._grid.addWidget(cap, row, 0)
        self._grid.addWidget(value, row, 1)
        self._values[key] = value
        return value

    def set(self, key: str, text: str, color: str | None = None, bold: bool = False) -> None:
        label = self._values[key]
        label.setText(text)
        style = f"color: {color or theme.TEXT};" + (" font-weight: bold;" if bold else "")
        label.setStyleSheet(style)

    def text(self, key: str) -> str:
        return self._values[key].text()

    def row_visible(self, key: str, visible: bool) -> None:
        label = self._values[key]
        index = self._grid.indexOf(label)
        row = self._grid.getItemPosition(index)[0]
        for column in (0, 1):
            item = self._grid.itemAtPosition(row, column)
            if item is not None and item.widget() is not None:
                item.widget().setVisible(visible)
