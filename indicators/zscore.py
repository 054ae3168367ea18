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

    The mean is RollingMean's and the variance RollingVariance's, operation for operation (so
    the result is bit-identical to composing the two; tests/test_indicators.py checks it), but
    both running states live here over ONE ring buffer, and the per-value bookkeeping they share
    (count, run of equal values) is done once: this runs on every bar, twice, in the strategy.
    Each state keeps its own resync schedule, exactly as the separate classes do.

    std == 0 reproduces pandas' float division: 0/0 is NaN, a non-zero deviation is +-inf.
    """

    __slots__ = (
        "window", "_resync_every", "_buf", "_nobs", "_same", "_prev",
        # RollingMean's state: Kahan sum, its peak, add/remove compensations, negatives count
        "_sum", "_sum_peak", "_sum_add", "_sum_rem", "_neg", "_sum_since",
        # RollingVariance's state: Welford mean, sum of squared deviations, its peak, comps
        "_wmean", "_ssqdm", "_ssqdm_peak", "_var_add", "_var_rem", "_var_since",
    )

    def __init__(self, window: int, resync_every: int | None = None) -> None:
        self.window = require_window("window", window)
        self._resync_every = require_window(
            "resync_every", resync_every if resync_every is not None else default_resync(window)
        )
        self._buf: deque[float] = deque(maxlen=window)
        self._nobs = 0
        self._same = 0
        self._prev = math.nan
        self._sum = self._sum_peak = self._sum_add = self._sum_rem = 0.0
        self._neg = 0
        self._sum_since = 0
        self._wmean = self._ssqdm = self._ssqdm_peak = self._var_add = self._var_rem = 0.0
        self._var_since = 0

    def update(self, x: float) -> float:
        """Slide the window by one value and return its z-score."""
        x = float(x)
        buf = self._buf
        sum_sync = var_sync = False
        if len(buf) == self.window:
            old = buf[0]
            if old == old:
                sum_sync, var_sync = self._remove(old)
        elif not buf:
            self._prev = x
        buf.append(x)
        if x == x:
            self._add(x)
        self._sum_since += 1
        if sum_sync or self._sum_since >= self._resync_every:
            self._resync_sum()
        self._var_since += 1
        if var_sync or self._var_since >= self._resync_every:
            self._resync_var()
        nobs = self._nobs
        if nobs < self.window:
            return math.nan
        # RollingMean._mean
        if self._same >= nobs:
            mean = self._prev
            var = 0.0                                  # RollingVariance._variance, same test
        else:
            mean = self._sum / nobs
            if self._neg == 0 and mean < 0.0 or self._neg == nobs and mean > 0.0:
                mean = 0.0
            var = 0.0 if nobs == 1 else self._ssqdm / nobs
        diff = x - mean
        if var > 0.0:
            return diff / math.sqrt(var)
        # pandas clips a negative rounding residue to std 0, then divides as floats do.
        if diff == 0.0 or diff != diff:
            return math.nan
        return math.copysign(math.inf, diff)

    def _add(self, x: float) -> None:
        nobs = self._nobs = self._nobs + 1
        self._same = self._same + 1 if x == self._prev else 1
        self._prev = x
        # RollingMean: Kahan-compensated add
        total = self._sum
        y = x - self._sum_add
        t = total + y
        self._sum_add = t - total - y
        self._sum = t
        if abs(t) > self._sum_peak:
            self._sum_peak = abs(t)
        if x < 0.0 or x == 0.0 and math.copysign(1.0, x) < 0.0:
            self._neg += 1
        # RollingVariance: Welford add with Kahan compensation
        mean = self._wmean
        comp = self._var_add
        prev_mean = mean - comp
        y = x - comp
        t = y - mean
        self._var_add = t + mean - y
        mean = self._wmean = mean + t / nobs
        ssqdm = self._ssqdm = self._ssqdm + (x - prev_mean) * (x - mean)
        if ssqdm > self._ssqdm_peak:
            self._ssqdm_peak = ssqdm

    def _remove(self, x: float) -> tuple[bool, bool]:
        """Take x out of both states; for each, True when it has fallen far below its peak."""
        nobs = self._nobs = self._nobs - 1
        # RollingMean
        total = self._sum
        y = -x - self._sum_rem
        t = total + y
        self._sum_rem = t - total - y
        self._sum = t
        if x < 0.0 or x == 0.0 and math.copysign(1.0, x) < 0.0:
            self._neg -= 1
        sum_sync = abs(t) < self._sum_peak * RESYNC_DROP
        # RollingVariance
        if not nobs:
            self._wmean = 0.0
            self._ssqdm = 0.0
            return sum_sync, False
        mean = self._wmean
        comp = self._var_rem
        prev_mean = mean - comp
        y = x - comp
        t = y - mean
        self._var_rem = t + mean - y
        mean = self._wmean = mean - t / nobs
        ssqdm = self._ssqdm = self._ssqdm - (x - prev_mean) * (x - mean)
        return sum_sync, ssqdm < self._ssqdm_peak * RESYNC_DROP

    def _resync_sum(self) -> None:
        self._sum = math.fsum(v for v in self._buf if v == v)
        self._sum_peak = abs(self._sum)
        self._sum_add = 0.0
        self._sum_rem = 0.0
        self._sum_since = 0

    def _resync_var(self) -> None:
        vals = [v for v in self._buf if v == v]
        self._var_since = 0
        self._ssqdm_peak = 0.0
        self._var_add = 0.0
        self._var_rem = 0.0
        if not vals:
            self._wmean = 0.0
            self._ssqdm = 0.0
            return
        mean = math.fsum(vals) / len(vals)
        self._wmean = mean
        self._ssqdm = self._ssqdm_peak = math.fsum((v - mean) * (v - mean) for v in vals)


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
