"""Accounting: the figures read on every bar are exactly what the single-value methods say."""
from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from agent.accounting import Accounting
from agent.risk_manager import DayState
from persistence.records import TradeRecord

money = st.floats(min_value=-1e9, max_value=1e9, allow_nan=False)
price = st.one_of(st.none(), st.floats(min_value=1e-6, max_value=1e7))


@st.composite
def accounts(draw: st.DrawFn) -> Accounting:
    trade = None
    if draw(st.booleans()):
        trade = TradeRecord("BTC/USDT", 0, 0, draw(st.floats(1e-6, 1e7)), 1.0,
                            draw(st.floats(1e-8, 1e3)), draw(st.floats(0.0, 1e3)), "paper")
    day = DayState(0, draw(money), 0) if draw(st.booleans()) else None
    return Accounting(draw(money), trade, day, draw(price), None, draw(price))


@settings(max_examples=300, deadline=None)
@given(accounts())
def test_figures_are_balance_equity_day_pnl_and_unrealized(acct: Accounting) -> None:
    assert acct.figures() == (acct.balance, acct.equity(), acct.day_pnl(), acct.unrealized())


@settings(max_examples=300, deadline=None)
@given(accounts())
def test_snapshot_holds_the_same_figures(acct: Accounting) -> None:
    snap = acct.snapshot(60_000)
    assert (snap.balance, snap.equity, snap.unrealized_pnl) == (
        acct.balance, acct.equity(), acct.unrealized())
    assert snap.position_amount == (acct.trade.amount if acct.trade else 0.0)
    assert acct.last_snapshot_ts == 60_000
