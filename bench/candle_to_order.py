"""Candle close -> entry order sent, the real agent (live_exchange_session: LiveFeed + engine +
ExchangeVenue with its streamed order book) against the local simulator through the real ccxt
client, in real milliseconds.

The synthetic sample's bars are played by the simulator (history before --from, then one bar per
--bar-seconds real seconds, a few prints inside each). The config signals often and holds a
position at most --max-hold bars, so a stretch has dozens of entries (a p99 over a handful of
entries is only the worst one); --runs repeats the whole thing on fresh data folders.

Every time below is time.perf_counter() (one monotonic clock), stamped at these points:
- sim: the simulator opens the entry bar (the signal bar's close; one kline message carries both);
- msg: that kline message returned from ccxt's watch_ohlcv inside the feed (the feed's own
  receive loop; the message's identity is followed to the events it produces);
- close: the signal bar's BarClosed leaves the feed for the engine;
- bar: the entry bar's BarOpened leaves the feed (after the engine handled the close: strategy
  update, the signal found, its pending entry committed);
- call: the venue calls ccxt's create_order (strategy, risk check, slippage check on the
  streamed book, the client order id committed to SQLite with fsync, market rules: done);
- sent: ccxt hands the signed POST /api/v3/order to its HTTP client (rate limiter, signing
  done);
- recv: the simulator's handler receives the POST.

Printed: agent processing msg -> sent (the target: p99 < 20 ms), split into feed (msg ->
close), engine bar close (close -> bar), engine entry (bar -> call) and ccxt (call -> sent);
entries whose signal bar close also ended the previous position (a time exit: cancel the exits,
sell at market, both at the exchange, before the entry) apart, with their own line; and end to end sim -> recv (socket and HTTP
included). ccxt's rate limiter is on, as live. Market time runs compressed; the feed's freshness
window is widened accordingly (what is measured is processing, not the window).

    .venv/bin/python bench/candle_to_order.py [--from 4850] [--bars 300] [--bar-seconds 0.25] [--runs 1]
"""
from __future__ import annotations

import argparse
import asyncio
import logging
import re
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
from tests.conftest import make_config  # noqa: E402
from tests.exchange_sim.cli import MarketClock, bar_prints, relabel  # noqa: E402
from tests.exchange_sim.server import ExchangeSim  # noqa: E402

M15 = 900_000
CID = re.compile(r"^ta-E(\d+)-\d+$")


def bench_config(max_hold: int):
    """Relaxed thresholds (a signal every few bars on the sample), short holds, no Fibonacci
    requirement, room for many trades a (compressed) day."""
    return make_config(seller_params={"vol_z": 0.5, "tr_z": 0.0, "cloc_min": 0.3},
                       backtest_params={"use_fib_exits": False, "use_stop_loss": True,
                                        "use_traditional_tp": True, "use_time_exit": True,
                                        "reward_r": 1.0, "max_hold": max_hold},
                       risk_management={"max_daily_trades": 100, "max_daily_loss_percent": 20})


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def show(name: str, xs: list[float]) -> None:
    if not xs:
        print(f"{name:<44} no samples")
        return
    print(f"{name:<44} n={len(xs):<3} median {statistics.median(xs):7.2f} ms   p99 {pct(xs, 99):7.2f} ms"
          f"   max {max(xs):7.2f} ms")


async def run(start: int, count: int, bar_seconds: float, max_hold: int, verbose: bool) -> dict[str, list[float]]:
    bars = generate_sample()
    wall = time.time_ns() // 1_000_000
    t0 = wall - wall % M15
    speed = M15 / (bar_seconds * 1000)
    clock = MarketClock(t0, speed, running=False)
    rel = relabel(bars[:start + count], start, M15, t0)
    sim = ExchangeSim(symbol="BTC/USDT", price=rel[start].open, timeframe="15m",
                      balances={"USDT": 10_000.0}, clock=clock.now_ms)
    sim.book_churn = True                   # a busy book: a depth event every 100 ms
    sim.load_history([(b.ts, b.open, b.high, b.low, b.close, b.volume) for b in rel[:start]])
    await sim.start()

    opened_at: dict[int, float] = {}        # bar ts -> the simulator opened it
    recv: dict[str, float] = {}             # client id -> the simulator got the POST
    new_order = sim._new_order

    exits_at: list[float] = []              # the simulator got a sell or a cancel (an exit)
    cancel_order = sim._cancel_order

    def timed_new_order(params: dict) -> dict:
        if params.get("side") == "BUY":
            recv[params.get("newClientOrderId", "")] = time.perf_counter()
        else:
            exits_at.append(time.perf_counter())
        return new_order(params)

    def timed_cancel(params: dict) -> dict:
        exits_at.append(time.perf_counter())
        return cancel_order(params)

    sim._new_order, sim._cancel_order = timed_new_order, timed_cancel   # type: ignore[method-assign]

    client = ExchangeClient(ExchangeSettings(exchange_url=sim.url, timeout_ms=3_000,
                                             retry=RetryPolicy(attempts=3, initial_s=0.05)),
                            api_key=sim.api_key, secret=sim.secret)
    ex = client.ex
    received: dict[int, tuple[object, float]] = {}    # id(rows) -> (rows, watch_ohlcv returned)
    calls: dict[str, float] = {}            # client id -> create_order called
    sent: dict[str, float] = {}             # client id -> ccxt's fetch of the POST
    watch, create, fetch = ex.watch_ohlcv, ex.create_order, ex.fetch

    async def timed_watch(*a, **kw):
        rows = await watch(*a, **kw)
        received[id(rows)] = (rows, time.perf_counter())
        return rows

    async def timed_create(symbol, type_, side, amount, price=None, params=None):
        if side == "buy":
            calls[(params or {}).get("clientOrderId", "")] = time.perf_counter()
        return await create(symbol, type_, side, amount, price, params or {})

    async def timed_fetch(url, method="GET", headers=None, body=None):
        if method == "POST" and url.endswith("/order") and body and "side=BUY" in body:
            m = re.search(r"newClientOrderId=([^&]+)", body)
            if m:
                sent[m.group(1)] = time.perf_counter()
        return await fetch(url, method, headers, body)

    ex.watch_ohlcv, ex.create_order, ex.fetch = timed_watch, timed_create, timed_fetch
    data_dir = Path(tempfile.mkdtemp(prefix="bench-c2o-"))
    engine = live_exchange_session(bench_config(max_hold), data_dir, client, feed_clock=clock,
                                   engine_clock=clock, poll_interval_s=0.05, live_grace_ms=5 * M15,
                                   health_interval_s=30 * speed, backoff_initial_s=0.05 * speed,
                                   backoff_max_s=0.4 * speed, close_confirm_delay_s=0.3 * speed / 60)
    feed = engine.source.feed
    process = feed._process
    msg_of_item: list[float | None] = [None]   # the message behind the events being yielded

    async def timed_process(item):
        got = received.pop(id(item[1]), None) if item[0] == "candles" else None
        msg_of_item[0] = got[1] if got is not None and got[0] is item[1] else None
        return await process(item)

    feed._process = timed_process           # type: ignore[method-assign]
    opens: dict[int, tuple[float | None, float, float | None]] = {}   # BarOpened ts -> (msg, left the feed, close)
    closes: dict[int, float] = {}           # bar close time -> BarClosed left the feed
    source = engine.source
    events = source.events

    async def timed_events(resume_after_ts):
        async for event in events(resume_after_ts):
            if isinstance(event, mk.BarOpened) and event.live:
                opens[event.ts] = (msg_of_item[0], time.perf_counter(), closes.get(event.ts))
            elif isinstance(event, mk.BarClosed) and event.live:
                closes[event.bar.ts + M15] = time.perf_counter()
            yield event

    source.events = timed_events            # type: ignore[method-assign]
    logging.getLogger().setLevel(logging.ERROR)
    await engine.start()
    while engine.status().last_bar_ts != rel[start - 1].ts:
        await asyncio.sleep(0.02)
    stream = engine.venue.book_stream
    while stream is None or stream.book() is None:
        await asyncio.sleep(0.02)
        stream = engine.venue.book_stream
    clock.start()
    for bar in rel[start:]:
        await asyncio.sleep(clock.real_delay(bar.ts))
        opened_at[bar.ts] = time.perf_counter()
        sim.open_candle(bar.ts, bar.open)
        prints = bar_prints(bar, M15, 3)
        for ts, price in prints:            # the bar's volume in its prints: the strategy's z-score
            await asyncio.sleep(clock.real_delay(ts))
            sim.set_price(price, qty=bar.volume / len(prints), ts=ts)
    await asyncio.sleep(0.5)
    entries = [o.client_id for o in sim.orders.values() if o.side == "BUY"]
    closed = len(engine.store.closed_trades())
    rest_reads, resyncs = engine.venue.book_rest_reads, stream.resyncs
    reasons: dict[str, int] = {}
    for sig in engine.store.signals():
        key = sig.action if sig.action != "SKIPPED" else f"SKIPPED {re.sub(r'[0-9.:]+', 'N', sig.reason or '')[:60]}"
        reasons[key] = reasons.get(key, 0) + 1
    await engine.stop()
    await engine.source.feed.close()
    await sim.stop()

    out: dict[str, list[float]] = {k: [] for k in ("feed", "close", "entry", "ccxt", "agent", "e2e",
                                                   "behind_exit")}
    skipped = 0
    for cid in entries:
        m = CID.match(cid)
        bar_ts = int(m.group(1)) + M15 if m else None       # the signal bar's close: the next bar opens
        stamps = opens.get(bar_ts) if bar_ts is not None else None
        if stamps is None or stamps[0] is None or cid not in calls or cid not in sent or cid not in recv:
            skipped += 1                     # e.g. an entry by REST confirmation, not by a message
            continue
        msg, bar, close = stamps
        if close is None or close < msg:
            skipped += 1                     # the signal bar closed by an earlier message
            continue
        ms = {"feed": close - msg, "close": bar - close, "entry": calls[cid] - bar,
              "ccxt": sent[cid] - calls[cid], "agent": sent[cid] - msg, "e2e": recv[cid] - opened_at[bar_ts]}
        exit_first = any(msg <= t <= sent[cid] for t in exits_at)
        if exit_first:                       # the same bar close ended the previous position first
            out["behind_exit"].append(ms["agent"] * 1000)
        else:
            for k, v in ms.items():
                out[k].append(v * 1000)
        if verbose:
            print(f"  entry in bar {(bar_ts - t0) // M15 + start}: " +
                  ", ".join(f"{k} {v * 1000:.2f} ms" for k, v in ms.items()) +
                  (" (behind an exit)" if exit_first else ""))
    print(f"{len(entries)} entries over {count} live bars ({bar_seconds:g} s each), {closed} trades closed, "
          f"{skipped} not attributable; book: {rest_reads} REST reads at entries, {resyncs} resyncs")
    if verbose:
        print("  signals:", reasons)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--from", dest="start", type=int, default=4850, help="first live bar of the sample")
    ap.add_argument("--bars", type=int, default=300, help="live bars to play")
    ap.add_argument("--bar-seconds", type=float, default=0.25)
    ap.add_argument("--max-hold", type=int, default=2, help="time exit after this many bars")
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("-v", "--verbose", action="store_true", help="one line per entry")
    a = ap.parse_args()
    total: dict[str, list[float]] = {}
    for _ in range(a.runs):
        r = asyncio.run(run(a.start, a.bars, a.bar_seconds, a.max_hold, a.verbose))
        for k, v in r.items():
            total.setdefault(k, []).extend(v)
    print("entries with nothing in front of them:")
    show("agent: message -> order sent", total["agent"])
    show("  feed: message -> BarClosed", total["feed"])
    show("  engine, bar close: BarClosed -> BarOpened", total["close"])
    show("  engine, entry: BarOpened -> create_order", total["entry"])
    show("  ccxt: create_order -> request sent", total["ccxt"])
    show("end to end: bar opens at sim -> POST at sim", total["e2e"])
    print("entries whose bar close first closed the previous position (its cancel and sell round")
    print("trips at the exchange come first: the engine enters only when flat):")
    show("agent: message -> order sent", total["behind_exit"])


if __name__ == "__main__":
    main()
