"""The agent's trade beside the backtest's shadow: each cause on hand-built bars and trades, the
report over a store's trades and signals, and the export-trades shadow columns."""
from __future__ import annotations

import asyncio
import csv
import json
from dataclasses import replace

import numpy as np
import pytest

from agent.backtest_shadow import ShadowSeries, backtest_trades, shadow_trade
from agent.cli import main
from agent.engine import Engine
from agent.session import replay_session
from agent.shadow_compare import (
    SHADOW_EXPORT_COLUMNS, Cause, agent_exit_index, agent_r_multiple, compare_trade, export_row,
    shadow_report,
)
from data.bar import iso_utc
from persistence.records import SignalRecord, TradeRecord
from agent.config import load_config
from tests.conftest import ACTIVE, DEFAULT_CONFIG, make_config
from tests.test_backtest_shadow import BASE, FLAT, series_of

PARAMS = replace(BASE, use_stop_loss=True, use_fib_exits=True)
STOP, TARGET = 90.0, 120.0
TOUCH = (100.0, 101.0, 89.0, 95.0)        # low reaches the stop
GAP = (85.0, 86.0, 84.0, 85.0)            # opens through the stop


def scenario(bar3=TOUCH, bar1=FLAT) -> ShadowSeries:
    """Signal at bar 0, entry at bar 1's open (100); the backtest's stop exit is on bar 3."""
    return series_of([FLAT, bar1, FLAT, bar3, FLAT, FLAT], {0: (TARGET, STOP)})


def paper(series: ShadowSeries, reason: str, exit_bar: int, exit_ref: float, *, slip_bp=5.0,
          fee_bp=5.0, bars_held=None, exit_ts=None, status="closed") -> TradeRecord:
    """A trade as the paper broker fills it: market and stop orders slip, limits do not."""
    amount, entry_ref = 2.0, float(series.open[1])
    entry = entry_ref * (1 + slip_bp / 1e4)
    exit_fill = exit_ref if reason.startswith(("FIB", "TP")) else exit_ref * (1 - slip_bp / 1e4)
    entry_fee, exit_fee = entry * amount * fee_bp / 1e4, exit_fill * amount * fee_bp / 1e4
    pnl = (exit_fill - entry) * amount - entry_fee - exit_fee
    t = TradeRecord(pair="BTC/USDT", signal_ts=int(series.ts[0]), entry_ts=int(series.ts[1]),
                    entry_price=entry, entry_reference=entry_ref, amount=amount, entry_fee=entry_fee,
                    mode="paper", target_price=TARGET, stop_price=STOP, risk_stop=STOP, id=7)
    if status == "open":
        return t
    t.status, t.exit_reason, t.exit_reference, t.exit_price = "closed", reason, exit_ref, exit_fill
    t.exit_ts = int(series.ts[exit_bar]) if exit_ts is None else exit_ts
    t.exit_fee, t.pnl, t.pnl_percent = exit_fee, pnl, pnl / (entry * amount) * 100
    t.bars_held = exit_bar - 1 if bars_held is None else bars_held
    return t


def compare(series: ShadowSeries, trade: TradeRecord):
    return compare_trade(series, trade, shadow_trade(series, 0, PARAMS), PARAMS)


def test_same_decision_with_the_backtests_own_costs_is_same():
    series = scenario()
    c = compare(series, paper(series, "STOP", 3, STOP))
    assert c.cause is Cause.SAME
    assert c.exit_diff_bps == pytest.approx(-5.0)          # the stop order slipped 5 bps
    assert abs(c.pnl_diff_bps) < 0.01                      # which the backtest's formula charges


def test_more_slippage_than_assumed_is_slippage():
    series = scenario()
    c = compare(series, paper(series, "STOP", 3, STOP, slip_bp=25.0))
    assert c.cause is Cause.SLIPPAGE
    assert c.exit_diff_bps == pytest.approx(-25.0)
    assert c.pnl_diff_bps == pytest.approx(-20 * (100 + 90) / 100, rel=0.01)   # 20 bps more, both legs


def test_higher_fees_than_assumed_are_fee():
    series = scenario()
    c = compare(series, paper(series, "STOP", 3, STOP, fee_bp=15.0))
    assert c.cause is Cause.FEE
    assert c.exit_diff_bps == pytest.approx(-5.0)
    assert c.pnl_diff_bps == pytest.approx(-10 * (100 + 90) / 100, rel=0.01)


def test_a_limit_exit_without_slippage_is_cheaper_than_the_backtest_assumes():
    series = scenario(bar3=(100.0, 121.0, 99.0, 110.0))
    c = compare(series, paper(series, "FIB_61.8", 3, TARGET))
    assert (c.cause, c.exit_diff_bps) == (Cause.SLIPPAGE, 0.0)
    assert c.pnl_diff_bps == pytest.approx(5.0 * TARGET / 100, rel=0.01)


def test_a_gapped_stop_filled_at_the_market_is_named():
    series = scenario(bar3=GAP)
    c = compare(series, paper(series, "STOP_GAP", 3, 85.0))
    assert c.shadow.reason == "STOP_GAP" and c.shadow.exit_price == STOP
    assert c.cause is Cause.STOP_GAP_MARKET
    assert c.exit_diff_bps == pytest.approx((85.0 * (1 - 5e-4) / STOP - 1) * 1e4)


def test_an_exit_on_the_entry_bar_is_an_entry_bar_exit():
    series = scenario(bar1=TOUCH)
    c = compare(series, paper(series, "STOP", 1, STOP, bars_held=0))
    assert c.cause is Cause.ENTRY_BAR_EXIT
    assert c.shadow.exit_index == 3


@pytest.mark.parametrize("reason", ["MANUAL", "EMERGENCY", "DAILY_LOSS_LIMIT"])
def test_operator_and_daily_loss_exits_are_manual_actions(reason):
    series = scenario()
    c = compare(series, paper(series, reason, 2, 99.0))
    assert c.cause is Cause.MANUAL and reason in c.detail


def test_another_exit_bar_is_a_different_decision():
    series = scenario()
    # A TIME exit is stamped with its bar's close: bar 2 closes at bar 3's open time.
    t = paper(series, "TIME", 3, 100.0, exit_ts=int(series.ts[3]), bars_held=1)
    assert agent_exit_index(series, t) == 2
    c = compare(series, t)
    assert c.cause is Cause.DIFFERENT and "STOP" in c.detail


def test_a_signal_the_backtest_does_not_see_is_a_different_decision():
    series = scenario()
    t = replace(paper(series, "STOP", 3, STOP), signal_ts=int(series.ts[2]))
    c = compare_trade(series, t, None, PARAMS)
    assert c.cause is Cause.DIFFERENT and "no signal" in c.detail


def test_a_signal_outside_the_bars_is_no_bars():
    series = scenario()
    t = replace(paper(series, "STOP", 3, STOP), signal_ts=int(series.ts[-1]) + 900_000)
    assert compare_trade(series, t, None, PARAMS).cause is Cause.NO_BARS


def test_an_open_agent_trade_shows_the_backtests_exit():
    series = scenario()
    c = compare(series, paper(series, "STOP", 3, STOP, status="open"))
    assert c.cause is Cause.AGENT_OPEN and c.exit_diff_bps is None and "STOP" in c.detail


def test_agent_r_multiple_uses_the_backtests_risk_definition():
    series = scenario()
    t = paper(series, "STOP", 3, STOP)
    assert agent_r_multiple(t) == pytest.approx(t.pnl / t.amount / (100.0 - STOP))
    assert agent_r_multiple(replace(t, stop_price=None)) == pytest.approx(t.pnl / t.amount / 1.0)


def _signal(ts: int, action: str, reason: str) -> SignalRecord:
    return SignalRecord(ts, 100.0, 1.0, 2.0, 3.0, 3.0, 0.9, None, None, None, action, reason)


def test_report_lists_trades_and_the_skips_the_backtest_traded_with_their_reason():
    up = (100.0, 125.0, 99.0, 100.0)
    sig = (TARGET, np.nan)
    series = series_of([FLAT, FLAT, FLAT, up, FLAT, up, FLAT], {0: sig, 1: sig, 3: sig})
    params = replace(BASE, use_fib_exits=True)
    ts = [int(x) for x in series.ts]
    # The agent skipped signal 0 (risk), and so took signal 1, which the backtest ignored
    # (in its trade from signal 0); then it skipped signal 3 while still in position.
    agent = paper(series, "FIB_61.8", 3, TARGET)
    agent = replace(agent, signal_ts=ts[1], entry_reference=100.0)
    signals = [_signal(ts[0], "SKIPPED", "risk check: daily trades 10 of 10"),
               _signal(ts[1], "ENTERED", "trade 7"),
               _signal(ts[3], "SKIPPED", "in position")]
    report = shadow_report(series, [agent], signals, params)
    assert [(iso_utc(c.signal_ts), c.cause) for c in report] == [
        (iso_utc(ts[0]), Cause.RISK_SKIP), (iso_utc(ts[1]), Cause.SLIPPAGE), (iso_utc(ts[3]), Cause.RISK_SKIP)]
    assert "daily trades" in report[0].detail and report[0].shadow.reason == "FIB_61.8"
    assert report[2].skip_reason == "in position"
    assert [t.signal_index for t in backtest_trades(series, params)] == [0, 3]


def test_export_row_matches_the_columns():
    series = scenario()
    row = export_row(compare(series, paper(series, "STOP", 3, STOP)))
    assert len(row) == len(SHADOW_EXPORT_COLUMNS)
    assert row[:3] == (iso_utc(int(series.ts[3])), "STOP", STOP) and row[6] == "same decision"


# --- export-trades --bars -----------------------------------------------------------------------

@pytest.fixture(scope="module")
def replayed(tmp_path_factory, sample_csv):
    """A finished paper replay of the sample with every exit on, and its config file."""
    data = tmp_path_factory.mktemp("shadow-export")
    raw = json.loads(DEFAULT_CONFIG.read_text())
    for section, values in ACTIVE.items():
        raw[section].update(values)
    config_path = data / "active.json"
    config_path.write_text(json.dumps(raw))
    cfg = load_config(config_path)
    assert cfg == make_config(**ACTIVE)

    async def run() -> None:
        engine = replay_session(cfg, data, sample_csv, speed=None)
        await engine.start()
        await engine.wait_finished()
        await engine.stop()

    asyncio.run(run())
    return data, config_path, cfg


def test_export_trades_with_bars_adds_the_shadow_columns(replayed, sample_csv, tmp_path, capsys):
    data, config_path, cfg = replayed
    out = tmp_path / "trades.csv"
    assert main(["export-trades", "--data-dir", str(data), "--csv", str(out), "--bars", str(sample_csv),
                 "--config", str(config_path)]) == 0
    rows = list(csv.DictReader(out.open()))
    assert len(rows) >= 5
    assert list(rows[0])[-len(SHADOW_EXPORT_COLUMNS):] == list(SHADOW_EXPORT_COLUMNS)
    causes = {r["shadow_cause"] for r in rows}
    assert causes <= {c.value for c in Cause} and "same decision" in causes
    for r in rows:
        if r["shadow_cause"] == "same decision":
            assert r["shadow_exit_reason"] == r["exit_reason"]
            assert float(r["shadow_exit_price"]) == pytest.approx(float(r["exit_reference"]), rel=1e-9)
            assert abs(float(r["shadow_pnl_diff_bps"])) < 1.0


def test_export_trades_without_bars_is_unchanged(replayed, tmp_path):
    data, _, _ = replayed
    out = tmp_path / "plain.csv"
    assert main(["export-trades", "--data-dir", str(data), "--csv", str(out)]) == 0
    assert "shadow_cause" not in out.read_text().splitlines()[0]


def test_export_trades_with_bars_but_no_config_says_what_is_missing(replayed, sample_csv, tmp_path, capsys):
    data, _, _ = replayed
    code = main(["export-trades", "--data-dir", str(data), "--csv", str(tmp_path / "x.csv"),
                 "--bars", str(sample_csv)])
    err = capsys.readouterr().err
    assert code == 2 and "--config" in err and "Traceback" not in err
