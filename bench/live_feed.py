"""Close-to-strategy latency of the live feed: from a candle's close time to the BarClosed
event delivered to the consumer (the engine), in real milliseconds.

Runs the LiveFeed against the in-process fake exchange on a clock sped up 60x (a 1m candle per
real second), socket lag 0, so what is measured is the feed's own processing plus the event
loop: the socket path (a later candle starts) and the REST confirmation path (the socket stays
silent at the close). Prints median, p99 and max per path.

    .venv/bin/python bench/live_feed.py [--bars 40]
"""
from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from data.live_feed import LiveFeed  # noqa: E402
from data.market import BarClosed  # noqa: E402
from tests.fake_exchange import FakeExchange, ScaledClock, random_walk  # noqa: E402

M1 = 60_000
SPEED = 60.0


async def run(bars: int, silent_socket: bool) -> list[float]:
    t0 = 1_700_000_000_000 - 1_700_000_000_000 % 86_400_000
    candles = random_walk(t0, M1, 600 + bars + 5)
    clock = ScaledClock(t0 + 600 * M1 + 30_000, SPEED)
    ex = FakeExchange(clock, candles, tf="1m", ws_update_s=2.0,
                      ws_lag_ms=10 * M1 if silent_socket else 0)
    feed = LiveFeed(ex, "BTC/USDT", 1, warmup_bars=500, clock=clock, close_confirm_delay_s=0.05)
    latencies: list[float] = []
    async for event in feed.stream(None):
        if isinstance(event, BarClosed) and event.live:
            latencies.append((time.perf_counter() - clock.real_at(event.close_ts)) * 1000)
            if len(latencies) >= bars:
                break
    await feed.close()
    return latencies


def report(name: str, values: list[float]) -> None:
    ordered = sorted(values)
    p99 = ordered[min(len(ordered) - 1, int(round(0.99 * (len(ordered) - 1))))]
    print(f"{name:<42} n={len(values):3d}  median {statistics.median(values):7.2f} ms  "
          f"p99 {p99:7.2f} ms  max {ordered[-1]:7.2f} ms (real time)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bars", type=int, default=40)
    args = parser.parse_args()
    report("socket: close -> BarClosed", asyncio.run(run(args.bars, silent_socket=False)))
    # The REST path waits close_confirm_delay (0.05 market s = ~1 ms real at 60x) on purpose.
    report("REST confirmation: close -> BarClosed", asyncio.run(run(args.bars, silent_socket=True)))


if __name__ == "__main__":
    main()
