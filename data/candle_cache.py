"""Closed exchange candles cached in SQLite, so a restart fetches only what is missing.

Its own file in the data folder (candles.db), apart from the trading store: the cache can be
deleted at any time and is rebuilt from the exchange. Only validated, CLOSED candles are
written; a candle once stored is final (a later write of the same candle is ignored unless
it differs, which is logged: an exchange rewriting history is worth knowing about).
"""
from __future__ import annotations

import logging
import sqlite3
from collections.abc import Iterable
from pathlib import Path

from data.bar import Bar, iso_utc

log = logging.getLogger(__name__)

CANDLE_CACHE_FILE = "candles.db"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS candles (
    exchange   TEXT NOT NULL,
    symbol     TEXT NOT NULL,
    timeframe  TEXT NOT NULL,
    ts         INTEGER NOT NULL,
    open       REAL NOT NULL,
    high       REAL NOT NULL,
    low        REAL NOT NULL,
    close      REAL NOT NULL,
    volume     REAL NOT NULL,
    PRIMARY KEY (exchange, symbol, timeframe, ts)
) WITHOUT ROWID;
"""


class CandleCache:
    """One SQLite file of candles keyed by (exchange, symbol, exchange timeframe, open time)."""

    def __init__(self, path: Path | str, exchange: str = "") -> None:
        self.path = Path(path) if str(path) != ":memory:" else path
        self.exchange = exchange
        self._conn = sqlite3.connect(str(path), check_same_thread=False)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")   # a lost tail is re-fetched, not lost
        self._conn.executescript(_SCHEMA)

    def load(self, symbol: str, timeframe: str, start_ts: int, end_ts: int) -> list[Bar]:
        """Stored candles with start_ts <= ts < end_ts, oldest first."""
        rows = self._conn.execute(
            "SELECT ts, open, high, low, close, volume FROM candles WHERE exchange = ? AND "
            "symbol = ? AND timeframe = ? AND ts >= ? AND ts < ? ORDER BY ts",
            (self.exchange, symbol, timeframe, start_ts, end_ts)).fetchall()
        return [Bar(*row) for row in rows]

    def store(self, symbol: str, timeframe: str, bars: Iterable[Bar]) -> int:
        """Insert closed candles; returns how many were new."""
        bars = list(bars)
        if not bars:
            return 0
        before = self._conn.total_changes
        cur = self._conn.executemany(
            "INSERT OR IGNORE INTO candles VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [(self.exchange, symbol, timeframe, b.ts, b.open, b.high, b.low, b.close, b.volume)
             for b in bars])
        del cur
        added = self._conn.total_changes - before
        if added < len(bars):
            self._report_rewrites(symbol, timeframe, bars)
        self._conn.commit()
        return added

    def count(self, symbol: str, timeframe: str) -> int:
        return self._conn.execute(
            "SELECT COUNT(*) FROM candles WHERE exchange = ? AND symbol = ? AND timeframe = ?",
            (self.exchange, symbol, timeframe)).fetchone()[0]

    def close(self) -> None:
        self._conn.close()

    def _report_rewrites(self, symbol: str, timeframe: str, bars: list[Bar]) -> None:
        stored = {b.ts: b for b in self.load(symbol, timeframe, bars[0].ts, bars[-1].ts + 1)}
        for bar in bars:
            old = stored.get(bar.ts)
            if old is not None and old != bar:
                log.warning("%s %s candle %s changed at the exchange after it closed: cached %s, "
                            "now %s (the cached one is kept)", symbol, timeframe, iso_utc(bar.ts),
                            old, bar)
