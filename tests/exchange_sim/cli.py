"""`python -m tests.exchange_sim`: the Binance-spot simulator as a process, candles played from a
replay CSV, faults injected from the command line. Prints the base URL for the agent's
`--exchange-url` (and the API key and secret the simulator accepts); stops cleanly on SIGTERM or
Ctrl-C.

Time: the CSV's bars are labelled with --timeframe whatever their spacing. Bars before row
--live-from are history, shifted so that bar N opens when the server starts (at a timeframe
boundary of the market clock); from bar N on, each bar is played in real time: it opens at its
open price, then a few prints walk open -> low -> high -> close (a down bar: high first), so
resting orders fill as they would. --bar-seconds S plays one bar every S real seconds: the
market clock (/api/v3/time, candle times) then runs faster than the wall clock, so a client must
run on the same scaled clock; without it market time advances at the wall clock's pace.

Fault specs (--fault, repeatable), fields separated by ':':

    [METHOD ]PATH:KIND[:key=value]...      an HTTP fault on /api/v3/PATH ('*' = every path)
    ws:KIND[:key=value]...                 a WebSocket fault

HTTP kinds: delay=DURATION, hang (alias timeout: never answered, the client times out),
lost-reply (processed, the reply never comes), abort / abort-after (connection cut before /
after processing), status=CODE (an error reply; code=BINANCE_CODE, msg=TEXT, retry-after=SECONDS),
html=STATUS (a gateway page), malformed (200 with truncated JSON).
WebSocket kinds: drop (connections cut without a close handshake), close (closed with a close
frame), refuse (new connections refused), depth-drop (only the connections carrying a depth
stream cut), depth-gap (the next depth event lost: a sequence gap the client resyncs from).
Options: times=N|forever (how many requests / events; default 1, or forever with every=),
every=DURATION (WebSocket: repeat), after=DURATION (arm the fault that long after start).
DURATION: 250ms, 2s, 1.5m, or plain seconds. Examples:

    --fault 'POST /api/v3/order:lost-reply:times=1'
    --fault 'GET /api/v3/klines:status=503:code=-1001:times=3'
    --fault '*:status=429:code=-1003:retry-after=1:after=20s'
    --fault 'ws:drop:every=30s'
    --fault 'ws:depth-gap:every=20s'
"""
from __future__ import annotations

import argparse
import asyncio
import logging
import re
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from data.bar import Bar
from data.csv_source import DataError, read_csv
from data.validator import validate_bars
from tests.exchange_sim.server import API, TF_MS, ExchangeSim

log = logging.getLogger("exchange_sim")

HTTP_METHODS = ("GET", "POST", "PUT", "DELETE")
_FLAGS = {"hang": "hang", "timeout": "hang", "lost-reply": "lost_reply", "abort": "abort",
          "abort-after": "abort_after", "malformed": "malformed"}
_WS_KINDS = ("drop", "close", "refuse", "depth-drop", "depth-gap")


def duration(text: str) -> float:
    """Seconds from '250ms', '2s', '1.5m' or a plain number of seconds."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*", text)
    if m is None:
        raise ValueError(f"not a duration: {text!r} (use 250ms, 2s, 1.5m or plain seconds)")
    return float(m.group(1)) * {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}[m.group(2)]


@dataclass
class FaultSpec:
    """One --fault: an HTTP fault (ExchangeSim.fault keyword arguments) or a WebSocket one."""

    text: str
    target: str                     # "http" | "ws"
    kind: str                       # ExchangeSim fault kind, or drop|close|refuse
    path: str = "*"
    method: str | None = None
    times: int = 1                  # -1: forever
    every: float | None = None
    after: float = 0.0
    options: dict[str, Any] = field(default_factory=dict)   # seconds, status, code, msg, retry_after


def parse_fault(text: str) -> FaultSpec:
    """A --fault SPEC (see the module's help); ValueError says what is wrong with it."""
    parts = [p.strip() for p in text.split(":")]
    if len(parts) < 2 or not parts[0]:
        raise ValueError(f"fault {text!r}: expected [METHOD ]PATH:KIND[:key=value]... or ws:KIND...")
    head, rest = parts[0], parts[1:]
    kind: str | None = None
    opts: dict[str, Any] = {}
    times: int | None = None
    every: float | None = None
    after = 0.0
    for item in rest:
        key, sep, value = item.partition("=")
        key = key.strip().lower()
        value = value.strip()
        try:
            if not sep:
                if key in _FLAGS and head.lower() != "ws":
                    kind = _FLAGS[key]
                elif key in _WS_KINDS and head.lower() == "ws":
                    kind = key
                else:
                    raise ValueError(f"unknown fault kind {key!r}")
            elif key == "times":
                times = -1 if value.lower() in ("forever", "always", "-1") else int(value)
                if times == 0 or times < -1:
                    raise ValueError("times must be a positive count or 'forever'")
            elif key == "every":
                every = duration(value)
                if every <= 0:
                    raise ValueError("every must be longer than 0")
            elif key == "after":
                after = duration(value)
            elif key == "delay":
                kind, opts["seconds"] = "delay", duration(value)
            elif key == "status":
                kind, opts["status"] = "error", int(value)
            elif key == "html":
                kind, opts["status"] = "html", int(value)
            elif key == "code":
                opts["code"] = int(value)
            elif key == "msg":
                opts["msg"] = value
            elif key == "retry-after":
                opts["retry_after"] = int(value)
            else:
                raise ValueError(f"unknown option {key!r}")
        except ValueError as exc:
            raise ValueError(f"fault {text!r}: {exc}") from None
    if kind is None:
        raise ValueError(f"fault {text!r}: no kind (e.g. status=503, lost-reply, delay=2s, ws:drop)")
    if head.lower() == "ws":
        if opts:
            raise ValueError(f"fault {text!r}: {', '.join(opts)} do not apply to a WebSocket fault")
        return FaultSpec(text, "ws", kind, times=times if times is not None else (-1 if every else 1),
                         every=every, after=after)
    if every is not None:
        raise ValueError(f"fault {text!r}: every= applies to WebSocket faults only (use times=)")
    if "code" in opts and kind != "error":
        raise ValueError(f"fault {text!r}: code= needs status=")
    method, _, path = head.rpartition(" ")
    method = method.strip().upper() or None
    if method is not None and method not in HTTP_METHODS:
        raise ValueError(f"fault {text!r}: unknown HTTP method {method!r}")
    path = path.strip()
    if path.startswith(API + "/"):
        path = path[len(API) + 1:]
    elif path.startswith("/"):
        raise ValueError(f"fault {text!r}: the simulator's paths are under {API}/")
    if not path:
        raise ValueError(f"fault {text!r}: no path")
    return FaultSpec(text, "http", kind, path=path, method=method,
                     times=times if times is not None else 1, after=after, options=opts)


class MarketClock:
    """Market time in Unix ms: `start_ms` at creation (or, with running=False, held there until
    start()), then running `speed` times the wall clock. Also a FeedClock (sleep in market
    seconds) for a feed that runs on the simulator's time."""

    def __init__(self, start_ms: int, speed: float = 1.0, *, running: bool = True) -> None:
        self.start_ms, self.speed = start_ms, speed
        self._t0: float | None = time.perf_counter() if running else None

    def start(self) -> None:
        if self._t0 is None:
            self._t0 = time.perf_counter()

    def now_ms(self) -> int:
        if self._t0 is None:
            return self.start_ms
        return self.start_ms + int((time.perf_counter() - self._t0) * 1000 * self.speed)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds) / self.speed)

    def observe(self, ts_ms: int) -> None:
        """An engine Clock too: market time is the simulator's, not the bars'."""
        return None

    def real_delay(self, market_ms: int) -> float:
        """Real seconds until the market clock reads `market_ms` (0 if it already has)."""
        return max(0.0, (market_ms - self.now_ms()) / 1000 / self.speed)


def load_bars(path: Path) -> list[Bar]:
    """The CSV's valid bars in file order (bad rows are logged and skipped)."""
    contents = read_csv(path)
    bars, rejected = validate_bars(contents.bars, contents.lines)
    for r in rejected[:5]:
        log.warning("%s: row refused: %s", path, r)
    if len(rejected) > 5:
        log.warning("%s: %d rows refused in all", path, len(rejected))
    if not bars:
        raise DataError(f"{path}: no valid bar")
    return bars


def relabel(bars: list[Bar], live_from: int, tf_ms: int, t0: int) -> list[Bar]:
    """The bars on the timeframe's grid, bar `live_from` opening at `t0`."""
    return [Bar(t0 + (i - live_from) * tf_ms, b.open, b.high, b.low, b.close, b.volume)
            for i, b in enumerate(bars)]


def bar_prints(bar: Bar, tf_ms: int, updates: int) -> list[tuple[int, float]]:
    """(market time, price) of the prints inside a bar after its open: along open -> low ->
    high -> close (a down bar: high first), at least the two extremes and the close, the last
    print before the bar ends."""
    path = [bar.open, bar.low, bar.high, bar.close] if bar.close >= bar.open else \
        [bar.open, bar.high, bar.low, bar.close]
    fractions = sorted({j / updates for j in range(1, updates + 1)} | {1 / 3, 2 / 3, 1.0})
    out = []
    for n, f in enumerate(fractions, start=1):
        i = min(int(f * 3 + 1e-12), 2)
        frac = f * 3 - i
        price = path[i] + (path[i + 1] - path[i]) * frac if frac > 1e-12 else path[i]
        if abs(f - 1.0) < 1e-12:
            price = bar.close
        elif any(abs(f - v) < 1e-12 for v in (1 / 3, 2 / 3)):
            price = path[round(f * 3)]
        out.append((bar.ts + n * tf_ms // (len(fractions) + 1), price))
    return out


async def play(sim: ExchangeSim, clock: MarketClock, bars: list[Bar], tf_ms: int, updates: int) -> None:
    """Each bar in real (market) time: the open, then the prints inside it."""
    for bar in bars:
        await asyncio.sleep(clock.real_delay(bar.ts))
        sim.open_candle(bar.ts, bar.open)
        prints = bar_prints(bar, tf_ms, updates)
        qty = bar.volume / len(prints)
        for ts, price in prints:
            await asyncio.sleep(clock.real_delay(ts))
            sim.set_price(price, qty=qty, ts=ts)
    if bars:
        log.info("the CSV is played out: the market stays at %s", bars[-1].close)


async def run_fault(sim: ExchangeSim, spec: FaultSpec) -> None:
    if spec.after:
        await asyncio.sleep(spec.after)
    if spec.target == "http":
        sim.fault(spec.path, spec.kind, method=spec.method, times=spec.times, **spec.options)
        log.info("fault armed: %s", spec.text)
        return
    if spec.kind == "refuse" and spec.every is None:
        sim.refuse_sockets = 10**9 if spec.times < 0 else spec.times
        log.info("fault armed: %s", spec.text)
        return
    done = 0
    while spec.times < 0 or done < spec.times:
        if spec.every is not None and (done or not spec.after):
            await asyncio.sleep(spec.every)
        if spec.kind == "drop":
            n = sim.drop_sockets()
        elif spec.kind == "close":
            n = await sim.close_sockets()
        elif spec.kind == "depth-drop":
            n = sim.drop_depth_streams()
        elif spec.kind == "depth-gap":
            sim.skip_depth_updates += 1
            n = sim.depth_subscribers()
        else:
            sim.refuse_sockets += 1
            n = 1
        done += 1
        log.info("fault %s: %d WebSocket connection(s)", spec.text, n)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m tests.exchange_sim",
        description="A local Binance-spot exchange for the agent (--exchange-url) and the real "
                    "ccxt client: candles from a replay CSV, market/limit/stop/OCO orders matched "
                    "on its prices, faults on demand.",
        epilog=__doc__.split("Fault specs", 1)[1].join(["Fault specs", ""]),
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--csv", type=Path, help="replay CSV (timestamp,open,high,low,close,volume); "
                   "without it the market sits at --price with no history")
    p.add_argument("--symbol", default="BTC/USDT", help="BASE/QUOTE (default BTC/USDT)")
    p.add_argument("--timeframe", default="15m", choices=sorted(TF_MS, key=TF_MS.get),
                   help="label the CSV's bars with this timeframe, whatever their spacing (default 15m)")
    p.add_argument("--live-from", type=int, default=None, metavar="N",
                   help="rows before N are history ending when the server starts; bar N opens "
                        "then and every later bar streams in real time (default: all rows are history)")
    p.add_argument("--bar-seconds", type=float, default=None, metavar="S",
                   help="play one bar per S real seconds (compressed time; default: the timeframe)")
    p.add_argument("--updates", type=int, default=3, metavar="K",
                   help="prints inside each live bar (at least low, high and close; default 3)")
    p.add_argument("--port", type=int, default=0, help="TCP port on 127.0.0.1 (0: pick a free one)")
    p.add_argument("--balance", type=float, default=10_000.0, metavar="QUOTE_AMOUNT",
                   help="free quote balance of the account (default 10000)")
    p.add_argument("--base-balance", type=float, default=0.0, metavar="BASE_AMOUNT")
    p.add_argument("--price", type=float, default=30_000.0, help="the price without --csv")
    p.add_argument("--fee-rate", type=float, default=0.001, help="commission per fill (default 0.001)")
    p.add_argument("--api-key", default="sim-key")
    p.add_argument("--secret", default="sim-secret")
    p.add_argument("--hang-seconds", type=float, default=30.0,
                   help="how long a hung or lost reply is held (default 30)")
    p.add_argument("--fault", action="append", default=[], metavar="SPEC", type=_fault_arg,
                   help="inject a fault (repeatable; syntax below)")
    p.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    return p


def _fault_arg(text: str) -> FaultSpec:
    try:
        return parse_fault(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


async def serve(args: argparse.Namespace, ready=print) -> int:
    tf_ms = TF_MS[args.timeframe]
    speed = 1.0 if args.bar_seconds is None else tf_ms / (args.bar_seconds * 1000.0)
    wall = time.time_ns() // 1_000_000
    t0 = wall - wall % tf_ms
    bars: list[Bar] = []
    if args.csv is not None:
        bars = load_bars(args.csv)
    live_from = len(bars) if args.live_from is None else args.live_from
    if not 0 <= live_from <= len(bars):
        raise DataError(f"--live-from {live_from}: the CSV has {len(bars)} valid bars")
    bars = relabel(bars, live_from, tf_ms, t0)
    history, live = bars[:live_from], bars[live_from:]
    price = live[0].open if live else (history[-1].close if history else args.price)
    base, quote = args.symbol.split("/")
    clock = MarketClock(t0, speed)
    sim = ExchangeSim(symbol=args.symbol, price=price, timeframe=args.timeframe,
                      balances={quote: args.balance, base: args.base_balance}, fee_rate=args.fee_rate,
                      api_key=args.api_key, secret=args.secret, hang_seconds=args.hang_seconds,
                      clock=clock.now_ms)
    if history:
        sim.load_history([(b.ts, b.open, b.high, b.low, b.close, b.volume) for b in history])
    await sim.start(args.port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    tasks = [loop.create_task(play(sim, clock, live, tf_ms, args.updates), name="play")]
    tasks += [loop.create_task(run_fault(sim, f), name=f"fault {f.text}") for f in args.fault]
    ready(f"exchange simulator listening on {sim.url}  (agent: --exchange-url {sim.url})")
    ready(f"  {args.symbol} {args.timeframe}: {len(history)} history bar(s), {len(live)} live; "
          f"market clock x{speed:g}; api key {args.api_key!r} secret {args.secret!r}; "
          f"{len(args.fault)} fault(s)")
    try:
        await stop.wait()
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await sim.stop()
        ready("exchange simulator stopped")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.bar_seconds is not None and args.bar_seconds <= 0:
        parser.error("--bar-seconds must be positive")
    if args.updates < 1:
        parser.error("--updates must be at least 1")
    if args.symbol.count("/") != 1:
        parser.error("--symbol must be BASE/QUOTE")
    logging.basicConfig(level=args.log_level, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        return asyncio.run(serve(args, ready=lambda line: print(line, flush=True)))
    except (DataError, OSError) as exc:
        print(f"exchange simulator: {exc}", file=sys.stderr)
        return 2
