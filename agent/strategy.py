"""The seller-exhaustion strategy, bar for bar as the backtest app computes it (STRATEGY.md).

`SellerExhaustionStrategy.update` is the live, O(1)-per-bar form; `compute_features` is the
vectorized form over whole arrays, used for parity checks and to seed charts. Both produce
the same indicator values (to ~1e-12 relative) and the same signals.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from data.bar import Bar
from indicators.atr import Atr, atr
from indicators.close_location import close_location, close_location_value
from indicators.ema import Ema, ema
from indicators.errors import InvalidWindowError, require_window
from indicators.fibonacci import RATIOS, FibLevels, FibWindow, find_swing_high, levels_between
from indicators.zscore import RollingZScore, rolling_zscore

__all__ = [
    "RATIOS", "Decision", "Features", "FibLevels", "InvalidStrategyParamsError",
    "SellerExhaustionStrategy", "StrategyParams", "compute_features",
]

FloatArray = npt.NDArray[np.float64]


class InvalidStrategyParamsError(ValueError):
    """A strategy parameter is outside what the backtest app can mean by it."""


@dataclass(frozen=True, slots=True)
class StrategyParams:
    """Everything the strategy needs; windows are in BARS, already resolved from minutes."""

    ema_fast: int
    ema_slow: int
    z_window: int
    atr_window: int
    vol_z: float
    tr_z: float
    cloc_min: float
    fib_lookback: int
    fib_lookahead: int
    fib_target_level: float
    use_fib_exits: bool
    use_stop_loss: bool
    atr_stop_mult: float
    use_traditional_tp: bool
    reward_r: float
    use_time_exit: bool
    max_hold: int
    fee_bp: float
    slippage_bp: float

    def __post_init__(self) -> None:
        minimums = {"ema_fast": 1, "ema_slow": 1, "z_window": 1, "atr_window": 1, "max_hold": 1,
                    "fib_lookback": 0, "fib_lookahead": 0}
        for name, minimum in minimums.items():
            try:
                require_window(name, getattr(self, name), minimum)
            except InvalidWindowError as exc:
                raise InvalidStrategyParamsError(str(exc)) from None
        if self.fib_target_level not in RATIOS:
            raise InvalidStrategyParamsError(
                f"fib_target_level must be one of {RATIOS}, got {self.fib_target_level!r}"
                " (the backtest never exits by Fibonacci at any other level)"
            )
        for name in ("vol_z", "tr_z", "cloc_min", "atr_stop_mult", "reward_r",
                     "fee_bp", "slippage_bp"):
            if not math.isfinite(getattr(self, name)):
                raise InvalidStrategyParamsError(f"{name} must be finite, got {getattr(self, name)!r}")

    @classmethod
    def from_config(cls, cfg: Any) -> StrategyParams:
        """Build from agent.config's model: seller_params, backtest_params, windows()."""
        sp, bp, w = cfg.seller_params, cfg.backtest_params, cfg.windows()
        return cls(
            ema_fast=w.ema_fast, ema_slow=w.ema_slow, z_window=w.z_window,
            atr_window=w.atr_window,
            vol_z=float(sp.vol_z), tr_z=float(sp.tr_z), cloc_min=float(sp.cloc_min),
            fib_lookback=bp.fib_swing_lookback, fib_lookahead=bp.fib_swing_lookahead,
            fib_target_level=float(bp.fib_target_level), use_fib_exits=bool(bp.use_fib_exits),
            use_stop_loss=bool(bp.use_stop_loss), atr_stop_mult=float(bp.atr_stop_mult),
            use_traditional_tp=bool(bp.use_traditional_tp), reward_r=float(bp.reward_r),
            use_time_exit=bool(bp.use_time_exit), max_hold=bp.max_hold,
            fee_bp=float(bp.fee_bp), slippage_bp=float(bp.slippage_bp),
        )

    def warmup_bars(self, seed_weight: float = 1e-4) -> int:
        """Bars of history after which decisions match a backtest that started long before.

        Every indicator is defined (tr_z needs atr_window + z_window - 1 bars, the Fibonacci
        rule lookback + lookahead + 1) and the slow EMA's seed, whose weight at bar t is
        (1 - alpha)^t, weighs less than `seed_weight`: ~4.6 * ema_slow bars for 1e-4.
        """
        if not 0.0 < seed_weight < 1.0:
            raise InvalidStrategyParamsError(f"seed_weight must be in (0, 1), got {seed_weight!r}")
        alpha = 2.0 / (self.ema_slow + 1.0)
        ema_bars = 1 if alpha >= 1.0 else math.floor(math.log(seed_weight) / math.log1p(-alpha)) + 2
        return max(ema_bars, self.atr_window + self.z_window - 1,
                   self.fib_lookback + self.fib_lookahead + 1)


@dataclass(slots=True)
class Decision:
    """What the strategy saw and decided on one closed bar (NaN where undefined).

    A value: nobody changes one after the strategy made it (the chart, the history and the
    event subscribers share it). Not `frozen` only for speed: a frozen dataclass sets each of
    these 13 fields through object.__setattr__, ~2 us per bar, a fifth of a replayed bar's cost.
    """

    bar: Bar
    index: int  # 0-based count of bars this strategy has seen (the backtest's t)
    ema_fast: float
    ema_slow: float
    atr: float
    vol_z: float
    tr_z: float
    cloc: float
    signal: bool
    fib: FibLevels | None  # computed on signal bars only
    target_price: float | None  # fib.price(fib_target_level) if use_fib_exits and fib
    risk_stop: float | None  # bar.low - atr_stop_mult * atr on signal bars
    # Signal bars: the rule's swing high even when it is not above the low (then fib is None),
    # as the backtest app reports it; NaN elsewhere. Lets the log say why levels are missing.
    swing_high: float = math.nan


def is_signal(
    ema_fast: float, ema_slow: float, vol_z: float, tr_z: float, cloc: float,
    params: StrategyParams,
) -> bool:
    """downtrend AND vol_z > thr AND tr_z > thr AND cloc > min; NaN anywhere makes it False."""
    return (
        ema_fast < ema_slow
        and vol_z > params.vol_z
        and tr_z > params.tr_z
        and cloc > params.cloc_min
    )


class SellerExhaustionStrategy:
    """Incremental strategy: feed CLOSED bars oldest first, one Decision per bar."""

    __slots__ = ("params", "_index", "_ema_f", "_ema_s", "_atr", "_vol_z", "_tr_z",
                 "_fib", "_atr_scale")

    def __init__(self, params: StrategyParams) -> None:
        self.params = params
        self._index = -1
        self._ema_f = Ema(params.ema_fast)
        self._ema_s = Ema(params.ema_slow)
        self._atr = Atr(params.atr_window)
        self._vol_z = RollingZScore(params.z_window)
        self._tr_z = RollingZScore(params.z_window)
        self._fib = FibWindow(params.fib_lookback, params.fib_lookahead)
        self._atr_scale = float(params.atr_window)

    @property
    def bars_seen(self) -> int:
        """How many bars have been folded in."""
        return self._index + 1

    def update(self, bar: Bar) -> Decision:
        """Fold in one closed bar and decide; O(1) except the Fibonacci scan on signal bars."""
        p = self.params
        self._index += 1
        high, low, close = bar.high, bar.low, bar.close
        ema_f = self._ema_f.update(close)
        ema_s = self._ema_s.update(close)
        atr_v = self._atr.update(high, low, close)
        vol_z = self._vol_z.update(bar.volume)
        # The app z-scores ATR * atr_window (a rolling TR sum), not TR itself.
        tr_z = self._tr_z.update(atr_v * self._atr_scale)
        cloc = close_location_value(high, low, close)
        self._fib.update(high, low)
        signal = is_signal(ema_f, ema_s, vol_z, tr_z, cloc, p)
        fib = target = stop = None
        swing = math.nan
        if signal:
            found = self._fib.swing_high()
            if found is not None:
                swing = found
                fib = levels_between(found, low)
            if p.use_fib_exits and fib is not None:
                target = fib.price(p.fib_target_level)
            stop = low - p.atr_stop_mult * atr_v
        return Decision(bar, self._index, ema_f, ema_s, atr_v, vol_z, tr_z, cloc,
                        signal, fib, target, stop, swing)


@dataclass(frozen=True, slots=True)
class Features:
    """Vectorized indicator columns, one entry per bar (NaN where undefined).

    On signal bars fib_swing_high is set whenever the rule finds a swing (even one not above
    the low, as the app reports it); fib_prices, shape (n, 5) in RATIOS order, only with levels.
    """

    ts: npt.NDArray[np.int64]
    ema_fast: FloatArray
    ema_slow: FloatArray
    atr: FloatArray
    vol_z: FloatArray
    tr_z: FloatArray
    cloc: FloatArray
    signal: npt.NDArray[np.bool_]
    fib_swing_high: FloatArray
    fib_prices: FloatArray


def compute_features(
    ts: npt.ArrayLike, open_: npt.ArrayLike, high: npt.ArrayLike, low: npt.ArrayLike,
    close: npt.ArrayLike, volume: npt.ArrayLike, params: StrategyParams,
) -> Features:
    """Whole-series form of the strategy (the backtest's columns), for parity and charts.

    `open_` is accepted so callers pass a full OHLCV set; no indicator reads it.
    """
    p = params
    h = np.asarray(high, dtype=np.float64)
    lo = np.asarray(low, dtype=np.float64)
    c = np.asarray(close, dtype=np.float64)
    n = c.size
    for name, arr in (("open", open_), ("low", lo), ("high", h), ("volume", volume), ("ts", ts)):
        if np.asarray(arr).shape != (n,):
            raise ValueError(f"{name} has shape {np.asarray(arr).shape}, expected ({n},)")
    ema_f = ema(c, p.ema_fast)
    ema_s = ema(c, p.ema_slow)
    atr_v = atr(h, lo, c, p.atr_window)
    vol_z = rolling_zscore(volume, p.z_window)
    tr_z = rolling_zscore(atr_v * float(p.atr_window), p.z_window)
    cloc = close_location(h, lo, c)
    with np.errstate(invalid="ignore"):
        signal = (ema_f < ema_s) & (vol_z > p.vol_z) & (tr_z > p.tr_z) & (cloc > p.cloc_min)
    swing = np.full(n, np.nan)
    prices = np.full((n, len(RATIOS)), np.nan)
    highs, lows = h.tolist(), lo.tolist()
    for s in np.flatnonzero(signal).tolist():
        found = find_swing_high(highs, s, p.fib_lookback, p.fib_lookahead)
        if found is None:
            continue
        swing[s] = found
        levels = levels_between(found, lows[s])
        if levels is not None:
            prices[s] = levels.prices
    return Features(np.asarray(ts, dtype=np.int64), ema_f, ema_s, atr_v, vol_z, tr_z, cloc,
                    signal, swing, prices)
