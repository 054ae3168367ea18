"""The window's second step before real money: OK stays disabled until the exact pair is typed,
Cancel is the default, and the dialog says what is at stake."""
from __future__ import annotations

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QDialogButtonBox, QLabel

from tests.conftest import make_config
from ui.live_confirm import LiveConfirmDialog

pytestmark = pytest.mark.gui


@pytest.fixture
def dialog(qtbot):
    config = make_config(exchange={"paper_trading": False, "testnet": False},
                         risk_management={"max_daily_loss_percent": 3.0})
    d = LiveConfirmDialog(config)
    qtbot.addWidget(d)
    return d


def test_ok_is_enabled_only_by_the_exact_pair(dialog, qtbot):
    assert not dialog.ok.isEnabled()
    qtbot.keyClicks(dialog.typed, "BTC/USD")
    assert not dialog.ok.isEnabled()
    qtbot.keyClicks(dialog.typed, "T")
    assert dialog.ok.isEnabled()
    dialog.ok.click()
    assert dialog.result() == LiveConfirmDialog.DialogCode.Accepted


def test_enter_cancels_by_default_and_the_risks_are_listed(dialog, qtbot):
    cancel = dialog.buttons.button(QDialogButtonBox.StandardButton.Cancel)
    assert cancel.isDefault() and not dialog.ok.isDefault()
    text = " ".join(label.text() for label in dialog.findChildren(QLabel))
    assert "REAL money" in text and "3% loss" in text and "BTC/USDT" in text
    qtbot.keyClick(dialog, Qt.Key.Key_Escape)
    assert dialog.result() == LiveConfirmDialog.DialogCode.Rejected
