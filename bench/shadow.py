"""Cost of the backtest shadow on 50,000 bars: what the window and `status` pay per call.

Bars: ../shared/data/ETHUSDT_15m.csv repeated (each copy shifted in time and rescaled to join
the previous one) up to 50,000, or the synthetic sample when ../shared is absent. Two configs:
the exporter's defaults (Fibonacci exit only: few trades, long holds) and relaxed thresholds
with every exit on (many trades). Prints, per config:
- features: ShadowSeries.from_bars (the strategy's compute_features; paid once, or never when
  the live book is fed the engine's own Decisions);
- backtest_trades over a ready series (median of 7);
- ShadowBook: append per bar, and trades() / shadow() as the window calls them each bar;
- shadow_report for every trade of the backtest treated as the agent's.
"""
from __future__ import annotations

import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from agent.backtest_shadow import ShadowBook, ShadowSeries, backtest_trades  # noqa: E402
from agent.shadow_compare import shadow_report  # noqa: E402
from agent.strategy import SellerExhaustionStrategy, StrategyParams  # noqa: E402
from data.bar import Bar  # noqa: E402
from data.csv_source import read_csv_bars  # noqa: E402
from data.sample import generate_sample  # noqa: E402
from persistence.records import TradeRecord  # noqa: E402

N = 50_000
DEFAULTS = StrategyParams(
    ema_fast=96, ema_slow=672, z_window=672, atr_window=96, vol_z=2.0, tr_z=1.2,
    cloc_min=0.6, fib_lookback=96, fib_lookahead=5, fib_target_level=0.618,
    use_fib_exits=True, use_stop_loss=False, atr_stop_mult=0.7, use_traditional_tp=False,
    reward_r=2.0, use_time_exit=False, max_hold=96, fee_bp=5.0, slippage_bp=5.0,
)
ALL_EXITS = replace(DEFAULTS, vol_z=1.5, tr_z=1.0, cloc_min=0.5, use_stop_loss=True,
                    use_traditional_tp=True, use_time_exit=True, reward_r=3.0, max_hold=48)


def load_bars() -> tuple[str, list[Bar]]:
    path = ROOT.parent / "shared" / "data" / "ETHUSDT_15m.csv"
    if path.is_file():
        base, _ = read_csv_bars(path)
        source = f"{path.name} repeated"
    else:
        base = generate_sample(n_bars=9000)
        source = "synthetic sample repeated"
    step = base[1].ts - base[0].ts
    out: list[Bar] = []
    while len(out) < N:
        shift = 0 if not out else out[-1].ts + step - base[0].ts
        scale = 1.0 if not out else out[-1].close / base[0].open
        out.extend(Bar(b.ts + shift, b.open * scale, b.high * scale, b.low * scale, b.close * scale,
                       b.volume) for b in base)
    return source, out[:N]


def timed(fn, repeat: int = 1) -> float:
    """Median seconds of `repeat` calls."""
    runs = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - t0)
    return statistics.median(runs)


def as_agent(t) -> TradeRecord:
    """A backtest trade dressed as a closed agent trade (paper-like fills), for the report."""
    return TradeRecord(pair="X/Y", signal_ts=t.signal_ts, entry_ts=t.signal_ts, entry_price=t.entry,
                       entry_reference=t.entry, amount=1.0, entry_fee=0.0, mode="paper",
                       stop_price=t.stop, status="closed", exit_ts=t.exit_ts, exit_price=t.exit_price,
                       exit_reference=t.exit_price, exit_reason=t.reason, bars_held=t.bars_held,
                       pnl=t.pnl, pnl_percent=t.pnl_percent)


def bench(name: str, params: StrategyParams, bars: list[Bar]) -> None:
    t0 = time.perf_counter()
    series = ShadowSeries.from_bars(bars, params)
    features = time.perf_counter() - t0
    trades = backtest_trades(series, params)
    whole = timed(lambda: backtest_trades(series, params), repeat=7)

    strategy = SellerExhaustionStrategy(params)
    decisions = [strategy.update(b) for b in bars]
    book = ShadowBook(params)
    t0 = time.perf_counter()
    book.extend(decisions[:-2000])
    append_us = (time.perf_counter() - t0) / (len(decisions) - 2000) * 1e6
    book.trades()
    newest_signal = trades[-1].signal_ts if trades else None
    per_bar = []
    for d in decisions[-2000:]:            # the window's pattern: a bar arrives, ask again
        t1 = time.perf_counter()
        book.append(d)
        book.trades()
        if newest_signal is not None:
            book.shadow(newest_signal)
        per_bar.append(time.perf_counter() - t1)
    per_bar.sort()
    closed = [t for t in trades if t.exit_index is not None]
    agent = [as_agent(t) for t in closed]
    report = timed(lambda: shadow_report(series, agent, [], params, trades), repeat=3)

    print(f"{name}: {len(trades)} backtest trades ({len(trades) - len(closed)} open), "
          f"{int(series.signal.sum())} signals")
    print(f"  features (ShadowSeries.from_bars, once): {features * 1e3:.0f} ms")
    print(f"  backtest_trades over {len(bars)} bars: {whole * 1e3:.2f} ms (median of 7)")
    print(f"  ShadowBook.append: {append_us:.2f} us/bar; per new bar append+trades()+shadow(): "
          f"p50 {per_bar[len(per_bar) // 2] * 1e6:.0f} us, p99 {per_bar[int(len(per_bar) * 0.99)] * 1e6:.0f} us, "
          f"max {per_bar[-1] * 1e6:.0f} us")
    print(f"  shadow_report over {len(agent)} trades: {report * 1e3:.1f} ms")


def main() -> None:
    source, bars = load_bars()
    print(f"data: {source}, {len(bars)} bars")
    bench("exporter defaults (Fibonacci exit only)", DEFAULTS, bars)
    bench("every exit on, relaxed thresholds", ALL_EXITS, bars)


if __name__ == "__main__":
    main()
