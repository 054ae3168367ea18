"""The backtest shadow: each exit rule on hand-built bars, the vectorized search against a
bar-by-bar reading of STRATEGY.md, the sequence, and the live book. The golden parity is in
test_backtest_shadow_golden.py."""
from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.backtest_shadow import (
    ShadowBook, ShadowSeries, ShadowTrade, backtest_pnl, backtest_trades, fib_reason, shadow_trade,
    tp_reason,
)
from agent.execution import exit_reason_fib, exit_reason_tp
from agent.strategy import SellerExhaustionStrategy, StrategyParams
from data.bar import Bar
from data.replay_feed import load_replay
from tests.conftest import ACTIVE, make_config


BASE = StrategyParams(
    ema_fast=2, ema_slow=3, z_window=2, atr_window=2, vol_z=0.0, tr_z=0.0, cloc_min=0.0,
    fib_lookback=10, fib_lookahead=1, fib_target_level=0.618, use_fib_exits=False,
    use_stop_loss=False, atr_stop_mult=0.7, use_traditional_tp=False, reward_r=2.0,
    use_time_exit=False, max_hold=5, fee_bp=5.0, slippage_bp=5.0,
)


def series_of(rows: list[tuple[float, float, float, float]], signals: dict[int, tuple[float, float]] = {},
              ) -> ShadowSeries:
    """Bars from (open, high, low, close) rows; signals: bar -> (target, stop), NaN for none."""
    n = len(rows)
    arr = np.array(rows, dtype=np.float64).reshape(n, 4)
    signal = np.zeros(n, dtype=bool)
    target = np.full(n, np.nan)
    stop = np.full(n, np.nan)
    for i, (t, s) in signals.items():
        signal[i], target[i], stop[i] = True, t, s
    ts = np.arange(n, dtype=np.int64) * 900_000 + 1_700_000_000_000
    return ShadowSeries(ts, arr[:, 0].copy(), arr[:, 1].copy(), arr[:, 2].copy(), arr[:, 3].copy(),
                        signal, target, stop)


FLAT = (100.0, 101.0, 99.0, 100.0)


# --- each exit rule on hand-built bars ----------------------------------------------------------

def test_entry_is_the_next_bars_open_and_the_entry_bar_is_never_examined():
    # Bar 1 (the entry bar) touches both stop and target; the backtest ignores it.
    rows = [FLAT, (100.0, 130.0, 80.0, 100.0), FLAT, FLAT]
    sh = shadow_trade(series_of(rows, {0: (120.0, 90.0)}),
                      0, replace(BASE, use_fib_exits=True, use_stop_loss=True))
    assert (sh.entry, sh.entry_index, sh.status, sh.bars_held) == (100.0, 1, "open", 2)


def test_stop_gap_exits_at_the_stop_price_not_the_open():
    rows = [FLAT, FLAT, (85.0, 86.0, 84.0, 85.0)]
    sh = shadow_trade(series_of(rows, {0: (np.nan, 90.0)}), 0, replace(BASE, use_stop_loss=True))
    assert (sh.reason, sh.exit_price, sh.exit_index, sh.bars_held) == ("STOP_GAP", 90.0, 2, 1)


def test_stop_touch_exits_at_the_stop():
    rows = [FLAT, FLAT, FLAT, (95.0, 96.0, 89.5, 95.0)]
    sh = shadow_trade(series_of(rows, {0: (np.nan, 90.0)}), 0, replace(BASE, use_stop_loss=True))
    assert (sh.reason, sh.exit_price, sh.exit_index, sh.bars_held) == ("STOP", 90.0, 3, 2)


def test_stop_wins_over_target_on_the_same_bar():
    rows = [FLAT, FLAT, (100.0, 130.0, 80.0, 100.0)]
    sh = shadow_trade(series_of(rows, {0: (120.0, 90.0)}), 0,
                      replace(BASE, use_fib_exits=True, use_stop_loss=True))
    assert (sh.reason, sh.exit_price) == ("STOP", 90.0)


def test_fibonacci_exit_at_the_target_labelled_like_the_engine():
    rows = [FLAT, FLAT, FLAT, (100.0, 125.0, 99.0, 110.0)]
    params = replace(BASE, use_fib_exits=True, fib_target_level=0.786)
    sh = shadow_trade(series_of(rows, {0: (120.0, np.nan)}), 0, params)
    assert (sh.reason, sh.exit_price, sh.exit_index) == ("FIB_78.6", 120.0, 3)
    assert fib_reason(0.786) == exit_reason_fib(0.786)


def test_touching_a_level_exactly_is_enough():
    params = replace(BASE, use_fib_exits=True, use_stop_loss=True)
    at_target = shadow_trade(series_of([FLAT, FLAT, (100.0, 120.0, 99.0, 100.0)], {0: (120.0, 90.0)}), 0, params)
    at_stop = shadow_trade(series_of([FLAT, FLAT, (100.0, 101.0, 90.0, 100.0)], {0: (120.0, 90.0)}), 0, params)
    opens_at_stop = shadow_trade(series_of([FLAT, FLAT, (90.0, 101.0, 89.0, 100.0)], {0: (120.0, 90.0)}), 0, params)
    assert (at_target.reason, at_stop.reason, opens_at_stop.reason) == ("FIB_61.8", "STOP", "STOP_GAP")


def test_fibonacci_wins_over_take_profit_on_the_same_bar():
    rows = [FLAT, FLAT, (100.0, 200.0, 99.0, 100.0)]
    params = replace(BASE, use_fib_exits=True, use_traditional_tp=True)
    sh = shadow_trade(series_of(rows, {0: (150.0, np.nan)}), 0, params)
    assert sh.reason == "FIB_61.8"


def test_take_profit_is_reward_r_times_the_risk_above_entry():
    # No stop: risk is 1% of the entry (1.0), so tp = 100 + 3 * 1.0.
    rows = [FLAT, FLAT, (100.0, 103.5, 99.0, 101.0)]
    params = replace(BASE, use_traditional_tp=True, reward_r=3.0)
    sh = shadow_trade(series_of(rows, {0: (np.nan, np.nan)}), 0, params)
    assert (sh.risk, sh.tp, sh.reason, sh.exit_price) == (1.0, 103.0, "TP_3.0R", 103.0)
    assert tp_reason(3.0) == exit_reason_tp(3.0)
    assert sh.r_multiple == pytest.approx(sh.pnl / 1.0)


def test_risk_uses_the_stop_when_it_is_below_entry():
    rows = [FLAT, FLAT, (100.0, 111.0, 99.0, 101.0)]
    params = replace(BASE, use_stop_loss=True, use_traditional_tp=True, reward_r=2.0)
    sh = shadow_trade(series_of(rows, {0: (np.nan, 95.0)}), 0, params)
    assert (sh.risk, sh.tp, sh.reason) == (5.0, 110.0, "TP_2.0R")


def test_time_exit_at_the_close_when_bars_held_reaches_max_hold():
    rows = [FLAT] * 3 + [(100.0, 101.0, 99.0, 100.5)] + [FLAT] * 3
    params = replace(BASE, use_time_exit=True, max_hold=2)
    sh = shadow_trade(series_of(rows, {0: (np.nan, np.nan)}), 0, params)
    assert (sh.reason, sh.exit_price, sh.exit_index, sh.bars_held) == ("TIME", 100.5, 3, 2)


def test_pnl_is_the_backtests_single_formula():
    rows = [FLAT, FLAT, FLAT, (100.0, 125.0, 99.0, 110.0)]
    sh = shadow_trade(series_of(rows, {0: (120.0, np.nan)}), 0, replace(BASE, use_fib_exits=True))
    assert sh.pnl == 120.0 - 100.0 - (100.0 + 120.0) * (5.0 + 5.0) / 10000
    assert sh.pnl == backtest_pnl(100.0, 120.0, BASE)
    assert sh.pnl_percent == pytest.approx(sh.pnl)     # entry 100


def test_no_exit_rule_means_held_to_the_end():
    sh = shadow_trade(series_of([FLAT] * 50, {3: (np.nan, np.nan)}), 3, BASE)
    assert (sh.status, sh.exit_price, sh.pnl, sh.r_multiple, sh.bars_held) == ("open", None, None, None, 45)


def test_no_shadow_before_the_entry_bar_exists_or_off_a_signal():
    series = series_of([FLAT] * 3, {2: (np.nan, np.nan)})
    assert shadow_trade(series, 2, BASE) is None
    assert shadow_trade(series, 1, BASE) is None


def test_an_exit_far_beyond_the_first_search_window_is_found():
    rows = [FLAT] * 5000 + [(100.0, 140.0, 99.0, 100.0)] + [FLAT] * 10
    sh = shadow_trade(series_of(rows, {0: (120.0, np.nan)}), 0, replace(BASE, use_fib_exits=True))
    assert (sh.exit_index, sh.bars_held) == (5000, 4999)


# --- the backtest's sequence --------------------------------------------------------------------

def test_signals_during_a_position_are_ignored_and_one_on_the_exit_bar_is_taken():
    up = (100.0, 125.0, 99.0, 100.0)
    rows = [FLAT, FLAT, FLAT, up, FLAT, FLAT, up, FLAT]
    sig = (120.0, np.nan)
    series = series_of(rows, {0: sig, 2: sig, 3: sig})
    trades = backtest_trades(series, replace(BASE, use_fib_exits=True))
    assert [(t.signal_index, t.exit_index) for t in trades] == [(0, 3), (3, 6)]


def test_a_trade_held_to_the_end_ends_the_sequence():
    series = series_of([FLAT] * 10, {1: (np.nan, np.nan), 5: (np.nan, np.nan)})
    trades = backtest_trades(series, BASE)
    assert [(t.signal_index, t.status) for t in trades] == [(1, "open")]


# --- properties: the vectorized search equals a bar-by-bar reading of STRATEGY.md ---------------

def _reference(series: ShadowSeries, s: int, p: StrategyParams) -> tuple[int, str, float] | None:
    entry = series.open[s + 1]
    target, stop = series.target[s], series.stop[s]
    risk = entry - stop if not math.isnan(stop) and stop < entry else 0.01 * entry
    tp = entry + p.reward_r * risk
    for b in range(s + 2, len(series)):
        held = b - (s + 1)
        if not math.isnan(stop) and series.open[b] <= stop:
            return b, "STOP_GAP", stop
        if not math.isnan(stop) and series.low[b] <= stop:
            return b, "STOP", stop
        if not math.isnan(target) and series.high[b] >= target:
            return b, fib_reason(p.fib_target_level), target
        if p.use_traditional_tp and series.high[b] >= tp:
            return b, tp_reason(p.reward_r), tp
        if p.use_time_exit and held >= p.max_hold:
            return b, "TIME", series.close[b]
    return None


@st.composite
def random_case(draw):
    n = draw(st.integers(3, 400))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    close = 100 * np.exp(np.cumsum(rng.normal(0, draw(st.sampled_from([0.002, 0.01, 0.03])), n)))
    open_ = np.concatenate([[100.0], close[:-1]]) * (1 + rng.normal(0, 0.003, n))
    high = np.maximum(open_, close) * (1 + rng.uniform(0, 0.01, n))
    low = np.minimum(open_, close) * (1 - rng.uniform(0, 0.01, n))
    s = draw(st.integers(0, n - 2))
    rows = list(zip(open_, high, low, close))
    target = close[s] * draw(st.sampled_from([np.nan, 1.005, 1.02, 1.1]))
    stop = low[s] * draw(st.sampled_from([np.nan, 0.99, 0.97, 1.2]))
    params = replace(BASE, use_fib_exits=not math.isnan(target), use_stop_loss=not math.isnan(stop),
                     use_traditional_tp=draw(st.booleans()), reward_r=draw(st.sampled_from([0.5, 2.0, 5.0])),
                     use_time_exit=draw(st.booleans()), max_hold=draw(st.integers(1, 300)))
    return series_of(rows, {s: (target, stop)}), s, params


@settings(max_examples=300, deadline=None)
@given(random_case())
def test_shadow_matches_a_bar_by_bar_reading_of_the_rules(case):
    series, s, params = case
    sh = shadow_trade(series, s, params)
    expected = _reference(series, s, params)
    if expected is None:
        assert sh.status == "open" and sh.bars_held == len(series) - s - 2
    else:
        assert (sh.exit_index, sh.reason, sh.exit_price) == expected


@settings(max_examples=200, deadline=None)
@given(random_case())
def test_exit_invariants(case):
    series, s, params = case
    sh = shadow_trade(series, s, params)
    if sh.status == "open":
        return
    b = sh.exit_index
    assert b >= sh.entry_index + 1 and sh.bars_held == b - sh.entry_index >= 1
    if sh.reason in ("STOP", "STOP_GAP"):
        assert sh.exit_price == sh.stop and series.low[b] <= sh.stop
    if sh.reason == "STOP":
        assert series.low[b] <= sh.exit_price <= series.open[b]
    if sh.reason.startswith(("FIB", "TP")):
        assert sh.exit_price <= series.high[b]
    if params.use_time_exit:
        assert sh.bars_held <= params.max_hold
    assert sh.pnl == backtest_pnl(sh.entry, sh.exit_price, params)


@settings(max_examples=100, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(20, 300))
def test_sequence_never_overlaps_and_each_trade_is_its_signals_shadow(seed, n):
    rng = np.random.default_rng(seed)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
    rows = [(c, c * 1.006, c * 0.994, c) for c in close]
    signals = {int(i): (close[i] * 1.02, close[i] * 0.98) for i in np.flatnonzero(rng.random(n) < 0.2)}
    series = series_of(rows, signals)
    params = replace(BASE, use_fib_exits=True, use_stop_loss=True)
    trades = backtest_trades(series, params)
    for a, b in zip(trades, trades[1:]):
        assert a.exit_index is not None and b.signal_index >= a.exit_index
    for t in trades:
        assert t == shadow_trade(series, t.signal_index, params)


# --- the live book ------------------------------------------------------------------------------

def _decisions(bars, params):
    strategy = SellerExhaustionStrategy(params)
    return [strategy.update(b) for b in bars]


def test_book_fed_bar_by_bar_equals_the_batch_backtest(sample_csv):
    cfg = make_config(**ACTIVE)
    params = StrategyParams.from_config(cfg)
    bars = load_replay(sample_csv, cfg.timeframe_minutes).bars
    decisions = _decisions(bars, params)
    book = ShadowBook(params, capacity=8)            # forces several regrowths
    snapshots = []
    for i, d in enumerate(decisions):
        book.append(d)
        if i % 700 == 0:
            snapshots.append((i, book.trades()))
    batch = backtest_trades(bars, params)
    assert len(batch) >= 5
    assert book.trades() == backtest_trades(book.series(), params)
    assert [(t.signal_ts, t.reason, t.exit_index) for t in book.trades()] == \
        [(t.signal_ts, t.reason, t.exit_index) for t in batch]
    for t in batch:
        got = book.shadow(t.signal_ts)
        assert (got.exit_index, got.reason) == (t.exit_index, t.reason)
        assert got.exit_price == pytest.approx(t.exit_price, rel=1e-9)
    for i, trades in snapshots:        # what was closed then is still there, unchanged
        closed = [t for t in trades if t.status == "closed"]
        assert [t.signal_ts for t in book.trades()[:len(closed)]] == [t.signal_ts for t in closed]


def test_book_refuses_a_bar_that_is_not_newer():
    params = BASE
    decisions = _decisions([Bar(1_700_000_000_000 + i * 900_000, 1, 2, 0.5, 1.5, 10) for i in range(3)], params)
    book = ShadowBook(params)
    book.extend(decisions)
    with pytest.raises(ValueError, match="not after the last bar"):
        book.append(decisions[1])


def test_shadow_series_from_decisions_equals_from_bars(sample_csv):
    cfg = make_config(**ACTIVE)
    params = StrategyParams.from_config(cfg)
    bars = load_replay(sample_csv, cfg.timeframe_minutes).bars
    a = ShadowSeries.from_decisions(_decisions(bars, params), params)
    b = ShadowSeries.from_bars(bars, params)
    assert np.array_equal(a.signal, b.signal) and np.array_equal(a.ts, b.ts)
    np.testing.assert_allclose(a.target, b.target, rtol=1e-9)
    np.testing.assert_allclose(a.stop, b.stop, rtol=1e-9)


def test_shadow_trade_is_immutable():
    sh = ShadowTrade(0, 0, 1, 100.0, None, None, None, 1.0, 0)
    with pytest.raises(AttributeError):
        sh.entry = 5.0  # type: ignore[misc]
