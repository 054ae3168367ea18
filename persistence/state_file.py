"""state.json: a human-readable mirror of the engine's state (trades.db is authoritative).

Written atomically (temp file in the same directory, fsync, os.replace, fsync of the directory)
so a reader sees either the old or the new file, never a mix. A file that cannot be read back
as a JSON object is never overwritten: it is moved aside to `<name>.corrupt-<n>` (n never
reused) and reported, so the operator can inspect it before the engine trades again."""
from __future__ import annotations

import contextlib
import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Any

from persistence.paths import fsync_dir

log = logging.getLogger(__name__)


class StateFileError(Exception):
    """state.json cannot be used: the state is not JSON, or the file on disk is corrupt."""


class StateFileCorrupt(StateFileError):
    """state.json was corrupt or truncated; the message names the file and where it went."""

    def __init__(self, path: Path, moved_to: Path, problem: str) -> None:
        super().__init__(f"{path} is corrupt ({problem}); moved aside to {moved_to}")
        self.path = path
        self.moved_to = moved_to
        self.problem = problem


def write_state(path: Path, state: dict[str, Any]) -> None:
    """Replace `path` with `state` as JSON (indent 2, sorted keys), durably and atomically.
    A state that is not plain JSON (objects, NaN) raises StateFileError; a disk failure raises
    the OSError itself, after removing the temp file, and leaves the previous file intact."""
    path = Path(path)
    try:
        text = json.dumps(state, indent=2, sort_keys=True, allow_nan=False) + "\n"
    except (TypeError, ValueError) as exc:
        raise StateFileError(f"state for {path} is not JSON-serialisable: {exc}") from None
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp_name, path)
    except OSError:
        with contextlib.suppress(OSError):
            os.unlink(tmp_name)
        raise
    fsync_dir(path.parent)


def read_state(path: Path) -> dict[str, Any] | None:
    """The state in `path`, or None when there is none. Corrupt, truncated or not a JSON
    object: the file is moved aside and StateFileCorrupt is raised."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    try:
        state = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        problem = "empty file" if not raw.strip() else f"invalid JSON: {exc}"
        raise _set_aside(path, problem) from None
    if not isinstance(state, dict):
        raise _set_aside(path, f"top level is {type(state).__name__}, not an object")
    return state


def _set_aside(path: Path, problem: str) -> StateFileCorrupt:
    """Move the bad file to the first free `<name>.corrupt-<n>` and build the error."""
    n = 1
    while True:
        target = path.with_name(f"{path.name}.corrupt-{n}")
        try:
            os.link(path, target)   # fails if target exists: an earlier copy is never replaced
        except FileExistsError:
            n += 1
            continue
        except OSError:             # no hard links on this filesystem
            if target.exists():
                n += 1
                continue
            os.rename(path, target)
            break
        os.unlink(path)
        break
    fsync_dir(path.parent)
    error = StateFileCorrupt(path, target, problem)
    log.error("%s", error)
    return error
