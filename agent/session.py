"""The composition root: the one place that chooses a session's feed, venue and clock and
wires them to an engine. The engine never imports any of them (an import-linter contract says
so): replay + paper venue today; live feed + paper venue and live feed + exchange venue plug in
here.
"""
from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING
from pathlib import Path

from agent.clock import Clock, ReplayClock, WallClock
from agent.config import AgentConfig
from agent.engine import Engine, MarketSource
from agent.paper_venue import PaperVenue
from data import market as mk
from data.replay_feed import ReplayFeed, load_replay
from persistence.paths import DataDir

if TYPE_CHECKING:     # ccxt is imported only by sessions that trade at an exchange
    from data.exchange import ExchangeClient

PAPER_VENUE_FILE = "paper_venue.db"


class PaperRoutedSource:
    """Market events from a feed, shown to the paper venue first: its resting orders fill on a
    price before the engine sees that price, as they would at an exchange."""

    def __init__(self, feed: ReplayFeed, venue: PaperVenue) -> None:
        self.feed = feed
        self.venue = venue

    async def events(self, resume_after_ts: int | None) -> AsyncIterator[mk.MarketEvent]:
        async for event in self.feed.stream(resume_after_ts):
            self.venue.on_market(event)
            yield event


def paper_venue(config: AgentConfig, data_dir: Path) -> PaperVenue:
    ex, bp = config.exchange, config.backtest_params
    return PaperVenue(bp.fee_bp, bp.slippage_bp, base=ex.base_currency, quote=ex.quote_currency,
                      initial_quote=ex.paper_initial_balance,
                      path=DataDir(Path(data_dir)).root / PAPER_VENUE_FILE)


def replay_session(config: AgentConfig, data_dir: Path, csv_path: Path, speed: float | None) -> Engine:
    """Bars from a CSV on a simulated clock, orders on the paper venue: the replay and the demo."""
    csv_path = Path(csv_path)

    def make_feed(cfg: AgentConfig) -> ReplayFeed:
        return ReplayFeed(load_replay(csv_path, cfg.timeframe_minutes).bars, speed,
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
                     owns_client: bool = True) -> Engine:
    """Orders at a real exchange (testnet or live, from config.exchange.testnet), bars from any
    market source (the live feed; a replay or scripted source in tests)."""
    from agent.exchange_venue import ExchangeVenue
    Path(data_dir).mkdir(parents=True, exist_ok=True)
    venue = ExchangeVenue(client, config.exchange.trading_pair,
                          mode="testnet" if config.exchange.testnet else "live",
                          poll_interval_s=poll_interval_s, owns_client=owns_client)
    return Engine(config, data_dir=data_dir, source=source, venue=venue, clock=clock or WallClock())
