"""The window's controls do what they say: Stop, Pause's meaning, the replay clock, quitting
with a position, live quotes in confirmations, and the operator's own actions acknowledged
without alarm. Over the REAL engine replaying a small generated sample (paper venue)."""
from __future__ import annotations

import asyncio
import logging

import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QKeySequence
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QMessageBox

from ui import dialogs
from window_helpers import (SLOW, answer_dialogs, capture_messages, click,
                            freeze_on_first_entry, until)

pytestmark = pytest.mark.gui


async def open_position(window) -> None:
    freeze_on_first_entry(window.engine)
    await window.start_engine()
    await until(lambda: window.engine.status().open_trade is not None, "a position opens")


# ----- Stop -----------------------------------------------------------------------------------
async def test_stop_keeps_the_open_position_and_says_so(window, monkeypatch):
    asked = answer_dialogs(monkeypatch, True)
    await open_position(window)
    trade = window.engine.status().open_trade
    click(window.control_bar.stop_button)
    await window.wait_idle()
    assert window.engine.run_state == "STOPPED"
    assert window.engine.status().open_trade.id == trade.id
    assert "is kept" in asked[0] and "next Start" in asked[0]


async def test_stop_without_a_position_stops_at_once(window, monkeypatch):
    asked = answer_dialogs(monkeypatch, True)
    window.engine.pacer.set_paused(True)        # the replay holds its first bar: no position can open
    await window.start_engine()
    await until(lambda: window.control_bar.stop_button.isEnabled(), "stop usable")
    click(window.control_bar.stop_button)
    await window.wait_idle()
    assert window.engine.run_state == "STOPPED" and asked == []
    await until(lambda: window.control_bar.start_button.isEnabled(), "start offered again")


async def test_stop_when_nothing_runs_is_refused_with_the_reason(window, monkeypatch):
    shown = capture_messages(monkeypatch)
    await window.stop_trading()
    assert shown == [("Stop refused", "nothing to stop: the engine is STOPPED")]


async def test_cancelled_stop_keeps_trading(window, monkeypatch):
    answer_dialogs(monkeypatch, False)
    await open_position(window)
    await window.stop_trading()
    assert window.engine.run_state == "RUNNING"


# ----- Pause means no new entries -------------------------------------------------------------
async def test_pause_tells_the_operator_it_means_no_new_entries(window):
    await window.start_engine()
    await until(lambda: window.control_bar.pause_button.isEnabled(), "pause usable")
    assert "no new entries" in window.control_bar.pause_button.toolTip()
    click(window.control_bar.pause_button)
    await window.wait_idle()
    await until(lambda: "no new entries" in window.statusBar().currentMessage(),
                "the status bar says what PAUSED means")
    assert "replay keeps playing" in window.statusBar().currentMessage()


# ----- the replay clock -----------------------------------------------------------------------
async def test_pause_replay_holds_the_bars_and_step_delivers_exactly_one(window):
    pacer = window.engine.pacer
    window.set_replay_speed(40.0)
    await window.start_engine()
    await until(lambda: pacer.position > 10, "bars arrive")
    click(window.replay_bar.play_button)
    assert pacer.paused and window.replay_bar.play_button.text() == "Play replay"
    held = pacer.position
    await asyncio.sleep(0.3)                 # at 40 bars/s a running clock would deliver ~12
    assert pacer.position == held
    click(window.replay_bar.step_button)
    await until(lambda: pacer.position == held + 1, "one more bar")
    await asyncio.sleep(0.3)
    assert pacer.position == held + 1
    click(window.replay_bar.play_button)
    assert not pacer.paused
    await until(lambda: pacer.position > held + 2, "the replay goes on")


async def test_replay_progress_reads_bar_n_of_total(window):
    pacer = window.engine.pacer
    window.set_replay_speed(40.0)
    await window.start_engine()
    await until(lambda: pacer.position > 5, "bars arrive")
    window.set_replay_clock_paused(True)
    window.refresh_replay()
    assert window.replay_bar.progress_label.text() == \
        f"bar {pacer.position:,} of {pacer.total:,}"
    assert window.replay_bar.slider.value() == pacer.position


async def test_dragging_the_slider_forward_runs_there_and_holds(window):
    pacer = window.engine.pacer
    window.set_replay_speed(2.0)
    await window.start_engine()
    await until(lambda: pacer.position >= 1, "a bar arrives")
    slider = window.replay_bar.slider
    target = pacer.position + 400
    slider.setValue(target)
    slider.sliderReleased.emit()
    await until(lambda: pacer.position == target, "the replay reaches the target", limit_s=120)
    assert pacer.paused and window.replay_bar.play_button.text() == "Play replay"
    await asyncio.sleep(0.3)
    assert pacer.position == target                    # held exactly there
    assert window.engine.replay_speed == 2.0           # the chosen pace is unchanged


async def test_space_pauses_and_resumes_the_replay_clock(window):
    pacer = window.engine.pacer
    assert window.replay_play_action.shortcut() == QKeySequence("Space")
    window.activateWindow()
    await until(lambda: window.isActiveWindow(), "window active")
    QTest.keyClick(window, Qt.Key.Key_Space)
    assert pacer.paused
    QTest.keyClick(window, Qt.Key.Key_Space)
    assert not pacer.paused


async def test_half_a_bar_per_second_is_offered(window):
    combo = window.replay_bar.speed_combo
    combo.activated.emit(combo.findText("0.5 bar/s"))
    assert window.engine.replay_speed == 0.5


# ----- quitting with a position ---------------------------------------------------------------
async def test_quitting_with_a_position_asks_and_cancel_keeps_the_window(window, monkeypatch):
    asked = answer_dialogs(monkeypatch, False)
    await open_position(window)
    window.close()
    await until(lambda: window._quit_question is None, "the question answered")
    assert window.isVisible() and window.engine.run_state == "RUNNING"
    assert "stays open" in asked[0] and "next Start or launch" in asked[0]


async def test_quitting_with_a_position_offers_cancel_as_the_default(window):
    await open_position(window)
    window.close()
    await until(lambda: window.findChild(QMessageBox, "confirmDialog") is not None, "asked")
    box = window.findChild(QMessageBox, "confirmDialog")
    assert box.defaultButton().objectName() == "cancelButton"
    assert box.findChild(type(box.defaultButton()), "confirmButton").text() == \
        "Quit, keep position"
    box.reject()
    await until(lambda: window._quit_question is None, "cancelled")
    assert window.isVisible()


async def test_confirmed_quit_with_a_position_closes_and_keeps_it(window, monkeypatch):
    answer_dialogs(monkeypatch, True)
    await open_position(window)
    trade = window.engine.status().open_trade
    window.close()
    assert await window.wait_closed() == 0
    from persistence.store import Store

    store = Store(window.engine.paths.db)
    try:
        assert store.open_trade().id == trade.id
    finally:
        store.close()


async def test_quitting_flat_asks_nothing(window, monkeypatch):
    asked = answer_dialogs(monkeypatch, True)
    await window.start_engine()
    window.close()
    assert await window.wait_closed() == 0
    assert asked == []


# ----- confirmations quote a live price, and the fill is reported against it -------------------
async def test_manual_close_dialog_quote_follows_the_market(window):
    await open_position(window)
    task = window.manual_close()
    await until(lambda: window.findChild(QMessageBox, "confirmDialog") is not None, "asked")
    box = window.findChild(QMessageBox, "confirmDialog")
    first = box.informativeText()
    assert first.startswith("Quote now: ")
    window.engine.pacer.speed = 20.0                  # the market moves while the dialog is up
    await until(lambda: box.informativeText() != first, "the quote updates")
    box.reject()
    await task


async def test_manual_close_reports_the_fill_against_the_quote(window, monkeypatch):
    from ui.panels.style import format_price

    answer_dialogs(monkeypatch, True)
    await open_position(window)
    await until(lambda: window.position_panel.close_button.isEnabled(), "manual close usable")
    quote = window.engine.status().last_price
    click(window.position_panel.close_button)
    await window.wait_idle()
    (trade,) = window.engine.store.closed_trades(limit=1)
    await until(lambda: "filled at" in window.statusBar().currentMessage(), "fill reported")
    message = window.statusBar().currentMessage()
    assert message.startswith(f"Manual close filled at {format_price(trade.exit_price)} "
                              f"against a quote of {format_price(quote)}")
    assert "bps" in message


# ----- the operator's own actions are not alarms ---------------------------------------------
async def test_operator_actions_raise_info_toasts_not_warnings(window, monkeypatch):
    answer_dialogs(monkeypatch, True)
    await open_position(window)
    await window.manual_close()
    await until(lambda: any("filled at" in t.label.text() for t in window.notifier.toasts),
                "an acknowledgement")
    await window.emergency_stop()
    await until(lambda: window.engine.run_state == "HALTED", "halted")
    window.notifier.toasts and [t.close() for t in window.notifier.toasts]
    await window.clear_halt()
    await until(lambda: any("Halt cleared" in t.label.text() for t in window.notifier.toasts),
                "clear halt acknowledged")
    await asyncio.sleep(0.2)                          # the log pump delivers the engine's lines
    for toast in window.notifier.toasts:
        if "Halt cleared" in toast.label.text() or "halt cleared" in toast.label.text():
            assert toast.levelno == logging.INFO


async def test_start_and_other_commands_are_logged_at_info(window):
    logging.getLogger("ui").setLevel(logging.INFO)      # as the app's logging set-up does
    await window.start_engine()
    await until(lambda: "operator: Start" in window.log_viewer.visible_text(),
                "the operator's Start in the log")


async def test_the_halt_reason_is_elided_with_the_full_text_in_a_tooltip(window, monkeypatch):
    answer_dialogs(monkeypatch, True)
    await window.start_engine()
    await window.emergency_stop()
    await until(lambda: window.control_bar.reason_label.isVisible(), "reason shown")
    label = window.control_bar.reason_label
    assert label.toolTip() == label.text() and "emergency stop" in label.text()
