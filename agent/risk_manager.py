"""Position sizing and the six pre-trade checks, one per limit the operator set in config.json.

Sizing is the PRD's rule (STRATEGY.md, "Position sizing"): the smaller of the amount that loses
risk_per_trade% of the balance at the sizing stop and the amount worth max_position_size% of
the balance, rounded DOWN to the market's step. A check that fails names itself and the numbers,
so the operator can see in the signals table exactly why a trade was not taken."""
from __future__ import annotations

from dataclasses import dataclass

from agent.venue import MarketRules


@dataclass(frozen=True, slots=True)
class RiskLimits:
    risk_per_trade_percent: float
    max_position_size_percent: float
    max_daily_loss_percent: float
    max_daily_trades: int
    max_open_positions: int
    slippage_tolerance_percent: float

    @classmethod
    def from_config(cls, cfg) -> "RiskLimits":
        r = cfg.risk_management
        return cls(r.risk_per_trade_percent, r.max_position_size_percent, r.max_daily_loss_percent,
                   r.max_daily_trades, r.max_open_positions, r.slippage_tolerance_percent)


@dataclass(frozen=True, slots=True)
class DayState:
    """The current UTC day's counters, persisted so a restart does not reset them."""

    day_start_ms: int
    start_equity: float
    trades_opened: int = 0


@dataclass(frozen=True, slots=True)
class Verdict:
    approved: bool
    amount: float
    reason: str                   # "approved" or the first failed check, with its numbers


class RiskManager:
    def __init__(self, limits: RiskLimits, rules: MarketRules, fee_bp: float, slippage_bp: float) -> None:
        self.limits = limits
        self.rules = rules
        # What one unit costs beyond the reference price: used to keep the buy within cash.
        self._cost_factor = (1 + slippage_bp / 10_000) * (1 + fee_bp / 10_000)

    def size(self, balance: float, entry: float, risk_stop: float) -> float:
        """The PRD's size, rounded down to the market step; 0 when the stop is not below entry."""
        stop_distance = entry - risk_stop
        if stop_distance <= 0 or entry <= 0:
            return 0.0
        by_risk = balance * self.limits.risk_per_trade_percent / 100 / stop_distance
        by_size = balance * self.limits.max_position_size_percent / 100 / entry
        return self.rules.round_amount(min(by_risk, by_size))

    def daily_loss_breached(self, day: DayState, equity: float) -> bool:
        """Equity down by max_daily_loss_percent or more from the day's start (realised + unrealised)."""
        if day.start_equity <= 0:
            return False
        drop = (day.start_equity - equity) / day.start_equity * 100
        return drop >= self.limits.max_daily_loss_percent

    def check(self, *, balance: float, equity: float, entry: float, risk_stop: float | None,
              signal_close: float, open_positions: int, day: DayState) -> Verdict:
        """Run the six checks in a fixed order; the first failure wins."""
        lim = self.limits
        if open_positions >= min(lim.max_open_positions, 1):
            return _no(f"max_open_positions: {open_positions} open (one strategy on one pair holds one position)")
        if day.trades_opened >= lim.max_daily_trades:
            return _no(f"max_daily_trades: {day.trades_opened} trades today, limit {lim.max_daily_trades}")
        if self.daily_loss_breached(day, equity):
            return _no(f"max_daily_loss_percent: equity {equity:.2f} vs day start {day.start_equity:.2f}, "
                       f"limit {lim.max_daily_loss_percent}%")
        moved = abs(entry - signal_close) / signal_close * 100 if signal_close > 0 else 0.0
        if moved > lim.slippage_tolerance_percent:
            return _no(f"slippage_tolerance_percent: price moved {moved:.3f}% from the signal close "
                       f"{signal_close} to {entry}, limit {lim.slippage_tolerance_percent}%")
        if risk_stop is None or entry - risk_stop <= 0:
            return _no(f"risk_per_trade_percent: no stop distance (entry {entry}, sizing stop {risk_stop})")
        by_risk = self.rules.round_amount(balance * lim.risk_per_trade_percent / 100 / (entry - risk_stop))
        if not self._tradeable(by_risk, entry):
            return _no(f"risk_per_trade_percent: {lim.risk_per_trade_percent}% of {balance:.2f} at a stop "
                       f"distance of {entry - risk_stop:.8g} buys {by_risk}, below the market minimum "
                       f"(amount {self.rules.min_amount}, notional {self.rules.min_notional})")
        affordable = self.rules.round_amount(balance / (entry * self._cost_factor))
        amount = min(self.size(balance, entry, risk_stop), affordable)
        if not self._tradeable(amount, entry):
            return _no(f"max_position_size_percent: {lim.max_position_size_percent}% of {balance:.2f} "
                       f"(cash included) buys {amount}, below the market minimum "
                       f"(amount {self.rules.min_amount}, notional {self.rules.min_notional})")
        return Verdict(True, amount, "approved")

    def _tradeable(self, amount: float, price: float) -> bool:
        return amount > 0 and amount >= self.rules.min_amount and amount * price >= self.rules.min_notional


def _no(reason: str) -> Verdict:
    return Verdict(False, 0.0, reason)
