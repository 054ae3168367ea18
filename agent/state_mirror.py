"""state.json, the human-readable mirror of the store, kept as the first subscriber of the
engine's events: it is rewritten before any other subscriber hears of a state change, so what
the window, the log and the alerts report is always what state.json already says."""
from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from agent.events import EngineStateChanged, Event
from persistence.state_file import StateFileError, write_state

log = logging.getLogger(__name__)


class StateMirror:
    def __init__(self, path: Path, document: Callable[[], dict | None]) -> None:
        self.path = path
        self._document = document

    def on_event(self, event: Event) -> None:
        if type(event) is EngineStateChanged:         # a final class; most events are not
            self.write()

    def write(self) -> None:
        document = self._document()
        if document is None:
            return
        try:
            write_state(self.path, document)
        except (OSError, StateFileError) as exc:
            log.error("could not write %s: %s (the store is still authoritative)", self.path, exc)
