"""A whole testnet trade through the real ccxt client at the simulator, composed by
agent.session.live_exchange_session: warm-up history from REST, live candles over the WebSocket
(LiveFeed), a seller-exhaustion signal, a market entry, the exits resting at the exchange as one
OCO list, the target filled by the played prices, the trade stored with its fees.

Market time is compressed (one 15m bar per real second) on one clock shared by the simulator,
the feed and the engine; it is held at the first live bar's open until the warm-up is done."""
from __future__ import annotations

import asyncio
import time

from agent.events import BarClosed, PositionOpened
from agent.session import live_exchange_session
from data.exchange import ExchangeClient, ExchangeSettings
from data.exchange_errors import RetryPolicy
from data.sample import generate_sample
from tests.conftest import ACTIVE, make_config
from tests.exchange_sim.cli import MarketClock, play, relabel
from tests.exchange_sim.server import ExchangeSim

M15 = 900_000
SIGNAL = 4893           # seller exhaustion on the sample (ACTIVE): entry 4894, its high reaches the target
LIVE_FROM = SIGNAL - 2
BAR_SECONDS = 1.0


def feed_options(speed: float) -> dict:
    """LiveFeed timings in market seconds, so that in real time they stay what they are live."""
    return dict(live_grace_ms=M15 // 3, health_interval_s=30 * speed, close_confirm_delay_s=0.3 * speed / 60,
                backoff_initial_s=0.05 * speed, backoff_max_s=0.4 * speed)


async def until(predicate, real_limit_s: float) -> bool:
    deadline = time.monotonic() + real_limit_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        await asyncio.sleep(0.02)
    return predicate()


class Market:
    """The sample's bars relabelled so that bar LIVE_FROM opens at a 15m boundary near now,
    history before it at the simulator, the rest played when `go()` is called."""

    def __init__(self, bars, live_from: int, end: int, **sim_kw) -> None:
        wall = time.time_ns() // 1_000_000
        self.t0 = wall - wall % M15
        self.speed = M15 / (BAR_SECONDS * 1000)
        self.clock = MarketClock(self.t0, self.speed, running=False)
        self.bars = relabel(bars[:end], live_from, M15, self.t0)
        self.live_from = live_from
        self.sim = ExchangeSim(symbol="BTC/USDT", price=self.bars[live_from].open, timeframe="15m",
                               clock=self.clock.now_ms, **sim_kw)
        self.sim.load_history([(b.ts, b.open, b.high, b.low, b.close, b.volume)
                               for b in self.bars[:live_from]])
        self.player: asyncio.Task | None = None

    def go(self) -> None:
        self.clock.start()
        self.player = asyncio.get_running_loop().create_task(
            play(self.sim, self.clock, self.bars[self.live_from:], M15, 3))

    async def close(self) -> None:
        if self.player is not None:
            self.player.cancel()
            try:
                await self.player
            except BaseException:
                pass
        await self.sim.stop()


def client_for(sim: ExchangeSim, timeout_ms: int = 1_500) -> ExchangeClient:
    return ExchangeClient(ExchangeSettings(exchange_url=sim.url, timeout_ms=timeout_ms,
                                           retry=RetryPolicy(attempts=4, initial_s=0.05)),
                          api_key=sim.api_key, secret=sim.secret)


async def test_a_whole_testnet_trade_through_ccxt_at_the_simulator(tmp_path):
    bars = generate_sample()
    market = Market(bars, LIVE_FROM, SIGNAL + 5, balances={"USDT": 10_000.0})
    await market.sim.start()
    sim, rel = market.sim, market.bars
    engine = live_exchange_session(make_config(**ACTIVE), tmp_path, client_for(sim),
                                   feed_clock=market.clock, engine_clock=market.clock,
                                   poll_interval_s=0.05, **feed_options(market.speed))
    closes: list = []
    opened: list = []
    engine.bus.subscribe(lambda e: isinstance(e, BarClosed) and closes.append(e))
    engine.bus.subscribe(lambda e: isinstance(e, PositionOpened) and opened.append(e.trade))
    try:
        await engine.start()
        assert await until(lambda: engine.status().last_bar_ts == rel[LIVE_FROM - 1].ts, 30), \
            "warm-up ends at the last history bar"
        warm = len(closes)
        market.go()

        def settled() -> bool:      # the trade closed, and the other leg's end reported too
            done = engine.store.closed_trades()
            return bool(done) and all(o.status != "open" for t in done
                                      for o in engine.store.orders_for_trade(t.id))

        assert await until(settled, 30), f"no settled trade; state {engine.status()}"
        trades = engine.store.closed_trades()
        orders = [o for t in trades for o in engine.store.orders_for_trade(t.id)]
    finally:
        await engine.stop()
        await engine.source.feed.close()
        await market.close()

    assert sim.count("GET", "klines") >= 4, "warm-up from the exchange's history, paginated"
    live = [e.bar.ts for e in closes[warm:]]
    assert live[:3] == [rel[LIVE_FROM].ts, rel[LIVE_FROM + 1].ts, rel[SIGNAL].ts], "live closes, in order"
    assert closes[warm + 2].decision.signal, "the signal bar signals live"
    assert len(opened) == 1 and len(trades) == 1
    t = trades[0]
    assert t.mode == "testnet" and t.exit_reason == "FIB_61.8"
    assert rel[SIGNAL + 1].ts <= t.entry_ts < rel[SIGNAL + 2].ts, "entered at the next bar's open"
    # the entry bar's high crosses the target: resting at the exchange, it fills in that very bar
    # (the backtest checks exits from the next bar on and exits one bar later, at the same price)
    assert rel[SIGNAL + 1].high >= t.target_price
    assert t.entry_ts < t.exit_ts < rel[SIGNAL + 2].ts
    assert abs(t.entry_reference - rel[SIGNAL + 1].open) < 0.01
    # exactly one entry order and one OCO list at the exchange
    assert sim.count("POST", "order") == 1 and sim.count("POST", "orderList/oco") == 1
    entry = sim.orders[1]
    assert entry.type == "MARKET" and entry.status == "FILLED" and entry.client_id.startswith("ta-E")
    assert abs(t.entry_price - float(entry.quote_qty / entry.executed)) < 1e-6
    assert abs(t.amount - float(entry.executed) * 0.999) < 1e-9, "net of the commission in BTC"
    target = next(o for o in sim.orders.values() if o.type == "LIMIT_MAKER")
    stop = next(o for o in sim.orders.values() if o.type.startswith("STOP_LOSS"))
    assert target.status == "FILLED" and stop.status == "EXPIRED"
    net = entry.executed - entry.executed * sim.fee_rate          # what the buy left, fee in BTC
    assert target.executed == net - net % sim.m.step, "the whole position, down to the amount step"
    assert abs(t.exit_price - float(target.price)) < 1e-9
    fills = [x for x in sim.my_trades if x["orderId"] == target.order_id]
    assert abs(t.exit_fee - sum(float(x["commission"]) for x in fills)) < 1e-9 and t.exit_fee > 0
    assert abs(t.entry_fee - float(entry.executed) * 0.001 * t.entry_price) < 0.01 and t.entry_fee > 0
    assert t.pnl is not None and t.pnl > 0
    assert {o.purpose for o in orders} >= {"entry", "exit"}
    assert {o.status for o in orders if o.purpose == "exit"} == {"filled", "canceled"}
    assert sim.balance("BTC") == (float(net % sim.m.step), 0.0), "only dust below one step is left"
    assert sim.balance("USDT")[1] == 0, "nothing left locked"
