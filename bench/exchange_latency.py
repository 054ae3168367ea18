"""Exchange latency against the local simulator, through the real ccxt client and ExchangeVenue:

- submit -> ack: ExchangeVenue.place of a market buy until the venue's filled record returns
  (rules check, signed POST, reply parsed, fees read from the fills);
- fill -> engine event: the simulator fills a resting limit sell; time until the venue's
  OrderUpdate reaches the callback, (a) by the poller at its interval, (b) with poll_now() called
  by the source right after the price print (both with the user data stream off), (c) by the user
  data stream (ccxt watch_orders on the WebSocket API), polling off.

    .venv/bin/python bench/exchange_latency.py [--n 50] [--poll 0.25]
"""
from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agent.exchange_venue import ExchangeVenue  # noqa: E402
from data.exchange import ExchangeClient, ExchangeSettings  # noqa: E402
from persistence.records import OrderRecord  # noqa: E402
from tests.exchange_sim import ExchangeSim  # noqa: E402


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def show(name: str, xs: list[float]) -> None:
    print(f"{name:<38} n={len(xs):<4} median {statistics.median(xs):7.2f} ms   p99 {pct(xs, 99):7.2f} ms"
          f"   max {max(xs):7.2f} ms")


async def fills(sim, venue, got: dict, n: int, mode: str) -> list[float]:
    lat: list[float] = []
    for i in range(n):
        cid = f"s-{mode}-{i}"
        sim.set_price(30_000)
        await venue.place(OrderRecord(cid, 1, "sell", "limit", 0.005, 0, purpose="exit", limit_price=30_010.0))
        t0 = time.perf_counter()
        sim.set_price(30_010)
        if mode == "poll_now":
            await venue.poll_now()
        while cid not in got:
            await asyncio.sleep(0.0005)
        lat.append((got[cid] - t0) * 1000)
    return lat


async def main(n: int, poll: float) -> None:
    sim = await ExchangeSim(balances={"USDT": 1e9, "BTC": 100.0}).start()
    client = ExchangeClient(ExchangeSettings(exchange_url=sim.url), api_key=sim.api_key, secret=sim.secret)
    client.ex.enableRateLimit = False       # measure our path, not ccxt's 50 ms throttle
    venue = ExchangeVenue(client, "BTC/USDT", poll_interval_s=poll, user_stream=False, owns_client=False)
    got: dict[str, float] = {}
    venue.on_update(lambda u: got.setdefault(u.order.client_order_id, time.perf_counter())
                    if u.order.status == "filled" else None)
    await venue.market_rules()
    submit: list[float] = []
    for i in range(n):
        o = OrderRecord(f"b-{i}", 1, "buy", "market", 0.01, 0, expected_price=30_000.0)
        t0 = time.perf_counter()
        r = await venue.place(o)
        submit.append((time.perf_counter() - t0) * 1000)
        assert r.status == "filled"
    show("submit -> ack (market buy, filled)", submit)

    for mode in ("poller", "poll_now"):
        lat = await fills(sim, venue, got, n, mode)
        show(f"fill -> engine event ({mode}{f', {poll:g} s' if mode == 'poller' else ''})", lat)
    await venue.close()

    stream = ExchangeVenue(client, "BTC/USDT", poll_interval_s=3600.0, owns_client=False)
    stream.on_update(lambda u: got.setdefault(u.order.client_order_id, time.perf_counter())
                     if u.order.status == "filled" else None)
    await stream.market_rules()
    while not stream.stream_healthy:
        await asyncio.sleep(0.01)
    polled = sim.count("GET", "order")
    lat = await fills(sim, stream, got, n, "stream")
    show("fill -> engine event (user stream)", lat)
    print(f"{'':<38} order lookups during the stream run: {sim.count('GET', 'order') - polled}", flush=True)
    await stream.close()
    await client.close()
    await sim.stop()


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=50)
    ap.add_argument("--poll", type=float, default=0.25)
    a = ap.parse_args()
    asyncio.run(main(a.n, a.poll))
