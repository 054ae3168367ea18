"""The PRD's live-vs-backtest review: figures per side, the 20% / 50% thresholds, months."""
from __future__ import annotations

import logging
from datetime import datetime, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.backtest_shadow import ShadowTrade
from agent.shadow_review import Level, month_starts, monthly_reviews, review_period
from persistence.records import TradeRecord

DAY = 86_400_000
T0 = int(datetime(2025, 8, 1, tzinfo=timezone.utc).timestamp() * 1000)


def bt(day: int, pnl: float | None, risk: float = 1.0) -> ShadowTrade:
    """A backtest trade at entry 100 with this per-unit PnL (None: still open)."""
    closed = pnl is not None
    return ShadowTrade(signal_index=day, signal_ts=T0 + day * DAY, entry_index=day + 1, entry=100.0,
                       target=None, stop=100.0 - risk, tp=None, risk=risk, bars_held=3,
                       exit_index=day + 4 if closed else None, exit_ts=T0 + day * DAY + 1 if closed else None,
                       exit_price=100.0 + pnl if closed else None, reason="STOP" if closed else None, pnl=pnl)


def agent(day: int, pnl_per_unit: float | None, stop: float = 99.0) -> TradeRecord:
    t = TradeRecord(pair="BTC/USDT", signal_ts=T0 + day * DAY, entry_ts=T0 + day * DAY + 1, entry_price=100.0,
                    entry_reference=100.0, amount=2.0, entry_fee=0.0, mode="paper", stop_price=stop)
    if pnl_per_unit is not None:
        t.status, t.exit_ts, t.exit_price, t.exit_reason = "closed", T0 + day * DAY + 2, 100 + pnl_per_unit, "STOP"
        t.pnl, t.pnl_percent = pnl_per_unit * 2.0, pnl_per_unit
    return t


def test_identical_results_are_normal_with_zero_degradation():
    pnls = [2.0, -1.0, 3.0, -1.0]
    r = review_period([agent(i, p) for i, p in enumerate(pnls)], [bt(i, p) for i, p in enumerate(pnls)],
                      T0, T0 + 30 * DAY)
    assert (r.agent.trades, r.agent.wins, r.agent.win_rate, r.agent.avg_r) == (4, 2, 50.0, 0.75)
    assert r.agent == r.backtest
    assert [c.degradation for c in r.checks] == [0.0, 0.0, 0.0]
    assert r.level is Level.NORMAL and not r.alert and r.log_level == logging.INFO


@pytest.mark.parametrize("agent_wins, level", [(4, Level.NORMAL), (3, Level.WATCH), (2, Level.WATCH),
                                               (1, Level.ALERT)])
def test_win_rate_thresholds_20_and_50_percent(agent_wins, level):
    # Backtest wins 4 of 5: agent 4 (0%), 3 (25%), 2 (exactly 50%: not over), 1 (75%).
    back = [bt(i, 1.0 if i < 4 else -1.0) for i in range(5)]
    mine = [agent(i, 1.0 if i < agent_wins else -1.0) for i in range(5)]
    check = review_period(mine, back, T0, T0 + 30 * DAY).checks[0]
    assert check.metric == "win rate" and check.level is level
    assert check.degradation == pytest.approx((4 - agent_wins) / 4)


def test_exactly_20_percent_is_still_normal():
    back = [bt(i, 1.0) for i in range(5)]
    mine = [agent(i, 1.0 if i < 4 else -1.0) for i in range(5)]
    check = review_period(mine, back, T0, T0 + 30 * DAY).checks[0]
    assert check.degradation == pytest.approx(0.2) and check.level is Level.NORMAL


def test_an_average_r_collapse_is_a_warning_level_alert():
    back = [bt(i, 2.0) for i in range(4)]
    mine = [agent(i, 0.5) for i in range(4)]
    r = review_period(mine, back, T0, T0 + 30 * DAY)
    avg_r = r.checks[1]
    assert (avg_r.metric, avg_r.agent, avg_r.backtest) == ("average R", 0.5, 2.0)
    assert avg_r.degradation == pytest.approx(0.75) and avg_r.level is Level.ALERT
    assert r.alert and r.log_level == logging.WARNING and "ALERT" in r.summary()


def test_trade_count_departure_counts_both_ways():
    back = [bt(i, 1.0) for i in range(4)]
    fewer = review_period([agent(0, 1.0)], back, T0, T0 + 30 * DAY).checks[2]
    more = review_period([agent(i, 1.0) for i in range(7)], back, T0, T0 + 30 * DAY).checks[2]
    assert (fewer.degradation, fewer.level) == (0.75, Level.ALERT)
    assert (more.degradation, more.level) == (0.75, Level.ALERT)


def test_only_closed_trades_with_a_signal_in_the_period_count():
    back = [bt(1, 1.0), bt(40, 1.0), bt(2, None)]
    mine = [agent(1, 1.0), agent(40, -1.0), agent(2, None)]
    r = review_period(mine, back, T0, T0 + 31 * DAY)
    assert (r.agent.trades, r.backtest.trades) == (1, 1)


def test_no_backtest_trades_is_no_data_not_normal():
    r = review_period([agent(0, 1.0)], [], T0, T0 + DAY)
    assert all(c.level is Level.NO_DATA for c in r.checks) and r.level is Level.NO_DATA


def test_an_empty_period_is_refused():
    with pytest.raises(ValueError, match="end after it starts"):
        review_period([], [], T0, T0)


def test_month_starts_cross_a_year_end():
    first = int(datetime(2025, 11, 15, tzinfo=timezone.utc).timestamp() * 1000)
    last = int(datetime(2026, 1, 3, tzinfo=timezone.utc).timestamp() * 1000)
    got = [datetime.fromtimestamp(m / 1000, tz=timezone.utc).strftime("%Y-%m") for m in month_starts(first, last)]
    assert got == ["2025-11", "2025-12", "2026-01", "2026-02"]


@given(st.integers(0, 4_000_000_000_000), st.integers(0, 400 * DAY))
def test_month_starts_cover_the_range_with_calendar_months(first, span):
    bounds = month_starts(first, first + span)
    assert bounds[0] <= first < bounds[1] and bounds[-2] <= first + span < bounds[-1]
    for b in bounds:
        d = datetime.fromtimestamp(b / 1000, tz=timezone.utc)
        assert (d.day, d.hour, d.minute, d.second) == (1, 0, 0, 0)


def test_monthly_reviews_split_by_the_signal_month():
    back = [bt(0, 1.0), bt(35, -1.0)]
    mine = [agent(0, 1.0), agent(35, -1.0)]
    reviews = monthly_reviews(mine, back, T0, T0 + 40 * DAY)
    assert [(r.agent.trades, r.backtest.trades) for r in reviews] == [(1, 1), (1, 1)]
    assert reviews[0].summary().startswith("2025-08-01..2025-09-01: agent 1 trades")
