"""`trading-agent backup --data-dir DIR --to PATH`: a consistent copy of the data folder while
the agent runs.

Each SQLite database (trades.db, paper_venue.db) is copied with SQLite's online backup API,
which reads a consistent snapshot even while the engine writes (WAL mode), then checked with
`PRAGMA integrity_check`. state.json and config.json are copied as files (both are replaced by
atomic renames, so a copy is always one whole version). Logs and the lock file are not copied.
The backup folder is created 0700 and its files 0600: it holds the ledger.

Restore: stop the agent, move the data folder aside, copy the backup folder's files into a new
data folder (chmod 700 on it), start the agent; it resumes from the restored ledger and
reconciles resting orders by client order id as after any restart."""
from __future__ import annotations

import os
import shutil
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

from persistence.paths import fsync_dir

DATABASES = ("trades.db", "paper_venue.db")
FILES = ("state.json", "config.json")


class BackupError(Exception):
    """The backup could not be made (the message says why); nothing partial is left claimed."""


@dataclass
class BackupResult:
    target: Path
    copied: list[str] = field(default_factory=list)
    checks: dict[str, str] = field(default_factory=dict)

    def summary(self) -> list[str]:
        lines = [f"backup written to {self.target}"]
        for name in self.copied:
            check = self.checks.get(name)
            lines.append(f"  {name}" + (f" (integrity_check: {check})" if check else ""))
        return lines


def _copy_database(source: Path, target: Path) -> str:
    src = sqlite3.connect(f"file:{source}?mode=ro", uri=True, timeout=30)
    try:
        dst = sqlite3.connect(target)
        try:
            src.backup(dst, pages=256)        # steps, so the writer is never blocked for long
            dst.execute("PRAGMA journal_mode=DELETE")   # one self-contained file
            dst.commit()
            result = dst.execute("PRAGMA integrity_check").fetchone()[0]
        finally:
            dst.close()
    finally:
        src.close()
    if result != "ok":
        raise BackupError(f"the copy of {source.name} failed its integrity check: {result}")
    return result


def backup(data_dir: Path, to: Path) -> BackupResult:
    data_dir, to = Path(data_dir), Path(to)
    if not (data_dir / "trades.db").is_file():
        raise BackupError(f"no trades.db in {data_dir}: is this the agent's data folder?")
    if to.exists() and (not to.is_dir() or any(to.iterdir())):
        raise BackupError(f"{to} already exists and is not an empty folder; choose a new path")
    if to.resolve() == data_dir.resolve() or data_dir.resolve() in to.resolve().parents:
        raise BackupError("the backup must go outside the data folder")
    to.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(to, 0o700)
    result = BackupResult(to)
    try:
        for name in DATABASES:
            if (data_dir / name).is_file():
                result.checks[name] = _copy_database(data_dir / name, to / name)
                result.copied.append(name)
        for name in FILES:
            if (data_dir / name).is_file():
                shutil.copyfile(data_dir / name, to / name)
                result.copied.append(name)
        for name in result.copied:
            os.chmod(to / name, 0o600)
            with open(to / name, "rb") as fh:
                os.fsync(fh.fileno())
        fsync_dir(to)
    except (OSError, sqlite3.Error) as exc:
        raise BackupError(f"backup to {to} failed: {exc}") from None
    return result
