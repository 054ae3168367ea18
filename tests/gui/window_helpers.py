"""Helpers shared by the window tests: a real replay engine, clicks, and the dialog seams."""
from __future__ import annotations

import asyncio
from collections.abc import Callable

from PySide6.QtCore import Qt

from agent.config import default_config
from agent.engine import Engine
from agent.events import PositionOpened
from agent.session import replay_session
from ui import dialogs

SLOW = 0.02        # bars per second: effectively frozen while a test looks at an open position


async def until(condition: Callable[[], bool], what: str, limit_s: float = 60.0) -> None:
    """Let the shared loop run until `condition` holds (the limit only stops a hung test)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit_s
    while not condition():
        if loop.time() > deadline:
            raise AssertionError(f"never happened: {what}")
        await asyncio.sleep(0.02)


def make_engine(tmp_path, sample_csv, speed: float | None = None) -> Engine:
    return replay_session(default_config(), tmp_path / "data", sample_csv, speed)


def click(button) -> None:
    from pytestqt.qtbot import QtBot

    QtBot.mouseClick(button, Qt.MouseButton.LeftButton)


def answer_dialogs(monkeypatch, answer: bool) -> list[str]:
    """Replace the one confirmation seam; returns the questions asked."""
    asked: list[str] = []

    async def confirm(parent, title, text, **kwargs) -> bool:
        asked.append(text)
        return answer

    monkeypatch.setattr(dialogs, "confirm", confirm)
    return asked


def capture_messages(monkeypatch) -> list[tuple[str, str]]:
    shown: list[tuple[str, str]] = []

    async def inform(parent, title, text, **kwargs) -> None:
        shown.append((title, text))

    monkeypatch.setattr(dialogs, "inform", inform)
    return shown


def freeze_on_first_entry(engine: Engine) -> None:
    """Slow the replay to a crawl the moment a position opens, so it stays open."""
    def on_event(event) -> None:
        if isinstance(event, PositionOpened):
            engine.pacer.speed = SLOW
    engine.bus.subscribe(on_event)


