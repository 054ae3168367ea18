"""The real engine on live bars: LiveFeed (fake exchange, virtual clock) + paper venue, built by
the composition root's live_paper_session."""
from __future__ import annotations

import asyncio

from agent.events import PositionOpened
from agent.session import live_paper_session
from agent.strategy import SellerExhaustionStrategy, StrategyParams
from data import market as mk
from data.sample import generate_sample

from .conftest import ACTIVE, make_config
from .fake_exchange import EngineClock, FakeExchange, VirtualClock

M15 = 900_000
SIGNAL_BAR = 3985          # a signal with Fibonacci levels in the synthetic sample (ACTIVE config)


def _signal_after_warm_up(cfg, bars, index):
    params = StrategyParams.from_config(cfg)
    strategy = SellerExhaustionStrategy(params)
    decision = None
    for bar in bars[index - params.warmup_bars():index + 1]:
        decision = strategy.update(bar)
    return decision


async def test_a_live_signal_enters_at_the_next_live_open_on_the_paper_venue(tmp_path):
    cfg = make_config(**ACTIVE)
    bars = generate_sample()
    assert _signal_after_warm_up(cfg, bars, SIGNAL_BAR).signal, "precondition: a signal bar"
    clock = VirtualClock(bars[SIGNAL_BAR].ts + 120_000)         # start inside the signal bar
    ex = FakeExchange(clock, bars)
    engine = live_paper_session(cfg, tmp_path, ex, feed_clock=clock, engine_clock=EngineClock(clock))
    opened: list = []
    statuses: list = []
    engine.bus.subscribe(lambda e: isinstance(e, PositionOpened) and opened.append(e.trade))
    engine.bus.subscribe(lambda e: isinstance(e, mk.FeedStatus) and statuses.append(e))
    await engine.start()
    await clock.advance(100)
    assert engine.status().feed_state == "live" and engine.status().last_price is not None
    warm_last = engine.status().last_bar_ts
    assert warm_last == bars[SIGNAL_BAR - 1].ts, "warm-up ends at the last closed bar"
    await clock.advance(2 * 900)
    resting = await engine.venue.open_orders()
    status = engine.status()
    await engine.stop()
    await engine.source.feed.close()
    assert len(opened) == 1
    trade = opened[0]
    slip = cfg.backtest_params.slippage_bp / 10_000
    assert trade.signal_ts == bars[SIGNAL_BAR].ts and trade.entry_ts == bars[SIGNAL_BAR + 1].ts
    assert trade.entry_price == bars[SIGNAL_BAR + 1].open * (1 + slip)
    assert {o.type for o in resting} == {"limit", "stop"}
    assert status.last_bar_ts == bars[SIGNAL_BAR + 1].ts
    assert status.latency_ms is None or status.latency_ms >= 0
    assert statuses and statuses[-1].state == "ok"
    assert (tmp_path / "candles.db").exists()


async def test_no_entry_while_the_feed_reports_a_gap_it_cannot_fill(tmp_path):
    """REST is down across the signal's close and the socket drops: the signal bar and the
    ones after it reach the strategy only once REST fills the gap, too late to be live."""
    cfg = make_config(**ACTIVE)
    bars = generate_sample()
    clock = VirtualClock(bars[SIGNAL_BAR].ts + 120_000)
    ex = FakeExchange(clock, bars)
    engine = live_paper_session(cfg, tmp_path, ex, feed_clock=clock, engine_clock=EngineClock(clock),
                                backoff_initial_s=1.0, rest_attempts=2)
    paused: list = []
    engine.bus.subscribe(lambda e: isinstance(e, mk.FeedStatus) and not e.data_whole
                         and paused.append(e))
    await engine.start()
    await clock.advance(100)
    ex.ws_drop_at.append(clock.now_ms() + 500)
    ex.ws_down = ex.rest_down = True
    await clock.advance(900)                       # the signal bar closes during the outage
    ex.ws_down = False
    await clock.advance(120)                       # socket back, REST still down: gap held
    assert paused, "the engine heard that the data is not whole"
    assert engine.status().last_bar_ts == bars[SIGNAL_BAR - 1].ts
    ex.rest_down = False
    await clock.advance(900)
    trades = engine.store.closed_trades()
    open_trade = engine.store.open_trade()
    await engine.stop()
    await engine.source.feed.close()
    assert open_trade is None and trades == [], "no entry on a bar recovered after the outage"
    assert engine.status().last_bar_ts >= bars[SIGNAL_BAR].ts


def _session_in_signal_bar(tmp_path):
    """A live paper session on the synthetic sample, started two minutes into the signal bar."""
    bars = generate_sample()
    clock = VirtualClock(bars[SIGNAL_BAR].ts + 120_000)
    ex = FakeExchange(clock, bars)
    engine = live_paper_session(make_config(**ACTIVE), tmp_path, ex, feed_clock=clock,
                                engine_clock=EngineClock(clock))
    return engine, clock, ex, bars


async def test_the_engine_takes_no_entry_while_the_data_is_not_whole(tmp_path):
    engine, clock, _, bars = _session_in_signal_bar(tmp_path)
    await engine.start()
    await clock.advance(100)
    engine.source.feed.health.set_data_whole(False, "scripted: 2 candles REST could not deliver")
    await clock.advance(900)
    assert engine.status().feed_state.startswith("degraded")
    engine.source.feed.health.set_data_whole(True)
    await clock.advance(900)
    signals = engine.store.signals()
    trade = engine.store.open_trade()
    await engine.stop()
    await engine.source.feed.close()
    assert trade is None
    mine = [s for s in signals if s.bar_ts == bars[SIGNAL_BAR].ts]
    assert mine and mine[0].action == "SKIPPED" and "market data incomplete" in mine[0].reason


async def test_the_feeds_health_checks_are_counted_in_the_ledger_for_the_uptime_kpi(tmp_path):
    """Checks every 30 s; a socket outage shows as checks with the link down; the counts are in
    trades.db after the run (status reads them from a stopped agent's folder)."""
    from monitoring.kpis import kpis_from_store
    from persistence.store import Store

    engine, clock, ex, _ = _session_in_signal_bar(tmp_path)
    await engine.start()
    await clock.advance(900)
    ex.ws_drop_at.append(clock.now_ms() + 500)
    ex.ws_down = True
    await clock.advance(300)                       # ten checks without the socket
    ex.ws_down = False
    await clock.advance(1800)
    health = engine.source.feed.health
    checks, up = health.checks, health.checks_up
    await engine.stop()
    await engine.source.feed.close()
    assert checks >= 95 and 0 < checks - up <= 12, (checks, up)
    ledger = Store(tmp_path / "trades.db", read_only=True)
    try:
        uptime = kpis_from_store(ledger).get("uptime")
    finally:
        ledger.close()
    assert uptime.samples == checks and uptime.value == 100.0 * up / checks and uptime.breached
