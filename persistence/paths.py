"""Where the agent keeps its files: one data folder holding trades.db, state.json and logs/."""
from __future__ import annotations

import contextlib
import os
from pathlib import Path

import platformdirs

APP_NAME = "trading-agent"
DIR_MODE = 0o700      # the data folder holds the trading history: owner only
FILE_MODE = 0o600


def make_private_dir(path: Path) -> None:
    """Create `path` (and missing parents) owner-only; an existing folder is left as it is."""
    path = Path(path)
    if path.is_dir():
        return
    path.mkdir(parents=True, mode=DIR_MODE, exist_ok=True)
    os.chmod(path, DIR_MODE)          # mkdir's mode is filtered by the umask


def default_data_dir() -> Path:
    """The platform's per-user data folder (e.g. ~/.local/share/trading-agent on Linux)."""
    return Path(platformdirs.user_data_dir(APP_NAME, appauthor=False))


class DataDir:
    """The files under one data folder; the folder and logs/ are created (owner only) on
    construction."""

    def __init__(self, root: Path | None = None) -> None:
        self.root = Path(root) if root is not None else default_data_dir()
        make_private_dir(self.root)
        make_private_dir(self.logs)

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


class DataDirBusy(Exception):
    """Another agent process holds this data folder: two engines on one store would both trade."""


class DataDirLock:
    """An exclusive, non-blocking OS lock on DATA_DIR/agent.lock, held while an engine runs.
    The OS releases it when the process dies, so a crash never leaves a stale lock."""

    def __init__(self, root: Path) -> None:
        self.path = Path(root) / "agent.lock"
        self._fh = None

    def acquire(self) -> None:
        fh = os.fdopen(os.open(self.path, os.O_RDWR | os.O_CREAT, FILE_MODE), "a+")
        try:
            _lock(fh)
        except OSError:
            fh.seek(0)
            holder = fh.read().strip() or "unknown"
            fh.close()
            raise DataDirBusy(f"another agent (pid {holder}) is using {self.path.parent}; "
                              "stop it first or choose another --data-dir") from None
        fh.seek(0)
        fh.truncate()
        fh.write(str(os.getpid()))
        fh.flush()
        self._fh = fh

    def release(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None


def _lock(fh) -> None:
    try:
        import fcntl
    except ImportError:                      # Windows
        import msvcrt

        fh.seek(0)
        msvcrt.locking(fh.fileno(), msvcrt.LK_NBLCK, 1)
        return
    fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
