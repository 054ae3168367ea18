"""Rolling population variance and z-score with pandas' numerics, plus the exact vectorized form.

The backtest app computes z = (x - rolling(m).mean()) / rolling(m).std(ddof=0) with pandas.
pandas' variance is Welford add/remove with Kahan compensation; the incremental form below
repeats those operations, so on ordinary data it equals pandas bit for bit until its first
resync and to ~1e-13 after (golden cases: <= 4e-12 relative). A running sum of squared
deviations keeps rounding residue after a large value leaves the window (prices ~1e5, volume
spikes, or a volatile stretch followed by a calm one), so the state is recomputed exactly
from the ring buffer every `resync_every` bars, and at once when the sum has fallen
below RESYNC_DROP times its peak since the last recomputation; there we are closer to
the true value than pandas (tests/test_indicators.py shows pandas off by ~1e-5 after a spike).
A window of one repeated value has no z-score: std is exactly 0 (pandas GH#42064) and z is
0/0 = NaN, never a tiny-noise std. pandas 3.1 can instead return 0/residue = 0 there; both
mean "no signal" for thresholds >= 0.
"""
from __future__ import annotations

import math
from collections import deque

import numpy as np
import numpy.typing as npt
from numpy.lib.stride_tricks import sliding_window_view

from indicators.errors import require_window
from indicators.rolling import RESYNC_DROP, RollingMean, default_resync

FloatArray = npt.NDArray[np.float64]

# Windows per slice in the vectorized form: bounds the temporary to ~ rows * window floats.
_CHUNK_ROWS = 2048


class RollingVariance:
    """Population (ddof=0) variance of the last `window` values, as pandas rolling(w).var(ddof=0)."""

    __slots__ = (
        "window", "_resync_every", "_buf", "_nobs", "_mean", "_ssqdm", "_peak", "_comp_add",
        "_comp_rem", "_same", "_prev", "_since_sync",
    )

    def __init__(self, window: int, resync_every: int | None = None) -> None:
        self.window = require_window("window", window)
        self._resync_every = require_window(
            "resync_every", resync_every if resync_every is not None else default_resync(window)
        )
        self._buf: deque[float] = deque(maxlen=window)
        self._nobs = 0.0
        self._mean = 0.0
        self._ssqdm = 0.0
        self._peak = 0.0
        self._comp_add = 0.0
        self._comp_rem = 0.0
        self._same = 0
        self._prev = math.nan
        self._since_sync = 0

    def update(self, x: float) -> float:
        """Slide the window by one value and return the variance (NaN while undefined)."""
        x = float(x)
        buf = self._buf
        must_sync = False
        if len(buf) == self.window:
            must_sync = self._remove(buf[0])
        elif not buf:
            self._prev = x
        buf.append(x)
        if x == x:
            self._add(x)
        self._since_sync += 1
        if must_sync or self._since_sync >= self._resync_every:
            self._resync()
        return self._variance()

    def _add(self, x: float) -> None:
        self._nobs += 1.0
        self._same = self._same + 1 if x == self._prev else 1
        self._prev = x
        mean = self._mean
        comp = self._comp_add
        prev_mean = mean - comp
        y = x - comp
        t = y - mean
        self._comp_add = t + mean - y
        self._mean = mean + t / self._nobs
        self._ssqdm = self._ssqdm + (x - prev_mean) * (x - self._mean)
        if self._ssqdm > self._peak:
            self._peak = self._ssqdm

    def _remove(self, x: float) -> bool:
        """Take x out of the running state; True when the sum has fallen far below its peak."""
        if x != x:
            return False
        self._nobs -= 1.0
        if not self._nobs:
            self._mean = 0.0
            self._ssqdm = 0.0
            return False
        mean = self._mean
        comp = self._comp_rem
        prev_mean = mean - comp
        y = x - comp
        t = y - mean
        self._comp_rem = t + mean - y
        self._mean = mean - t / self._nobs
        self._ssqdm = self._ssqdm - (x - prev_mean) * (x - self._mean)
        return self._ssqdm < self._peak * RESYNC_DROP

    def _variance(self) -> float:
        nobs = self._nobs
        if nobs < self.window:
            return math.nan
        if nobs == 1.0 or self._same >= nobs:
            return 0.0
        return self._ssqdm / nobs

    def _resync(self) -> None:
        vals = [v for v in self._buf if v == v]
        self._since_sync = 0
        self._peak = 0.0
        self._comp_add = 0.0
        self._comp_rem = 0.0
        if not vals:
            self._mean = 0.0
            self._ssqdm = 0.0
            return
        mean = math.fsum(vals) / len(vals)
        self._mean = mean
        self._ssqdm = self._peak = math.fsum((v - mean) * (v - mean) for v in vals)


class RollingZScore:
    """z[t] = (x[t] - mean) / std over the last `window` values (ddof=0); NaN while undefined.

    std == 0 reproduces pandas' float division: 0/0 is NaN, a non-zero deviation is +-inf.
    """

    __slots__ = ("window", "_mean", "_var")

    def __init__(self, window: int, resync_every: int | None = None) -> None:
        self.window = require_window("window", window)
        self._mean = RollingMean(window, resync_every)
        self._var = RollingVariance(window, resync_every)

    def update(self, x: float) -> float:
        """Slide the window by one value and return its z-score."""
        x = float(x)
        mean = self._mean.update(x)
        var = self._var.update(x)
        if var != var:
            return math.nan
        diff = x - mean
        if var > 0.0:
            return diff / math.sqrt(var)
        # pandas clips a negative rounding residue to std 0, then divides as floats do.
        if diff == 0.0 or diff != diff:
            return math.nan
        return math.copysign(math.inf, diff)


def rolling_zscore(values: npt.ArrayLike, window: int) -> FloatArray:
    """Vectorized exact z-score (two-pass mean and population std per window).

    A window whose values are all equal has std exactly 0 and yields NaN, like pandas.
    """
    require_window("window", window)
    xs = np.asarray(values, dtype=np.float64)
    out = np.full(xs.size, np.nan)
    if xs.size < window:
        return out
    windows = sliding_window_view(xs, window)
    for start in range(0, windows.shape[0], _CHUNK_ROWS):
        win = windows[start:start + _CHUNK_ROWS]
        mean = win.mean(axis=1, keepdims=True)
        std = np.sqrt(((win - mean) ** 2).mean(axis=1))
        constant = (win == win[:, :1]).all(axis=1)
        mean = np.where(constant, win[:, 0], mean[:, 0])
        std = np.where(constant, 0.0, std)
        last = xs[window - 1 + start:window - 1 + start + win.shape[0]]
        with np.errstate(divide="ignore", invalid="ignore"):
            out[window - 1 + start:window - 1 + start + win.shape[0]] = (last - mean) / std
    return out
