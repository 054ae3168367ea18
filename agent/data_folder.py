"""The data folder checked before anything acts on it: every entry (run, demo, the window's
config import, status, export) goes through here, so a wrong or damaged ledger is refused
before a single bar is processed.

Guarantees, in plain words:
- A data folder that cannot be one (a regular file, not writable, its parent missing or not a
  folder) is reported in one line and nothing is created.
- A damaged trades.db (not a database, fails quick_check) is set aside, never reused, and the
  run refused. Read-only commands report it and change nothing.
- A trades.db that knows less than state.json says it should (empty, or its last committed bar
  older than state.json's, or missing the open trade state.json shows) is refused with both
  files named, and neither is rewritten: that is a ledger replaced or restored from an older
  copy, and continuing would restart the account from the wrong balance.
- A data folder belongs to one pair, timeframe and mode; a config for anything else is refused
  naming both (persistence.store.Store.check_identity).
- state.json that the agent cannot read at all (a folder, no permission) fails the start at
  once with the reason; a state.json that is merely corrupt is left to the engine, which sets
  it aside and halts until the operator clears it.
"""
from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent.accounting import Checkpoint
from agent.config import AgentConfig, ConfigError
from data.bar import iso_utc
from persistence.paths import DataDirBusy, DataDirLock, make_private_dir
from persistence.records import DataFolderIdentity
from persistence.store import DataFolderMismatch, Store, StoreError, ms_from_iso

log = logging.getLogger(__name__)

DB_NAME = "trades.db"
STATE_NAME = "state.json"


class DataFolderUnusable(Exception):
    """--data-dir cannot be a data folder (bad input): the message says why."""


class LedgerRefused(Exception):
    """The ledger in the folder must not be acted on (refused for safety): the message names
    the files involved and what the operator can do."""


class StartupFailed(Exception):
    """The start cannot proceed (state.json unreadable by this user, or a folder)."""


class ConfigForOtherFolder(ConfigError):
    """A config for another pair, timeframe or mode than the data folder's ledger. A
    ConfigError, so the window's config import shows it like any rejected config."""


def identity_of(config: AgentConfig, mode: str) -> DataFolderIdentity:
    """The identity a session claims: the config's pair and timeframe, and the mode of the
    venue that actually executes (a replay trades on paper whatever the config says)."""
    return DataFolderIdentity(config.exchange.trading_pair, config.timeframe, mode)


def check_config_fits_folder(store: Store, config: AgentConfig, mode: str) -> None:
    """For the window's config import (Engine.import_config): refuse a config for another
    pair, timeframe or mode than the ledger's, before anything is adopted."""
    try:
        store.check_identity(identity_of(config, mode))
    except DataFolderMismatch as exc:
        raise ConfigForOtherFolder(str(exc)) from None


def prepare_data_dir(root: Path) -> bool:
    """Make sure `root` can be a data folder: create it owner-only (0700) if absent, refuse a
    regular file, a missing or non-folder parent, or a folder this user cannot write.
    Returns True when the folder was created now (a new data folder)."""
    root = Path(root)
    if root.exists() and not root.is_dir():
        raise DataFolderUnusable(f"--data-dir {root} is a file, not a folder")
    created = not root.exists()
    if created:
        try:
            make_private_dir(root)
        except OSError as exc:
            raise DataFolderUnusable(f"cannot create data folder {root}: "
                                     f"{exc.strerror or exc}") from None
    elif not os.access(root, os.W_OK | os.X_OK):
        raise DataFolderUnusable(f"data folder {root} is not writable by this user "
                                 "(status and export-trades still work on it)")
    return created


def read_state_document(path: Path) -> dict[str, Any] | None:
    """state.json as a dict without touching it; None if absent or not a JSON object (the
    engine sets such a file aside and halts). Unreadable at all: StartupFailed."""
    try:
        raw = Path(path).read_bytes()
    except FileNotFoundError:
        return None
    except IsADirectoryError:
        raise StartupFailed(f"{path} is a folder, not a file: move it away and start again") from None
    except OSError as exc:
        raise StartupFailed(f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        doc = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None


def _legacy_identity(state: dict[str, Any] | None) -> DataFolderIdentity | None:
    if not state:
        return None
    pair, timeframe, mode = state.get("pair"), state.get("timeframe"), state.get("mode")
    if all(isinstance(v, str) and v for v in (pair, timeframe, mode)):
        return DataFolderIdentity(pair, timeframe, mode)
    return None


def check_store_against_state(store: Store, state: dict[str, Any] | None, state_path: Path) -> None:
    """Refuse a ledger that is behind the mirror written after it (LedgerRefused)."""
    if not state:
        return
    behind: list[str] = []
    last_bar = state.get("last_bar")
    if isinstance(last_bar, str):
        try:
            mirror_ts = ms_from_iso(last_bar)
        except StoreError:
            mirror_ts = None
        stored_ts = Checkpoint.load(store).last_bar_ts if store.has_history() else None
        if mirror_ts is not None and (stored_ts is None or stored_ts < mirror_ts):
            behind.append(f"its last bar is {last_bar}" if stored_ts is None else
                          f"its last bar is {last_bar}, the ledger's {iso_utc(stored_ts)}")
    position = state.get("open_position")
    if isinstance(position, dict) and isinstance(position.get("trade_id"), int) \
            and not store.has_trade(position["trade_id"]):
        behind.append(f"trade {position['trade_id']} is open")
    if behind:
        what = "is empty" if not store.has_history() else "is older than state.json"
        raise LedgerRefused(
            f"{store.path} {what}: {state_path} says {' and '.join(behind)}. Nothing was changed. "
            f"Put the right trades.db back, or, to start a new ledger here, move both files away")


@dataclass(frozen=True, slots=True)
class Preflight:
    new_folder: bool        # the folder was created by this start
    new_ledger: bool        # there was no trades.db: a new ledger starts here


def preflight(root: Path, wanted: DataFolderIdentity) -> Preflight:
    """Everything a run checks before its engine is built. Raises DataFolderUnusable (bad
    --data-dir), LedgerRefused / DataFolderMismatch / StoreCorrupt / DataDirBusy (refused),
    StartupFailed (state.json unreadable) or StoreError."""
    root = Path(root)
    new_folder = prepare_data_dir(root)
    db, state_path = root / DB_NAME, root / STATE_NAME
    new_ledger = not db.exists() or db.stat().st_size == 0     # a zero-byte file holds nothing
    state = read_state_document(state_path)
    lock = DataDirLock(root)
    lock.acquire()                      # no claim or check while another agent writes here
    try:
        if new_ledger and state and (state.get("last_bar") or state.get("open_position")):
            raise LedgerRefused(f"{db} is missing but {state_path} says this folder has traded "
                                f"(last bar {state.get('last_bar')}). Nothing was changed. Put "
                                "trades.db back, or, to start a new ledger here, move state.json away")
        store = Store(db)
        try:
            check_store_against_state(store, state, state_path)
            store.check_identity(wanted, legacy=_legacy_identity(state))
        finally:
            store.close()
    finally:
        lock.release()
    return Preflight(new_folder, new_ledger)


def open_for_reading(root: Path) -> Store:
    """The ledger for status and export: opened read-only (nothing created, works in a folder
    the user can only read), integrity-checked, and compared with state.json."""
    root = Path(root)
    if root.exists() and not root.is_dir():
        raise DataFolderUnusable(f"--data-dir {root} is a file, not a folder")
    db = root / DB_NAME
    if not db.exists():
        raise DataFolderUnusable(f"no {DB_NAME} in {root}")
    store = Store(db, read_only=True)
    try:
        check_store_against_state(store, read_state_document(root / STATE_NAME), root / STATE_NAME)
    except BaseException:
        store.close()
        raise
    return store


__all__ = ["ConfigForOtherFolder", "DataDirBusy", "DataFolderMismatch", "DataFolderUnusable",
           "LedgerRefused", "Preflight", "StartupFailed", "check_config_fits_folder",
           "check_store_against_state", "identity_of", "open_for_reading", "prepare_data_dir",
           "preflight", "read_state_document"]
