"""Sizing and the six pre-trade checks: each one, alone, blocks a trade."""
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.venue import MarketRules
from agent.risk_manager import DayState, RiskLimits, RiskManager

LIMITS = RiskLimits(risk_per_trade_percent=1.0, max_position_size_percent=10.0,
                    max_daily_loss_percent=5.0, max_daily_trades=10, max_open_positions=1,
                    slippage_tolerance_percent=0.5)
RULES = MarketRules(amount_step=0.00001, min_amount=0.00001, min_notional=5.0)
DAY = DayState(day_start_ms=0, start_equity=10_000.0, trades_opened=0)


def manager(limits=LIMITS, rules=RULES):
    return RiskManager(limits, rules, fee_bp=5, slippage_bp=5)


def check(rm=None, **over):
    args = dict(balance=10_000.0, equity=10_000.0, entry=100_000.0, risk_stop=99_000.0,
                signal_close=100_000.0, open_positions=0, day=DAY)
    args.update(over)
    return (rm or manager()).check(**args)


def test_size_is_the_smaller_of_risk_and_position_caps_rounded_down():
    # risk: 1% of 10k = 100 at a 1,000 stop distance -> 0.1; size: 10% of 10k / 100k = 0.01
    assert manager().size(10_000, 100_000, 99_000) == 0.01
    # a wide stop makes risk the binding cap: 100 / 20,000 = 0.005
    assert manager().size(10_000, 100_000, 80_000) == 0.005
    # rounding is DOWN to the step
    assert manager().size(10_000, 100_000, 70_000) == 0.00333


def test_a_healthy_signal_is_approved_with_the_sized_amount():
    verdict = check()
    assert verdict.approved and verdict.amount == 0.01


def test_check_max_open_positions_blocks_a_second_position():
    v = check(open_positions=1)
    assert not v.approved and v.reason.startswith("max_open_positions")


def test_max_open_positions_above_one_still_means_one_position():
    rm = manager(RiskLimits(1.0, 10.0, 5.0, 10, 3, 0.5))
    assert not check(rm, open_positions=1).approved


def test_check_max_daily_trades_blocks_after_the_limit():
    v = check(day=DayState(0, 10_000.0, trades_opened=10))
    assert not v.approved and v.reason.startswith("max_daily_trades")


def test_check_max_daily_loss_blocks_once_equity_is_down_the_limit():
    v = check(equity=9_500.0)
    assert not v.approved and v.reason.startswith("max_daily_loss_percent")
    assert check(equity=9_500.01).approved


def test_check_slippage_tolerance_blocks_when_price_ran_away_from_the_signal():
    v = check(entry=100_600.0, risk_stop=99_000.0)
    assert not v.approved and v.reason.startswith("slippage_tolerance_percent")


def test_check_risk_per_trade_blocks_without_a_stop_distance():
    v = check(risk_stop=100_000.0)
    assert not v.approved and v.reason.startswith("risk_per_trade_percent")


def test_check_risk_per_trade_blocks_when_the_risk_budget_buys_less_than_the_market_minimum():
    v = check(balance=100.0, equity=100.0, day=DayState(0, 100.0), risk_stop=50_000.0)
    assert not v.approved and v.reason.startswith("risk_per_trade_percent")


def test_check_max_position_size_blocks_when_the_size_cap_is_below_the_market_minimum():
    rm = manager(RiskLimits(10.0, 1.0, 5.0, 10, 1, 0.5))
    v = check(rm, balance=400.0, equity=400.0, day=DayState(0, 400.0))  # 1% of 400 = 4 < 5 notional
    assert not v.approved and v.reason.startswith("max_position_size_percent")


def test_a_buy_never_costs_more_than_the_cash_even_at_100_percent_size():
    rm = manager(RiskLimits(10.0, 100.0, 5.0, 10, 1, 0.5))
    v = check(rm, risk_stop=99_990.0)
    assert v.approved
    assert v.amount * 100_000 * (1 + 5e-4) * (1 + 5e-4) <= 10_000


@settings(max_examples=200, deadline=None)
@given(balance=st.floats(100, 1e7), entry=st.floats(0.01, 1e6), stop_frac=st.floats(0.001, 0.5))
def test_sized_amount_never_exceeds_either_cap(balance, entry, stop_frac):
    stop = entry * (1 - stop_frac)
    amount = manager().size(balance, entry, stop)
    assert amount * (entry - stop) <= balance * 0.01 * (1 + 1e-9)
    assert amount * entry <= balance * 0.10 * (1 + 1e-9)
    step_count = amount / RULES.amount_step
    assert math.isclose(step_count, round(step_count), abs_tol=1e-6)


def test_daily_loss_breach_is_measured_from_the_days_start_equity():
    rm = manager()
    assert not rm.daily_loss_breached(DAY, 9_501.0)
    assert rm.daily_loss_breached(DAY, 9_500.0)


@pytest.mark.parametrize(("amount", "expected"), [(0.3 / 0.1 * 0.1, 0.3), (0.123456789, 0.12345)])
def test_market_rounding_is_down_and_absorbs_float_noise(amount, expected):
    assert RULES.round_amount(amount) == expected
