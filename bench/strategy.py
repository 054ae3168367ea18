"""Per-bar cost of SellerExhaustionStrategy.update with the default windows (96/672/672/96).

Replays ../shared/data/BTCUSDT_15m.csv (a random walk when absent) and prints microseconds
per update: the mean over a pass (median of 5 passes) and percentiles of single updates.
The tail is the exact z-score resync (every 4 * z_window bars, a few hundred us) and the
Fibonacci scan on signal bars, plus interpreter/GC noise. Also times compute_features.
"""
from __future__ import annotations

import csv
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from agent.strategy import SellerExhaustionStrategy, StrategyParams, compute_features  # noqa: E402
from data.bar import Bar  # noqa: E402

SHARED = ROOT.parent / "shared"
PARAMS = StrategyParams(
    ema_fast=96, ema_slow=672, z_window=672, atr_window=96, vol_z=2.0, tr_z=1.2,
    cloc_min=0.6, fib_lookback=96, fib_lookahead=5, fib_target_level=0.618,
    use_fib_exits=True, use_stop_loss=False, atr_stop_mult=0.7, use_traditional_tp=False,
    reward_r=2.0, use_time_exit=False, max_hold=96, fee_bp=5.0, slippage_bp=5.0,
)


def load_bars() -> tuple[str, list[Bar]]:
    path = SHARED / "data" / "BTCUSDT_15m.csv"
    if path.is_file():
        with path.open(newline="") as fh:
            rows = list(csv.DictReader(fh))
        return str(path), [Bar(int(r["timestamp"]), float(r["open"]), float(r["high"]),
                               float(r["low"]), float(r["close"]), float(r["volume"]))
                           for r in rows]
    rng = np.random.default_rng(1)
    n = 17_280
    close = 1e5 * np.exp(np.cumsum(rng.normal(0, 0.002, n)))
    open_ = np.concatenate([[1e5], close[:-1]])
    high = np.maximum(open_, close) * (1 + rng.uniform(0, 0.002, n))
    low = np.minimum(open_, close) * (1 - rng.uniform(0, 0.002, n))
    volume = rng.lognormal(5, 1, n)
    return "random walk", [Bar(i * 900_000, *map(float, row))
                           for i, row in enumerate(zip(open_, high, low, close, volume))]


def mean_pass(bars: list[Bar]) -> tuple[float, int]:
    strategy = SellerExhaustionStrategy(PARAMS)
    start = time.perf_counter()
    signals = sum(strategy.update(bar).signal for bar in bars)
    return (time.perf_counter() - start) / len(bars), signals


def single_updates(bars: list[Bar]) -> np.ndarray:
    strategy = SellerExhaustionStrategy(PARAMS)
    clock = time.perf_counter
    out = np.empty(len(bars))
    for i, bar in enumerate(bars):
        t0 = clock()
        strategy.update(bar)
        out[i] = clock() - t0
    return out


def main() -> None:
    source, bars = load_bars()
    passes = [mean_pass(bars) for _ in range(5)]
    per_bar = statistics.median(p[0] for p in passes)
    p50, p99, p999, worst = np.percentile(single_updates(bars), [50, 99, 99.9, 100]) * 1e6
    cols = [np.array([getattr(b, k) for b in bars])
            for k in ("ts", "open", "high", "low", "close", "volume")]
    t0 = time.perf_counter()
    compute_features(*cols, PARAMS)
    vectorized = time.perf_counter() - t0
    print(f"data: {source} ({len(bars)} bars, {passes[0][1]} signals)")
    print(f"update(): {per_bar * 1e6:.1f} us/bar (mean per pass, median of 5 passes)")
    print(f"single update: p50 {p50:.1f} us, p99 {p99:.1f} us, p99.9 {p999:.0f} us, "
          f"max {worst:.0f} us")
    print(f"compute_features(): {vectorized * 1e3:.0f} ms for the whole series")


if __name__ == "__main__":
    main()
