"""`python -m tests.exchange_sim`: fault specs, the prints inside a played bar, and the module run
as a process, read through the real ccxt client (history shifted to the server's start, a live
bar played from the CSV, klines at other intervals, an injected 503) and stopped by SIGTERM."""
from __future__ import annotations

import asyncio
import re
import signal
import sys
from pathlib import Path

import ccxt
import ccxt.pro as ccxtpro
import pytest

from data.bar import Bar
from data.sample import generate_sample, write_csv
from tests.exchange_sim.cli import bar_prints, duration, parse_fault
from tests.exchange_sim.server import ccxt_config, production_errors

ROOT = Path(__file__).resolve().parents[2]
M1 = 60_000


def test_fault_specs_become_simulator_faults():
    f = parse_fault("POST /api/v3/order:lost-reply:times=1")
    assert (f.target, f.method, f.path, f.kind, f.times) == ("http", "POST", "order", "lost_reply", 1)
    f = parse_fault("GET /api/v3/klines:status=503:code=-1001:times=forever")
    assert (f.kind, f.path, f.times, f.options) == ("error", "klines", -1, {"status": 503, "code": -1001})
    f = parse_fault("*:status=429:code=-1003:retry-after=2:after=1.5m")
    assert (f.method, f.path, f.after, f.options["retry_after"]) == (None, "*", 90.0, 2)
    f = parse_fault("orderList/oco:delay=250ms")
    assert (f.kind, f.options, f.path) == ("delay", {"seconds": 0.25}, "orderList/oco")
    assert parse_fault("DELETE /api/v3/order:timeout").kind == "hang"
    assert parse_fault("GET klines:html=502").options == {"status": 502}
    ws = parse_fault("ws:drop:every=30s")
    assert (ws.target, ws.kind, ws.every, ws.times) == ("ws", "drop", 30.0, -1)
    assert parse_fault("ws:refuse:times=3").times == 3
    assert parse_fault("ws:depth-gap:every=20s").kind == "depth-gap"
    assert parse_fault("ws:depth-drop").kind == "depth-drop"
    assert duration("2") == 2.0 and duration("1.5m") == 90.0


@pytest.mark.parametrize("spec, why", [
    ("order", "expected"),
    ("order:explode", "unknown fault kind"),
    ("order:times=2", "no kind"),
    ("PATCH /api/v3/order:hang", "unknown HTTP method"),
    ("/sapi/v1/x:hang", "under /api/v3"),
    ("order:hang:every=5s", "WebSocket faults only"),
    ("ws:drop:status=500", "do not apply"),
    ("ws:lost-reply", "unknown fault kind"),
    ("klines:status=503:times=0", "positive"),
    ("klines:delay=soon", "not a duration"),
])
def test_bad_fault_specs_say_what_is_wrong(spec, why):
    with pytest.raises(ValueError, match=why):
        parse_fault(spec)


@pytest.mark.parametrize("bar", [Bar(0, 100, 110, 95, 105, 9), Bar(0, 100, 104, 90, 92, 9)])
def test_prints_inside_a_bar_walk_its_range_and_end_at_the_close(bar):
    for updates in (1, 3, 5):
        prints = bar_prints(bar, 900_000, updates)
        times = [t for t, _ in prints]
        prices = [p for _, p in prints]
        assert times == sorted(set(times)) and 0 < times[0] and times[-1] < 900_000
        assert max(prices) == bar.high and min(prices) == bar.low and prices[-1] == bar.close
        assert len(prints) >= max(3, updates)
        first_extreme = bar.low if bar.close >= bar.open else bar.high
        assert prices.index(first_extreme) < prices.index(bar.high + bar.low - first_extreme)


async def _line(proc, limit: float = 20.0) -> str:
    raw = await asyncio.wait_for(proc.stdout.readline(), limit)
    return raw.decode()


async def test_the_module_serves_a_csv_to_ccxt_and_stops_on_sigterm(tmp_path):
    rows = generate_sample()[:64]
    csv = tmp_path / "bars_15m.csv"
    write_csv(rows, csv)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.exchange_sim", "--csv", str(csv), "--symbol", "BTC/USDT",
        "--timeframe", "1m", "--live-from", "60", "--bar-seconds", "0.3", "--port", "0",
        "--balance", "1234", "--fault", "GET /api/v3/klines:status=503:code=-1001",
        "--log-level", "WARNING", cwd=ROOT, stdout=asyncio.subprocess.PIPE)
    client = None
    try:
        first = await _line(proc)
        m = re.search(r"(http://127\.0\.0\.1:(\d+))", first)
        assert m and int(m.group(2)) > 0, first
        client = ccxtpro.binance(ccxt_config(m.group(1), timeout_ms=3_000))
        production_errors(client)
        await client.load_markets()
        with pytest.raises(ccxt.OperationFailed):            # the injected 503 -1001, once
            await client.fetch_ohlcv("BTC/USDT", "1m", limit=1000)
        got = await client.fetch_ohlcv("BTC/USDT", "1m", limit=1000)
        t0 = got[60][0]                                      # bar 60 opened when the server started
        assert [r[0] for r in got[:61]] == [t0 + (i - 60) * M1 for i in range(61)]
        for r, bar in zip(got[:60], rows[:60]):             # history: the CSV's rows, 15m -> 1m
            assert r[1:6] == pytest.approx([bar.open, bar.high, bar.low, bar.close, bar.volume])
        for _ in range(200):                                 # bar 60 plays in real time
            got = await client.fetch_ohlcv("BTC/USDT", "1m", since=t0, limit=10)
            if len(got) >= 2:
                break
            await asyncio.sleep(0.05)
        bar = rows[60]
        assert got[0][0] == t0 and got[1][0] == t0 + M1, "bar 61 opens a timeframe later"
        assert got[0][1:6] == pytest.approx([bar.open, bar.high, bar.low, bar.close, bar.volume], abs=1e-6)
        assert got[1][1] == pytest.approx(rows[61].open)
        ones = await client.fetch_ohlcv("BTC/USDT", "1m", since=t0 - 40 * M1, limit=40)
        fives = await client.fetch_ohlcv("BTC/USDT", "5m", since=t0 - 40 * M1, limit=10)
        bucket = [r for r in ones if r[0] - r[0] % (5 * M1) == fives[1][0]]
        assert len(bucket) == 5 and fives[1][0] % (5 * M1) == 0
        assert fives[1][1:6] == pytest.approx([bucket[0][1], max(r[2] for r in bucket),
                                               min(r[3] for r in bucket), bucket[-1][4],
                                               sum(r[5] for r in bucket)])
        balance = await client.fetch_balance()               # signed, with the default keys
        assert balance["USDT"]["free"] == 1234 and balance["BTC"]["free"] == 0
    finally:
        if client is not None:
            await client.close()
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
        rest = (await asyncio.wait_for(proc.stdout.read(), 20)).decode()
        code = await asyncio.wait_for(proc.wait(), 20)
    assert code == 0 and "stopped" in rest


async def test_a_live_from_beyond_the_csv_is_refused(tmp_path):
    csv = tmp_path / "bars.csv"
    write_csv(generate_sample()[:10], csv)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.exchange_sim", "--csv", str(csv), "--live-from", "11",
        cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 2 and b"--live-from 11" in err and b"listening" not in out
