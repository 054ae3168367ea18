"""Replay throughput of the full engine (strategy, risk, paper orders, SQLite store), printed.

Uses ../shared/data/BTCUSDT_15m.csv when present, else the synthetic sample; the default
config. Prints: engine bars/s (process start-up and CSV loading excluded), the catch-up of a
restart (every bar already committed, `--speed 2`: how long until the engine is past them), the
whole `trading-agent --replay` command's wall time, per-bar strategy update time, peak memory.
Targets: >= 55,000 bars/s (issue #6: stay at or above ~55,000); a restart with 17,280 committed
bars reaches live bars in < 2 s (issue #6); whole command < 3 s; strategy < 50 us/bar.
The machine may be shared: every figure is the best of three runs.
"""
from __future__ import annotations

import asyncio
import logging
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


async def engine_run(csv: Path, data_dir: Path) -> tuple[int, float, float]:
    """Bars replayed, wall seconds and this process's CPU seconds for them. CPU time is the
    steadier figure on a shared machine (it leaves out waiting for the CPU and for fsync)."""
    engine = replay_session(default_config(), data_dir, csv, speed=None)
    started, cpu_started = time.perf_counter(), time.process_time()
    await engine.start()
    await engine.wait_finished()
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    bars = engine._bars_this_run
    await engine.stop()
    return bars, elapsed, cpu


async def catch_up_run(csv: Path, data_dir: Path) -> float:
    """Restart on a data folder whose every bar is committed, at 2 bars/s: all catch-up."""
    engine = replay_session(default_config(), data_dir, csv, speed=2.0)
    started = time.perf_counter()
    await engine.start()
    await engine.wait_finished()
    elapsed = time.perf_counter() - started
    assert engine._bars_this_run == 0, "a catch-up processes no live bar"
    await engine.stop()
    return elapsed


def strategy_us(csv: Path) -> float:
    bars = load_replay(csv, 15).bars
    strategy = SellerExhaustionStrategy(StrategyParams.from_config(default_config()))
    started = time.perf_counter()
    for bar in bars:
        strategy.update(bar)
    return (time.perf_counter() - started) / len(bars) * 1e6


def main() -> None:
    logging.basicConfig(level=logging.ERROR)          # restored-position warnings are expected
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        csv = data_file(tmp)
        print(f"data: {csv}")
        runs = [asyncio.run(engine_run(csv, tmp / f"engine{i}")) for i in range(3)]
        bars = runs[0][0]
        best = min(r[1] for r in runs)
        cpu = min(r[2] for r in runs)
        print(f"engine: {bars} bars in {best:.3f} s (best of 3) = {bars / best:,.0f} bars/s   target >= 55,000")
        print(f"engine CPU time: {cpu / bars * 1e6:.1f} us/bar (best of 3) = {bars / cpu:,.0f} bars per CPU second")
        catch_up = min(asyncio.run(catch_up_run(csv, tmp / f"engine{i}")) for i in range(3))
        print(f"restart catch-up at --speed 2: {bars} committed bars in {catch_up:.3f} s (best of 3)"
              f"   target < 2 s")
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
