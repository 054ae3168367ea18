"""Swing high and Fibonacci retracement levels, with the backtest app's exact candidate rule.

At a signal bar s (lookback L, lookahead A): no levels if s < L + A; lo = max(0, s-L),
hi = s-A, no levels if lo >= hi. A candidate is any i in [lo+A, hi) whose high is not
exceeded (ties allowed) by any bar in [max(0,i-A), i) or (i, i+A]. swing_high is the highest
candidate high, else the max high over [lo, hi). swing_low = low[s]; no levels unless
swing_high > swing_low. Only bars s-L .. s are ever read, so a live strategy keeps L+1 bars.
"""
from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

from indicators.errors import UnknownFibRatioError, require_window

RATIOS: tuple[float, float, float, float, float] = (0.382, 0.5, 0.618, 0.786, 1.0)


@dataclass(frozen=True, slots=True)
class FibLevels:
    """Retracement prices from swing_low (the signal bar's low) up to swing_high."""

    swing_high: float
    swing_low: float
    prices: tuple[float, float, float, float, float]  # one per RATIOS entry, same order

    def price(self, ratio: float) -> float:
        """Price of one of RATIOS; any other ratio (e.g. 0.236) is an error, never a guess."""
        try:
            return self.prices[RATIOS.index(ratio)]
        except ValueError:
            raise UnknownFibRatioError(
                f"Fibonacci ratio {ratio!r} is not one of {RATIOS}"
            ) from None


def levels_between(swing_high: float, swing_low: float) -> FibLevels | None:
    """Levels for a swing, or None when the swing high is not above the low."""
    if not swing_high > swing_low:
        return None
    span = swing_high - swing_low
    p = tuple(swing_low + span * r for r in RATIOS)
    return FibLevels(swing_high, swing_low, (p[0], p[1], p[2], p[3], p[4]))


def swing_high(highs: Sequence[float], lo: int, hi: int, lookahead: int) -> float:
    """Highest candidate high in [lo+A, hi), else the max over [lo, hi). Requires lo < hi.

    Reads highs[max(0, i-A) .. i+A] for candidates i, so indices up to hi-1+A.
    """
    best = None
    for i in range(lo + lookahead, hi):
        h = highs[i]
        if best is not None and h <= best:
            continue  # cannot raise the maximum, no need to test it
        left = highs[max(0, i - lookahead):i]
        right = highs[i + 1:i + lookahead + 1]
        if all(v <= h for v in left) and all(v <= h for v in right):
            best = h
    if best is None:
        return max(highs[lo:hi])
    return best


def find_swing_high(
    highs: Sequence[float], s: int, lookback: int, lookahead: int
) -> float | None:
    """Steps 1-4 of the rule at signal bar s: the swing high, or None when there is no window.

    The backtest app reports this value even when it is not above low[s] (then no levels).
    """
    require_window("fib_swing_lookback", lookback, minimum=0)
    require_window("fib_swing_lookahead", lookahead, minimum=0)
    if s < lookback + lookahead:
        return None
    lo = max(0, s - lookback)
    hi = s - lookahead
    if lo >= hi:
        return None
    return float(swing_high(highs, lo, hi, lookahead))


def fib_levels(
    highs: Sequence[float], lows: Sequence[float], s: int, lookback: int, lookahead: int
) -> FibLevels | None:
    """Fibonacci levels at signal bar index s over whole-series arrays (None when undefined)."""
    high = find_swing_high(highs, s, lookback, lookahead)
    if high is None:
        return None
    return levels_between(high, float(lows[s]))


class FibWindow:
    """Keeps the last L+1 bars' highs: all the rule ever reads at the newest bar s."""

    __slots__ = ("lookback", "lookahead", "_highs", "_count", "_last_low")

    def __init__(self, lookback: int, lookahead: int) -> None:
        self.lookback = require_window("fib_swing_lookback", lookback, minimum=0)
        self.lookahead = require_window("fib_swing_lookahead", lookahead, minimum=0)
        self._highs: deque[float] = deque(maxlen=lookback + 1)
        self._count = 0
        self._last_low = float("nan")

    def update(self, high: float, low: float) -> None:
        """Record one closed bar."""
        self._highs.append(float(high))
        self._last_low = float(low)
        self._count += 1

    def swing_high(self) -> float | None:
        """Swing high with the newest bar as signal bar s (s = bars seen - 1); O(L*A) worst case."""
        s = self._count - 1
        lookback, lookahead = self.lookback, self.lookahead
        if s < lookback + lookahead or lookback <= lookahead:
            return None
        # s >= L, so the window holds exactly bars s-L .. s: local index = global - (s-L).
        return float(swing_high(list(self._highs), 0, lookback - lookahead, lookahead))

    def levels(self) -> FibLevels | None:
        """Levels with the newest bar as signal bar (swing low = its low)."""
        high = self.swing_high()
        return None if high is None else levels_between(high, self._last_low)
