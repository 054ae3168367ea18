"""Candle close -> entry order sent, the real agent (live_exchange_session: LiveFeed + engine +
ExchangeVenue) against the local simulator through the real ccxt client, in real milliseconds.

The synthetic sample's bars are played by the simulator (history before --from, then one bar per
--bar-seconds real seconds); every seller-exhaustion signal in the played stretch is an entry.
For each entry order:

- agent processing: the WebSocket message that closed the signal bar returned from ccxt's
  watch_ohlcv -> the venue calls ccxt's create_order (feed: candle bookkeeping, validation; engine:
  strategy, risk check, the client order id written to SQLite, the venue's rules);
  split into feed (message -> BarOpened leaves the feed) and engine (-> create_order);
- end to end: the simulator opens the next bar (the signal bar's close) -> the simulator
  receives the POST /api/v3/order (socket, ccxt parsing and signing, HTTP included).

ccxt's rate limiter is on, as live. Market time runs compressed; the feed's freshness window is
widened accordingly (what is measured is processing, not the window).

    .venv/bin/python bench/candle_to_order.py [--from 4850] [--bars 230] [--bar-seconds 0.25]
"""
from __future__ import annotations

import argparse
import asyncio
import logging
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agent.session import live_exchange_session  # noqa: E402
from data import market as mk  # noqa: E402
from data.exchange import ExchangeClient, ExchangeSettings  # noqa: E402
from data.exchange_errors import RetryPolicy  # noqa: E402
from data.sample import generate_sample  # noqa: E402
from tests.conftest import ACTIVE, make_config  # noqa: E402
from tests.exchange_sim.cli import MarketClock, bar_prints, relabel  # noqa: E402
from tests.exchange_sim.server import ExchangeSim  # noqa: E402

M15 = 900_000


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def show(name: str, xs: list[float]) -> None:
    if not xs:
        print(f"{name:<44} no samples")
        return
    print(f"{name:<44} n={len(xs):<3} median {statistics.median(xs):7.2f} ms   p99 {pct(xs, 99):7.2f} ms"
          f"   max {max(xs):7.2f} ms")


async def run(start: int, count: int, bar_seconds: float) -> dict[str, list[float]]:
    bars = generate_sample()
    wall = time.time_ns() // 1_000_000
    t0 = wall - wall % M15
    speed = M15 / (bar_seconds * 1000)
    clock = MarketClock(t0, speed, running=False)
    rel = relabel(bars[:start + count], start, M15, t0)
    sim = ExchangeSim(symbol="BTC/USDT", price=rel[start].open, timeframe="15m",
                      balances={"USDT": 10_000.0}, clock=clock.now_ms)
    sim.load_history([(b.ts, b.open, b.high, b.low, b.close, b.volume) for b in rel[:start]])
    await sim.start()

    opened_at: dict[int, float] = {}        # bar ts -> perf time the simulator opened it
    received: list[float] = []              # perf time the simulator got each entry POST
    new_order = sim._new_order

    def timed_new_order(params: dict) -> dict:
        if params.get("side") == "BUY":
            received.append(time.perf_counter())
        return new_order(params)

    sim._new_order = timed_new_order        # type: ignore[method-assign]

    client = ExchangeClient(ExchangeSettings(exchange_url=sim.url, timeout_ms=3_000,
                                             retry=RetryPolicy(attempts=3, initial_s=0.05)),
                            api_key=sim.api_key, secret=sim.secret)
    ws_returns: list[float] = []
    calls: list[float] = []
    watch, create = client.ex.watch_ohlcv, client.ex.create_order

    async def timed_watch(*a, **kw):
        rows = await watch(*a, **kw)
        ws_returns.append(time.perf_counter())
        return rows

    async def timed_create(*a, **kw):
        if a[2] == "buy":
            calls.append(time.perf_counter())
        return await create(*a, **kw)

    client.ex.watch_ohlcv, client.ex.create_order = timed_watch, timed_create
    data_dir = Path(tempfile.mkdtemp(prefix="bench-c2o-"))
    engine = live_exchange_session(make_config(**ACTIVE), data_dir, client, feed_clock=clock,
                                   engine_clock=clock, poll_interval_s=0.05, live_grace_ms=5 * M15,
                                   health_interval_s=30 * speed, backoff_initial_s=0.05 * speed,
                                   backoff_max_s=0.4 * speed, close_confirm_delay_s=0.3 * speed / 60)
    opens: dict[int, float] = {}            # BarOpened ts -> perf time it left the feed
    source = engine.source
    events = source.events

    async def timed_events(resume_after_ts):
        async for event in events(resume_after_ts):
            if isinstance(event, mk.BarOpened) and event.live:
                opens[event.ts] = time.perf_counter()
            yield event

    source.events = timed_events            # type: ignore[method-assign]
    logging.getLogger().setLevel(logging.ERROR)
    await engine.start()
    while engine.status().last_bar_ts != rel[start - 1].ts:
        await asyncio.sleep(0.02)
    clock.start()
    for bar in rel[start:]:
        await asyncio.sleep(clock.real_delay(bar.ts))
        sim.open_candle(bar.ts, bar.open)
        opened_at[bar.ts] = time.perf_counter()
        for ts, price in bar_prints(bar, M15, 3):
            await asyncio.sleep(clock.real_delay(ts))
            sim.set_price(price, qty=bar.volume / 4, ts=ts)
    await asyncio.sleep(0.5)
    entries = [o for o in sim.orders.values() if o.side == "BUY"]
    closed = len(engine.store.closed_trades())
    await engine.stop()
    await engine.source.feed.close()
    await sim.stop()

    out: dict[str, list[float]] = {"feed": [], "engine": [], "agent": [], "e2e": []}
    for order, call, got in zip(entries, calls, received):
        bar_ts = int(order.client_id.split("-")[1][1:]) + M15      # ta-E<signal bar ts>-n: the bar after
        msg = max((t for t in ws_returns if t <= call), default=None)
        if msg is None or bar_ts not in opens or bar_ts not in opened_at:
            continue
        print(f"  entry in bar {(bar_ts - t0) // M15 + start}: feed {(opens[bar_ts] - msg) * 1000:.2f} ms, "
              f"engine {(call - opens[bar_ts]) * 1000:.2f} ms, end to end {(got - opened_at[bar_ts]) * 1000:.2f} ms")
        out["feed"].append((opens[bar_ts] - msg) * 1000)
        out["engine"].append((call - opens[bar_ts]) * 1000)
        out["agent"].append((call - msg) * 1000)
        out["e2e"].append((got - opened_at[bar_ts]) * 1000)
    print(f"{len(entries)} entries over {count} live bars ({bar_seconds:g} s each), "
          f"{closed} trades closed")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--from", dest="start", type=int, default=4850, help="first live bar of the sample")
    ap.add_argument("--bars", type=int, default=230, help="live bars to play")
    ap.add_argument("--bar-seconds", type=float, default=0.25)
    a = ap.parse_args()
    r = asyncio.run(run(a.start, a.bars, a.bar_seconds))
    show("agent: socket message -> create_order", r["agent"])
    show("  feed: message -> BarOpened", r["feed"])
    show("  engine: BarOpened -> create_order", r["engine"])
    show("end to end: bar close at sim -> POST at sim", r["e2e"])


if __name__ == "__main__":
    main()
