"""trades.db: the agent's authoritative record (orders, trades, signals, balance snapshots, meta).

Guarantees, in plain words:
- Writes accumulate in one open transaction; nothing is visible after a crash until commit().
  close() rolls back whatever was not committed, so a clean close equals a crash.
- WAL with synchronous=NORMAL: every commit survives a killed process. commit(durable=True)
  additionally survives power loss (the WAL is fsynced), for order rows written before sending.
- Times are Unix ms in memory and ISO 8601 UTC text in the database ("2025-08-01T12:30:00Z",
  ".123Z" only when the milliseconds are non-zero); the conversion round-trips exactly.
- One writer: the store is used from one thread at a time.
- Never acts on a damaged ledger: opening runs SQLite's quick_check; a file that is not a
  database or fails the check is set aside (renamed `trades.db.corrupt-<UTC time>`, never
  overwritten, its -wal/-shm with it) and StoreCorrupt names where it went. A read-only store
  (status, export) reports the damage and moves nothing.
- A read-only store never creates a file: no trades.db, no -wal, no -shm.
- A data folder belongs to one pair, timeframe and mode (the `identity` row, claimed on first
  use); check_identity refuses any other with DataFolderMismatch naming both.
"""
from __future__ import annotations

import contextlib
import csv
import functools
import json
import logging
import operator
import os
import sqlite3
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from persistence.paths import fsync_dir
from persistence.records import (DataFolderIdentity, OrderRecord, SignalRecord, SnapshotRecord,
                                 Stats, TradeRecord)

log = logging.getLogger(__name__)

SCHEMA_VERSION = 4
FILE_MODE = 0o600                  # trades.db holds the operator's trading history: owner only
_DAY_MS = 86_400_000
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_MS = timedelta(milliseconds=1)


class StoreError(Exception):
    """The store cannot do what was asked: not a trades.db, newer schema, locked, bad row."""


class StoreCorrupt(StoreError):
    """trades.db is not a database or fails SQLite's integrity check. `moved_to` is where the
    damaged file was set aside (None when the store was opened read-only and left it alone)."""

    def __init__(self, path: Path, problem: str, moved_to: Path | None) -> None:
        where = (f"; set aside as {moved_to}" if moved_to is not None
                 else "; nothing was changed")
        super().__init__(f"{path} is damaged ({problem}){where}")
        self.path = path
        self.problem = problem
        self.moved_to = moved_to


class DataFolderMismatch(StoreError):
    """The data folder's ledger belongs to another pair, timeframe or mode than the config."""

    def __init__(self, root: Path, stored: DataFolderIdentity, wanted: DataFolderIdentity) -> None:
        super().__init__(f"data folder {root} belongs to {stored}; this config is for {wanted}. "
                         "Use another --data-dir for it (one folder per pair, timeframe and mode)")
        self.stored = stored
        self.wanted = wanted


_CORRUPT_CODES = {getattr(sqlite3, "SQLITE_CORRUPT", 11), getattr(sqlite3, "SQLITE_NOTADB", 26)}


def _is_corruption(exc: sqlite3.Error) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None:
        return code & 0xFF in _CORRUPT_CODES
    text = str(exc)
    return "not a database" in text or "malformed" in text


def set_aside(path: Path, now: datetime | None = None) -> Path:
    """Rename a damaged trades.db (and its -wal/-shm, which belong to it) to
    `<name>.corrupt-<UTC time>[-n]`, never replacing an earlier one; returns the new path."""
    stamp = (now or datetime.now(timezone.utc)).strftime("%Y%m%dT%H%M%SZ")
    n = 0
    while True:
        target = path.with_name(f"{path.name}.corrupt-{stamp}" + (f"-{n}" if n else ""))
        if not any(Path(f"{target}{s}").exists() for s in ("", "-wal", "-shm")):
            break
        n += 1
    for suffix in ("-wal", "-shm", ""):          # the main file last: it is what we report
        src = Path(f"{path}{suffix}")
        if src.exists():
            os.rename(src, f"{target}{suffix}")
    fsync_dir(path.parent)
    return target


# --- ISO 8601 UTC <-> Unix ms ----------------------------------------------------------------

def iso_from_ms(ts_ms: int) -> str:
    """Unix ms -> "YYYY-MM-DDTHH:MM:SSZ" (".mmmZ" only when ms != 0). Integers only: a float
    time would silently lose precision, so it is refused."""
    try:
        ts = operator.index(ts_ms)
    except TypeError:
        raise StoreError(f"timestamp must be integer Unix ms, got {ts_ms!r}") from None
    secs, ms = divmod(ts, 1000)
    day, second_of_day = divmod(secs, 86_400)
    base = _date_text(day) + _HOUR_MINUTE[second_of_day // 60] + _TWO_DIGITS[second_of_day % 60]
    return f"{base}.{ms:03d}Z" if ms else f"{base}Z"


# iso_from_ms runs for every stored row (a snapshot per bar): the time of day comes from two
# tables and the date from a small cache, ~2x faster than strftime per call, same text.
_TWO_DIGITS = tuple(f"{n:02d}" for n in range(60))
_HOUR_MINUTE = tuple(f"{h:02d}:{m:02d}:" for h in range(24) for m in range(60))


@functools.lru_cache(maxsize=1024)
def _date_text(day: int) -> str:
    """"YYYY-MM-DDT" of the UTC day `day` days after the epoch."""
    return time.strftime("%Y-%m-%dT", time.gmtime(day * 86_400))


def ms_from_iso(text: str) -> int:
    """Inverse of iso_from_ms; exact (integer timedelta arithmetic, no float seconds)."""
    try:
        dt = datetime.fromisoformat(text)
    except (TypeError, ValueError):
        raise StoreError(f"not an ISO 8601 timestamp: {text!r}") from None
    if dt.tzinfo is None:
        raise StoreError(f"timestamp without a UTC designator: {text!r}")
    return (dt - _EPOCH) // _MS


def _opt_iso(ts_ms: int | None) -> str | None:
    return None if ts_ms is None else iso_from_ms(ts_ms)


def _opt_ms(text: str | None) -> int | None:
    return None if text is None else ms_from_iso(text)


def _json_levels(levels: dict[str, float] | None) -> str | None:
    if levels is None:
        return None
    try:
        return json.dumps(levels, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise StoreError(f"fib_levels is not a JSON object of finite numbers: {exc}") from None


def _levels_from_json(text: str | None) -> dict[str, float] | None:
    return None if text is None else json.loads(text)


# --- schema -----------------------------------------------------------------------------------

_SCHEMA_V1 = """
CREATE TABLE trades (
    id                INTEGER PRIMARY KEY,
    pair              TEXT    NOT NULL,
    side              TEXT    NOT NULL DEFAULT 'long' CHECK (side = 'long'),
    signal_timestamp  TEXT    NOT NULL,
    entry_timestamp   TEXT    NOT NULL,
    entry_price       REAL    NOT NULL,
    entry_reference   REAL    NOT NULL,
    amount            REAL    NOT NULL,
    entry_fee         REAL    NOT NULL,
    mode              TEXT    NOT NULL CHECK (mode IN ('paper', 'testnet', 'live')),
    fib_target_level  REAL,
    target_price      REAL,
    tp_price          REAL,
    stop_price        REAL,
    risk_stop         REAL,
    swing_high        REAL,
    swing_low         REAL,
    status            TEXT    NOT NULL CHECK (status IN ('open', 'closed')),
    exit_timestamp    TEXT,
    exit_price        REAL,
    exit_reference    REAL,
    exit_fee          REAL    NOT NULL DEFAULT 0,
    exit_reason       TEXT,
    bars_held         INTEGER NOT NULL DEFAULT 0,
    pnl               REAL,
    pnl_percent       REAL,
    created_at        TEXT    NOT NULL,
    updated_at        TEXT    NOT NULL,
    CONSTRAINT closed_trade_complete CHECK (status = 'open' OR (exit_timestamp IS NOT NULL
        AND exit_price IS NOT NULL AND pnl IS NOT NULL AND pnl_percent IS NOT NULL))
);
-- Single pair, long only: at most one open trade. A second one is a double entry.
CREATE UNIQUE INDEX trades_one_open ON trades (status) WHERE status = 'open';
CREATE INDEX trades_exit_timestamp ON trades (exit_timestamp) WHERE status = 'closed';

CREATE TABLE orders (
    id                 INTEGER PRIMARY KEY,
    client_order_id    TEXT    NOT NULL UNIQUE,
    trade_id           INTEGER REFERENCES trades (id),
    purpose            TEXT    NOT NULL CHECK (purpose IN ('entry', 'exit')),
    side               TEXT    NOT NULL CHECK (side IN ('buy', 'sell')),
    type               TEXT    NOT NULL CHECK (type IN ('market', 'limit', 'stop')),
    amount             REAL    NOT NULL,
    limit_price        REAL,
    stop_price         REAL,
    expected_price     REAL,
    fill_price         REAL,
    filled_amount      REAL    NOT NULL DEFAULT 0,
    fee                REAL    NOT NULL DEFAULT 0,
    status             TEXT    NOT NULL CHECK (status IN
                           ('new', 'open', 'filled', 'canceled', 'rejected', 'unknown')),
    exchange_order_id  TEXT,
    reason             TEXT,
    created_timestamp  TEXT    NOT NULL,
    updated_timestamp  TEXT
);
CREATE INDEX orders_unresolved ON orders (status) WHERE status IN ('new', 'open', 'unknown');
CREATE INDEX orders_trade_id ON orders (trade_id);

CREATE TABLE signals (
    id              INTEGER PRIMARY KEY,
    bar_timestamp   TEXT NOT NULL,
    close           REAL NOT NULL,
    ema_fast        REAL NOT NULL,
    ema_slow        REAL NOT NULL,
    vol_z           REAL NOT NULL,
    tr_z            REAL NOT NULL,
    cloc            REAL NOT NULL,
    fib_swing_high  REAL,
    fib_levels      TEXT,
    target_price    REAL,
    action          TEXT NOT NULL CHECK (action IN ('ENTERED', 'SKIPPED')),
    reason          TEXT NOT NULL
);

-- peak_equity / max_drawdown_percent are running values up to and including the row, so
-- stats() reads the drawdown from the last row instead of scanning every snapshot.
CREATE TABLE balance_snapshots (
    id                    INTEGER PRIMARY KEY,
    timestamp             TEXT NOT NULL,
    balance               REAL NOT NULL,
    equity                REAL NOT NULL,
    unrealized_pnl        REAL NOT NULL,
    position_amount       REAL NOT NULL,
    price                 REAL,
    peak_equity           REAL NOT NULL,
    max_drawdown_percent  REAL NOT NULL
);

CREATE TABLE meta (
    key    TEXT PRIMARY KEY,
    value  TEXT NOT NULL
) WITHOUT ROWID;

-- One row rewritten by commit(durable=True): a tiny write committed under synchronous=FULL
-- fsyncs the WAL, and with it every commit before it.
CREATE TABLE durable_barrier (
    id   INTEGER PRIMARY KEY CHECK (id = 1),
    seq  INTEGER NOT NULL
);
"""

# v2: exit orders rest at the venue as one group (one-cancels-the-other).
_SCHEMA_V2 = "ALTER TABLE orders ADD COLUMN group_id TEXT;"

# v3: the data folder's identity, claimed on first use: one pair, one timeframe, one mode.
_SCHEMA_V3 = """
CREATE TABLE identity (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    pair       TEXT NOT NULL,
    timeframe  TEXT NOT NULL,
    mode       TEXT NOT NULL CHECK (mode IN ('paper', 'testnet', 'live')),
    claimed_at TEXT NOT NULL
);
"""

# v4: the live feed's health checks per UTC day, so connection uptime survives restarts.
_SCHEMA_V4 = """
CREATE TABLE link_checks (
    day    TEXT PRIMARY KEY,          -- YYYY-MM-DD (UTC)
    checks INTEGER NOT NULL CHECK (checks >= 0),
    up     INTEGER NOT NULL CHECK (up >= 0 AND up <= checks)
);
"""

_MIGRATIONS: dict[int, str] = {1: _SCHEMA_V1, 2: _SCHEMA_V2, 3: _SCHEMA_V3, 4: _SCHEMA_V4}   # target version -> script from version - 1


# --- row mapping: (column, record attribute, encode, decode) ---------------------------------

Codec = tuple[str, str, Callable[[Any], Any] | None, Callable[[Any], Any] | None]

_TRADE_COLUMNS: tuple[Codec, ...] = (
    ("pair", "pair", None, None),
    ("signal_timestamp", "signal_ts", iso_from_ms, ms_from_iso),
    ("entry_timestamp", "entry_ts", iso_from_ms, ms_from_iso),
    ("entry_price", "entry_price", None, None),
    ("entry_reference", "entry_reference", None, None),
    ("amount", "amount", None, None),
    ("entry_fee", "entry_fee", None, None),
    ("mode", "mode", None, None),
    ("fib_target_level", "fib_target_level", None, None),
    ("target_price", "target_price", None, None),
    ("tp_price", "tp_price", None, None),
    ("stop_price", "stop_price", None, None),
    ("risk_stop", "risk_stop", None, None),
    ("swing_high", "swing_high", None, None),
    ("swing_low", "swing_low", None, None),
    ("status", "status", None, None),
    ("exit_timestamp", "exit_ts", _opt_iso, _opt_ms),
    ("exit_price", "exit_price", None, None),
    ("exit_reference", "exit_reference", None, None),
    ("exit_fee", "exit_fee", None, None),
    ("exit_reason", "exit_reason", None, None),
    ("bars_held", "bars_held", None, None),
    ("pnl", "pnl", None, None),
    ("pnl_percent", "pnl_percent", None, None),
)

_ORDER_COLUMNS: tuple[Codec, ...] = (
    ("client_order_id", "client_order_id", None, None),
    ("trade_id", "trade_id", None, None),
    ("purpose", "purpose", None, None),
    ("side", "side", None, None),
    ("type", "type", None, None),
    ("amount", "amount", None, None),
    ("limit_price", "limit_price", None, None),
    ("stop_price", "stop_price", None, None),
    ("expected_price", "expected_price", None, None),
    ("fill_price", "fill_price", None, None),
    ("filled_amount", "filled_amount", None, None),
    ("fee", "fee", None, None),
    ("status", "status", None, None),
    ("exchange_order_id", "exchange_order_id", None, None),
    ("reason", "reason", None, None),
    ("created_timestamp", "created_ts", iso_from_ms, ms_from_iso),
    ("updated_timestamp", "updated_ts", _opt_iso, _opt_ms),
    ("group_id", "group_id", None, None),
)

_SIGNAL_COLUMNS: tuple[Codec, ...] = (
    ("bar_timestamp", "bar_ts", iso_from_ms, ms_from_iso),
    ("close", "close", None, None),
    ("ema_fast", "ema_fast", None, None),
    ("ema_slow", "ema_slow", None, None),
    ("vol_z", "vol_z", None, None),
    ("tr_z", "tr_z", None, None),
    ("cloc", "cloc", None, None),
    ("fib_swing_high", "fib_swing_high", None, None),
    ("fib_levels", "fib_levels", _json_levels, _levels_from_json),
    ("target_price", "target_price", None, None),
    ("action", "action", None, None),
    ("reason", "reason", None, None),
)

_SNAPSHOT_COLUMNS: tuple[Codec, ...] = (
    ("timestamp", "ts", iso_from_ms, ms_from_iso),
    ("balance", "balance", None, None),
    ("equity", "equity", None, None),
    ("unrealized_pnl", "unrealized_pnl", None, None),
    ("position_amount", "position_amount", None, None),
    ("price", "price", None, None),
)


def _encode(columns: Sequence[Codec], record: Any) -> list[Any]:
    return [getattr(record, attr) if enc is None else enc(getattr(record, attr))
            for _, attr, enc, _ in columns]


def _decoder(cls: type, columns: Sequence[Codec],
             with_id: bool) -> Callable[[Sequence[Any]], Any]:
    def decode(row: Sequence[Any]) -> Any:
        values = row[1:] if with_id else row
        kwargs = {attr: v if dec is None else dec(v)
                  for (_, attr, _, dec), v in zip(columns, values)}
        if with_id:
            kwargs["id"] = row[0]
        return cls(**kwargs)
    return decode


def _names(columns: Sequence[Codec]) -> str:
    return ", ".join(c[0] for c in columns)


def _marks(n: int) -> str:
    return ", ".join("?" * n)


_TRADE_SELECT = f"SELECT id, {_names(_TRADE_COLUMNS)} FROM trades"
_TRADE_INSERT = (f"INSERT INTO trades ({_names(_TRADE_COLUMNS)}, created_at, updated_at) "
                 f"VALUES ({_marks(len(_TRADE_COLUMNS) + 2)})")
_TRADE_UPDATE = (f"UPDATE trades SET {', '.join(c[0] + ' = ?' for c in _TRADE_COLUMNS)}, "
                 f"updated_at = ? WHERE id = ?")
_ORDER_SELECT = f"SELECT {_names(_ORDER_COLUMNS)} FROM orders"
_ORDER_INSERT = (f"INSERT INTO orders ({_names(_ORDER_COLUMNS)}) "
                 f"VALUES ({_marks(len(_ORDER_COLUMNS))})")
_ORDER_UPDATE = (f"UPDATE orders SET {', '.join(c[0] + ' = ?' for c in _ORDER_COLUMNS[1:])} "
                 f"WHERE client_order_id = ?")
_SIGNAL_SELECT = f"SELECT {_names(_SIGNAL_COLUMNS)} FROM signals"
_SIGNAL_INSERT = (f"INSERT INTO signals ({_names(_SIGNAL_COLUMNS)}) "
                  f"VALUES ({_marks(len(_SIGNAL_COLUMNS))})")
_SNAPSHOT_SELECT = f"SELECT {_names(_SNAPSHOT_COLUMNS)} FROM balance_snapshots"
_SNAPSHOT_INSERT = (f"INSERT INTO balance_snapshots ({_names(_SNAPSHOT_COLUMNS)}, peak_equity, "
                    f"max_drawdown_percent) VALUES ({_marks(len(_SNAPSHOT_COLUMNS) + 2)})")

_decode_trade = _decoder(TradeRecord, _TRADE_COLUMNS, with_id=True)
_decode_order = _decoder(OrderRecord, _ORDER_COLUMNS, with_id=False)
_decode_signal = _decoder(SignalRecord, _SIGNAL_COLUMNS, with_id=False)
_decode_snapshot = _decoder(SnapshotRecord, _SNAPSHOT_COLUMNS, with_id=False)


def _sql_errors(method: Callable[..., Any]) -> Callable[..., Any]:
    """Turn any remaining sqlite3 error (locked, disk I/O, full) into a StoreError that names
    the operation and the file, so callers handle one exception type."""
    @functools.wraps(method)
    def wrapper(self: Store, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        except sqlite3.Error as exc:
            raise StoreError(f"{method.__name__} on {self.path} failed: {exc}") from exc
    return wrapper


def _wall_clock_ms() -> int:
    return time.time_ns() // 1_000_000


# --- the store --------------------------------------------------------------------------------

class Store:
    """The one writer of trades.db. See the module docstring for what it guarantees."""

    def __init__(self, path: Path, *, wall_clock_ms: Callable[[], int] = _wall_clock_ms,
                 busy_timeout_s: float = 5.0, read_only: bool = False) -> None:
        """Open or create trades.db. `wall_clock_ms` stamps the trades' created_at/updated_at
        audit columns (when the row was written, real time even in replay); `busy_timeout_s`
        is how long a write waits for another process's write lock before failing.
        `read_only` opens an existing file without creating or changing anything (status,
        export), also in a folder the user can only read.
        Raises StoreCorrupt for a damaged file (set aside unless read-only), StoreError else."""
        self.path = Path(path)
        self.read_only = read_only
        self._closed = False
        self._wall_clock_ms = wall_clock_ms
        created = not self.path.exists()
        if read_only and created:
            raise StoreError(f"no trades.db at {self.path}")
        try:
            self._conn = self._connect(busy_timeout_s)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open {self.path}: {exc}") from exc
        except OSError as exc:
            raise StoreError(f"cannot open {self.path}: {exc.strerror or exc}") from exc
        self._peak: float | None = None
        self._max_dd = 0.0
        self._snapshots: list[SnapshotRecord] = []    # waiting for the next commit
        try:
            self._check_integrity()
            if not read_only:
                self._configure()
                self._migrate()
            else:
                self._refuse_newer()
            self._load_drawdown()
        except sqlite3.Error as exc:   # "database is locked", disk I/O, ...
            self._conn.close()
            if _is_corruption(exc):
                raise self._corrupt(str(exc)) from exc
            raise StoreError(f"cannot use {self.path} as trades.db: {exc}") from exc
        except StoreError:
            self._conn.close()
            raise
        if created:
            with contextlib.suppress(OSError):
                os.chmod(self.path, FILE_MODE)
            fsync_dir(self.path.parent)

    def _connect(self, busy_timeout_s: float) -> sqlite3.Connection:
        if not self.read_only:
            if not self.path.exists():
                # Created owner-only up front: SQLite gives the -wal and -shm the same mode.
                os.close(os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_EXCL, FILE_MODE))
            return sqlite3.connect(self.path, timeout=busy_timeout_s, check_same_thread=False)
        # mode=ro never creates trades.db. Without a -wal (no writer, or a clean shutdown)
        # SQLite would still create -wal/-shm to read a WAL database, so the file is opened
        # immutable: nothing is created and a read-only folder works. With a -wal present
        # (an engine may be writing), the ordinary read-only open sees its commits.
        from urllib.parse import quote

        uri = f"file:{quote(str(self.path.resolve()))}?mode=ro"
        if not Path(f"{self.path}-wal").exists():
            uri += "&immutable=1"
        return sqlite3.connect(uri, uri=True, timeout=busy_timeout_s, check_same_thread=False)

    def _check_integrity(self) -> None:
        rows = self._conn.execute("PRAGMA quick_check").fetchall()
        problems = [line for r in rows if r[0] != "ok" for line in str(r[0]).splitlines()
                    if line.strip() and not line.startswith("*** in database")]
        if any(r[0] != "ok" for r in rows):
            problems = problems or ["not ok"]
            more = f" (+{len(problems) - 1} more)" if len(problems) > 1 else ""
            raise self._corrupt(f"integrity check: {problems[0]}{more}")

    def _corrupt(self, problem: str) -> StoreCorrupt:
        with contextlib.suppress(sqlite3.Error):
            self._conn.close()
        moved = None
        if not self.read_only:
            try:
                moved = set_aside(self.path)
            except OSError as exc:
                problem += f"; could not set it aside: {exc}"
        return StoreCorrupt(self.path, problem, moved)   # logged once, by whoever handles it

    def _refuse_newer(self) -> None:
        version = self._conn.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise StoreError(f"{self.path} has schema version {version}, newer than this "
                             f"agent's {SCHEMA_VERSION}: upgrade the agent")

    def _configure(self) -> None:
        mode = self._conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if mode.lower() != "wal":
            raise StoreError(f"{self.path}: cannot switch to WAL journal (got {mode!r})")
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.execute("PRAGMA foreign_keys=ON")

    def _migrate(self) -> None:
        self._refuse_newer()
        version = self._conn.execute("PRAGMA user_version").fetchone()[0]
        if version == 0:
            tables = self._conn.execute(
                "SELECT count(*) FROM sqlite_master WHERE type = 'table'").fetchone()[0]
            if tables:
                raise StoreError(f"{self.path} is an SQLite file but not a trades.db "
                                 f"(no schema version, {tables} foreign tables)")
        for target in range(version + 1, SCHEMA_VERSION + 1):
            # executescript commits first; the script is its own transaction with the version.
            self._conn.executescript(
                f"BEGIN; {_MIGRATIONS[target]} PRAGMA user_version = {target}; COMMIT;")
            log.info("trades.db %s migrated to schema version %d", self.path, target)

    def _load_drawdown(self) -> None:
        row = self._conn.execute("SELECT peak_equity, max_drawdown_percent FROM balance_snapshots "
                                 "ORDER BY id DESC LIMIT 1").fetchone()
        self._peak, self._max_dd = (row[0], row[1]) if row else (None, 0.0)

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        """Roll back anything not committed (a close equals a crash) and release the file.
        Closing twice is harmless."""
        if self._closed:
            return
        self._closed = True
        self._snapshots.clear()
        self._conn.rollback()
        self._conn.close()

    def commit(self, durable: bool = False) -> None:
        """Commit the open transaction. durable=True also fsyncs the WAL (synchronous=FULL for
        one barrier write), so this and every earlier commit survive power loss."""
        try:
            self._write_snapshots()
            self._conn.commit()
            if durable:
                self._conn.execute("PRAGMA synchronous=FULL")
                try:
                    self._conn.execute(
                        "INSERT INTO durable_barrier (id, seq) VALUES (1, 1) "
                        "ON CONFLICT (id) DO UPDATE SET seq = seq + 1")
                    self._conn.commit()
                finally:
                    self._conn.execute("PRAGMA synchronous=NORMAL")
        except sqlite3.Error as exc:
            self._snapshots.clear()
            self._conn.rollback()
            self._load_drawdown()
            raise StoreError(f"commit to {self.path} failed: {exc}") from exc

    def _write_snapshots(self) -> None:
        """Write the snapshots held back by insert_snapshot, in order, in the open transaction,
        with the running equity peak and max drawdown up to each: one statement per commit
        instead of one per bar (a replay takes one per bar). They become durable with exactly
        the commit they would have ridden along with anyway."""
        if not self._snapshots:
            return
        snaps, self._snapshots = self._snapshots, []
        peak, max_dd = self._peak, self._max_dd
        rows = []
        for snap in snaps:
            equity = snap.equity
            if peak is None or equity > peak:
                peak = equity
            if peak > 0:
                drawdown = (peak - equity) / peak * 100.0
                if drawdown > max_dd:
                    max_dd = drawdown
            rows.append((iso_from_ms(snap.ts), snap.balance, equity, snap.unrealized_pnl,
                         snap.position_amount, snap.price, peak, max_dd))
        self._conn.executemany(_SNAPSHOT_INSERT, rows)
        self._peak, self._max_dd = peak, max_dd

    # --- orders -------------------------------------------------------------------------------

    @_sql_errors
    def insert_order(self, order: OrderRecord) -> None:
        """Record an order before it is sent (invariant 1); the client order id is unique."""
        try:
            self._conn.execute(_ORDER_INSERT, _encode(_ORDER_COLUMNS, order))
        except sqlite3.IntegrityError as exc:
            if "orders.client_order_id" in str(exc):
                raise StoreError(f"duplicate client order id {order.client_order_id!r}") from exc
            raise StoreError(f"order {order.client_order_id!r} rejected: {exc}") from exc

    @_sql_errors
    def update_order(self, order: OrderRecord) -> None:
        """Rewrite every field of the order with this client order id."""
        values = _encode(_ORDER_COLUMNS, order)
        try:
            cur = self._conn.execute(_ORDER_UPDATE, values[1:] + values[:1])
        except sqlite3.IntegrityError as exc:
            raise StoreError(f"order {order.client_order_id!r} update rejected: {exc}") from exc
        if cur.rowcount != 1:
            raise StoreError(f"no order with client order id {order.client_order_id!r}")

    @_sql_errors
    def get_order(self, client_order_id: str) -> OrderRecord | None:
        row = self._conn.execute(f"{_ORDER_SELECT} WHERE client_order_id = ?",
                                 (client_order_id,)).fetchone()
        return None if row is None else _decode_order(row)

    @_sql_errors
    def unresolved_orders(self) -> list[OrderRecord]:
        """Orders whose outcome is not known yet: startup looks each up on the exchange."""
        rows = self._conn.execute(f"{_ORDER_SELECT} WHERE status IN ('new', 'open', 'unknown') "
                                  "ORDER BY id").fetchall()
        return [_decode_order(r) for r in rows]

    @_sql_errors
    def orders_for_trade(self, trade_id: int) -> list[OrderRecord]:
        rows = self._conn.execute(f"{_ORDER_SELECT} WHERE trade_id = ? ORDER BY id",
                                  (trade_id,)).fetchall()
        return [_decode_order(r) for r in rows]

    # --- trades -------------------------------------------------------------------------------

    @_sql_errors
    def insert_trade(self, trade: TradeRecord) -> int:
        """Insert a new trade, set trade.id and return it. At most one trade may be open."""
        if trade.id is not None:
            raise StoreError(f"trade already has id {trade.id}; use update_trade")
        now = iso_from_ms(self._wall_clock_ms())
        try:
            cur = self._conn.execute(_TRADE_INSERT, _encode(_TRADE_COLUMNS, trade) + [now, now])
        except sqlite3.IntegrityError as exc:
            if "trades.status" in str(exc):
                raise StoreError("cannot insert an open trade: another trade is already "
                                 f"open (id {self.open_trade().id})") from exc
            raise StoreError(f"trade rejected: {exc}") from exc
        trade.id = cur.lastrowid
        return trade.id

    @_sql_errors
    def update_trade(self, trade: TradeRecord) -> None:
        """Rewrite every field of the trade with trade.id."""
        if trade.id is None:
            raise StoreError("trade has no id; insert_trade it first")
        now = iso_from_ms(self._wall_clock_ms())
        try:
            cur = self._conn.execute(_TRADE_UPDATE,
                                     _encode(_TRADE_COLUMNS, trade) + [now, trade.id])
        except sqlite3.IntegrityError as exc:
            raise StoreError(f"trade {trade.id} update rejected: {exc}") from exc
        if cur.rowcount != 1:
            raise StoreError(f"no trade with id {trade.id}")

    @_sql_errors
    def open_trade(self) -> TradeRecord | None:
        row = self._conn.execute(f"{_TRADE_SELECT} WHERE status = 'open'").fetchone()
        return None if row is None else _decode_trade(row)

    @_sql_errors
    def closed_trades(self, limit: int | None = None) -> list[TradeRecord]:
        """Closed trades oldest first; with `limit`, only the most recent `limit` of them."""
        return [_decode_trade(r) for r in
                self._tail(f"{_TRADE_SELECT} WHERE status = 'closed'", "id", limit)]

    @_sql_errors
    def closed_trade_count(self) -> int:
        return self._conn.execute("SELECT count(*) FROM trades WHERE status = 'closed'").fetchone()[0]

    def _tail(self, select: str, key: str, limit: int | None) -> list[Sequence[Any]]:
        if limit is None:
            return self._conn.execute(f"{select} ORDER BY {key}").fetchall()
        if limit < 0:
            raise StoreError(f"limit must be >= 0, got {limit}")
        rows = self._conn.execute(f"{select} ORDER BY {key} DESC LIMIT ?", (limit,)).fetchall()
        rows.reverse()
        return rows

    # --- signals and snapshots ----------------------------------------------------------------

    @_sql_errors
    def insert_signal(self, signal: SignalRecord) -> None:
        try:
            self._conn.execute(_SIGNAL_INSERT, _encode(_SIGNAL_COLUMNS, signal))
        except sqlite3.IntegrityError as exc:
            raise StoreError(f"signal at {_opt_iso(signal.bar_ts)} rejected: {exc}") from exc

    @_sql_errors
    def signals(self, limit: int | None = None) -> list[SignalRecord]:
        """Signals oldest first; with `limit`, only the most recent `limit` of them."""
        return [_decode_signal(r) for r in self._tail(_SIGNAL_SELECT, "id", limit)]

    def insert_snapshot(self, snap: SnapshotRecord) -> None:
        """Append a balance snapshot to the open transaction. The record is held in memory and
        written by the next commit() (or a read of the table, whichever comes first), which
        also folds it into the running equity peak and max drawdown; close() without commit
        drops it, as for any write. Snapshots are values: the caller never changes one."""
        if self._closed or self.read_only:
            raise StoreError(f"insert_snapshot on {self.path} failed: the store is "
                             + ("closed" if self._closed else "read-only"))
        if (snap.balance is None or snap.equity is None or snap.unrealized_pnl is None
                or snap.position_amount is None):
            raise StoreError(f"snapshot at {snap.ts} rejected: NOT NULL constraint failed "
                             "(balance, equity, unrealized_pnl and position_amount are required)")
        if type(snap.ts) is not int:                  # what iso_from_ms will accept, checked now
            iso_from_ms(snap.ts)
        self._snapshots.append(snap)

    @_sql_errors
    def last_snapshot(self) -> SnapshotRecord | None:
        self._write_snapshots()
        row = self._conn.execute(f"{_SNAPSHOT_SELECT} ORDER BY id DESC LIMIT 1").fetchone()
        return None if row is None else _decode_snapshot(row)

    # --- meta ---------------------------------------------------------------------------------

    @_sql_errors
    def get_meta(self, key: str) -> str | None:
        row = self._conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else row[0]

    @_sql_errors
    def set_meta(self, key: str, value: str) -> None:
        if not isinstance(value, str):
            raise StoreError(f"meta value for {key!r} must be str, got {type(value).__name__}")
        self._conn.execute("INSERT INTO meta (key, value) VALUES (?, ?) "
                           "ON CONFLICT (key) DO UPDATE SET value = excluded.value", (key, value))

    # --- the data folder's identity --------------------------------------------------------

    @_sql_errors
    def identity(self) -> DataFolderIdentity | None:
        """The pair, timeframe and mode this ledger belongs to; None before first use."""
        if not self._has_table("identity"):
            return None
        row = self._conn.execute("SELECT pair, timeframe, mode FROM identity WHERE id = 1").fetchone()
        return None if row is None else DataFolderIdentity(*row)

    @_sql_errors
    def check_identity(self, wanted: DataFolderIdentity,
                       legacy: DataFolderIdentity | None = None) -> bool:
        """Refuse (DataFolderMismatch) a config for another pair, timeframe or mode than the
        one this ledger belongs to. On first use the folder is claimed for `wanted`, durably;
        a ledger that already holds history but no identity (written before schema 3) is
        judged against `legacy` (what its state.json says) and its trades' pair and mode.
        A folder that never recorded anything may be claimed again for another market.
        Returns True when this call claimed the folder."""
        claimed = self.identity()
        history = self.has_history()
        stored = claimed
        if stored is None and history:
            stored = legacy or self._identity_from_trades(wanted.timeframe)
        if stored == wanted and claimed is not None:
            return False
        if stored is not None and stored != wanted and history:
            raise DataFolderMismatch(self.path.parent, stored, wanted)
        if self.read_only:
            return False
        # First use, or a claimed folder that never recorded anything (claiming it again for
        # another market loses nothing).
        self._conn.execute("INSERT INTO identity (id, pair, timeframe, mode, claimed_at) "
                           "VALUES (1, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET pair = excluded.pair, "
                           "timeframe = excluded.timeframe, mode = excluded.mode, "
                           "claimed_at = excluded.claimed_at",
                           (wanted.pair, wanted.timeframe, wanted.mode,
                            iso_from_ms(self._wall_clock_ms())))
        self.commit(durable=True)
        log.info("data folder %s now belongs to %s", self.path.parent, wanted)
        return True

    def _identity_from_trades(self, timeframe: str) -> DataFolderIdentity | None:
        """A pre-schema-3 ledger knows its pair and mode from its trades (not its timeframe)."""
        row = self._conn.execute("SELECT pair, mode FROM trades ORDER BY id DESC LIMIT 1").fetchone()
        return None if row is None else DataFolderIdentity(row[0], timeframe, row[1])

    @_sql_errors
    def has_history(self) -> bool:
        """True once anything was recorded: a trade, an order, a signal, a snapshot or a
        checkpoint. An empty store beside a state.json that shows history is a lost ledger."""
        if not self._has_table("trades"):
            return False
        self._write_snapshots()
        for table in ("trades", "orders", "signals", "balance_snapshots", "meta"):
            if self._conn.execute(f"SELECT 1 FROM {table} LIMIT 1").fetchone() is not None:
                return True
        return False

    @_sql_errors
    def has_trade(self, trade_id: int) -> bool:
        return self._conn.execute("SELECT 1 FROM trades WHERE id = ?",
                                  (trade_id,)).fetchone() is not None

    def _has_table(self, name: str) -> bool:
        return self._conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?",
                                  (name,)).fetchone() is not None

    # --- reports ------------------------------------------------------------------------------

    @_sql_errors
    def stats(self, now_ms: int) -> Stats:
        """Performance figures from closed trades; 'today' is the UTC day containing now_ms,
        by exit time. A win has pnl > 0, a loss pnl <= 0 (so wins + losses = trades); sharpe is
        None below two trades or when every return is the same (to rounding). A handful of
        aggregate queries: cheap enough to call every second."""
        self._write_snapshots()                       # the drawdown includes the latest ones
        day_start = now_ms - now_ms % _DAY_MS
        day, next_day = iso_from_ms(day_start)[:10], iso_from_ms(day_start + _DAY_MS)[:10]
        # Date-only bounds compare correctly against both ".mmmZ" and "Z" forms of a time.
        t_n, t_w, t_l, t_pnl = self._conn.execute(
            "SELECT count(*), count(*) FILTER (WHERE pnl > 0), count(*) FILTER (WHERE pnl <= 0), "
            "coalesce(sum(pnl), 0.0) FROM trades WHERE status = 'closed' "
            "AND exit_timestamp >= ? AND exit_timestamp < ?", (day, next_day)).fetchone()
        n, wins, pnl, mean, avg_ms = self._conn.execute(
            "SELECT count(*), count(*) FILTER (WHERE pnl > 0), coalesce(sum(pnl), 0.0), "
            "avg(pnl_percent), avg(round((julianday(exit_timestamp) - "
            "julianday(entry_timestamp)) * 86400000.0)) FROM trades WHERE status = 'closed'"
        ).fetchone()
        sharpe = None
        if n >= 2:
            ss = self._conn.execute("SELECT sum((pnl_percent - ?) * (pnl_percent - ?)) FROM "
                                    "trades WHERE status = 'closed'", (mean, mean)).fetchone()[0]
            std = (ss / (n - 1)) ** 0.5
            # Equal returns leave float noise (~1e-17) in std; dividing by it is meaningless.
            sharpe = mean / std if std > 1e-9 * max(1.0, abs(mean)) else None
        return Stats(today_trades=t_n, today_wins=t_w, today_losses=t_l, today_pnl=t_pnl,
                     total_trades=n, total_wins=wins, total_pnl=pnl,
                     max_drawdown_percent=self._max_dd, sharpe=sharpe,
                     avg_duration_minutes=None if avg_ms is None else avg_ms / 60_000.0)

    @_sql_errors
    def kpi_rows(self, since_ms: int | None = None) -> dict[str, list[tuple]]:
        """Raw rows for the operating KPIs (monitoring/kpis.py computes them), oldest first;
        with `since_ms`, only rows at or after it (signals by bar time, orders by creation):
        - "signals": (bar_ms, action, reason) for every signal bar;
        - "fills": (purpose, side, type, expected_price, fill_price, created_ms, updated_ms)
          for every order that filled (wholly or partly);
        - "entries": (signal_bar_ms, order_created_ms) for each entry order that opened a trade;
        - "link": (day_start_ms, checks, up) health checks of the live feed per UTC day (with
          `since_ms`, from the day that holds it).
        Times decoded in Python: ISO text with and without milliseconds does not order as text."""
        signals = [(ms_from_iso(ts), action, reason) for ts, action, reason in self._conn.execute(
            "SELECT bar_timestamp, action, reason FROM signals ORDER BY id")]
        fills = [(purpose, side, typ, expected, fill, ms_from_iso(created), _opt_ms(updated))
                 for purpose, side, typ, expected, fill, created, updated in self._conn.execute(
                     "SELECT purpose, side, type, expected_price, fill_price, created_timestamp, "
                     "updated_timestamp FROM orders WHERE filled_amount > 0 AND fill_price IS NOT NULL "
                     "ORDER BY id")]
        entries = [(ms_from_iso(signal), ms_from_iso(created)) for signal, created in self._conn.execute(
            "SELECT t.signal_timestamp, o.created_timestamp FROM orders o JOIN trades t "
            "ON t.id = o.trade_id WHERE o.purpose = 'entry' AND o.filled_amount > 0 ORDER BY o.id")]
        link = [] if not self._has_table("link_checks") else [   # read-only, an older ledger
            (ms_from_iso(day + "T00:00:00Z"), checks, up) for day, checks, up in self._conn.execute(
                "SELECT day, checks, up FROM link_checks ORDER BY day")]
        if since_ms is not None:
            link = [r for r in link if r[0] + _DAY_MS > since_ms]
            signals = [r for r in signals if r[0] >= since_ms]
            fills = [r for r in fills if r[5] >= since_ms]
            entries = [r for r in entries if r[1] >= since_ms]
        return {"signals": signals, "fills": fills, "entries": entries, "link": link}

    @_sql_errors
    def add_link_checks(self, ts_ms: int, checks: int, up: int) -> None:
        """Count `checks` health checks of the live feed, `up` of them with the link up, on the
        UTC day of `ts_ms`; written in the open transaction (the next commit carries it)."""
        if checks <= 0:
            return
        self._conn.execute(
            "INSERT INTO link_checks (day, checks, up) VALUES (?, ?, ?) "
            "ON CONFLICT (day) DO UPDATE SET checks = checks + excluded.checks, up = up + excluded.up",
            (iso_from_ms(ts_ms)[:10], checks, up))

    @_sql_errors
    def export_trades_csv(self, out: Path, extra_header: Sequence[str] = (),
                          extra: Mapping[int, Sequence[Any]] | None = None) -> int:
        """Write every trade (open and closed), oldest first, with a header row and the
        database's own columns (ISO times). Returns the number of trade rows written.
        `extra_header` columns are appended, filled from `extra[trade id]` (empty if absent).
        Written to a temp file beside `out` and renamed over it only when complete, so a
        failure leaves any earlier file intact. Never onto the ledger itself."""
        out = Path(out)
        ledger = self.path.resolve()
        if out.resolve() in (ledger, Path(f"{ledger}-wal"), Path(f"{ledger}-shm")):
            raise StoreError(f"refusing to write the CSV over the ledger {self.path}")
        cur = self._conn.execute("SELECT * FROM trades ORDER BY id")
        header = [d[0] for d in cur.description]
        blank = [None] * len(extra_header)
        count = 0
        fd, tmp_name = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", newline="", encoding="utf-8") as fh:
                writer = csv.writer(fh)
                writer.writerow(header + list(extra_header))
                for row in cur:   # csv writes None as an empty field and floats by repr
                    more = list((extra or {}).get(row[0], blank)) if extra_header else []
                    if len(more) != len(extra_header):
                        raise StoreError(f"trade {row[0]}: {len(more)} extra values for "
                                         f"{len(extra_header)} extra columns")
                    writer.writerow(list(row) + more)
                    count += 1
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp_name, out)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp_name)
            raise
        fsync_dir(out.parent)
        return count
