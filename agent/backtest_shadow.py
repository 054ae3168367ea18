"""What the backtest app would have done with a signal: its entry, exit bar, reason and price.

The rules are STRATEGY.md's "Trade simulation in the backtest", exactly: enter at open[s+1];
target = the Fibonacci level, stop = low[s] - atr_stop_mult * ATR[s], risk = entry - stop (or
1% of entry), tp = entry + reward_r * risk; exits examined from bar s+2 on, first match wins
(STOP_GAP, STOP, FIB_x, TP_xR, TIME); PnL per unit = exit - entry - (entry + exit) * (fee_bp +
slippage_bp) / 10000. `backtest_trades` replays the app's one-position-at-a-time sequence and
reproduces its trades.csv to the last bit (tests/test_backtest_shadow.py, four golden cases).

Speed: each trade's exit is found with numpy over windows that grow x4 from 64 bars, so a trade
costs about its own length, and a whole 50k-bar backtest a few milliseconds (bench/shadow.py).
`ShadowBook` is the live form: append each bar's Decision, and finished trades are never
simulated twice.
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

from agent.strategy import Decision, StrategyParams, compute_features
from data.bar import Bar
from indicators.fibonacci import RATIOS

__all__ = [
    "ShadowBook", "ShadowSeries", "ShadowTrade", "backtest_trades", "fib_reason",
    "shadow_trade", "tp_reason",
]

FloatArray = npt.NDArray[np.float64]
_FIRST_WINDOW = 64      # bars examined at once for an exit; grows x4 while nothing is hit
_NO_PRICE = math.nan


def fib_reason(level: float) -> str:
    """FIB_61.8: the backtest's label for a Fibonacci exit (level * 100, one decimal)."""
    return f"FIB_{level * 100:.1f}"


def tp_reason(reward_r: float) -> str:
    """TP_2.0R: the backtest's label for a take-profit exit (reward_r, one decimal)."""
    return f"TP_{reward_r:.1f}R"


@dataclass(frozen=True, slots=True)
class ShadowSeries:
    """Closed bars as arrays, with what the backtest reads on signal bars (NaN: none).

    `target` is the Fibonacci target price on signal bars when use_fib_exits and levels exist;
    `stop` is low - atr_stop_mult * ATR on signal bars when use_stop_loss. Index i is bar i.
    """

    ts: npt.NDArray[np.int64]
    open: FloatArray
    high: FloatArray
    low: FloatArray
    close: FloatArray
    signal: npt.NDArray[np.bool_]
    target: FloatArray
    stop: FloatArray

    def __len__(self) -> int:
        return int(self.ts.size)

    @classmethod
    def from_bars(cls, bars: Sequence[Bar], params: StrategyParams) -> ShadowSeries:
        """Indicators computed over these bars from the first (compute_features), as the app does."""
        ts = np.fromiter((b.ts for b in bars), dtype=np.int64, count=len(bars))
        ohlcv = np.array([(b.open, b.high, b.low, b.close, b.volume) for b in bars],
                         dtype=np.float64).reshape(len(bars), 5)
        o, h, lo, c, v = (np.ascontiguousarray(ohlcv[:, k]) for k in range(5))
        f = compute_features(ts, o, h, lo, c, v, params)
        target = np.full(len(bars), _NO_PRICE)
        if params.use_fib_exits:
            target = np.where(f.signal, f.fib_prices[:, RATIOS.index(params.fib_target_level)], _NO_PRICE)
        stop = np.full(len(bars), _NO_PRICE)
        if params.use_stop_loss:
            with np.errstate(invalid="ignore"):
                stop = np.where(f.signal, lo - params.atr_stop_mult * f.atr, _NO_PRICE)
        return cls(ts, o, h, lo, c, f.signal, target, stop)

    @classmethod
    def from_decisions(cls, decisions: Sequence[Decision], params: StrategyParams) -> ShadowSeries:
        """From the strategy's own per-bar Decisions (oldest first, consecutive)."""
        book = ShadowBook(params, capacity=max(1, len(decisions)))
        book.extend(decisions)
        return book.series()

    def index_of(self, ts_ms: int) -> int | None:
        """Index of the bar that opened at exactly ts_ms, or None."""
        i = int(np.searchsorted(self.ts, ts_ms))
        return i if i < self.ts.size and int(self.ts[i]) == ts_ms else None

    def index_containing(self, ts_ms: int) -> int | None:
        """Index of the last bar that opened at or before ts_ms (the bar a moment falls in)."""
        i = int(np.searchsorted(self.ts, ts_ms, side="right")) - 1
        return i if i >= 0 else None


@dataclass(frozen=True, slots=True)
class ShadowTrade:
    """The backtest's trade for one signal bar. Open (exit fields None) while no exit has
    happened in the bars available; bars_held then counts the bars examined so far."""

    signal_index: int
    signal_ts: int          # the backtest's entry_ts: the signal bar's open time
    entry_index: int        # signal_index + 1
    entry: float            # open of the entry bar
    target: float | None
    stop: float | None
    tp: float | None
    risk: float             # entry - stop, or 1% of entry without a stop below it
    bars_held: int
    exit_index: int | None = None
    exit_ts: int | None = None   # the exit bar's OPEN time, as the backtest labels it (TIME too)
    exit_price: float | None = None
    reason: str | None = None
    pnl: float | None = None     # per unit, after the backtest's fee + slippage formula

    @property
    def status(self) -> Literal["open", "closed"]:
        return "open" if self.exit_index is None else "closed"

    @property
    def r_multiple(self) -> float | None:
        return None if self.pnl is None else self.pnl / self.risk

    @property
    def pnl_percent(self) -> float | None:
        """PnL per unit as a percentage of the entry price."""
        return None if self.pnl is None else self.pnl / self.entry * 100.0


def backtest_pnl(entry: float, exit_: float, params: StrategyParams) -> float:
    """The backtest's single formula: fee and slippage charged on entry + exit at once."""
    return exit_ - entry - (entry + exit_) * (params.fee_bp + params.slippage_bp) / 10000


def shadow_trade(series: ShadowSeries, s: int, params: StrategyParams,
                 resume_from: int | None = None) -> ShadowTrade | None:
    """The backtest's trade for signal bar s if it was flat then; None before the entry bar
    exists (s is the newest bar) or when bar s is not a signal.

    `resume_from`: bars before it are known to hold no exit for this signal (an earlier call
    found it open), so the search starts there. Exact: whether a bar exits depends only on
    that bar and the trade's levels."""
    n = len(series)
    if not 0 <= s < n - 1 or not series.signal[s]:
        return None
    entry = float(series.open[s + 1])
    target = float(series.target[s])
    stop = float(series.stop[s])
    has_target, has_stop = not math.isnan(target), not math.isnan(stop)
    risk = entry - stop if has_stop and stop < entry else 0.01 * entry
    tp = entry + params.reward_r * risk if params.use_traditional_tp else _NO_PRICE
    up = min(target if has_target else math.inf, tp if params.use_traditional_tp else math.inf)
    time_bar = s + 1 + params.max_hold if params.use_time_exit else None
    start = s + 2 if resume_from is None else max(s + 2, resume_from)
    b = _first_exit_bar(series, start, stop if has_stop else None, up, time_bar)
    base = dict(signal_index=s, signal_ts=int(series.ts[s]), entry_index=s + 1, entry=entry,
                target=target if has_target else None, stop=stop if has_stop else None,
                tp=tp if params.use_traditional_tp else None, risk=risk)
    if b is None:
        return ShadowTrade(**base, bars_held=max(0, n - 1 - (s + 1)))
    if has_stop and series.open[b] <= stop:
        reason, price = "STOP_GAP", stop
    elif has_stop and series.low[b] <= stop:
        reason, price = "STOP", stop
    elif has_target and series.high[b] >= target:
        reason, price = fib_reason(params.fib_target_level), target
    elif params.use_traditional_tp and series.high[b] >= tp:
        reason, price = tp_reason(params.reward_r), tp
    else:
        reason, price = "TIME", float(series.close[b])
    return ShadowTrade(**base, bars_held=b - (s + 1), exit_index=b, exit_ts=int(series.ts[b]),
                       exit_price=price, reason=reason, pnl=backtest_pnl(entry, price, params))


def _first_exit_bar(series: ShadowSeries, start: int, stop: float | None, up: float,
                    time_bar: int | None) -> int | None:
    """First bar >= start where the low reaches the stop or the high reaches `up` (the lower
    of target and tp), or the time-exit bar, whichever comes first; None if none yet."""
    n = len(series)
    last = n - 1 if time_bar is None else min(n - 1, time_bar)
    watch_up = math.isfinite(up)
    if stop is not None or watch_up:
        width, b = _FIRST_WINDOW, start
        while b <= last:
            e = min(last + 1, b + width)
            if stop is not None:
                hit = series.low[b:e] <= stop
                if watch_up:
                    hit |= series.high[b:e] >= up
            else:
                hit = series.high[b:e] >= up
            k = int(hit.argmax())
            if hit[k]:
                return b + k
            b, width = e, width * 4
    return time_bar if time_bar is not None and time_bar <= n - 1 else None


def backtest_trades(bars: Sequence[Bar] | ShadowSeries, params: StrategyParams) -> list[ShadowTrade]:
    """The backtest's whole trade list: one position at a time, a signal taken only when flat
    (a signal on an exit bar opens the next trade). The last trade may be open."""
    series = bars if isinstance(bars, ShadowSeries) else ShadowSeries.from_bars(bars, params)
    trades: list[ShadowTrade] = []
    _continue_sequence(series, params, 0, trades)
    return trades


def _continue_sequence(series: ShadowSeries, params: StrategyParams, from_index: int,
                       out: list[ShadowTrade], resume: dict[int, int] | None = None) -> None:
    """Append the sequence's trades whose signal is at or after from_index (the backtest flat).
    `resume`: signal bar -> first bar not yet examined, for trades found open before."""
    signals = np.flatnonzero(series.signal[from_index:]) + from_index
    next_free = from_index
    for s in signals.tolist():
        if s < next_free:
            continue
        trade = shadow_trade(series, s, params, None if resume is None else resume.get(s))
        if trade is None:      # the newest bar: no entry bar yet
            return
        out.append(trade)
        if trade.exit_index is None:
            return
        next_free = trade.exit_index


class ShadowBook:
    """The live shadow: fed each closed bar's Decision, answers for any signal or for the
    whole sequence without redoing finished work.

    Guarantee: a closed shadow trade can never change as bars are added (its exit is in the
    past), so closed trades and the sequence up to the last closed trade are cached; each
    call re-simulates only from there. Arrays grow by doubling (amortised O(1) per bar).
    """

    def __init__(self, params: StrategyParams, capacity: int = 4096) -> None:
        self.params = params
        self._n = 0
        self._cap = max(1, capacity)
        self._ts = np.empty(self._cap, dtype=np.int64)
        self._f = np.empty((6, self._cap), dtype=np.float64)   # open high low close target stop
        self._signal = np.zeros(self._cap, dtype=np.bool_)
        self._closed: dict[int, ShadowTrade] = {}
        self._sequence: list[ShadowTrade] = []       # closed trades of the backtest's sequence
        self._sequence_free = 0                      # first bar the sequence is flat again
        self._resume: dict[int, int] = {}            # open shadow: signal bar -> next bar to examine

    def __len__(self) -> int:
        return self._n

    def append(self, d: Decision) -> None:
        """Add the next closed bar (must be newer than the last one)."""
        if self._n and d.bar.ts <= int(self._ts[self._n - 1]):
            raise ValueError(f"bar at {d.bar.iso} is not after the last bar of the shadow book")
        if self._n == self._cap:
            self._grow()
        i, b = self._n, d.bar
        self._ts[i] = b.ts
        stop = d.risk_stop if (self.params.use_stop_loss and d.risk_stop is not None) else _NO_PRICE
        target = d.target_price if d.target_price is not None else _NO_PRICE
        self._f[:, i] = (b.open, b.high, b.low, b.close, target, stop)
        self._signal[i] = d.signal
        self._n += 1

    def extend(self, decisions: Iterable[Decision]) -> None:
        for d in decisions:
            self.append(d)

    def _grow(self) -> None:
        self._cap *= 2
        ts = np.empty(self._cap, dtype=np.int64)
        ts[:self._n] = self._ts[:self._n]
        f = np.empty((6, self._cap), dtype=np.float64)
        f[:, :self._n] = self._f[:, :self._n]
        sig = np.zeros(self._cap, dtype=np.bool_)
        sig[:self._n] = self._signal[:self._n]
        self._ts, self._f, self._signal = ts, f, sig

    def series(self) -> ShadowSeries:
        """A snapshot of the bars so far (views: no copy; later appends do not alter it)."""
        n, f = self._n, self._f
        return ShadowSeries(self._ts[:n], f[0, :n], f[1, :n], f[2, :n], f[3, :n],
                            self._signal[:n], f[4, :n], f[5, :n])

    def shadow(self, signal_ts: int) -> ShadowTrade | None:
        """The backtest's trade for the signal bar that opened at signal_ts, if flat then."""
        series = self.series()
        s = series.index_of(signal_ts)
        if s is None:
            return None
        cached = self._closed.get(s)
        if cached is not None:
            return cached
        trade = shadow_trade(series, s, self.params, self._resume.get(s))
        self._remember(trade, len(series))
        return trade

    def _remember(self, trade: ShadowTrade | None, n: int) -> None:
        if trade is None:
            return
        if trade.exit_index is None:
            self._resume[trade.signal_index] = n
        else:
            self._closed[trade.signal_index] = trade
            self._resume.pop(trade.signal_index, None)

    def trades(self) -> list[ShadowTrade]:
        """backtest_trades over the bars so far; the last one may be open."""
        series = self.series()
        tail: list[ShadowTrade] = []
        _continue_sequence(series, self.params, self._sequence_free, tail, self._resume)
        for trade in tail:
            self._remember(trade, len(series))
            if trade.exit_index is None:
                break
            self._sequence.append(trade)
            self._sequence_free = trade.exit_index
        return self._sequence + [t for t in tail if t.exit_index is None]
