"""Indicators: hand-computed values, and incremental == vectorized == pandas on random series.

z-scores are compared with |a - b| <= 1e-9 * max(1, |b|) + 1e-14 * kappa**2, kappa being
max|x| / std over the window. A z-score is measured in standard deviations, so near z = 0 an
absolute 1e-9 std is the meaningful bound; and when the window's spread is tiny against its
level (kappa large) no float algorithm keeps those digits: x - mean alone is off by
eps * kappa, and pandas' Welford updates by about eps * kappa**2. Real windows (volumes, ATR
sums) have kappa of a few units to ~1e3. Everything else is compared at 1e-9 relative.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from indicators.atr import Atr, TrueRange, atr, true_range
from indicators.close_location import close_location, close_location_value
from indicators.ema import Ema, ema
from indicators.errors import InvalidWindowError, UnknownFibRatioError
from indicators.fibonacci import (
    RATIOS, FibWindow, fib_levels, find_swing_high, levels_between,
)
from indicators.rolling import RollingMean, rolling_mean
from indicators.zscore import RollingVariance, RollingZScore, rolling_zscore

REL = 1e-9
FAST = settings(max_examples=150, deadline=None)


def close_rel(a: np.ndarray, b: np.ndarray, rel: float = REL, floor: float = 0.0) -> bool:
    """NaN in exactly the same places, elsewhere |a-b| <= rel * max(floor, |b|)."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if not np.array_equal(np.isnan(a), np.isnan(b)):
        return False
    both = ~np.isnan(b)
    inf = np.isinf(b) & both
    if not np.array_equal(a[inf], b[inf]):
        return False
    fin = both & ~inf
    return bool(np.all(np.abs(a[fin] - b[fin]) <= rel * np.maximum(floor, np.abs(b[fin]))))


@st.composite
def series(draw: st.DrawFn, min_size: int = 1, max_size: int = 400) -> np.ndarray:
    """Random walks at price-like or volume-like scales, with spikes and constant runs."""
    n = draw(st.integers(min_size, max_size))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    level = 10.0 ** draw(st.integers(-3, 6))
    vol = 10.0 ** draw(st.integers(-4, -1))
    if draw(st.booleans()):
        x = level * np.exp(np.cumsum(rng.normal(0.0, vol, n)))  # price-like
    else:
        x = level * rng.lognormal(0.0, 1.0, n)  # volume-like, heavy-tailed
    if draw(st.booleans()) and n > 2:  # rare huge spike
        x[rng.integers(n)] *= 10.0 ** draw(st.integers(1, 4))
    if draw(st.booleans()) and n > 4:  # a flat stretch: std exactly 0 inside it
        a = int(rng.integers(n // 2))
        b = int(rng.integers(a + 1, n + 1))
        x[a:b] = x[a]
    return x


def incremental(calc: object, xs: np.ndarray) -> np.ndarray:
    return np.array([calc.update(x) for x in xs.tolist()])  # type: ignore[attr-defined]


# ---- EMA ------------------------------------------------------------------------------------

def test_ema_span_3_by_hand() -> None:
    # alpha = 2/(3+1) = 0.5
    assert ema([1.0, 2.0, 3.0, 3.0], 3).tolist() == [1.0, 1.5, 2.25, 2.625]


def test_ema_seeds_on_first_value_not_on_a_mean() -> None:
    calc = Ema(10)
    assert calc.update(7.0) == 7.0


def test_ema_skips_nan_and_carries_the_average() -> None:
    out = ema([math.nan, 4.0, math.nan, 8.0], 3)
    assert math.isnan(out[0])
    assert out[1:].tolist() == [4.0, 4.0, 6.0]


def test_ema_rejects_zero_span() -> None:
    with pytest.raises(InvalidWindowError, match="span"):
        Ema(0)


@FAST
@given(xs=series(), span=st.integers(1, 700))
def test_ema_incremental_is_bit_identical_to_pandas_ewm(xs: np.ndarray, span: int) -> None:
    expected = pd.Series(xs).ewm(span=span, adjust=False).mean().to_numpy()
    assert np.array_equal(incremental(Ema(span), xs), expected)
    assert np.array_equal(ema(xs, span), expected)


# ---- true range and ATR ---------------------------------------------------------------------

HAND_BARS = [  # high, low, close
    (10.0, 8.0, 9.0),   # TR = 2 (first bar: high - low)
    (12.0, 9.0, 11.0),  # max(3, |12-9|=3, |9-9|=0) = 3
    (11.0, 10.0, 10.5),  # max(1, |11-11|=0, |10-11|=1) = 1
    (7.0, 6.0, 6.5),    # gap down: max(1, |7-10.5|=3.5, |6-10.5|=4.5) = 4.5
]


def test_true_range_by_hand() -> None:
    h, lo, c = (np.array(col) for col in zip(*HAND_BARS))
    assert true_range(h, lo, c).tolist() == [2.0, 3.0, 1.0, 4.5]
    calc = TrueRange()
    assert [calc.update(*bar) for bar in HAND_BARS] == [2.0, 3.0, 1.0, 4.5]


def test_atr_is_the_simple_mean_of_true_range_by_hand() -> None:
    h, lo, c = (np.array(col) for col in zip(*HAND_BARS))
    expected = [math.nan, 2.5, 2.0, 2.75]  # Wilder would give 2.5, 1.75, 3.125
    assert np.array_equal(atr(h, lo, c, 2), expected, equal_nan=True)
    calc = Atr(2)
    assert np.array_equal([calc.update(*bar) for bar in HAND_BARS], expected, equal_nan=True)


@st.composite
def ohlc(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    close = draw(series(min_size=1, max_size=300))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    up = close * rng.uniform(0.0, 0.02, close.size)
    down = close * rng.uniform(0.0, 0.02, close.size)
    return close + up, close - down, close


@FAST
@given(bars=ohlc(), window=st.integers(1, 120), resync=st.sampled_from([1, 7, 64, None]))
def test_atr_incremental_matches_pandas_and_vectorized(
    bars: tuple[np.ndarray, np.ndarray, np.ndarray], window: int, resync: int | None
) -> None:
    h, lo, c = bars
    prev = pd.Series(c).shift(1)
    tr = pd.concat([pd.Series(h - lo), (pd.Series(h) - prev).abs(), (pd.Series(lo) - prev).abs()],
                   axis=1).max(axis=1)
    expected = tr.rolling(window).mean().to_numpy()
    calc = Atr(window, resync)
    mine = np.array([calc.update(*bar) for bar in zip(h.tolist(), lo.tolist(), c.tolist())])
    assert close_rel(mine, expected)
    assert close_rel(atr(h, lo, c, window), expected)
    assert np.array_equal(true_range(h, lo, c), tr.to_numpy())


# ---- rolling mean ---------------------------------------------------------------------------

@st.composite
def prices(draw: st.DrawFn) -> np.ndarray:
    """Positive random walks without spikes: a window sum never collapses below its peak."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    n = draw(st.integers(1, 400))
    level = 10.0 ** draw(st.integers(-3, 6))
    return level * np.exp(np.cumsum(rng.normal(0.0, 10.0 ** draw(st.integers(-4, -2)), n)))


@FAST
@given(xs=prices(), window=st.integers(1, 200))
def test_rolling_mean_is_bit_identical_to_pandas_until_a_resync(
    xs: np.ndarray, window: int
) -> None:
    expected = pd.Series(xs).rolling(window).mean().to_numpy()
    mine = incremental(RollingMean(window, resync_every=10**9), xs)
    assert np.array_equal(mine, expected, equal_nan=True)


@FAST
@given(xs=series(), window=st.integers(1, 200), resync=st.sampled_from([1, 3, 64, None]))
def test_rolling_mean_forms_agree_with_pandas(
    xs: np.ndarray, window: int, resync: int | None
) -> None:
    expected = pd.Series(xs).rolling(window).mean().to_numpy()
    assert close_rel(incremental(RollingMean(window, resync), xs), expected)
    assert close_rel(rolling_mean(xs, window), expected)


def test_rolling_mean_stays_exact_when_large_values_give_way_to_small_ones() -> None:
    # True ranges ~400 then ~0.02: the sum drops 1e4-fold; Kahan alone keeps ~4e-11 residue.
    rng = np.random.default_rng(1)
    window = 5
    xs = np.concatenate([rng.lognormal(6, 1, 500), rng.lognormal(-4, 1, 2000)])
    mine = incremental(RollingMean(window, resync_every=10**9), xs)[window - 1:]
    exact = np.lib.stride_tricks.sliding_window_view(xs, window).mean(axis=1)
    assert np.abs(mine[500:] / exact[500:] - 1).max() < 1e-13


def test_rolling_mean_is_nan_while_a_nan_is_in_the_window() -> None:
    out = incremental(RollingMean(2), np.array([1.0, math.nan, 3.0, 5.0]))
    assert np.array_equal(out, [math.nan, math.nan, math.nan, 4.0], equal_nan=True)


# ---- z-score --------------------------------------------------------------------------------

def test_zscore_window_3_by_hand() -> None:
    xs = np.array([1.0, 2.0, 3.0, 4.0, 10.0])
    # [1,2,3] and [2,3,4]: (x-mean)/std = 1/sqrt(2/3); [3,4,10]: mean 17/3, var 258/27
    expected = [math.nan, math.nan, 1 / math.sqrt(2 / 3), 1 / math.sqrt(2 / 3),
                (13 / 3) / math.sqrt(258 / 27)]
    assert close_rel(rolling_zscore(xs, 3), expected, rel=1e-15)
    assert close_rel(incremental(RollingZScore(3), xs), expected, rel=1e-15)


def test_zscore_uses_population_std_not_sample_std() -> None:
    # [0, 2]: population std 1 -> z = 1; the sample std sqrt(2) would give 0.707...
    assert incremental(RollingZScore(2), np.array([0.0, 2.0]))[-1] == 1.0


def test_zscore_of_a_constant_window_is_nan() -> None:
    xs = np.array([3.0, 0.1, 0.1, 0.1, 0.1, 0.2])
    expected = ((pd.Series(xs) - pd.Series(xs).rolling(4).mean())
                / pd.Series(xs).rolling(4).std(ddof=0)).to_numpy()
    mine = incremental(RollingZScore(4), xs)
    assert math.isnan(expected[4]) and math.isnan(mine[4]) and math.isnan(rolling_zscore(xs, 4)[4])
    assert close_rel(mine, expected)


def test_zscore_leaving_a_flat_stretch_is_finite_not_noise() -> None:
    xs = np.array([5.0] * 10 + [6.0])
    z = incremental(RollingZScore(4), xs)[-1]
    # window [5, 5, 5, 6]: mean 5.25, population std sqrt(0.1875)
    assert z == pytest.approx(0.75 / math.sqrt(0.1875), rel=1e-15)


def test_zscore_nan_input_makes_the_window_undefined() -> None:
    out = incremental(RollingZScore(2), np.array([1.0, math.nan, 2.0, 4.0]))
    assert np.isnan(out[:3]).all() and out[3] == 1.0


def zscore_pandas(xs: np.ndarray, window: int) -> np.ndarray:
    s = pd.Series(xs)
    return ((s - s.rolling(window).mean()) / s.rolling(window).std(ddof=0)).to_numpy()


def constant_windows(xs: np.ndarray, window: int) -> np.ndarray:
    flat = np.zeros(xs.size, dtype=bool)
    if xs.size >= window:
        win = np.lib.stride_tricks.sliding_window_view(xs, window)
        flat[window - 1:] = (win == win[:, :1]).all(axis=1)
    return flat


def zscore_agrees(
    mine: np.ndarray, ref: np.ndarray, xs: np.ndarray, window: int, *, ref_is_pandas: bool
) -> bool:
    """Same NaN/inf pattern; finite values within 1e-9 std plus the conditioning bound.

    pandas never recomputes its running state, so a large value that has LEFT the window
    still weighs on its rounding: for pandas the bound uses the largest |x| seen so far.

    A window of one repeated value has no z-score: ours is NaN there. pandas 3.1 returns
    0/0 = NaN or, when its running variance kept a rounding residue, 0/residue = 0; both
    mean "no signal" for the thresholds >= 0 the exporter writes, so 0 is accepted there.
    """
    flat = constant_windows(xs, window)
    if not (np.isnan(mine[flat]).all() and np.all((ref[flat] == 0) | np.isnan(ref[flat]))):
        return False
    mine, ref, xs_ok = mine[~flat], ref[~flat], ~flat
    if not np.array_equal(np.isnan(mine), np.isnan(ref)):
        return False
    if not np.array_equal(mine[np.isinf(ref)], ref[np.isinf(ref)]):
        return False
    kappa2 = np.zeros(xs.size)
    if xs.size >= window:
        win = np.lib.stride_tricks.sliding_window_view(xs, window)
        peak = np.maximum.accumulate(np.abs(xs))[window - 1:] if ref_is_pandas else (
            np.abs(win).max(axis=1))
        with np.errstate(divide="ignore", invalid="ignore"):
            kappa2[window - 1:] = peak ** 2 / win.var(axis=1)
    kappa2 = kappa2[xs_ok]
    fin = np.isfinite(ref)
    tol = REL * np.maximum(1.0, np.abs(ref[fin])) + 1e-14 * kappa2[fin]
    return bool(np.all(np.abs(mine[fin] - ref[fin]) <= tol))


@FAST
@given(xs=series(max_size=900), window=st.integers(1, 700),
       resync=st.sampled_from([1, 5, 64, None]))
def test_zscore_incremental_matches_pandas_and_vectorized(
    xs: np.ndarray, window: int, resync: int | None
) -> None:
    mine = incremental(RollingZScore(window, resync), xs)
    assert zscore_agrees(mine, rolling_zscore(xs, window), xs, window, ref_is_pandas=False)
    assert zscore_agrees(mine, zscore_pandas(xs, window), xs, window, ref_is_pandas=True)


def composed_zscore(window: int, resync: int | None, xs: np.ndarray) -> list[float]:
    """The z-score as RollingMean and RollingVariance compose it (the form RollingZScore fuses)."""
    mean_calc, var_calc = RollingMean(window, resync), RollingVariance(window, resync)
    out = []
    for x in xs.tolist():
        mean, var = mean_calc.update(x), var_calc.update(x)
        diff = x - mean
        if var != var:
            out.append(math.nan)
        elif var > 0.0:
            out.append(diff / math.sqrt(var))
        else:
            out.append(math.nan if diff == 0.0 or diff != diff else math.copysign(math.inf, diff))
    return out


@FAST
@given(xs=series(max_size=900), window=st.integers(1, 700),
       resync=st.sampled_from([1, 5, 64, None]), seed=st.integers(0, 2**32 - 1),
       holes=st.sampled_from([0.0, 0.02]), signed=st.booleans())
def test_zscore_is_bit_identical_to_composed_mean_and_variance(
    xs: np.ndarray, window: int, resync: int | None, seed: int, holes: float, signed: bool
) -> None:
    rng = np.random.default_rng(seed)
    xs = xs.copy()
    if signed:   # negatives and signed zeros exercise the mean's sign bookkeeping
        xs *= rng.choice([-1.0, 1.0], xs.size)
        xs[rng.random(xs.size) < 0.05] = rng.choice([0.0, -0.0])
    xs[rng.random(xs.size) < holes] = math.nan
    mine = incremental(RollingZScore(window, resync), xs).tolist()
    assert [repr(v) for v in mine] == [repr(v) for v in composed_zscore(window, resync, xs)]


@FAST
@given(bars=st.lists(st.tuples(st.floats(allow_infinity=False), st.floats(allow_infinity=False),
                               st.floats(allow_infinity=False)), min_size=1, max_size=30))
def test_true_range_is_the_max_of_the_three_spans(bars: list[tuple[float, float, float]]) -> None:
    calc, prev = TrueRange(), math.nan
    for high, low, close in bars:
        expected = high - low if prev != prev else max(high - low, abs(high - prev), abs(low - prev))
        assert repr(calc.update(high, low, close)) == repr(expected)
        prev = close


@FAST
@given(xs=series(max_size=900), window=st.integers(1, 700))
def test_variance_incremental_matches_two_pass_exact(xs: np.ndarray, window: int) -> None:
    mine = incremental(RollingVariance(window), xs)
    exact = np.full(xs.size, np.nan)
    kappa2 = np.zeros(xs.size)
    if xs.size >= window:
        win = np.lib.stride_tricks.sliding_window_view(xs, window)
        exact[window - 1:] = win.var(axis=1)
        exact[window - 1:][(win == win[:, :1]).all(axis=1)] = 0.0
        kappa2[window - 1:] = np.abs(win).max(axis=1) ** 2
    assert np.array_equal(np.isnan(mine), np.isnan(exact))
    ok = ~np.isnan(exact)
    # Variance rounding is relative to the squared level, so kappa**2 * var = max|x|**2.
    tol = REL * np.abs(exact[ok]) + 1e-14 * kappa2[ok]
    assert np.all(np.abs(mine[ok] - exact[ok]) <= tol)


def test_variance_stays_exact_after_a_huge_spike_leaves_the_window() -> None:
    # A 1e9 spike among 1e5 +- 1e2 values: pandas' running state keeps ~1e-5 relative residue
    # long after the spike left; the cancellation check resyncs from the ring buffer at once.
    rng = np.random.default_rng(7)
    window = 672
    xs = np.concatenate([rng.normal(1e5, 1e2, 2000), [1e9], rng.normal(1e5, 1e2, 3000)])
    mine = incremental(RollingVariance(window, resync_every=10**9), xs)[window - 1:]
    exact = np.lib.stride_tricks.sliding_window_view(xs, window).var(axis=1)
    after_spike_left = slice(2001, None)  # windows starting after index 2000
    assert np.abs(mine[after_spike_left] / exact[after_spike_left] - 1).max() < 1e-11


def test_variance_stays_accurate_when_a_volatile_stretch_turns_calm() -> None:
    # The sum of squares shrinks ~1e8-fold over many small removals, none alarming alone;
    # without the peak check the old residue leaves ~3e-7 relative error in the calm part.
    rng = np.random.default_rng(5)
    window = 49
    xs = np.concatenate([rng.normal(0.5, 0.2, 300), 0.25 + rng.normal(0, 1e-5, 300)])
    mine = incremental(RollingVariance(window, resync_every=10**9), xs)[window - 1:]
    exact = np.lib.stride_tricks.sliding_window_view(xs, window).var(axis=1)
    calm = slice(300, None)  # windows lying wholly in the calm part
    assert np.abs(mine[calm] / exact[calm] - 1).max() < 1e-9


def test_rolling_windows_must_be_positive() -> None:
    for factory in (RollingMean, RollingVariance, RollingZScore, Atr):
        with pytest.raises(InvalidWindowError, match="window"):
            factory(0)


# ---- close location -------------------------------------------------------------------------

def test_close_location_by_hand() -> None:
    assert close_location_value(10.0, 8.0, 9.5) == 0.75
    assert close_location_value(10.0, 8.0, 8.0) == 0.0
    assert close_location_value(10.0, 8.0, 10.0) == 1.0


def test_close_location_of_a_flat_bar_is_nan() -> None:
    assert math.isnan(close_location_value(5.0, 5.0, 5.0))
    assert np.isnan(close_location([5.0, 10.0], [5.0, 8.0], [5.0, 9.5])[0])


@FAST
@given(bars=ohlc())
def test_close_location_forms_agree(bars: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
    h, lo, c = bars
    scalar = [close_location_value(*b) for b in zip(h.tolist(), lo.tolist(), c.tolist())]
    assert np.array_equal(close_location(h, lo, c), scalar, equal_nan=True)


# ---- Fibonacci ------------------------------------------------------------------------------

# L=6, A=1, s=7: lo=1, hi=6, candidates i in [2, 6).
#   i=2 (7): neighbours 5 and 6 -> candidate.   i=3 (6): left 7 > 6 -> no.
#   i=4 (9): right 10 > 9 -> no.                i=5 (10): right neighbour bar 6 (12) > 10 -> no.
# So swing high 7, although bar 5 (10, inside [lo, hi)) and bar 0 (100, outside) are higher.
FIB_HIGHS = [100.0, 5.0, 7.0, 6.0, 9.0, 10.0, 12.0, 3.0]
FIB_LOWS = [1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 2.0]


def test_swing_high_is_the_highest_candidate_not_the_highest_bar() -> None:
    assert find_swing_high(FIB_HIGHS, 7, 6, 1) == 7.0


def test_fib_levels_by_hand() -> None:
    levels = fib_levels(FIB_HIGHS, FIB_LOWS, 7, 6, 1)
    assert levels is not None
    assert (levels.swing_high, levels.swing_low) == (7.0, 2.0)
    assert levels.prices == tuple(2.0 + 5.0 * r for r in RATIOS)
    assert levels.price(0.618) == 2.0 + 5.0 * 0.618


def test_an_equal_high_on_the_left_does_not_disqualify_a_candidate() -> None:
    # L=6, A=1, s=7, candidates i in [2, 6). Bar 1 (9) is in the window but not a candidate.
    # i=2 (8) has 9 on its left -> no; i=3 (8) only ties with bar 2 -> candidate; i=4, i=5
    # have higher left neighbours. A strict rule would find no candidate and fall back to 9.
    highs = [0.0, 9.0, 8.0, 8.0, 2.0, 1.0, 0.0, 0.0]
    assert find_swing_high(highs, 7, 6, 1) == 8.0


def test_an_equal_high_on_the_right_does_not_disqualify_a_candidate() -> None:
    # i=4 (8) ties with bar 5 on its right -> candidate; bar 5 has 9.5 (bar 6, beyond hi) on
    # its right -> no. A strict rule would fall back to the window max 9 (bar 1).
    highs = [0.0, 9.0, 0.0, 1.0, 8.0, 8.0, 9.5, 0.0]
    assert find_swing_high(highs, 7, 6, 1) == 8.0


def test_without_candidates_swing_high_is_the_window_max() -> None:
    rising = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0]
    # every i in [2, 6) has a higher right neighbour; fallback = max over [1, 6) = 6
    assert find_swing_high(rising, 7, 6, 1) == 6.0


def test_no_levels_before_lookback_plus_lookahead_bars() -> None:
    assert find_swing_high(FIB_HIGHS, 6, 6, 1) is None
    assert fib_levels(FIB_HIGHS, FIB_LOWS, 6, 6, 1) is None


def test_no_levels_when_lookahead_is_not_below_lookback() -> None:
    assert find_swing_high(FIB_HIGHS, 7, 3, 3) is None


def test_no_levels_when_swing_high_is_not_above_the_signal_low() -> None:
    lows = FIB_LOWS[:-1] + [7.0]  # low[s] == swing high
    assert find_swing_high(FIB_HIGHS, 7, 6, 1) == 7.0
    assert fib_levels(FIB_HIGHS, lows, 7, 6, 1) is None
    assert levels_between(7.0, 7.0) is None


def test_price_of_a_ratio_outside_the_five_is_an_error() -> None:
    levels = levels_between(10.0, 0.0)
    assert levels is not None
    with pytest.raises(UnknownFibRatioError, match="0.236"):
        levels.price(0.236)


def test_negative_lookahead_is_rejected_with_its_name() -> None:
    with pytest.raises(InvalidWindowError, match="fib_swing_lookahead"):
        FibWindow(96, -1)


def reference_swing_high(highs: list[float], s: int, lb: int, la: int) -> float | None:
    """STRATEGY.md steps 1-4, transcribed literally."""
    if s < lb + la:
        return None
    lo, hi = max(0, s - lb), s - la
    if lo >= hi:
        return None
    candidates = [
        highs[i] for i in range(lo + la, hi)
        if not any(highs[j] > highs[i] for j in range(max(0, i - la), i))
        and not any(highs[j] > highs[i] for j in range(i + 1, i + la + 1))
    ]
    return max(candidates) if candidates else max(highs[lo:hi])


@FAST
@given(highs=st.lists(st.integers(0, 6).map(float), min_size=1, max_size=60),
       lookback=st.integers(0, 20), lookahead=st.integers(0, 6))
def test_fib_window_and_array_form_follow_the_literal_rule(
    highs: list[float], lookback: int, lookahead: int
) -> None:
    lows = [h - 3.0 for h in highs]
    window = FibWindow(lookback, lookahead)
    for s, (h, lo) in enumerate(zip(highs, lows)):
        window.update(h, lo)
        expected = reference_swing_high(highs, s, lookback, lookahead)
        assert find_swing_high(highs, s, lookback, lookahead) == expected
        assert window.swing_high() == expected
        assert window.levels() == fib_levels(highs, lows, s, lookback, lookahead)
