"""The streamed order book (data/book_stream.py over ccxt watch_order_book, the simulator's
diff-depth stream) and the exchange venue's slippage check on it, through the real ccxt client:

- the streamed book is the exchange's book, kept by update id from one snapshot;
- an entry's slippage check walks the streamed book: a normal entry passes and one that would
  slip beyond the tolerance is skipped, with no depth request at the entry (requests counted at
  the simulator);
- a lost or silent stream: the entry reads the book over REST and the log says so; the stream
  comes back by itself;
- a sequence gap: the book is resynchronised from a new snapshot.
"""
from __future__ import annotations

import asyncio
import logging
from decimal import Decimal

import pytest

from agent.exchange_venue import BOOK_MAX_AGE_S, ExchangeVenue
from data.book_stream import BookStream
from tests.exchange_sim.test_exchange_entry import entry_signal
from tests.exchange_sim.test_exchange_venue import client  # noqa: F401 (a fixture)
from tests.exchange_sim.test_reconcile import ENTRY, FIRST_SIGNAL, config, new_engine, until

SYM = "BTC/USDT"


def levels(sim, side: str, n: int = 5) -> list[list[float]]:
    return [[float(p), float(q)] for p, q in sim._levels(side)[:n]]


def matches_exchange(stream: BookStream, sim) -> bool:
    book = stream.book()
    return (book is not None and [list(x[:2]) for x in book["asks"][:5]] == levels(sim, "ask")
            and [list(x[:2]) for x in book["bids"][:5]] == levels(sim, "bid"))


@pytest.fixture
async def stream(client):  # noqa: F811
    s = BookStream(client.ex, SYM, limit=100, max_age_s=BOOK_MAX_AGE_S, backoff_s=0.05, backoff_max_s=0.2)
    s.start()
    try:
        yield s
    finally:
        await s.close()


@pytest.fixture
async def venue(client):  # noqa: F811
    v = ExchangeVenue(client, SYM, mode="testnet", poll_interval_s=0.05, owns_client=False)
    await v.market_rules()                 # the venue's first use starts the book stream
    assert v.book_stream is not None
    v.book_stream.backoff_s, v.book_stream.backoff_max_s = 0.05, 0.2
    try:
        yield v
    finally:
        await v.close()


# ----- the stream itself ---------------------------------------------------------------------
async def test_the_streamed_book_follows_the_exchanges_book_from_one_snapshot(sim, stream):
    await until(lambda: stream.book() is not None, "the book live")
    for price in (30_010.0, 30_020.5, 29_990.0, 29_990.37):
        sim.set_price(price)
        await until(lambda: matches_exchange(stream, sim), f"the book at {price}")
    assert sim.count("GET", "depth") == 1, "one snapshot, then only the stream"
    assert stream.resyncs == 0 and stream.subscriptions == 1


async def test_a_sequence_gap_is_resynchronised_from_a_new_snapshot(sim, stream, caplog):
    caplog.set_level(logging.WARNING)
    await until(lambda: stream.book() is not None, "the book live")
    sim.skip_depth_updates = 1                 # the next event is lost: its update ids never arrive
    sim.set_price(30_050.0)
    await asyncio.sleep(0.25)
    sim.set_price(30_060.0)
    await until(lambda: stream.resyncs == 1, "the gap noticed")
    await until(lambda: matches_exchange(stream, sim), "the book back in step")
    assert sim.count("GET", "depth") == 2, "a new snapshot after the gap"
    assert any("sequence gap" in r.getMessage() and "not used until it is back" in r.getMessage() for r in caplog.records)


async def test_a_gap_soon_after_another_backs_off_before_resynchronising(sim, stream):
    await until(lambda: stream.book() is not None, "the book live")
    for price in (30_050.0, 30_070.0):
        sim.skip_depth_updates = 1
        sim.set_price(price)
        await asyncio.sleep(0.25)
        sim.set_price(price + 5)
        await until(lambda: stream.resyncs == (1 if price == 30_050.0 else 2), "the gap noticed")
        await until(lambda: matches_exchange(stream, sim), "the book back in step")
    assert stream.failures == 1, "the second gap went through the backoff, the first did not"


async def test_a_stream_silent_for_the_stall_time_is_cut_and_resubscribed(sim, stream):
    stream.stall_s = 0.5
    await until(lambda: stream.book() is not None, "the book live")
    sim.mute_depth = True                      # the connection stays up, nothing comes
    await until(lambda: sim.count("GET", "depth") >= 2, "a new subscription and snapshot", 10)
    assert stream.failures >= 1
    sim.mute_depth = False
    sim.set_price(30_300.0)
    await until(lambda: matches_exchange(stream, sim), "the book back in step", 10)


# ----- the venue's slippage check on it -------------------------------------------------------
async def test_stream_lost_the_entry_reads_the_book_over_rest_until_it_is_back(sim, venue, caplog):
    caplog.set_level(logging.INFO)
    stream = venue.book_stream
    await until(lambda: stream.book() is not None, "the book live")
    before = sim.count("GET", "depth")
    assert (await venue.quote_buy(0.5)).best_ask == 30_000.01
    assert sim.count("GET", "depth") == before and venue.book_rest_reads == 0

    sim.refuse_sockets = 1_000
    sim.drop_depth_streams()
    await until(lambda: stream.book() is None, "the stream seen lost")
    quote = await venue.quote_buy(0.5)
    assert quote.best_ask == 30_000.01 and quote.fillable == 0.5
    assert sim.count("GET", "depth") == before + 1 and venue.book_rest_reads == 1
    assert any("not used for this entry" in r.getMessage() and "reading the book over REST" in r.getMessage()
               for r in caplog.records)

    sim.refuse_sockets = 0
    sim.set_price(30_100.0)
    await until(lambda: matches_exchange(stream, sim), "the stream back", 10)
    back = sim.count("GET", "depth")                      # its new snapshot
    assert (await venue.quote_buy(0.5)).best_ask == 30_100.01
    assert sim.count("GET", "depth") == back and venue.book_rest_reads == 1


async def test_a_silent_stream_is_stale_after_the_max_age_and_rest_is_read(sim, venue):
    stream = venue.book_stream
    await until(lambda: stream.book() is not None, "the book live")
    sim.mute_depth = True                      # the connection stays up, nothing comes
    sim.set_price(30_200.0)
    await until(lambda: stream.book() is None, f"the book stale after {BOOK_MAX_AGE_S} s", 5)
    before = sim.count("GET", "depth")
    quote = await venue.quote_buy(0.5)
    assert quote.best_ask == 30_200.01, "REST has the price the silent stream missed"
    assert sim.count("GET", "depth") == before + 1
    assert "no update for" in stream.why_not()


async def test_a_size_the_streamed_levels_cannot_fill_is_read_deeper_over_rest(sim, venue):
    stream = venue.book_stream
    await until(lambda: stream.book() is not None, "the book live")
    before = sim.count("GET", "depth")
    quote = await venue.quote_buy(25.0)        # 20 levels of 1 BTC
    assert quote.fillable == 20.0 and quote.refusal(1.0).startswith("order book too thin")
    assert sim.count("GET", "depth") == before + 1


# ----- the engine's entries ---------------------------------------------------------------------
async def live_engine(sim, tmp_path, **kw):
    """The real engine with its venue's book stream live before the signal; the simulator's
    book breathes every 100 ms, as a busy market's does, so the stream stays fresh."""
    sim.book_churn = True
    engine, market = new_engine(sim, tmp_path, FIRST_SIGNAL - 10, **kw)
    await engine.venue.market_rules()
    await until(lambda: engine.venue.book_stream.book() is not None, "the book live")
    return engine, market


async def test_an_entry_walks_the_streamed_book_and_no_depth_request_is_made(sim, tmp_path):
    sim.level_qty, sim.level_gap_ticks = Decimal("0.005"), 2000          # ~0.25 % for the size: under 0.5 %
    engine, _ = await live_engine(sim, tmp_path, cfg=config(slippage_tolerance_percent=0.5),
                                  hold_after_open=ENTRY)
    await until(lambda: matches_exchange(engine.venue.book_stream, sim), "the thin book streamed")
    depth_before = sim.count("GET", "depth")
    await engine.start()
    await until(lambda: engine.store.open_trade() is not None, "the position")
    rest_reads = engine.venue.book_rest_reads
    await engine.stop()
    assert sim.count("POST", "order") >= 1
    assert sim.count("GET", "depth") == depth_before and rest_reads == 0, "the check cost no REST read"


async def test_an_entry_beyond_tolerance_on_the_streamed_book_is_skipped_with_a_warning(sim, tmp_path, caplog):
    sim.level_qty, sim.level_gap_ticks = Decimal("0.005"), 2000          # $20 between levels of 0.005 BTC
    caplog.set_level(logging.WARNING)
    engine, _ = await live_engine(sim, tmp_path, cfg=config(slippage_tolerance_percent=0.1), stop_at=ENTRY + 2)
    await until(lambda: matches_exchange(engine.venue.book_stream, sim), "the thin book streamed")
    depth_before = sim.count("GET", "depth")
    await engine.start()
    await asyncio.wait_for(engine.wait_finished(), 30)
    signals = entry_signal(engine)
    rest_reads = engine.venue.book_rest_reads
    await engine.stop()
    assert sim.count("POST", "order") == 0
    assert sim.count("GET", "depth") == depth_before and rest_reads == 0, "the check cost no REST read"
    assert [s.action for s in signals] == ["SKIPPED"]
    assert signals[0].reason.startswith("slippage check: estimated slippage"), signals[0].reason
    assert any(r.levelno == logging.WARNING and "not traded" in r.getMessage() and "slippage" in r.getMessage()
               for r in caplog.records)
