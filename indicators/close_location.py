"""Close location within the bar's range: 0 at the low, 1 at the high."""
from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]


def close_location_value(high: float, low: float, close: float) -> float:
    """(close-low)/(high-low) for one bar; NaN when high == low (a flat bar has no location)."""
    span = high - low
    if span == 0.0 or span != span:
        return math.nan
    return (close - low) / span


def close_location(
    high: npt.ArrayLike, low: npt.ArrayLike, close: npt.ArrayLike
) -> FloatArray:
    """Vectorized close location; NaN where high == low."""
    h = np.asarray(high, dtype=np.float64)
    lo = np.asarray(low, dtype=np.float64)
    c = np.asarray(close, dtype=np.float64)
    span = h - lo
    out = np.full(span.shape, np.nan)
    ok = span != 0.0
    np.divide(c - lo, span, out=out, where=ok)
    return out
