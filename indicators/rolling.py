"""Rolling-window mean with pandas' numerics, plus the vectorized exact form.

pandas `rolling(w).mean()` keeps a Kahan-compensated running sum that values enter and
leave; the backtest app's ATR is that mean, so the incremental form below performs the same
floating-point operations in the same order (bit-identical when started on the same bar).
To stop rounding residue from piling up over months of live bars, the sum is recomputed
exactly (math.fsum over the window) every `resync_every` bars, and at once when |sum| has
fallen below RESYNC_DROP times its peak since the last recomputation (large values left: their
rounding residue would now weigh ~1e3 times more). That keeps agreement with pandas to
~1e-15 relative on ordinary data while bounding the error on any run.
"""
from __future__ import annotations

import math
from collections import deque

import numpy as np
import numpy.typing as npt
from numpy.lib.stride_tricks import sliding_window_view

from indicators.errors import require_window

FloatArray = npt.NDArray[np.float64]

# A running sum (or sum of squared deviations) this far below its peak since the last exact
# recomputation carries the peak's rounding residue ~3 digits closer to its value: recompute.
RESYNC_DROP = 1e-3


def default_resync(window: int) -> int:
    """How many updates a running sum may go between exact recomputations."""
    return max(64, 4 * window)


class RollingMean:
    """Mean of the last `window` values; NaN until `window` values, NaN if any of them is NaN.

    Matches pandas `Series.rolling(window).mean()` (min_periods = window).
    """

    __slots__ = (
        "window", "_resync_every", "_buf", "_nobs", "_neg", "_sum", "_peak", "_comp_add",
        "_comp_rem", "_same", "_prev", "_since_sync",
    )

    def __init__(self, window: int, resync_every: int | None = None) -> None:
        self.window = require_window("window", window)
        self._resync_every = require_window(
            "resync_every", resync_every if resync_every is not None else default_resync(window)
        )
        self._buf: deque[float] = deque(maxlen=window)
        self._nobs = 0
        self._neg = 0
        self._sum = 0.0
        self._peak = 0.0
        self._comp_add = 0.0
        self._comp_rem = 0.0
        self._same = 0
        self._prev = math.nan
        self._since_sync = 0

    def update(self, x: float) -> float:
        """Slide the window by one value and return the mean (NaN while undefined)."""
        x = float(x)
        buf = self._buf
        must_sync = False
        if len(buf) == self.window:
            old = buf[0]
            if old == old:
                self._nobs -= 1
                total = self._sum
                y = -old - self._comp_rem
                t = total + y
                self._comp_rem = t - total - y
                self._sum = t
                if old < 0.0 or old == 0.0 and math.copysign(1.0, old) < 0.0:   # signbit
                    self._neg -= 1
                must_sync = abs(t) < self._peak * RESYNC_DROP
        elif not buf:
            self._prev = x
        buf.append(x)
        if x == x:
            self._nobs += 1
            total = self._sum
            y = x - self._comp_add
            t = total + y
            self._comp_add = t - total - y
            self._sum = t
            if abs(t) > self._peak:
                self._peak = abs(t)
            if x < 0.0 or x == 0.0 and math.copysign(1.0, x) < 0.0:
                self._neg += 1
            # pandas GH#42064: a window of one repeated value has exactly that mean.
            self._same = self._same + 1 if x == self._prev else 1
            self._prev = x
        self._since_sync += 1
        if must_sync or self._since_sync >= self._resync_every:
            self._resync()
        return self._mean()

    def _mean(self) -> float:
        nobs = self._nobs
        if nobs < self.window:
            return math.nan
        if self._same >= nobs:
            return self._prev
        result = self._sum / nobs
        if self._neg == 0 and result < 0.0 or self._neg == nobs and result > 0.0:
            return 0.0
        return result

    def _resync(self) -> None:
        self._sum = math.fsum(v for v in self._buf if v == v)
        self._peak = abs(self._sum)
        self._comp_add = 0.0
        self._comp_rem = 0.0
        self._since_sync = 0


def rolling_mean(values: npt.ArrayLike, window: int) -> FloatArray:
    """Vectorized rolling mean (NaN for the first window-1 entries and wherever a NaN is inside)."""
    require_window("window", window)
    xs = np.asarray(values, dtype=np.float64)
    out = np.full(xs.size, np.nan)
    if xs.size >= window:
        out[window - 1:] = sliding_window_view(xs, window).mean(axis=1)
    return out
