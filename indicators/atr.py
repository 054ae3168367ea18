"""True range and the SIMPLE-mean ATR the backtest app uses (not Wilder's smoothing)."""
from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from indicators.errors import require_window
from indicators.rolling import RollingMean, rolling_mean

FloatArray = npt.NDArray[np.float64]


class TrueRange:
    """TR[0] = high-low; TR[t] = max(high-low, |high-close[t-1]|, |low-close[t-1]|)."""

    __slots__ = ("_prev_close",)

    def __init__(self) -> None:
        self._prev_close = math.nan

    def update(self, high: float, low: float, close: float) -> float:
        """True range of this bar given the previous bar's close."""
        prev = self._prev_close
        self._prev_close = float(close)
        span = float(high - low)
        if prev != prev:
            return span
        # max(span, |high-prev|, |low-prev|), first of equals, without building a call
        up, down = float(abs(high - prev)), float(abs(low - prev))
        if up > span:
            span = up
        return down if down > span else span


class Atr:
    """ATR over `window` bars: the simple mean of the last `window` true ranges.

    Undefined (NaN) for the first window-1 bars, exactly as pandas rolling(window).mean().
    """

    __slots__ = ("window", "_tr", "_mean", "last_tr")

    def __init__(self, window: int, resync_every: int | None = None) -> None:
        self.window = require_window("window", window)
        self._tr = TrueRange()
        self._mean = RollingMean(window, resync_every)
        self.last_tr = math.nan

    def update(self, high: float, low: float, close: float) -> float:
        """Fold in one closed bar and return the ATR (NaN while undefined)."""
        self.last_tr = self._tr.update(high, low, close)
        return self._mean.update(self.last_tr)


def true_range(high: npt.ArrayLike, low: npt.ArrayLike, close: npt.ArrayLike) -> FloatArray:
    """Vectorized true range; the first bar uses high-low only."""
    h = np.asarray(high, dtype=np.float64)
    lo = np.asarray(low, dtype=np.float64)
    c = np.asarray(close, dtype=np.float64)
    tr = h - lo
    if tr.size > 1:
        prev = c[:-1]
        tr[1:] = np.maximum.reduce([tr[1:], np.abs(h[1:] - prev), np.abs(lo[1:] - prev)])
    return tr


def atr(
    high: npt.ArrayLike, low: npt.ArrayLike, close: npt.ArrayLike, window: int
) -> FloatArray:
    """Vectorized simple-mean ATR (NaN for the first window-1 bars)."""
    return rolling_mean(true_range(high, low, close), window)
