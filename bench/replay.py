"""Replay throughput of the full engine (strategy, risk, paper orders, SQLite store), printed.

Uses ../shared/data/BTCUSDT_15m.csv when present, else the synthetic sample; the default
config. Prints: engine bars/s (process start-up and CSV loading excluded), the whole
`trading-agent --replay` command's wall time, per-bar strategy update time, peak memory.
Targets (issue #2): >= 20,000 bars/s; whole command < 3 s for 17,280 bars; strategy < 50 us/bar.
"""
from __future__ import annotations

import asyncio
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from agent.config import default_config  # noqa: E402
from agent.session import replay_session  # noqa: E402
from agent.strategy import SellerExhaustionStrategy, StrategyParams  # noqa: E402
from data.replay_feed import load_replay  # noqa: E402
from data.sample import generate_sample, write_csv  # noqa: E402


def data_file(tmp: Path) -> Path:
    real = ROOT.parent / "shared" / "data" / "BTCUSDT_15m.csv"
    if real.exists():
        return real
    path = tmp / "synthetic_sample_15m.csv"
    write_csv(generate_sample(n_bars=17_280), path)
    return path


async def engine_run(csv: Path, data_dir: Path) -> tuple[int, float]:
    engine = replay_session(default_config(), data_dir, csv, speed=None)
    started = time.perf_counter()
    await engine.start()
    await engine.wait_finished()
    elapsed = time.perf_counter() - started
    bars = engine._bars_this_run
    await engine.stop()
    return bars, elapsed


def strategy_us(csv: Path) -> float:
    bars = load_replay(csv, 15).bars
    strategy = SellerExhaustionStrategy(StrategyParams.from_config(default_config()))
    started = time.perf_counter()
    for bar in bars:
        strategy.update(bar)
    return (time.perf_counter() - started) / len(bars) * 1e6


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        csv = data_file(tmp)
        print(f"data: {csv}")
        runs = [asyncio.run(engine_run(csv, tmp / f"engine{i}")) for i in range(3)]
        bars = runs[0][0]
        best = min(r[1] for r in runs)
        print(f"engine: {bars} bars in {best:.3f} s (best of 3) = {bars / best:,.0f} bars/s   target >= 20,000")
        cmd = [sys.executable, "-m", "agent", "--data-dir", str(tmp / "cli"), "--no-gui",
               "--replay", str(csv), "--speed", "max", "--log-level", "WARNING"]
        started = time.perf_counter()
        subprocess.run(cmd, check=True, cwd=ROOT)
        print(f"whole --replay command: {time.perf_counter() - started:.2f} s   target < 3 s")
        print(f"strategy update: {strategy_us(csv):.1f} us/bar   target < 50 us")
        peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"peak memory (this process, 3 engine runs): {peak_mb:.0f} MB")


if __name__ == "__main__":
    main()
