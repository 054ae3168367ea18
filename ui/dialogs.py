"""Every question the window asks the operator, as coroutines.

A dialog's exec() runs a nested Qt event loop; inside a qasync coroutine that kills other
tasks and hangs shutdown (QT_NOTES.md). So each dialog is opened with open() and awaited
through a Future resolved on `finished`. The window calls these module functions by name
(`dialogs.confirm(...)`), which is the single seam tests monkeypatch."""
from __future__ import annotations

import asyncio
import html
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import QDialog, QFileDialog, QMessageBox, QWidget

LIVE_REFRESH_MS = 250

_ICONS = {
    "info": QMessageBox.Icon.Information,
    "warning": QMessageBox.Icon.Warning,
    "error": QMessageBox.Icon.Critical,
}


async def run_dialog(dialog: QDialog) -> int:
    """Show `dialog` window-modally without a nested loop; return its result code.

    If the awaiting task is cancelled (the window is closing), the dialog is rejected."""
    future: asyncio.Future[int] = asyncio.get_running_loop().create_future()

    def finished(result: int) -> None:
        if not future.done():
            future.set_result(result)

    dialog.finished.connect(finished)
    dialog.open()
    try:
        return await future
    except asyncio.CancelledError:
        dialog.reject()
        raise
    finally:
        dialog.finished.disconnect(finished)
        dialog.deleteLater()


async def confirm(parent: QWidget | None, title: str, text: str, *, confirm_label: str,
                  cancel_label: str = "Cancel", destructive: bool = False,
                  live: Callable[[], str] | None = None) -> bool:
    """Ask a yes/no question; True only when the operator pressed the confirm button.

    Cancel is the default button, so a stray Enter never triggers a destructive action. `live`
    gives a line (a quote) that is re-read while the dialog is open, so a price in a
    confirmation is never a frozen one."""
    box = QMessageBox(parent)
    box.setObjectName("confirmDialog")
    box.setWindowTitle(title)
    box.setIcon(QMessageBox.Icon.Warning if destructive else QMessageBox.Icon.Question)
    box.setText(text)
    if live is not None:
        box.setInformativeText(live())
        timer = QTimer(box)
        timer.setInterval(LIVE_REFRESH_MS)
        timer.timeout.connect(lambda: box.setInformativeText(live()))
        timer.start()
    accept = box.addButton(confirm_label, QMessageBox.ButtonRole.AcceptRole)
    accept.setObjectName("confirmButton")
    cancel = box.addButton(cancel_label, QMessageBox.ButtonRole.RejectRole)
    cancel.setObjectName("cancelButton")
    box.setDefaultButton(cancel)
    box.setEscapeButton(cancel)
    await run_dialog(box)
    return box.clickedButton() is accept


async def inform(parent: QWidget | None, title: str, text: str, *, level: str = "info",
                 details: str | None = None) -> None:
    """Show a message the operator must acknowledge (level: info | warning | error)."""
    box = QMessageBox(parent)
    box.setObjectName("informDialog")
    box.setWindowTitle(title)
    box.setIcon(_ICONS[level])
    box.setText(text)
    if details:
        box.setDetailedText(details)
    box.setStandardButtons(QMessageBox.StandardButton.Ok)
    await run_dialog(box)


async def show_problems(parent: QWidget | None, title: str, heading: str,
                        problems: list[str]) -> None:
    """An error with a list of `field: what is wrong` lines. Field names are never broken
    across lines (rich text with no-wrap names) and the box is wide enough for them."""
    items = []
    for problem in problems:
        field, sep, rest = problem.partition(": ")
        if sep and " " not in field:
            items.append(f'<li><b style="white-space: nowrap">{html.escape(field)}</b>: '
                         f"{html.escape(rest)}</li>")
        else:
            items.append(f"<li>{html.escape(problem)}</li>")
    box = QMessageBox(parent)
    box.setObjectName("problemsDialog")
    box.setWindowTitle(title)
    box.setIcon(QMessageBox.Icon.Critical)
    box.setTextFormat(Qt.TextFormat.RichText)
    box.setText(f"<p>{html.escape(heading)}</p><ul>{''.join(items)}</ul>")
    box.setStyleSheet("QLabel { min-width: 520px; }")
    box.setStandardButtons(QMessageBox.StandardButton.Ok)
    await run_dialog(box)


async def choose_open_file(parent: QWidget | None, caption: str, name_filter: str,
                           directory: str = "") -> Path | None:
    """Let the operator pick an existing file; None when cancelled."""
    dialog = QFileDialog(parent, caption, directory, name_filter)
    dialog.setObjectName("openFileDialog")
    dialog.setFileMode(QFileDialog.FileMode.ExistingFile)
    dialog.setAcceptMode(QFileDialog.AcceptMode.AcceptOpen)
    return _selected(dialog, await run_dialog(dialog))


async def choose_save_file(parent: QWidget | None, caption: str, name_filter: str,
                           default_path: str, suffix: str) -> Path | None:
    """Let the operator choose where to write a file; None when cancelled."""
    dialog = QFileDialog(parent, caption, str(Path(default_path).parent), name_filter)
    dialog.setObjectName("saveFileDialog")
    dialog.setAcceptMode(QFileDialog.AcceptMode.AcceptSave)
    dialog.setDefaultSuffix(suffix)
    dialog.selectFile(Path(default_path).name)
    return _selected(dialog, await run_dialog(dialog))


def _selected(dialog: QFileDialog, result: int) -> Path | None:
    if result != QDialog.DialogCode.Accepted:
        return None
    files = dialog.selectedFiles()
    return Path(files[0]) if files else None
