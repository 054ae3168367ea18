"""The agent's actual trade beside the backtest's shadow of the same signal, and why they differ.

One ShadowComparison per signal: every trade the agent took, and every signal it skipped that
the backtest's own sequence traded. The differences are agent minus backtest in bps: of the exit
price, and of the PnL per unit (fees included) over the backtest's entry price, i.e. the PnL%
on one base (1% = 100 bps). The cause is one of `Cause`, decided in this order:
1. skipped by the agent (risk rule, busy, no Fibonacci levels...): RISK_SKIP, with its reason;
2. closed by the operator or the daily loss limit: MANUAL;
3. closed on its entry bar, which the backtest never examines: ENTRY_BAR_EXIT;
4. a different exit bar or reason (or level) with none of the above: DIFFERENT (e.g. live
   candles that differ from the ones replayed here);
5. the same exit, but a stop gapped through and filled at the market instead of the stop:
   STOP_GAP_MARKET;
6. the same exit: SLIPPAGE or FEE when the agent's costs differ from what the backtest assumes
   (fee_bp and slippage_bp on entry + exit) by more than COST_TOLERANCE_BPS, whichever differs
   more; otherwise SAME. The paper broker charges exactly those costs, so a paper trade that
   takes the backtest's decision is SAME although its exit fill is slippage_bp below the level.
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import Enum

from agent.backtest_shadow import ShadowSeries, ShadowTrade, backtest_trades, shadow_trade
from agent.strategy import StrategyParams
from data.bar import iso_utc
from persistence.records import SignalRecord, TradeRecord

__all__ = [
    "COST_TOLERANCE_BPS", "Cause", "ShadowComparison", "agent_r_multiple", "agent_exit_index",
    "SHADOW_EXPORT_COLUMNS", "compare_skipped", "compare_trade", "export_row", "shadow_report",
]

COST_TOLERANCE_BPS = 0.5     # cost differences below this are rounding, not a cause
_SAME_PRICE_REL = 1e-9       # the same level, allowing float noise from a different ATR path
OPERATOR_EXITS = frozenset({"MANUAL", "EMERGENCY", "DAILY_LOSS_LIMIT"})
_EXITS_AT_BAR_CLOSE = frozenset({"TIME", "DAILY_LOSS_LIMIT"})


class Cause(str, Enum):
    """Why the agent's outcome differs from the backtest's for the same signal."""

    SAME = "same decision"
    ENTRY_BAR_EXIT = "entry-bar exit"
    STOP_GAP_MARKET = "stop gap filled at market"
    SLIPPAGE = "slippage"
    FEE = "fee"
    RISK_SKIP = "risk rule / skip"
    MANUAL = "manual action"
    DIFFERENT = "different decision"
    AGENT_OPEN = "agent still in position"
    NO_BARS = "no bars for this signal"


@dataclass(frozen=True, slots=True)
class ShadowComparison:
    """One signal: what the agent did, what the backtest did (if flat), and the difference."""

    signal_ts: int
    trade: TradeRecord | None          # None: the agent skipped the signal
    skip_reason: str | None            # the signals table's SKIPPED reason
    shadow: ShadowTrade | None         # None: no bars for it (or no entry bar yet)
    cause: Cause
    detail: str
    exit_diff_bps: float | None = None    # agent exit fill vs backtest exit price
    pnl_diff_bps: float | None = None     # agent minus backtest PnL per unit, bps of the backtest's entry


def agent_exit_index(series: ShadowSeries, trade: TradeRecord) -> int | None:
    """The bar the agent's exit happened in. A TIME (or daily-loss) exit is stamped with the
    bar's close, which is the next bar's open time, so it is looked up one ms earlier."""
    if trade.exit_ts is None:
        return None
    moment = trade.exit_ts - 1 if trade.exit_reason in _EXITS_AT_BAR_CLOSE else trade.exit_ts
    return series.index_containing(moment)


def agent_r_multiple(trade: TradeRecord) -> float | None:
    """PnL per unit (fees included) over the backtest's risk definition for the agent's entry."""
    if trade.pnl is None or not trade.amount:
        return None
    entry, stop = trade.entry_reference, trade.stop_price
    risk = entry - stop if stop is not None and stop < entry else 0.01 * entry
    return trade.pnl / trade.amount / risk


def compare_skipped(signal: SignalRecord, shadow: ShadowTrade | None) -> ShadowComparison:
    """A signal the agent did not trade: the cause is its SKIPPED reason."""
    if shadow is None:
        return ShadowComparison(signal.bar_ts, None, signal.reason, None, Cause.NO_BARS,
                                f"skipped ({signal.reason}); no bars to shadow it")
    what = ("the backtest is still in it" if shadow.reason is None else
            f"the backtest exited {shadow.reason} at {_fmt(shadow.exit_price)}, "
            f"{_fmt_pct(shadow.pnl_percent)}")
    return ShadowComparison(signal.bar_ts, None, signal.reason, shadow, Cause.RISK_SKIP,
                            f"skipped: {signal.reason}; {what}")


def compare_trade(series: ShadowSeries, trade: TradeRecord, shadow: ShadowTrade | None,
                  params: StrategyParams) -> ShadowComparison:
    """The agent's trade against the backtest's shadow of its signal (see the module doc)."""
    def result(cause: Cause, detail: str) -> ShadowComparison:
        return ShadowComparison(trade.signal_ts, trade, None, shadow, cause, detail,
                                exit_diff, pnl_diff)

    exit_diff = pnl_diff = None
    if shadow is None:
        s = series.index_of(trade.signal_ts)
        if s is not None and not series.signal[s]:
            return result(Cause.DIFFERENT, f"the backtest sees no signal at {iso_utc(trade.signal_ts)} "
                                           "on these bars (different candles or too little history)")
        return result(Cause.NO_BARS, f"no bars cover the signal bar {iso_utc(trade.signal_ts)} "
                                     "and the bar after it")
    if trade.status != "closed" or trade.exit_price is None:
        where = "is still in it" if shadow.reason is None else f"exited {shadow.reason} at {_fmt(shadow.exit_price)}"
        return result(Cause.AGENT_OPEN, f"agent in position; the backtest {where}")
    if shadow.exit_price is not None and shadow.pnl is not None:
        exit_diff = (trade.exit_price / shadow.exit_price - 1.0) * 1e4
        if trade.pnl is not None and trade.amount:
            # Both per unit over the backtest's entry, so the fill's own slippage does not
            # also shift the base of the percentage.
            pnl_diff = (trade.pnl / trade.amount - shadow.pnl) / shadow.entry * 1e4
    agent_bar = agent_exit_index(series, trade)
    backtest = ("the backtest is still in it" if shadow.reason is None else
                f"the backtest exited {shadow.reason} at {_fmt(shadow.exit_price)} "
                f"after {shadow.bars_held} bars")
    if trade.exit_reason in OPERATOR_EXITS:
        return result(Cause.MANUAL, f"{trade.exit_reason} at {_fmt(trade.exit_price)}; {backtest}")
    if trade.bars_held == 0 and agent_bar == shadow.entry_index:
        return result(Cause.ENTRY_BAR_EXIT, f"agent exited {trade.exit_reason} on the entry bar, "
                                            f"which the backtest does not examine; {backtest}")
    same_exit = shadow.reason == trade.exit_reason and agent_bar == shadow.exit_index
    if not same_exit:
        return result(Cause.DIFFERENT, f"agent exited {trade.exit_reason} at bar "
                                       f"{_bar(series, agent_bar)}; {backtest} at bar {_bar(series, shadow.exit_index)}")
    assert shadow.exit_price is not None
    if trade.exit_reason == "STOP_GAP":
        return result(Cause.STOP_GAP_MARKET, f"the stop gapped: agent filled at market "
                                             f"{_fmt(trade.exit_price)}, the backtest at the stop {_fmt(shadow.exit_price)}")
    if trade.exit_reference is None or not _same_price(trade.exit_reference, shadow.exit_price):
        return result(Cause.DIFFERENT, f"same exit bar and reason at a different level: agent "
                                       f"{_fmt(trade.exit_reference)}, backtest {_fmt(shadow.exit_price)}")
    slip, fee = _cost_deltas_bps(trade, shadow, params)
    costs = (f"costs against the backtest's fee_bp/slippage_bp: slippage {slip:+.2f} bps, "
             f"fees {fee:+.2f} bps (negative: cheaper than assumed)")
    if max(abs(slip), abs(fee)) < COST_TOLERANCE_BPS:
        return result(Cause.SAME, f"same decision ({trade.exit_reason}); {costs}")
    return result(Cause.SLIPPAGE if abs(slip) >= abs(fee) else Cause.FEE, costs)


def _cost_deltas_bps(trade: TradeRecord, shadow: ShadowTrade, params: StrategyParams) -> tuple[float, float]:
    """Agent's slippage and fees per unit minus the backtest's (fee_bp, slippage_bp on entry +
    exit), in bps of the backtest's entry. The agent's slippage is measured against the
    backtest's own prices (open[s+1] and the exit level), so a live entry that filled away
    from the bar's open counts as slippage too."""
    entry = shadow.entry
    assert trade.exit_price is not None and shadow.exit_price is not None
    agent_slip = (trade.entry_price - entry) + (shadow.exit_price - trade.exit_price)
    agent_fee = (trade.entry_fee + trade.exit_fee) / trade.amount if trade.amount else 0.0
    legs = shadow.entry + shadow.exit_price
    slip = (agent_slip - legs * params.slippage_bp / 10000) / entry * 1e4
    fee = (agent_fee - legs * params.fee_bp / 10000) / entry * 1e4
    return slip, fee


def shadow_report(series: ShadowSeries, trades: Iterable[TradeRecord], signals: Iterable[SignalRecord],
                  params: StrategyParams, backtest: Sequence[ShadowTrade] | None = None) -> list[ShadowComparison]:
    """Every agent trade (open or closed) and every skipped signal the backtest's own sequence
    traded, oldest signal first. `backtest` is backtest_trades(series) when already at hand."""
    if backtest is None:
        backtest = backtest_trades(series, params)
    traded_by_backtest = {t.signal_ts for t in backtest}
    out = []
    for t in trades:
        out.append(compare_trade(series, t, _shadow_at(series, t.signal_ts, params), params))
    taken = {t.signal_ts for t in out}
    for sig in signals:
        if sig.action == "SKIPPED" and sig.bar_ts in traded_by_backtest and sig.bar_ts not in taken:
            out.append(compare_skipped(sig, _shadow_at(series, sig.bar_ts, params)))
    out.sort(key=lambda c: c.signal_ts)
    return out


def _shadow_at(series: ShadowSeries, signal_ts: int, params: StrategyParams) -> ShadowTrade | None:
    s = series.index_of(signal_ts)
    return None if s is None else shadow_trade(series, s, params)


def _same_price(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=_SAME_PRICE_REL, abs_tol=0.0)


def _bar(series: ShadowSeries, i: int | None) -> str:
    return "-" if i is None else iso_utc(int(series.ts[i]))


def _fmt(x: float | None) -> str:
    return "-" if x is None else f"{x:.8g}"


def _fmt_pct(x: float | None) -> str:
    return "-" if x is None else f"{x:+.2f}%"


SHADOW_EXPORT_COLUMNS = ("shadow_exit_timestamp", "shadow_exit_reason", "shadow_exit_price",
                         "shadow_pnl_percent", "shadow_exit_diff_bps", "shadow_pnl_diff_bps",
                         "shadow_cause", "shadow_detail")


def export_row(c: ShadowComparison) -> tuple[str | float | None, ...]:
    """The export-trades columns for one comparison (None is an empty CSV field). The exit
    timestamp is the exit bar's open time, as the backtest app labels it (TIME exits too)."""
    sh = c.shadow
    return (None if sh is None or sh.exit_ts is None else iso_utc(sh.exit_ts),
            None if sh is None else sh.reason or "open",
            None if sh is None else sh.exit_price,
            None if sh is None else sh.pnl_percent,
            c.exit_diff_bps, c.pnl_diff_bps, c.cause.value, c.detail)
