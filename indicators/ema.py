"""Exponential moving average with pandas `ewm(span=n, adjust=False)` semantics.

The backtest app computes its EMAs with pandas, so this reproduces pandas' recurrence
operation for operation (including the skip when the value equals the current average),
which makes the incremental and vectorized forms bit-identical to the golden data.
"""
from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from indicators.errors import require_window

FloatArray = npt.NDArray[np.float64]


class Ema:
    """Incremental EMA: e[0] = x[0]; e[t] = alpha*x[t] + (1-alpha)*e[t-1], alpha = 2/(span+1).

    NaN inputs are skipped (the average carries over), as pandas does with ignore_na=False
    and adjust=False; before the first non-NaN value the EMA is NaN.
    """

    __slots__ = ("span", "_alpha", "_old", "_value")

    def __init__(self, span: int) -> None:
        self.span = require_window("span", span)
        self._alpha = 2.0 / (span + 1.0)
        self._old = 1.0 - self._alpha
        self._value = math.nan

    @property
    def value(self) -> float:
        """The current average (NaN before the first value)."""
        return self._value

    def update(self, x: float) -> float:
        """Fold one value in and return the new average."""
        w = self._value
        if w != w:  # not seeded yet
            self._value = float(x)
            return self._value
        if x == x and w != x:
            # pandas: weighted = (old_wt*weighted + new_wt*cur) / (old_wt + new_wt)
            self._value = (self._old * w + self._alpha * x) / (self._old + self._alpha)
        return self._value


def ema(values: npt.ArrayLike, span: int) -> FloatArray:
    """Vectorized EMA over a whole series (a recurrence, so a loop over plain floats)."""
    calc = Ema(span)
    xs = np.asarray(values, dtype=np.float64)
    return np.fromiter((calc.update(x) for x in xs.tolist()), dtype=np.float64, count=xs.size)
