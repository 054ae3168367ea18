"""Growable, numpy-backed candle storage shared by the chart's items.

Why: a candle close must cost O(1) amortised at 50k candles, so the arrays grow by doubling
instead of being re-allocated per bar, and every item reads the same arrays (no copies).
Guarantee: `ts` is strictly increasing, so `searchsorted` on `x` finds the visible range.
"""

from __future__ import annotations

import numpy as np

from ui.chart.errors import ChartDataError

_FIELDS = ("x", "open", "high", "low", "close", "ema_fast", "ema_slow", "volume")
_MIN_CAPACITY = 1024
DEFAULT_BAR_SECONDS = 900.0


class CandleSeries:
    """Closed candles: ts in Unix ms UTC, x in seconds (the chart's axis unit), OHLC and EMAs."""

    def __init__(self) -> None:
        self._n = 0
        self._ts = np.empty(0, dtype=np.int64)
        self._cols: dict[str, np.ndarray] = {f: np.empty(0, dtype=np.float64) for f in _FIELDS}
        self.bar_seconds = DEFAULT_BAR_SECONDS

    def __len__(self) -> int:
        return self._n

    def _col(self, name: str) -> np.ndarray:
        return self._cols[name][: self._n]

    @property
    def ts(self) -> np.ndarray:
        return self._ts[: self._n]

    @property
    def x(self) -> np.ndarray:
        return self._col("x")

    @property
    def open(self) -> np.ndarray:
        return self._col("open")

    @property
    def high(self) -> np.ndarray:
        return self._col("high")

    @property
    def low(self) -> np.ndarray:
        return self._col("low")

    @property
    def close(self) -> np.ndarray:
        return self._col("close")

    @property
    def ema_fast(self) -> np.ndarray:
        return self._col("ema_fast")

    @property
    def ema_slow(self) -> np.ndarray:
        return self._col("ema_slow")

    @property
    def volume(self) -> np.ndarray:
        """Traded volume per candle (NaN where unknown)."""
        return self._col("volume")

    @property
    def capacity(self) -> int:
        return int(self._ts.shape[0])

    def replace(self, ts_ms: np.ndarray, o: np.ndarray, h: np.ndarray, l: np.ndarray,
                c: np.ndarray, ema_fast: np.ndarray, ema_slow: np.ndarray,
                volume: np.ndarray | None = None) -> None:
        """Replace all candles; arrays must have one length and strictly increasing ts."""
        ts = np.asarray(ts_ms, dtype=np.int64)
        n = ts.shape[0]
        if volume is None:
            volume = np.full(n, np.nan)
        columns = [np.asarray(a, dtype=np.float64)
                   for a in (o, h, l, c, ema_fast, ema_slow, volume)]
        for name, col in zip(_FIELDS[1:], columns):
            if col.shape != (n,):
                raise ChartDataError(f"{name} has shape {col.shape}, expected ({n},) like ts_ms")
        if n > 1 and not bool(np.all(np.diff(ts) > 0)):
            bad = int(np.flatnonzero(np.diff(ts) <= 0)[0])
            raise ChartDataError(
                f"ts_ms must be strictly increasing: ts[{bad}]={ts[bad]} >= "
                f"ts[{bad + 1}]={ts[bad + 1]}")
        capacity = max(_MIN_CAPACITY, 1 << max(n - 1, 0).bit_length())
        self._ts = np.empty(capacity, dtype=np.int64)
        self._ts[:n] = ts
        self._cols = {f: np.empty(capacity, dtype=np.float64) for f in _FIELDS}
        self._cols["x"][:n] = ts / 1000.0
        for name, col in zip(_FIELDS[1:], columns):
            self._cols[name][:n] = col
        self._n = n
        self.bar_seconds = _infer_bar_seconds(ts)

    def append(self, ts_ms: int, o: float, h: float, l: float, c: float,
               ema_fast: float, ema_slow: float, volume: float = float("nan")) -> None:
        """Append one closed candle after the newest one (amortised O(1))."""
        if self._n and ts_ms <= self._ts[self._n - 1]:
            raise ChartDataError(
                f"append_bar ts {ts_ms} is not after the newest candle "
                f"{int(self._ts[self._n - 1])}")
        if self._n == self.capacity:
            self._grow()
        i = self._n
        self._ts[i] = ts_ms
        for name, value in zip(_FIELDS, (ts_ms / 1000.0, o, h, l, c, ema_fast, ema_slow,
                                         volume)):
            self._cols[name][i] = value
        self._n = i + 1
        if self._n == 2:
            self.bar_seconds = _infer_bar_seconds(self.ts)

    def _grow(self) -> None:
        capacity = max(_MIN_CAPACITY, 2 * self.capacity)
        ts = np.empty(capacity, dtype=np.int64)
        ts[: self._n] = self._ts[: self._n]
        self._ts = ts
        for name, col in self._cols.items():
            grown = np.empty(capacity, dtype=np.float64)
            grown[: self._n] = col[: self._n]
            self._cols[name] = grown

    def index_range(self, x0: float, x1: float) -> tuple[int, int]:
        """Half-open index range of candles whose x lies in [x0, x1]."""
        x = self.x
        return int(np.searchsorted(x, x0, side="left")), int(np.searchsorted(x, x1, side="right"))

    def nearest_index(self, x: float) -> int | None:
        """Index of the candle closest to x, or None when there are no candles."""
        if self._n == 0:
            return None
        xs = self.x
        i = int(np.searchsorted(xs, x))
        if i == 0:
            return 0
        if i >= self._n:
            return self._n - 1
        return i if xs[i] - x < x - xs[i - 1] else i - 1


def _infer_bar_seconds(ts_ms: np.ndarray) -> float:
    """The bar interval is the median spacing; gaps (exchange outages) do not skew a median."""
    if ts_ms.shape[0] < 2:
        return DEFAULT_BAR_SECONDS
    return float(np.median(np.diff(ts_ms[-min(ts_ms.shape[0], 2000):]))) / 1000.0
