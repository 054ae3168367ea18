"""trades.db: schema, round trips, transaction semantics, crash safety, stats, CSV export."""
from __future__ import annotations

import csv
import dataclasses
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from persistence.records import OrderRecord, SignalRecord, SnapshotRecord, TradeRecord
from persistence.records import DataFolderIdentity
from persistence.store import (SCHEMA_VERSION, DataFolderMismatch, Store, StoreCorrupt, StoreError,
                               iso_from_ms, ms_from_iso)

REPO = Path(__file__).resolve().parents[1]
T0 = 1_754_051_400_000          # 2025-08-01T12:30:00Z
MIN = 60_000
WALL = 1_800_000_000_123        # fixed wall clock for the audit columns


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "trades.db"


@pytest.fixture
def store(db_path: Path):
    s = Store(db_path, wall_clock_ms=lambda: WALL)
    yield s
    s.close()


def make_order(cid: str = "ta-E1-1", **kw) -> OrderRecord:
    return OrderRecord(client_order_id=cid, trade_id=None, side="buy", type="market",
                       amount=0.5, created_ts=T0, **kw)


def make_trade(**kw) -> TradeRecord:
    fields = dict(pair="BTC/USDT", signal_ts=T0, entry_ts=T0 + 15 * MIN, entry_price=100.25,
                  entry_reference=100.0, amount=0.5, entry_fee=0.05, mode="paper")
    fields.update(kw)
    return TradeRecord(**fields)


def closed_trade(entry_ts: int, exit_ts: int, pnl: float, pnl_percent: float) -> TradeRecord:
    return make_trade(entry_ts=entry_ts, signal_ts=entry_ts - 15 * MIN, status="closed",
                      exit_ts=exit_ts, exit_price=101.0, exit_reason="FIB_61.8", pnl=pnl,
                      pnl_percent=pnl_percent)


def make_signal(bar_ts: int = T0, **kw) -> SignalRecord:
    fields = dict(bar_ts=bar_ts, close=99.5, ema_fast=101.0, ema_slow=102.0, vol_z=2.5,
                  tr_z=1.7, cloc=0.8, fib_swing_high=110.0,
                  fib_levels={"0.382": 103.82, "0.5": 105.0, "0.618": 106.18},
                  target_price=106.18, action="ENTERED", reason="signal")
    fields.update(kw)
    return SignalRecord(**fields)


def snap(ts: int, equity: float) -> SnapshotRecord:
    return SnapshotRecord(ts=ts, balance=equity, equity=equity, unrealized_pnl=0.0,
                          position_amount=0.0, price=None)


def columns(path: Path, table: str) -> set[str]:
    with sqlite3.connect(path) as conn:
        return {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}


# --- schema -----------------------------------------------------------------------------------

def test_trades_table_has_every_trade_column(store: Store, db_path: Path) -> None:
    assert columns(db_path, "trades") >= {
        "id", "pair", "side", "signal_timestamp", "entry_timestamp", "entry_price",
        "entry_reference", "amount", "entry_fee", "mode", "fib_target_level", "target_price",
        "tp_price", "stop_price", "risk_stop", "swing_high", "swing_low", "status",
        "exit_timestamp", "exit_price", "exit_reference", "exit_fee", "exit_reason", "bars_held",
        "pnl", "pnl_percent", "created_at", "updated_at"}


def test_orders_table_has_every_order_column(store: Store, db_path: Path) -> None:
    assert columns(db_path, "orders") >= {
        "client_order_id", "trade_id", "purpose", "side", "type", "amount", "limit_price",
        "stop_price", "expected_price", "fill_price", "filled_amount", "fee", "status",
        "exchange_order_id", "reason", "created_timestamp", "updated_timestamp"}


def test_signals_table_has_every_signal_column(store: Store, db_path: Path) -> None:
    assert columns(db_path, "signals") >= {
        "bar_timestamp", "close", "ema_fast", "ema_slow", "vol_z", "tr_z", "cloc",
        "fib_swing_high", "fib_levels", "target_price", "action", "reason"}


def test_balance_snapshots_table_has_every_snapshot_column(store: Store, db_path: Path) -> None:
    assert columns(db_path, "balance_snapshots") >= {
        "id", "timestamp", "balance", "equity", "unrealized_pnl", "position_amount", "price"}


def test_new_store_records_the_schema_version(store: Store, db_path: Path) -> None:
    with sqlite3.connect(db_path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION


def test_store_uses_wal_journal(store: Store, db_path: Path) -> None:
    with sqlite3.connect(db_path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_newer_schema_is_refused(db_path: Path) -> None:
    Store(db_path).close()
    with sqlite3.connect(db_path) as conn:
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(StoreError, match="newer"):
        Store(db_path)


def test_file_that_is_not_sqlite_is_refused_and_set_aside(db_path: Path) -> None:
    junk = b"this is a text file, not a database" * 100
    db_path.write_bytes(junk)
    with pytest.raises(StoreCorrupt, match="file is not a database") as info:
        Store(db_path)
    assert not db_path.exists(), "the damaged file is moved, never reused or overwritten"
    assert info.value.moved_to.read_bytes() == junk
    assert info.value.moved_to.name.startswith("trades.db.corrupt-")


def test_foreign_sqlite_database_is_refused(db_path: Path) -> None:
    with sqlite3.connect(db_path) as conn:
        conn.execute("CREATE TABLE photos (id INTEGER)")
    with pytest.raises(StoreError, match="not a trades.db"):
        Store(db_path)


def test_closing_twice_is_harmless(db_path: Path) -> None:
    s = Store(db_path)
    s.close()
    s.close()


def test_missing_folder_is_reported(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="cannot open"):
        Store(tmp_path / "absent" / "trades.db")


def test_reopening_keeps_existing_rows(db_path: Path) -> None:
    s = Store(db_path)
    s.insert_order(make_order())
    s.commit()
    s.close()
    s = Store(db_path)
    assert s.get_order("ta-E1-1") is not None
    s.close()


# --- ISO 8601 timestamps ----------------------------------------------------------------------

def test_iso_omits_zero_milliseconds() -> None:
    assert iso_from_ms(T0) == "2025-08-01T12:30:00Z"


def test_iso_shows_non_zero_milliseconds() -> None:
    assert iso_from_ms(T0 + 7) == "2025-08-01T12:30:00.007Z"


def test_iso_refuses_float_timestamps() -> None:
    with pytest.raises(StoreError, match="integer Unix ms"):
        iso_from_ms(1.5e12)


@settings(max_examples=200, deadline=None)
@given(st.integers(min_value=0, max_value=4_102_444_800_000))   # 1970 .. 2100
def test_iso_round_trips_every_millisecond(ts: int) -> None:
    assert ms_from_iso(iso_from_ms(ts)) == ts


@settings(max_examples=300, deadline=None)
@given(st.integers(min_value=-62_135_596_800_000 + 86_400_000, max_value=253_402_300_799_999))
def test_iso_text_is_strftimes_for_every_millisecond(ts: int) -> None:
    secs, ms = divmod(ts, 1000)
    text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs))
    assert iso_from_ms(ts) == (f"{text}.{ms:03d}Z" if ms else f"{text}Z")


def test_timestamps_are_stored_as_iso_text(store: Store, db_path: Path) -> None:
    store.insert_signal(make_signal(bar_ts=T0 + 250))
    store.commit()
    with sqlite3.connect(db_path) as conn:
        assert conn.execute("SELECT bar_timestamp FROM signals").fetchone()[0] == \
            "2025-08-01T12:30:00.250Z"


# --- round trips ------------------------------------------------------------------------------

def test_order_round_trips_every_field(store: Store) -> None:
    trade_id = store.insert_trade(make_trade())
    order = OrderRecord(client_order_id="ta-X1-2", trade_id=trade_id, side="sell", type="limit",
                        amount=0.5, created_ts=T0 + 1, status="filled", purpose="exit",
                        limit_price=110.5, stop_price=95.25, expected_price=110.5,
                        fill_price=110.49, filled_amount=0.5, fee=0.055,
                        exchange_order_id="8812", reason="FIB_61.8", updated_ts=T0 + 999)
    store.insert_order(order)
    assert store.get_order("ta-X1-2") == order


def test_order_with_defaults_round_trips(store: Store) -> None:
    store.insert_order(make_order())
    assert store.get_order("ta-E1-1") == make_order()


def test_missing_order_is_none(store: Store) -> None:
    assert store.get_order("nope") is None


def test_update_order_rewrites_the_order(store: Store) -> None:
    order = make_order()
    store.insert_order(order)
    order.status, order.fill_price, order.filled_amount, order.updated_ts = "filled", 100.2, 0.5, T0 + 5
    store.update_order(order)
    assert store.get_order(order.client_order_id) == order


def test_update_of_unknown_order_names_it(store: Store) -> None:
    with pytest.raises(StoreError, match="ta-ghost-1"):
        store.update_order(make_order("ta-ghost-1"))


def test_duplicate_client_order_id_is_refused_by_name(store: Store) -> None:
    store.insert_order(make_order("ta-E7-1"))
    with pytest.raises(StoreError, match="duplicate client order id 'ta-E7-1'"):
        store.insert_order(make_order("ta-E7-1", status="filled"))


def test_unresolved_orders_are_new_open_and_unknown(store: Store) -> None:
    for i, status in enumerate(["new", "open", "filled", "canceled", "rejected", "unknown"]):
        store.insert_order(make_order(f"c{i}", status=status))
    assert [o.status for o in store.unresolved_orders()] == ["new", "open", "unknown"]


def test_orders_for_trade_lists_only_that_trades_orders(store: Store) -> None:
    first = store.insert_trade(closed_trade(T0, T0 + MIN, 1.0, 1.0))
    second = store.insert_trade(make_trade())
    store.insert_order(dataclasses.replace(make_order("a"), trade_id=first))
    store.insert_order(dataclasses.replace(make_order("b"), trade_id=second))
    store.insert_order(dataclasses.replace(make_order("c"), trade_id=first, purpose="exit"))
    assert [o.client_order_id for o in store.orders_for_trade(first)] == ["a", "c"]


def test_order_pointing_at_a_missing_trade_is_refused(store: Store) -> None:
    with pytest.raises(StoreError, match="FOREIGN KEY"):
        store.insert_order(dataclasses.replace(make_order(), trade_id=42))


def test_insert_trade_sets_and_returns_the_id(store: Store) -> None:
    trade = make_trade()
    trade_id = store.insert_trade(trade)
    assert trade.id == trade_id and store.open_trade().id == trade_id


def test_open_trade_round_trips_every_field(store: Store) -> None:
    trade = make_trade(fib_target_level=0.618, target_price=106.18, tp_price=108.0,
                       stop_price=97.5, risk_stop=97.5, swing_high=110.0, swing_low=94.0,
                       bars_held=3)
    store.insert_trade(trade)
    assert store.open_trade() == trade


def test_closed_trade_round_trips_every_field(store: Store) -> None:
    trade = make_trade(fib_target_level=0.618, target_price=106.18, stop_price=97.5,
                       risk_stop=97.5, swing_high=110.0, swing_low=94.0)
    store.insert_trade(trade)
    trade.status, trade.exit_ts, trade.exit_price, trade.exit_reference = "closed", T0 + 7 * MIN + 3, 106.1, 106.18
    trade.exit_fee, trade.exit_reason, trade.bars_held = 0.053, "FIB_61.8", 12
    trade.pnl, trade.pnl_percent = 2.82, 5.63
    store.update_trade(trade)
    assert store.closed_trades() == [trade] and store.open_trade() is None


def test_update_trade_without_id_is_refused(store: Store) -> None:
    with pytest.raises(StoreError, match="no id"):
        store.update_trade(make_trade())


def test_second_open_trade_is_refused(store: Store) -> None:
    first = store.insert_trade(make_trade())
    with pytest.raises(StoreError, match=f"already open \\(id {first}\\)"):
        store.insert_trade(make_trade())


def test_closed_trade_without_pnl_is_refused(store: Store) -> None:
    trade = make_trade()
    store.insert_trade(trade)
    trade.status, trade.exit_ts, trade.exit_price = "closed", T0 + MIN, 101.0
    with pytest.raises(StoreError, match="closed_trade_complete"):
        store.update_trade(trade)


def test_trade_audit_columns_use_the_wall_clock(store: Store, db_path: Path) -> None:
    store.insert_trade(make_trade())
    store.commit()
    with sqlite3.connect(db_path) as conn:
        assert conn.execute("SELECT created_at, updated_at FROM trades").fetchone() == \
            (iso_from_ms(WALL), iso_from_ms(WALL))


def test_closed_trades_limit_keeps_the_most_recent_oldest_first(store: Store) -> None:
    for i in range(5):
        store.insert_trade(closed_trade(T0 + i * MIN, T0 + i * MIN + 1, float(i), float(i)))
    assert [t.pnl for t in store.closed_trades(limit=2)] == [3.0, 4.0]
    store.insert_trade(make_trade())                   # open: not counted
    assert store.closed_trade_count() == 5


def test_signal_round_trips_with_fib_levels(store: Store) -> None:
    store.insert_signal(make_signal())
    assert store.signals() == [make_signal()]


def test_skipped_signal_without_levels_round_trips(store: Store) -> None:
    sig = make_signal(fib_swing_high=None, fib_levels=None, target_price=None, action="SKIPPED",
                      reason="no Fibonacci levels")
    store.insert_signal(sig)
    assert store.signals() == [sig]


def test_signals_limit_keeps_the_most_recent_oldest_first(store: Store) -> None:
    for i in range(4):
        store.insert_signal(make_signal(bar_ts=T0 + i * 15 * MIN))
    assert [s.bar_ts for s in store.signals(limit=2)] == [T0 + 30 * MIN, T0 + 45 * MIN]


def test_signal_with_unknown_action_is_refused(store: Store) -> None:
    with pytest.raises(StoreError, match="action"):
        store.insert_signal(make_signal(action="MAYBE"))


def test_snapshot_round_trips(store: Store) -> None:
    s = SnapshotRecord(ts=T0 + 1, balance=900.5, equity=1001.25, unrealized_pnl=100.75,
                       position_amount=0.5, price=2002.5)
    store.insert_snapshot(s)
    assert store.last_snapshot() == s


def test_last_snapshot_is_the_latest_inserted(store: Store) -> None:
    store.insert_snapshot(snap(T0, 100.0))
    store.insert_snapshot(snap(T0 + MIN, 101.0))
    assert store.last_snapshot() == snap(T0 + MIN, 101.0)


def test_meta_returns_the_last_value_set(store: Store) -> None:
    assert store.get_meta("halt_reason") is None
    store.set_meta("halt_reason", "daily loss")
    store.set_meta("halt_reason", "")
    assert store.get_meta("halt_reason") == ""


# --- transactions and crash safety ------------------------------------------------------------

def test_uncommitted_work_vanishes_after_close(db_path: Path) -> None:
    s = Store(db_path)
    s.insert_order(make_order())
    s.insert_snapshot(snap(T0, 100.0))
    s.set_meta("last_bar_ts", str(T0))
    s.close()
    s = Store(db_path)
    assert (s.get_order("ta-E1-1"), s.last_snapshot(), s.get_meta("last_bar_ts")) == (None, None, None)
    s.close()


def test_committed_work_survives_reopen(db_path: Path) -> None:
    s = Store(db_path)
    s.insert_order(make_order())
    s.commit(durable=True)
    s.insert_snapshot(snap(T0, 100.0))
    s.commit()
    s.close()
    s = Store(db_path)
    assert s.get_order("ta-E1-1") == make_order() and s.last_snapshot() == snap(T0, 100.0)
    s.close()


def test_snapshots_are_in_the_file_after_the_commit_in_insertion_order(db_path: Path) -> None:
    s = Store(db_path)
    for i in range(5):
        s.insert_snapshot(snap(T0 + i * MIN, 100.0 + i))
    s.commit()
    with sqlite3.connect(db_path) as other:
        rows = other.execute("SELECT id, equity FROM balance_snapshots ORDER BY id").fetchall()
    s.close()
    assert rows == [(i + 1, 100.0 + i) for i in range(5)]


class _CommitFailsOnce:
    """The store's connection, whose next commit fails as a full disk would."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn, self._failed = conn, False

    def commit(self) -> None:
        if not self._failed:
            self._failed = True
            raise sqlite3.OperationalError("database or disk is full")
        self._conn.commit()

    def __getattr__(self, name: str):
        return getattr(self._conn, name)


def test_a_failed_commit_loses_its_snapshots_and_nothing_after_it(db_path: Path) -> None:
    s = Store(db_path)
    s.insert_snapshot(snap(T0, 100.0))
    s.commit()
    real = s._conn
    s._conn = _CommitFailsOnce(real)
    s.insert_snapshot(snap(T0 + MIN, 90.0))
    with pytest.raises(StoreError, match="commit"):
        s.commit()
    s.insert_snapshot(snap(T0 + 2 * MIN, 95.0))
    s.commit()
    s._conn = real
    s.close()
    with sqlite3.connect(db_path) as other:
        equities = [r[0] for r in other.execute("SELECT equity FROM balance_snapshots ORDER BY id")]
    assert equities == [100.0, 95.0]


def test_snapshot_into_a_read_only_or_closed_store_is_refused_at_once(db_path: Path) -> None:
    Store(db_path).close()
    ro = Store(db_path, read_only=True)
    with pytest.raises(StoreError, match="read-only"):
        ro.insert_snapshot(snap(T0, 100.0))
    ro.close()
    with pytest.raises(StoreError, match="closed"):
        ro.insert_snapshot(snap(T0, 100.0))


def test_snapshot_without_equity_is_refused_at_once(store: Store) -> None:
    with pytest.raises(StoreError, match="snapshot"):
        store.insert_snapshot(SnapshotRecord(T0, 100.0, None, 0.0, 0.0, None))  # type: ignore[arg-type]


def test_snapshot_with_a_fractional_time_is_refused_at_once(store: Store) -> None:
    with pytest.raises(StoreError, match="integer Unix ms"):
        store.insert_snapshot(SnapshotRecord(T0 + 0.5, 100.0, 100.0, 0.0, 0.0, None))  # type: ignore[arg-type]


def test_write_blocked_by_another_writer_reports_the_lock(db_path: Path) -> None:
    Store(db_path).close()
    other = sqlite3.connect(db_path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    s = Store(db_path, busy_timeout_s=0.05)
    try:
        with pytest.raises(StoreError, match="insert_order on .*trades.db failed: database is locked"):
            s.insert_order(make_order())
    finally:
        s.close()
        other.execute("ROLLBACK")
        other.close()


def test_durable_commit_runs_under_synchronous_full(store: Store) -> None:
    statements: list[str] = []
    store._conn.set_trace_callback(statements.append)
    store.insert_order(make_order())
    store.commit(durable=True)
    full = statements.index("PRAGMA synchronous=FULL")
    assert "COMMIT" in statements[full:] and statements[-1] == "PRAGMA synchronous=NORMAL"


def test_plain_commit_stays_at_synchronous_normal(store: Store) -> None:
    store.insert_order(make_order())
    store.commit()
    assert store._conn.execute("PRAGMA synchronous").fetchone()[0] == 1   # NORMAL


_CHILD = textwrap.dedent("""
    import sys
    from pathlib import Path
    sys.path.insert(0, sys.argv[2])
    from persistence.records import OrderRecord, SnapshotRecord
    from persistence.store import Store

    store = Store(Path(sys.argv[1]))
    batch = int(store.get_meta("batch") or 0)
    while True:
        batch += 1
        for i in range(50):
            ts = batch * 1000 + i
            store.insert_snapshot(SnapshotRecord(ts, 1000.0 + i, 1000.0 + i, 0.0, 0.0, None))
        store.insert_order(OrderRecord(f"ta-{batch}", None, "buy", "market", 1.0, batch))
        store.set_meta("batch", str(batch))
        store.commit(durable=batch % 3 == 0)
        print(batch, flush=True)
""")


def _run_and_kill(db_path: Path, past_batches: int) -> int:
    """Start a writer, wait until it has committed `past_batches` more batches, SIGKILL it
    mid-flight; return the last batch it reported committed."""
    proc = subprocess.Popen([sys.executable, "-c", _CHILD, str(db_path), str(REPO)],
                            stdout=subprocess.PIPE, text=True)
    try:
        seen = [int(proc.stdout.readline()) for _ in range(past_batches)]
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        proc.stdout.close()
    return seen[-1]


@pytest.mark.slow
@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")
def test_sigkilled_writer_leaves_a_consistent_resumable_store(db_path: Path) -> None:
    for _ in range(3):   # kill, reopen, resume: three times at different instants
        reported = _run_and_kill(db_path, past_batches=20)
        with sqlite3.connect(db_path) as conn:
            assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        s = Store(db_path)
        batch = int(s.get_meta("batch"))
        n_snaps = s._conn.execute("SELECT count(*) FROM balance_snapshots").fetchone()[0]
        n_orders = s._conn.execute("SELECT count(*) FROM orders").fetchone()[0]
        s.close()
        assert batch >= reported                    # everything reported committed is there
        assert (n_snaps, n_orders) == (batch * 50, batch)   # and no half batch


# --- stats ------------------------------------------------------------------------------------

MIDNIGHT = 1_754_092_800_000    # 2025-08-02T00:00:00Z


@pytest.fixture
def traded(store: Store) -> Store:
    """Three closed trades around the 2025-08-02 UTC midnight, one open trade."""
    store.insert_trade(closed_trade(MIDNIGHT - 60 * MIN - 1, MIDNIGHT - 1, 10.0, 2.0))   # yesterday
    store.insert_trade(closed_trade(MIDNIGHT - 30 * MIN, MIDNIGHT, -5.0, -1.0))          # today
    store.insert_trade(closed_trade(MIDNIGHT - 75 * MIN + 500, MIDNIGHT + 15 * MIN + 500, 3.0, 0.5))
    store.insert_trade(make_trade(entry_ts=MIDNIGHT + 20 * MIN))                           # open
    return store


def test_stats_today_counts_trades_exiting_since_utc_midnight(traded: Store) -> None:
    s = traded.stats(MIDNIGHT + 30 * MIN)
    assert (s.today_trades, s.today_wins, s.today_losses, s.today_pnl) == (2, 1, 1, -2.0)


def test_stats_before_midnight_count_the_previous_day(traded: Store) -> None:
    s = traded.stats(MIDNIGHT - 1)
    assert (s.today_trades, s.today_wins, s.today_pnl) == (1, 1, 10.0)


def test_stats_today_includes_an_exit_with_milliseconds_just_after_midnight(store: Store) -> None:
    # "...T00:00:00.500Z" sorts before "...T00:00:00Z" as text: the day bound must not rely on it
    store.insert_trade(closed_trade(MIDNIGHT - MIN, MIDNIGHT + 500, 1.0, 1.0))
    assert store.stats(MIDNIGHT + MIN).today_trades == 1


def test_stats_all_time_counts_closed_trades_only(traded: Store) -> None:
    s = traded.stats(MIDNIGHT + 30 * MIN)
    assert (s.total_trades, s.total_wins, s.total_pnl) == (3, 2, 8.0)


def test_stats_win_rates(traded: Store) -> None:
    s = traded.stats(MIDNIGHT + 30 * MIN)
    assert s.win_rate == pytest.approx(200 / 3) and s.today_win_rate == 50.0


def test_stats_sharpe_is_mean_over_sample_std_of_pnl_percent(traded: Store) -> None:
    # returns 2.0, -1.0, 0.5: mean 0.5, sample std sqrt(4.5 / 2) = 1.5
    assert traded.stats(MIDNIGHT).sharpe == pytest.approx(1 / 3)


def test_stats_average_duration_is_entry_to_exit_in_minutes(traded: Store) -> None:
    assert traded.stats(MIDNIGHT).avg_duration_minutes == pytest.approx(60.0)


def test_stats_sharpe_is_none_below_two_trades(store: Store) -> None:
    store.insert_trade(closed_trade(T0, T0 + MIN, 1.0, 1.0))
    assert store.stats(T0).sharpe is None


def test_stats_sharpe_is_none_when_returns_do_not_vary(store: Store) -> None:
    store.insert_trade(closed_trade(T0, T0 + MIN, 1.0, 1.0))
    store.insert_trade(closed_trade(T0 + 2 * MIN, T0 + 3 * MIN, 1.0, 1.0))
    assert store.stats(T0).sharpe is None


def test_stats_sharpe_is_none_when_equal_returns_leave_rounding_noise(store: Store) -> None:
    for i in range(3):   # the mean of three 0.1s is 0.10000000000000002
        store.insert_trade(closed_trade(T0 + 2 * i * MIN, T0 + (2 * i + 1) * MIN, 0.1, 0.1))
    assert store.stats(T0).sharpe is None


def test_stats_of_an_empty_store_are_zero(store: Store) -> None:
    s = store.stats(T0)
    assert (s.total_trades, s.total_pnl, s.max_drawdown_percent, s.sharpe,
            s.avg_duration_minutes, s.win_rate) == (0, 0.0, 0.0, None, None, None)


def test_stats_max_drawdown_is_the_deepest_peak_to_trough(store: Store) -> None:
    for i, equity in enumerate([100.0, 120.0, 90.0, 110.0, 130.0, 117.0]):
        store.insert_snapshot(snap(T0 + i * MIN, equity))
    assert store.stats(T0).max_drawdown_percent == pytest.approx(25.0)


def test_max_drawdown_survives_reopen(db_path: Path) -> None:
    s = Store(db_path)
    for i, equity in enumerate([100.0, 80.0, 100.0]):
        s.insert_snapshot(snap(T0 + i * MIN, equity))
    s.commit()
    s.close()
    s = Store(db_path)
    s.insert_snapshot(snap(T0 + 3 * MIN, 95.0))
    assert s.stats(T0).max_drawdown_percent == pytest.approx(20.0)
    s.close()


def test_max_drawdown_forgets_uncommitted_snapshots(db_path: Path) -> None:
    s = Store(db_path)
    s.insert_snapshot(snap(T0, 100.0))
    s.commit()
    s.insert_snapshot(snap(T0 + MIN, 50.0))
    s.close()
    s = Store(db_path)
    assert s.stats(T0).max_drawdown_percent == 0.0
    s.close()


@settings(max_examples=100, deadline=None)
@given(st.lists(st.floats(min_value=1.0, max_value=1e6), min_size=1, max_size=40))
def test_max_drawdown_matches_a_brute_force_scan(tmp_path_factory, equities: list[float]) -> None:
    expected = max(max((max(equities[:i + 1]) - e) / max(equities[:i + 1]) * 100
                       for i, e in enumerate(equities)), 0.0)
    s = Store(tmp_path_factory.mktemp("dd") / "trades.db")
    for i, e in enumerate(equities):
        s.insert_snapshot(snap(T0 + i, e))
    assert s.stats(T0).max_drawdown_percent == pytest.approx(expected, rel=1e-12, abs=1e-12)
    s.close()


# --- CSV export -------------------------------------------------------------------------------

def test_export_writes_closed_and_open_trades_with_iso_times(traded: Store, tmp_path: Path) -> None:
    out = tmp_path / "trades.csv"
    assert traded.export_trades_csv(out) == 4
    with open(out, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["status"] for r in rows] == ["closed", "closed", "closed", "open"]
    assert rows[2]["exit_timestamp"] == "2025-08-02T00:15:00.500Z"
    assert rows[3]["exit_timestamp"] == "" and rows[3]["entry_timestamp"] == "2025-08-02T00:20:00Z"


def test_export_keeps_prices_exact(store: Store, tmp_path: Path) -> None:
    store.insert_trade(make_trade(entry_price=0.1 + 0.2))
    out = tmp_path / "trades.csv"
    store.export_trades_csv(out)
    with open(out, newline="", encoding="utf-8") as fh:
        assert float(next(csv.DictReader(fh))["entry_price"]) == 0.1 + 0.2


def test_export_header_lists_every_trades_column(store: Store, db_path: Path, tmp_path: Path) -> None:
    out = tmp_path / "trades.csv"
    assert store.export_trades_csv(out) == 0
    with open(out, newline="", encoding="utf-8") as fh:
        assert set(next(csv.reader(fh))) == columns(db_path, "trades")


def test_export_is_readable_while_the_engine_holds_the_store(store: Store, db_path: Path,
                                                             tmp_path: Path) -> None:
    store.insert_trade(make_trade())
    store.commit()
    store.insert_snapshot(snap(T0, 1.0))           # the engine is mid-batch
    reader = Store(db_path)
    try:
        assert reader.export_trades_csv(tmp_path / "t.csv") == 1
    finally:
        reader.close()



# --- integrity, identity, read-only (issue 9) --------------------------------------------------

def _filled_store(db_path: Path, trades: int = 30) -> None:
    s = Store(db_path, wall_clock_ms=lambda: WALL)
    for i in range(trades):
        s.insert_trade(closed_trade(T0 + i * MIN, T0 + i * MIN + MIN, 1.0, 0.1))
        s.insert_signal(make_signal(T0 + i * MIN, reason="x" * 2000))
    s.commit()
    s.close()


def _overwrite_middle_pages(db_path: Path, pages: int) -> None:
    size = db_path.stat().st_size
    with open(db_path, "r+b") as fh:
        fh.seek(size // 3)
        fh.write(bytes(range(256)) * (pages * 4096 // 256))


def test_overwritten_pages_in_the_middle_are_detected_and_the_file_set_aside(db_path: Path) -> None:
    _filled_store(db_path)
    _overwrite_middle_pages(db_path, 3)
    with pytest.raises(StoreCorrupt) as info:
        Store(db_path)
    assert not db_path.exists() and info.value.moved_to.exists()
    again = Store(db_path)        # the next open starts clean; the damaged copy stays put
    again.close()
    assert info.value.moved_to.exists()


def test_a_truncated_trades_db_is_detected(db_path: Path) -> None:
    _filled_store(db_path)
    data = db_path.read_bytes()
    db_path.write_bytes(data[: len(data) // 2])
    with pytest.raises(StoreCorrupt):
        Store(db_path)


def test_a_read_only_open_reports_damage_and_moves_nothing(db_path: Path) -> None:
    _filled_store(db_path)
    _overwrite_middle_pages(db_path, 3)
    before = sorted(p.name for p in db_path.parent.iterdir())
    with pytest.raises(StoreCorrupt, match="nothing was changed") as info:
        Store(db_path, read_only=True)
    assert info.value.moved_to is None
    assert sorted(p.name for p in db_path.parent.iterdir()) == before


def test_a_read_only_open_creates_no_file(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="no trades.db"):
        Store(tmp_path / "trades.db", read_only=True)
    assert list(tmp_path.iterdir()) == []
    _filled_store(tmp_path / "trades.db", trades=2)
    before = sorted(p.name for p in tmp_path.iterdir())
    ro = Store(tmp_path / "trades.db", read_only=True)
    assert len(ro.closed_trades()) == 2
    ro.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == before, "no -wal/-shm left behind"


def test_a_read_only_open_cannot_write(db_path: Path) -> None:
    _filled_store(db_path, trades=1)
    ro = Store(db_path, read_only=True)
    with pytest.raises(StoreError):
        ro.set_meta("x", "y")
    ro.close()


BTC = DataFolderIdentity("BTC/USDT", "15m", "paper")


def test_a_folder_is_claimed_on_first_use_and_refuses_another_pair_timeframe_or_mode(db_path: Path) -> None:
    s = Store(db_path)
    assert s.check_identity(BTC) is True
    assert s.check_identity(BTC) is False
    s.insert_trade(make_trade())
    s.commit()
    for other in (DataFolderIdentity("ETH/USDT", "15m", "paper"),
                  DataFolderIdentity("BTC/USDT", "1h", "paper"),
                  DataFolderIdentity("BTC/USDT", "15m", "live")):
        with pytest.raises(DataFolderMismatch) as info:
            s.check_identity(other)
        assert str(BTC) in str(info.value) and str(other) in str(info.value)
    s.close()
    reopened = Store(db_path)
    assert reopened.identity() == BTC, "the claim is durable"
    reopened.close()


def test_a_claimed_folder_that_recorded_nothing_can_be_claimed_for_another_market(db_path: Path) -> None:
    s = Store(db_path)
    s.check_identity(BTC)
    eth = DataFolderIdentity("ETH/USDT", "15m", "paper")
    assert s.check_identity(eth) is True
    assert s.identity() == eth
    s.close()


def test_a_pre_schema_3_ledger_is_judged_by_its_trades(db_path: Path) -> None:
    _filled_store(db_path, trades=1)
    with sqlite3.connect(db_path) as conn:        # as written by schema 2
        conn.execute("DROP TABLE link_checks")           # schema 4
        conn.execute("DROP TABLE identity")
        conn.execute("PRAGMA user_version = 2")
    s = Store(db_path)                            # migrates to 3: the table, still unclaimed
    assert s.identity() is None
    with pytest.raises(DataFolderMismatch, match="BTC/USDT"):
        s.check_identity(DataFolderIdentity("ETH/USDT", "15m", "paper"))
    with pytest.raises(DataFolderMismatch, match="ETH/USDT 1h paper"):
        s.check_identity(BTC, legacy=DataFolderIdentity("ETH/USDT", "1h", "paper"))
    assert s.check_identity(BTC) is True
    s.close()


def test_export_never_writes_over_the_ledger(store: Store, db_path: Path) -> None:
    store.insert_trade(make_trade())
    store.commit()
    before = db_path.read_bytes()
    with pytest.raises(StoreError, match="ledger"):
        store.export_trades_csv(db_path)
    assert db_path.read_bytes() == before


def test_a_failed_export_leaves_the_previous_file_and_no_temp_file(store: Store, tmp_path: Path) -> None:
    store.insert_trade(make_trade())
    store.commit()
    out = tmp_path / "out.csv"
    out.write_text("previous export\n")
    with pytest.raises(StoreError, match="extra values"):
        store.export_trades_csv(out, ("a", "b"), {1: (1,)})
    assert out.read_text() == "previous export\n"
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


def test_trades_db_is_created_owner_only(db_path: Path) -> None:
    Store(db_path).close()
    assert db_path.stat().st_mode & 0o777 == 0o600


def test_a_schema_3_ledger_gains_the_health_check_table_and_reads_without_it(db_path: Path) -> None:
    _filled_store(db_path, trades=1)
    with sqlite3.connect(db_path) as conn:        # as written by schema 3
        conn.execute("DROP TABLE link_checks")
        conn.execute("PRAGMA user_version = 3")
    ro = Store(db_path, read_only=True)           # status on an older agent's folder
    assert ro.kpi_rows()["link"] == []
    ro.close()
    s = Store(db_path)                            # migrates to 4
    s.add_link_checks(T0, 3, 2)
    s.commit()
    assert s.kpi_rows()["link"] == [(T0 - T0 % 86_400_000, 3, 2)]
    s.close()
