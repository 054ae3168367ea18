"""The PRD's monthly "live vs backtest" review: the agent's results against the backtest's over
the same period, with the PRD's thresholds (up to 20% degradation is normal, over 50% an alert).

Both sides count CLOSED trades whose SIGNAL bar falls in [start, end): the agent's own trades,
and the backtest's own one-position-at-a-time sequence (backtest_trades) over the same bars,
so knock-on differences (a signal one side was busy for) show up in the trade count.
Degradation is a fraction, positive when the agent does worse:
- win rate and average R: (backtest - agent) / |backtest|;
- trade count: |backtest - agent| / backtest (more trades than the backtest is a departure too).
It is undefined (Level.NO_DATA) when the backtest's figure is missing or zero.
"""
from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from enum import Enum

from agent.backtest_shadow import ShadowTrade
from agent.shadow_compare import agent_r_multiple
from persistence.records import TradeRecord

__all__ = ["ALERT_DEGRADATION", "NORMAL_DEGRADATION", "Level", "MetricCheck", "PeriodReview",
           "SideFigures", "month_starts", "monthly_reviews", "review_period"]

NORMAL_DEGRADATION = 0.20
ALERT_DEGRADATION = 0.50


class Level(str, Enum):
    NORMAL = "normal"        # degradation <= 20%
    WATCH = "watch"          # 20% < degradation <= 50%
    ALERT = "alert"          # degradation > 50%: a WARNING
    NO_DATA = "n/a"          # the backtest's figure is missing or zero


@dataclass(frozen=True, slots=True)
class SideFigures:
    """One side's closed trades in the period."""

    trades: int
    wins: int                 # pnl > 0
    avg_r: float | None
    pnl_percent: float        # sum of per-trade PnL % (entry-relative)

    @property
    def win_rate(self) -> float | None:
        """Percent of trades won; None without trades."""
        return self.wins / self.trades * 100.0 if self.trades else None


@dataclass(frozen=True, slots=True)
class MetricCheck:
    metric: str               # "win rate" | "average R" | "trade count"
    agent: float | None
    backtest: float | None
    degradation: float | None
    level: Level

    @property
    def log_level(self) -> int:
        return logging.WARNING if self.level is Level.ALERT else logging.INFO


@dataclass(frozen=True, slots=True)
class PeriodReview:
    start_ts: int
    end_ts: int               # exclusive
    agent: SideFigures
    backtest: SideFigures
    checks: tuple[MetricCheck, ...]

    @property
    def alert(self) -> bool:
        return any(c.level is Level.ALERT for c in self.checks)

    @property
    def level(self) -> Level:
        """The worst metric's level; NO_DATA only when no metric can be judged."""
        levels = {c.level for c in self.checks}
        for level in (Level.ALERT, Level.WATCH, Level.NORMAL):
            if level in levels:
                return level
        return Level.NO_DATA

    @property
    def log_level(self) -> int:
        """logging.WARNING when any metric degraded by more than 50%, else INFO."""
        return max(c.log_level for c in self.checks)

    def summary(self) -> str:
        """One line for `status` and the log."""
        def pct(x: float | None) -> str:
            return "-" if x is None else f"{x:.0f}%"

        def r(x: float | None) -> str:
            return "-" if x is None else f"{x:+.2f}R"

        a, b = self.agent, self.backtest
        worst = max(self.checks, key=lambda c: -1.0 if c.degradation is None else c.degradation)
        verdict = self.level.value.upper() if self.level is Level.ALERT else self.level.value
        return (f"{_day(self.start_ts)}..{_day(self.end_ts)}: agent {a.trades} trades, win {pct(a.win_rate)}, "
                f"avg {r(a.avg_r)} | backtest {b.trades} trades, win {pct(b.win_rate)}, avg {r(b.avg_r)} | "
                f"{verdict}" + ("" if worst.degradation is None else
                                f" (worst: {worst.metric} {worst.degradation * 100:+.0f}%)"))


def review_period(agent_trades: Iterable[TradeRecord], backtest: Iterable[ShadowTrade],
                  start_ts: int, end_ts: int) -> PeriodReview:
    """Compare closed trades whose signal bar opened in [start_ts, end_ts)."""
    if end_ts <= start_ts:
        raise ValueError(f"review period must end after it starts ({start_ts} .. {end_ts})")
    mine = [t for t in agent_trades
            if t.status == "closed" and t.pnl is not None and start_ts <= t.signal_ts < end_ts]
    theirs = [t for t in backtest
              if t.pnl is not None and start_ts <= t.signal_ts < end_ts]
    agent = _figures([t.pnl for t in mine], [agent_r_multiple(t) for t in mine],
                     [t.pnl_percent or 0.0 for t in mine])
    back = _figures([t.pnl for t in theirs], [t.r_multiple for t in theirs],
                    [t.pnl_percent or 0.0 for t in theirs])
    checks = (
        _check("win rate", agent.win_rate, back.win_rate, _relative_drop),
        _check("average R", agent.avg_r, back.avg_r, _relative_drop),
        _check("trade count", float(agent.trades), float(back.trades), _relative_departure),
    )
    return PeriodReview(start_ts, end_ts, agent, back, checks)


def monthly_reviews(agent_trades: Sequence[TradeRecord], backtest: Sequence[ShadowTrade],
                    first_ts: int, last_ts: int) -> list[PeriodReview]:
    """One review per UTC calendar month from first_ts's month to last_ts's, oldest first."""
    bounds = month_starts(first_ts, last_ts)
    return [review_period(agent_trades, backtest, a, b) for a, b in zip(bounds, bounds[1:])]


def month_starts(first_ts: int, last_ts: int) -> list[int]:
    """Unix ms of the first instant of each UTC month from first_ts's through the one after
    last_ts's (so consecutive pairs are the months' [start, end))."""
    if last_ts < first_ts:
        raise ValueError("last_ts is before first_ts")
    d = datetime.fromtimestamp(first_ts / 1000, tz=timezone.utc)
    year, month = d.year, d.month
    out = []
    while True:
        start = int(datetime(year, month, 1, tzinfo=timezone.utc).timestamp() * 1000)
        out.append(start)
        if start > last_ts:
            return out
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)


def _figures(pnls: list[float], rs: list[float | None], pcts: list[float]) -> SideFigures:
    known = [r for r in rs if r is not None]
    return SideFigures(trades=len(pnls), wins=sum(1 for p in pnls if p > 0),
                       avg_r=sum(known) / len(known) if known else None, pnl_percent=sum(pcts))


def _relative_drop(agent: float, backtest: float) -> float | None:
    return None if backtest == 0 else (backtest - agent) / abs(backtest)


def _relative_departure(agent: float, backtest: float) -> float | None:
    return None if backtest == 0 else abs(backtest - agent) / backtest


def _check(metric: str, agent: float | None, backtest: float | None, degradation) -> MetricCheck:
    d = None if agent is None or backtest is None else degradation(agent, backtest)
    if d is None:
        level = Level.NO_DATA
    elif d > ALERT_DEGRADATION:
        level = Level.ALERT
    elif d > NORMAL_DEGRADATION:
        level = Level.WATCH
    else:
        level = Level.NORMAL
    return MetricCheck(metric, agent, backtest, d, level)


def _day(ts_ms: int) -> str:
    return datetime.fromtimestamp(ts_ms / 1000, tz=timezone.utc).strftime("%Y-%m-%d")
