"""The PRD's operating KPIs from the ledger: definitions, thresholds, and where they show."""
from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from monitoring.kpis import Thresholds, compute_kpis, kpis_from_store, timeframe_ms
from persistence.records import DataFolderIdentity, OrderRecord, SignalRecord, TradeRecord
from persistence.store import Store

ROOT = Path(__file__).resolve().parents[1]
T0 = 1_754_051_400_000          # 2025-08-01T12:30:00Z, a 15m bar's open
TF = 15 * 60_000


def _signal(bar_ts: int, action: str, reason: str) -> SignalRecord:
    return SignalRecord(bar_ts=bar_ts, close=100.0, ema_fast=101.0, ema_slow=102.0, vol_z=2.5,
                        tr_z=1.7, cloc=0.8, fib_swing_high=None, fib_levels=None, target_price=None,
                        action=action, reason=reason)


def _order(cid: str, *, side="buy", type_="market", purpose="entry", expected=100.0, fill=100.0,
           created=T0, updated=None, trade_id=None, filled=1.0) -> OrderRecord:
    return OrderRecord(client_order_id=cid, trade_id=trade_id, side=side, type=type_, amount=1.0,
                       created_ts=created, status="filled" if filled else "rejected", purpose=purpose,
                       expected_price=expected, fill_price=fill if filled else None,
                       filled_amount=filled, updated_ts=updated)


@pytest.fixture
def store(tmp_path):
    s = Store(tmp_path / "trades.db")
    s.check_identity(DataFolderIdentity("BTC/USDT", "15m", "live"))
    yield s
    s.close()


def _trade(store: Store, signal_ts: int, entry_ts: int) -> int:
    return store.insert_trade(TradeRecord(pair="BTC/USDT", signal_ts=signal_ts, entry_ts=entry_ts,
                                          entry_price=100.0, entry_reference=100.0, amount=1.0,
                                          entry_fee=0.0, mode="live", status="closed", exit_ts=entry_ts + 1,
                                          exit_price=101.0, pnl=1.0, pnl_percent=1.0))


def test_timeframes_parse():
    assert timeframe_ms("15m") == TF and timeframe_ms("4h") == 4 * 3_600_000
    assert timeframe_ms("1d") == 86_400_000 and timeframe_ms("fortnight") is None


def test_an_empty_ledger_has_no_values_and_no_warnings(store):
    report = kpis_from_store(store)
    assert report.warnings == []
    assert all(k.value is None for k in report.kpis)
    assert "no health check recorded yet" in report.get("uptime").line()
    assert [k.name for k in report.kpis] == ["execution_rate", "slippage", "fill_time", "uptime",
                                            "detection_latency"]


def test_execution_rate_counts_missed_signals_and_ignores_rule_skips(store):
    for i in range(9):
        store.insert_signal(_signal(T0 + i * TF, "ENTERED", f"trade {i}"))
    store.insert_signal(_signal(T0 + 9 * TF, "SKIPPED", "entry order rejected: insufficient balance"))
    store.insert_signal(_signal(T0 + 10 * TF, "SKIPPED", "in position"))
    store.insert_signal(_signal(T0 + 11 * TF, "SKIPPED", "risk check: size below the minimum"))
    store.commit()
    rate = kpis_from_store(store).get("execution_rate")
    assert rate.value == pytest.approx(90.0) and not rate.breached   # 9 of 10, exactly at 90%
    assert "9 of 10" in rate.text and "2 skipped by rule" in rate.text
    store.insert_signal(_signal(T0 + 12 * TF, "SKIPPED", "stale: the bar after the signal has passed"))
    store.commit()
    rate = kpis_from_store(store).get("execution_rate")
    assert rate.value == pytest.approx(900 / 11) and rate.breached
    assert rate.line().endswith("WARNING: below 90%")


def test_slippage_is_adverse_positive_over_market_and_stop_fills_only(store):
    tid = _trade(store, T0, T0 + TF)
    store.insert_order(_order("e1", expected=100.0, fill=100.1, trade_id=tid))            # buy +0.1%
    store.insert_order(_order("x1", side="sell", type_="stop", purpose="exit", expected=100.0,
                              fill=99.7, trade_id=tid))                                    # sell +0.3%
    store.insert_order(_order("x2", side="sell", type_="limit", purpose="exit", expected=100.0,
                              fill=100.5, trade_id=tid))                                   # limit: ignored
    store.insert_order(_order("e2", expected=100.0, fill=None, filled=0))                  # never filled
    store.commit()
    slip = kpis_from_store(store).get("slippage")
    assert slip.samples == 2
    assert slip.value == pytest.approx(0.2) and slip.worst == pytest.approx(0.3)
    assert slip.breached and "WARNING: average above 0.1%" in slip.line()
    loose = kpis_from_store(store, thresholds=Thresholds(max_avg_slippage_pct=0.25))
    assert not loose.get("slippage").breached


def test_fill_time_is_market_orders_submit_to_fill(store):
    tid = _trade(store, T0, T0 + TF)
    store.insert_order(_order("e1", created=T0 + TF, updated=T0 + TF + 2_000, trade_id=tid))
    store.insert_order(_order("x1", side="sell", purpose="exit", created=T0 + 2 * TF,
                              updated=T0 + 2 * TF + 10_000, trade_id=tid))
    store.insert_order(_order("x2", side="sell", type_="limit", purpose="exit", created=T0,
                              updated=T0 + 3_600_000, trade_id=tid))   # a resting limit: not a fill time
    store.commit()
    fill = kpis_from_store(store).get("fill_time")
    assert fill.samples == 2 and fill.value == pytest.approx(6.0) and fill.worst == pytest.approx(10.0)
    assert fill.breached


def test_detection_latency_is_candle_close_to_the_entry_order(store):
    tid = _trade(store, T0, T0 + TF + 500)
    store.insert_order(_order("e1", created=T0 + TF + 300, updated=T0 + TF + 500, trade_id=tid))
    store.commit()
    lat = kpis_from_store(store).get("detection_latency")
    assert lat.value == pytest.approx(0.3) and not lat.breached
    tid2 = _trade(store, T0 + 4 * TF, T0 + 5 * TF + 5_000)
    store.insert_order(_order("e2", created=T0 + 5 * TF + 2_700, updated=T0 + 5 * TF + 5_000, trade_id=tid2))
    store.commit()
    lat = kpis_from_store(store).get("detection_latency")
    assert lat.value == pytest.approx(1.5) and lat.worst == pytest.approx(2.7) and lat.breached


def test_uptime_is_the_share_of_health_checks_with_the_link_up_and_warns_below_99(store):
    store.add_link_checks(T0, 100, 99)
    store.add_link_checks(T0 + 60_000, 100, 98)        # same UTC day: added up
    store.commit()
    up = kpis_from_store(store).get("uptime")
    assert up.value == pytest.approx(98.5) and up.breached and up.samples == 200
    assert "98.5% of 200 health checks (3 with the link down)" in up.line()
    store.add_link_checks(T0 + 86_400_000, 800, 800)   # the next day, all up
    store.commit()
    assert not kpis_from_store(store).get("uptime").breached
    today = kpis_from_store(store, since_ms=T0 + 86_400_000 + 3_600_000).get("uptime")
    assert today.value == pytest.approx(100.0) and today.samples == 800


def test_since_limits_the_window(store):
    store.insert_signal(_signal(T0, "SKIPPED", "entry order canceled: expired"))
    store.insert_signal(_signal(T0 + 100 * TF, "ENTERED", "trade 1"))
    store.commit()
    assert kpis_from_store(store).get("execution_rate").value == pytest.approx(50.0)
    assert kpis_from_store(store, since_ms=T0 + TF).get("execution_rate").value == pytest.approx(100.0)


@pytest.mark.slow
def test_status_shows_the_kpis_for_a_folder_it_can_only_read(tmp_path, sample_csv):
    data = tmp_path / "d"
    run = subprocess.run([sys.executable, "-m", "agent", "--config", str(ROOT / "config.json"),
                          "--data-dir", str(data), "--no-gui", "--replay", str(sample_csv), "--speed", "max"],
                         cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    modes = {p: p.stat().st_mode for p in [data, *data.rglob("*")]}
    try:
        for p in modes:
            p.chmod(stat.S_IMODE(modes[p]) & ~0o222)
        status = subprocess.run([sys.executable, "-m", "agent", "status", "--data-dir", str(data)],
                                cwd=ROOT, capture_output=True, text=True, timeout=120)
    finally:
        for p, m in modes.items():
            p.chmod(stat.S_IMODE(m))
    assert status.returncode == 0, status.stderr
    out = status.stdout
    assert "execution rate: 100%" in out or "execution rate: 100.0%" in out, out
    assert "slippage: average +0.050%" in out, out          # the config's 5 bp on market fills
    assert "fill time: average 0.00 s" in out and "connection uptime: no health check recorded yet" in out
    assert "detection latency: average 0.00 s" in out
    assert "WARNING" not in out
