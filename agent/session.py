"""The composition root: the one place that chooses a session's feed, venue and clock and
wires them to an engine. The engine never imports any of them (an import-linter contract says
so): replay + paper venue today; live feed + paper venue and live feed + exchange venue plug in
here.
"""
from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from agent.clock import Clock, ReplayClock, WallClock
from agent.config import AgentConfig
from agent.engine import Engine, MarketSource
from agent.paper_venue import PaperVenue
from agent.strategy import StrategyParams
from data import market as mk
from data.candle_cache import CANDLE_CACHE_FILE, CandleCache
from data.feed_health import FeedClock
from data.live_feed import LiveFeed
from data.replay_feed import ReplayData, ReplayFeed, load_replay
from persistence.paths import DataDir

if TYPE_CHECKING:     # ccxt is imported only by live sessions
    from data.book_stream import BookStream
    from data.exchange import ExchangeClient

log = logging.getLogger(__name__)

PAPER_VENUE_FILE = "paper_venue.db"


class Feed(Protocol):
    def stream(self, resume_after_ts: int | None = None) -> AsyncIterator[mk.MarketEvent]: ...


class PaperRoutedSource:
    """Market events from a feed, shown to the paper venue first: its resting orders fill on a
    price before the engine sees that price, as they would at an exchange."""

    def __init__(self, feed: Feed, venue: PaperVenue, book: BookStream | None = None) -> None:
        self.feed = feed
        self.venue = venue
        self.book = book                          # live: the order book market orders walk
        self._direct = isinstance(feed, ReplayFeed)
        if self._direct:                          # shows the venue each event itself: one layer less
            feed.observer = venue.on_market

    def events(self, resume_after_ts: int | None) -> AsyncIterator[mk.MarketEvent]:
        if self._direct:
            return self.feed.stream(resume_after_ts)
        return self._routed(resume_after_ts)

    async def _routed(self, resume_after_ts: int | None) -> AsyncIterator[mk.MarketEvent]:
        if self.book is not None:
            self.venue.book_stream = self.book
            self.book.start()
        async for event in self.feed.stream(resume_after_ts):
            self.venue.on_market(event)
            yield event

    async def close(self) -> None:
        if self.book is not None:
            if self.venue.book_stream is self.book:
                self.venue.book_stream = None
            await self.book.close()
        await _close_feed(self.feed)


async def _close_feed(feed: object) -> None:
    closer = getattr(feed, "close", None)          # a live feed holds a connection and a cache
    if closer is not None:
        await closer()


def paper_venue(config: AgentConfig, data_dir: Path) -> PaperVenue:
    ex, bp = config.exchange, config.backtest_params
    return PaperVenue(bp.fee_bp, bp.slippage_bp, base=ex.base_currency, quote=ex.quote_currency,
                      initial_quote=ex.paper_initial_balance,
                      path=DataDir(Path(data_dir)).root / PAPER_VENUE_FILE)


def replay_session(config: AgentConfig, data_dir: Path, csv_path: Path, speed: float | None,
                   loaded: ReplayData | None = None) -> Engine:
    """Bars from a CSV on a simulated clock, orders on the paper venue: the replay and the demo.
    `loaded`: the file already read for the config's timeframe (the CLI checks it before it
    touches the data folder), so it is not read twice."""
    csv_path = Path(csv_path)

    def make_feed(cfg: AgentConfig) -> ReplayFeed:
        nonlocal loaded
        data = loaded if loaded is not None and cfg is config else load_replay(csv_path, cfg.timeframe_minutes)
        loaded = None
        return ReplayFeed(data.bars, speed,
                          source_name=csv_path.name, timeframe_ms=cfg.timeframe_minutes * 60_000)

    Path(data_dir).mkdir(parents=True, exist_ok=True)
    feed = make_feed(config)
    venue = paper_venue(config, data_dir)

    def make_source(cfg: AgentConfig) -> PaperRoutedSource:
        new_feed = make_feed(cfg)
        new_feed.speed = engine.pacer.speed if engine.pacer else speed
        engine.pacer = new_feed
        return PaperRoutedSource(new_feed, venue)

    try:
        engine = Engine(config, data_dir=data_dir, source=PaperRoutedSource(feed, venue), venue=venue,
                        clock=ReplayClock(), source_factory=make_source, pacer=feed)
    except Exception:
        venue.close_now()
        raise
    return engine


def live_feed(config: AgentConfig, data_dir: Path, exchange: Any, *,
              clock: FeedClock | None = None, balance=None, **options: Any) -> LiveFeed:
    """A LiveFeed for the config's pair and timeframe on a ccxt.pro instance, warmed up with the
    strategy's own warm-up length (STRATEGY.md's EMA-memory rule), candles cached in the data
    folder's candles.db. `options` go to LiveFeed (tests shorten backoffs and the like)."""
    feed_cfg = config.data_feed
    cache = CandleCache(DataDir(Path(data_dir)).root / CANDLE_CACHE_FILE,
                        exchange=str(getattr(exchange, "id", "") or config.exchange.exchange_name))
    return LiveFeed(exchange, config.exchange.trading_pair, config.timeframe_minutes,
                    warmup_bars=StrategyParams.from_config(config).warmup_bars(), cache=cache,
                    use_websocket=feed_cfg.use_websocket,
                    rest_interval_s=feed_cfg.rest_api_interval_seconds,
                    max_missing_bars=feed_cfg.max_missing_bars, validate=feed_cfg.validate_ohlcv,
                    clock=clock, balance=balance, **options)


def book_stream(exchange: Any, symbol: str) -> BookStream | None:
    """The streamed order book paper market orders walk on live prices (None: the exchange
    streams none, and they fill at the last price with the slippage model, said once here)."""
    if not (getattr(exchange, "has", {}) or {}).get("watchOrderBook"):
        log.info("%s: the exchange streams no order book: paper market orders fill at the last "
                 "price with the configured slippage", symbol)
        return None
    from data.book_stream import BookStream      # imports ccxt: a replay never does
    return BookStream(exchange, symbol)


def live_paper_session(config: AgentConfig, data_dir: Path, exchange: Any, *,
                       feed_clock: FeedClock | None = None, engine_clock: Clock | None = None,
                       **feed_options: Any) -> Engine:
    """Live candles and prices from an exchange (a ccxt.pro instance the caller made and
    closes), orders on the paper venue, which fills resting orders on the live prices.

    The engine closes the feed (the exchange connection and the candle cache) when it stops.
    """
    Path(data_dir).mkdir(parents=True, exist_ok=True)
    venue = paper_venue(config, data_dir)

    def make_source(cfg: AgentConfig) -> PaperRoutedSource:
        return PaperRoutedSource(live_feed(cfg, data_dir, exchange, clock=feed_clock,
                                           balance=venue.balances, **feed_options), venue,
                                 book_stream(exchange, cfg.exchange.trading_pair))

    try:
        source = make_source(config)
        return Engine(config, data_dir=data_dir, source=source, venue=venue,
                      clock=engine_clock or WallClock(), source_factory=make_source)
    except Exception:
        venue.close_now()
        raise


def exchange_client(config: AgentConfig, *, api_key: str | None, secret: str | None,
                    password: str | None = None, exchange_url: str | None = None,
                    timeout_ms: int = 10_000) -> ExchangeClient:
    """The one ccxt.pro instance of the configured exchange (share it between feed and venue).
    Credentials come from the credentials lookup, never from config.json."""
    from data.exchange import ExchangeClient, ExchangeSettings
    ex = config.exchange
    return ExchangeClient(ExchangeSettings(exchange_id=ex.exchange_name, testnet=ex.testnet,
                                           exchange_url=exchange_url, timeout_ms=timeout_ms),
                          api_key=api_key, secret=secret, password=password)


def exchange_session(config: AgentConfig, data_dir: Path, source: MarketSource, client: ExchangeClient, *,
                     clock: Clock | None = None, poll_interval_s: float = 1.0,
                     owns_client: bool = True,
                     source_factory: Callable[[AgentConfig], MarketSource] | None = None) -> Engine:
    """Orders at a real exchange (testnet or live, from config.exchange.testnet), bars from any
    market source (the live feed; a replay or scripted source in tests)."""
    from agent.exchange_venue import ExchangeVenue
    Path(data_dir).mkdir(parents=True, exist_ok=True)
    venue = ExchangeVenue(client, config.exchange.trading_pair,
                          mode="testnet" if config.exchange.testnet else "live",
                          poll_interval_s=poll_interval_s, owns_client=owns_client,
                          order_timeout_s=config.risk_management.order_timeout_seconds)
    return Engine(config, data_dir=data_dir, source=source, venue=venue, clock=clock or WallClock(),
                  source_factory=source_factory)


class ExchangeRoutedSource:
    """The live feed's events for an exchange venue. Before a live bar close reaches the engine
    the venue is asked once about its orders still resting at the exchange, so an exit that
    filled inside the bar is applied before the close is judged (the venue's poller reports it
    anyway, this only orders it). A failed look-up is the poller's to retry: the feed goes on."""

    def __init__(self, feed: Feed, venue: Any = None) -> None:
        self.feed = feed
        self.venue = venue

    async def events(self, resume_after_ts: int | None) -> AsyncIterator[mk.MarketEvent]:
        async for event in self.feed.stream(resume_after_ts):
            if (isinstance(event, mk.BarClosed) and event.live and self.venue is not None
                    and self.venue.watching()):
                try:
                    await self.venue.poll_now()
                except Exception as exc:
                    log.warning("order look-up before the bar close failed: %s", exc)
            yield event

    async def close(self) -> None:
        await _close_feed(self.feed)


def live_exchange_session(config: AgentConfig, data_dir: Path, client: ExchangeClient, *,
                          feed_clock: FeedClock | None = None, engine_clock: Clock | None = None,
                          poll_interval_s: float = 1.0, owns_client: bool = True,
                          **feed_options: Any) -> Engine:
    """Live candles and orders at one exchange (testnet or live): the LiveFeed on the client's
    ccxt.pro instance (shared with the venue), orders through exchange_session's ExchangeVenue.

    The engine closes the feed (candle cache, exchange connection) when it stops."""
    engine: Engine | None = None

    async def balance() -> object:
        assert engine is not None
        return await engine.venue.balances()

    def make_source(cfg: AgentConfig) -> ExchangeRoutedSource:
        feed = live_feed(cfg, data_dir, client.ex, clock=feed_clock, balance=balance, **feed_options)
        return ExchangeRoutedSource(feed, engine.venue if engine is not None else None)

    Path(data_dir).mkdir(parents=True, exist_ok=True)
    source = make_source(config)
    engine = exchange_session(config, data_dir, source, client, clock=engine_clock,
                              poll_interval_s=poll_interval_s, owns_client=owns_client,
                              source_factory=make_source)
    source.venue = engine.venue
    return engine


def market_session(config: AgentConfig, data_dir: Path, mode: str, *, api_key: str | None,
                   secret: str | None, password: str | None = None,
                   exchange_url: str | None = None) -> Engine:
    """The live market of the config's exchange: paper orders on live prices ("paper"), or
    orders at the exchange ("testnet", "live"), one ccxt.pro instance for feed and venue."""
    client = exchange_client(config, api_key=api_key, secret=secret, password=password,
                             exchange_url=exchange_url)
    if mode == "paper":
        return live_paper_session(config, data_dir, client.ex)
    if mode not in ("testnet", "live"):
        raise ValueError(f"unknown trading mode {mode!r}")
    return live_exchange_session(config, data_dir, client, owns_client=False)  # the feed closes it
