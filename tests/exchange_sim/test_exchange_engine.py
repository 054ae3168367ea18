"""The real engine, composed by agent.session.exchange_session, trading at the simulator through
the real ccxt client: it enters at market, rests its exits as one OCO list at the exchange, and
the simulator's price path fills the stop; the ledger shows the trade."""
from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from agent.clock import ReplayClock
from agent.session import exchange_session
from data import market as mk
from data.exchange import ExchangeClient, ExchangeSettings
from data.exchange_errors import RetryPolicy
from data.sample import generate_sample
from tests.conftest import ACTIVE, make_config

FIRST_SIGNAL = 822          # the sample's first traded signal bar (entry 823, stop hit at 831)


class ScriptedMarket:
    """Bars of the sample: history before `live_from` only warms the indicators; each live bar
    moves the simulator's price open -> extremes -> close (the prints inside the bar) before the
    engine sees the bar, and the venue is asked for news right after each print."""

    def __init__(self, bars, live_from: int, sim, venue) -> None:
        self.bars, self.live_from, self.sim, self.venue = bars, live_from, sim, venue
        self.now = bars[0].ts
        sim.clock = lambda: self.now

    async def _print(self, ts: int, price: float) -> None:
        self.now = ts
        self.sim.set_price(price, ts=ts)
        if self.venue.watching():
            await self.venue.poll_now()

    async def events(self, resume_after_ts: int | None) -> AsyncIterator[mk.MarketEvent]:
        tf = 900_000
        for i, bar in enumerate(self.bars):
            if i < self.live_from:
                yield mk.BarClosed(bar, bar.ts + tf, live=False)
                continue
            await self._print(bar.ts, bar.open)
            yield mk.BarOpened(bar.ts, bar.open)
            path = (bar.low, bar.high) if bar.close >= bar.open else (bar.high, bar.low)
            for k, price in enumerate(path, start=1):
                await self._print(bar.ts + k * 1000, price)
                yield mk.PriceUpdate(bar.ts + k * 1000, price)
            await self._print(bar.ts + tf - 1, bar.close)
            yield mk.BarClosed(bar, bar.ts + tf)
            await asyncio.sleep(0)
        yield mk.FeedEnded("finished", "script")


async def test_engine_trades_at_the_exchange_end_to_end(sim, tmp_path):
    bars = generate_sample()[: FIRST_SIGNAL + 12]
    sim.price = sim._tick_down(sim.price.__class__(str(bars[0].open)))
    client = ExchangeClient(ExchangeSettings(exchange_url=sim.url, timeout_ms=2_000,
                                             retry=RetryPolicy(attempts=3, initial_s=0.05)),
                            api_key=sim.api_key, secret=sim.secret)
    cfg = make_config(**ACTIVE)
    holder: dict = {}

    class Late:               # the source needs the venue the session creates
        def events(self, resume_after_ts):
            return holder["market"].events(resume_after_ts)

    engine = exchange_session(cfg, tmp_path, Late(), client, clock=ReplayClock(), poll_interval_s=0.05)
    holder["market"] = ScriptedMarket(bars, FIRST_SIGNAL - 10, sim, engine.venue)
    await engine.start()
    await asyncio.wait_for(engine.wait_finished(), 45)
    trades = engine.store.closed_trades()
    orders = [o for t in trades for o in engine.store.orders_for_trade(t.id)]
    await engine.stop()

    assert len(trades) == 1, [(t.exit_reason, t.status) for t in trades]
    t = trades[0]
    assert t.exit_reason == "STOP" and t.mode == "testnet"
    assert t.entry_ts == bars[FIRST_SIGNAL + 1].ts and bars[FIRST_SIGNAL + 1].ts <= t.exit_ts
    # exactly one entry order and one OCO list at the exchange
    assert sim.count("POST", "order") == 1 and sim.count("POST", "orderList/oco") == 1
    entry = sim.orders[1]
    assert entry.client_id.startswith("ta-E") and entry.status == "FILLED"
    assert abs(t.amount - float(entry.executed) * 0.999) < 1e-9, "net of the commission in BTC"
    stop = next(o for o in sim.orders.values() if o.client_id.endswith("-stop"))
    target = next(o for o in sim.orders.values() if o.type == "LIMIT_MAKER")
    assert stop.status == "FILLED" and target.status == "EXPIRED"
    assert abs(t.exit_price - float(stop.quote_qty / stop.executed)) < 1e-6
    fills = [x for x in sim.my_trades if x["orderId"] == stop.order_id]
    assert abs(t.exit_fee - sum(float(x["commission"]) for x in fills)) < 1e-6 and t.exit_fee > 0
    assert t.entry_fee > 0 and t.pnl is not None and t.pnl < 0
    assert {o.status for o in orders if o.purpose == "exit"} == {"filled", "canceled"}
    assert sim.balance("BTC")[1] == 0, "nothing left locked at the exchange"
