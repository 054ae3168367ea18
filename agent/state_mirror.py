"""state.json, the human-readable mirror of the store. The engine rewrites it on every commit
that changed a state, after the commit and before that commit's events are published, so what
the window, the log and the alerts report is always what state.json already says."""
from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from persistence.state_file import StateFileError, write_state

log = logging.getLogger(__name__)


class StateMirror:
    def __init__(self, path: Path, document: Callable[[], dict | None]) -> None:
        self.path = path
        self._document = document

    def write(self) -> None:
        document = self._document()
        if document is None:
            return
        try:
            write_state(self.path, document)
        except (OSError, StateFileError) as exc:
            log.error("could not write %s: %s (the store is still authoritative)", self.path, exc)
