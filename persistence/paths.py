"""Where the agent keeps its files: one data folder holding trades.db, state.json and logs/."""
from __future__ import annotations

import contextlib
import os
from pathlib import Path

import platformdirs

APP_NAME = "trading-agent"


def default_data_dir() -> Path:
    """The platform's per-user data folder (e.g. ~/.local/share/trading-agent on Linux)."""
    return Path(platformdirs.user_data_dir(APP_NAME, appauthor=False))


class DataDir:
    """The files under one data folder; the folder and logs/ are created on construction."""

    def __init__(self, root: Path | None = None) -> None:
        self.root = Path(root) if root is not None else default_data_dir()
        self.root.mkdir(parents=True, exist_ok=True)
        self.logs.mkdir(exist_ok=True)

    @property
    def db(self) -> Path:
        return self.root / "trades.db"

    @property
    def state(self) -> Path:
        return self.root / "state.json"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    def __repr__(self) -> str:
        return f"DataDir({str(self.root)!r})"


def fsync_dir(directory: Path) -> None:
    """Make a file creation or rename in `directory` durable (POSIX). A no-op where
    directories cannot be opened (Windows, where NTFS journals the entry itself)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        with contextlib.suppress(OSError):   # some filesystems refuse fsync on a directory
            os.fsync(fd)
    finally:
        os.close(fd)
