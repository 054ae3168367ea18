"""The conductor. It owns the run state machine, takes market events and venue reports in
order, and calls the parts that each do one job: the strategy, the risk manager, execution
(orders and the position state machine), accounting (cash, mark, day), recovery (start-up
lookups) and the store. It imports no feed, no venue implementation and no exchange library:
the session (agent/session.py) chooses those.

Guarantees kept in this module:
- Durable before published (invariant 3): events are staged in an outbox and published only
  after the store has committed the state they describe; state.json is written by the first
  subscriber, so every published state equals state.json at that moment.
- Catch-up market data (not live) only warms the indicators: it never enters, exits, marks the
  position or moves the daily-loss check (invariant 8).
- Commands act at once (invariant 9): Pause, Resume and the halt of an Emergency Stop never wait
  for a lock; an ambiguous order is looked up in the background, never while holding one.
- An emergency stop or a breached daily-loss limit flattens the position and leaves the engine
  HALTED, persisted, across restarts, until the operator clears it (invariant 5).
- Replay and live share this code: only the feed, the venue and the clock differ (invariant 7).
- At an exchange (testnet, live) cash is the exchange's free quote balance: adopted at start-up
  after reconciliation (a change while the agent was down, a deposit or a withdrawal, is logged
  with both figures and moves the day's start equity with it, so it is never taken for a trading
  loss) and read again after fills. Paper cash starts at paper_initial_balance, as before.
"""
from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from agent.accounting import Accounting, Checkpoint, PendingEntry, not_managed
from agent.clock import Clock
from agent.config import AgentConfig, config_warnings, load_config, summarize
from agent.data_folder import check_config_fits_folder
from agent.events import (BalanceChanged, BarClosed, EngineStateChanged, EventBus, OrderChanged,
                          PriceTick, ReplayFinished)
from agent.execution import Execution, Outbox, TradeInvariantBroken, signal_record
from agent.order_manager import OrderManager, OrderUnresolved
from agent.reconcile import reconcile
from agent.recovery import recover_orders
from agent.risk_manager import DayState, RiskLimits, RiskManager
from agent.state_machine import (POSITION_TABLE, RUN_TABLE, IllegalTransition, PositionState,
                                 RunState, StateMachine, Trigger)
from agent.state_mirror import StateMirror
from agent.strategy import Decision, SellerExhaustionStrategy, StrategyParams
from agent.venue import OrderOutcomeUnknown, OrderUpdate, Venue
from data import market as mk
from data.bar import Bar, iso_utc
from persistence.paths import DataDir, DataDirLock
from persistence.records import OrderRecord, TradeRecord
from persistence.state_file import StateFileCorrupt, read_state
from persistence.store import Store, StoreError
from monitoring.redaction import redact, redact_optional

log = logging.getLogger(__name__)

HISTORY_BARS = 50_000          # closed bars kept in memory for the chart
SNAPSHOT_EVERY_MS = 60_000     # balance snapshot cadence of the engine clock (once per bar in replay)
COMMIT_EVERY_S = 0.05          # plain bar progress is grouped into one commit per 50 ms of work;
                               # live bars are minutes apart, so there every bar is its own commit


class EngineBusy(Exception):
    """A command that cannot be carried out in the engine's present state (the message says why)."""


class MarketSource(Protocol):
    """Market events for the engine, catch-up first (not live), ending with FeedEnded."""

    def events(self, resume_after_ts: int | None) -> AsyncIterator[mk.MarketEvent]: ...


class Pacer(Protocol):
    """A replay's clock controls; live sessions have none."""

    speed: float | None
    position: int
    total: int
    paused: bool

    def set_paused(self, paused: bool) -> None: ...

    def step(self) -> None: ...


@dataclass(frozen=True, slots=True)
class EngineStatus:
    run_state: str
    position_state: str
    halt_reason: str | None
    mode: str
    pair: str
    timeframe: str
    balance: float
    equity: float
    day_pnl: float
    unrealized_pnl: float
    last_price: float | None
    last_bar_ts: int | None
    open_trade: TradeRecord | None
    feed_state: str
    exchange_state: str
    latency_ms: float | None
    last_update_ts: int | None


class Engine:
    def __init__(self, config: AgentConfig, *, data_dir: Path, source: MarketSource, venue: Venue,
                 clock: Clock, source_factory: Callable[[AgentConfig], MarketSource] | None = None,
                 pacer: Pacer | None = None) -> None:
        self.config = config
        self.source = source
        self.venue = venue
        self.clock = clock
        self.pacer = pacer
        self._source_factory = source_factory
        self.paths = DataDir(Path(data_dir))
        self.data_dir = self.paths.root
        self._lock_file = DataDirLock(self.data_dir)
        self._lock_file.acquire()                  # raises DataDirBusy: one engine per data folder
        try:
            self.store = Store(self.paths.db)
        except Exception:
            self._lock_file.release()
            raise
        self.bus = EventBus()
        self.mirror = StateMirror(self.paths.state, self._state_document)
        self._run = StateMachine("run state", RUN_TABLE, RunState.STOPPED)
        self._pos = StateMachine("position state", POSITION_TABLE, PositionState.INITIALIZING)
        self._lock = asyncio.Lock()                # market steps and order flows, one at a time
        self._outbox: list = []                    # events waiting for the commit they describe
        self._state_changed = False
        self._state_reason: str | None = None
        self._booted = False
        self._apply_config(config)
        self.acct = Accounting(config.exchange.paper_initial_balance)
        self.orders = OrderManager(self.store, venue, clock, commit=self._commit_quietly,
                                   deliver=self._deliver, on_unresolved=self._unresolved)
        self.ex = Execution(config, self.store, self.orders, self.acct, self._pos,
                            Outbox(lambda e: self._outbox.append(e), self._changed, self._flush),
                            clock.now_ms, venue.mode)
        venue.on_update(self._deliver)
        self.halt_reason: str | None = None
        self.risk: RiskManager | None = None
        self._feed_task: asyncio.Task | None = None
        self._finished = asyncio.Event()
        self._feed_state = "stopped"
        self._feed_status: mk.FeedStatus | None = None  # a live feed's last report
        self._history: deque[Decision] = deque(maxlen=HISTORY_BARS)
        self._updates: deque[OrderUpdate] = deque()    # venue reports not applied yet
        self._deferred: list[OrderUpdate] = []         # recovered fills, applied at their time
        self._drain_scheduled = False
        self._durable_bar_ts: int | None = None        # last bar whose work is complete
        self._last_seen_ts: int | None = None          # last bar fed to the strategy
        self._bars_this_run = 0
        self._last_commit = time.monotonic()
        self._live_seen = False
        self._last_balance: tuple[float, float, float, float] | None = None   # last BalanceChanged
        self._at_exchange = venue.mode != "paper"
        self._fills_synced = 0                         # acct.fills when cash was last read

    def _apply_config(self, config: AgentConfig) -> None:
        self.config = config
        self.params = StrategyParams.from_config(config)
        self.strategy = SellerExhaustionStrategy(self.params)
        self._tf_ms = config.timeframe_minutes * 60_000

    # ----- read side --------------------------------------------------------------------------
    @property
    def run_state(self) -> str:
        return self._run.state.value

    @property
    def position_state(self) -> str:
        return self._pos.state.value

    @property
    def _trade(self) -> TradeRecord | None:
        return self.acct.trade

    def history(self) -> list[Decision]:
        return list(self._history)

    @property
    def is_replay(self) -> bool:
        return self.pacer is not None

    @property
    def replay_speed(self) -> float | None:
        """Bars per second of a replay (None: as fast as possible)."""
        return self._pacer().speed

    def set_replay_speed(self, speed: float | None) -> None:
        """Change a running replay's pace; the simulated clock makes the outcome identical."""
        self._pacer().speed = speed
        log.info("replay speed: %s", "max" if speed is None else f"{speed:g} bars/s")

    def _pacer(self) -> Pacer:
        if self.pacer is None:
            raise EngineBusy("the market data is live: only a replay has a speed")
        return self.pacer

    def status(self) -> EngineStatus:
        a = self.acct
        return EngineStatus(
            run_state=self.run_state, position_state=self.position_state,
            halt_reason=self.halt_reason, mode=self.venue.mode,
            pair=self.config.exchange.trading_pair, timeframe=self.config.timeframe,
            balance=a.balance, equity=a.equity(), day_pnl=a.day_pnl(), unrealized_pnl=a.unrealized(),
            last_price=a.live_price, last_bar_ts=self._last_seen_ts, open_trade=a.trade,
            feed_state=self._feed_state_text(), exchange_state=self.venue.mode,
            latency_ms=self._feed_status.latency_ms if self._feed_status else None,
            last_update_ts=None if self._last_seen_ts is None else self._last_seen_ts + self._tf_ms)

    # ----- commands ---------------------------------------------------------------------------
    async def start(self) -> None:
        """STOPPED -> STARTING -> RUNNING (or HALTED when a halt is on record); starts the feed."""
        async with self._lock:
            self._transition_run(Trigger.START)
            try:
                if not self._booted:
                    await self._boot()
            except Exception as exc:
                log.exception("start-up failed")
                self._transition_run(Trigger.FAIL, reason=f"start-up failed: {exc}")
                self._finished.set()
                return
            if self.halt_reason is not None:
                self._transition_run(Trigger.HALT, reason=self.halt_reason)
                log.error("engine HALTED: %s. Trading stays off until the operator clears the halt.",
                          self.halt_reason)
            else:
                self._transition_run(Trigger.STARTED)
                log.info("started: %s %s on %s", self.config.exchange.trading_pair,
                         self.config.timeframe, self.venue.mode.upper())
            self._start_feed()

    async def pause(self) -> None:
        """No new entries; an open position is still managed by its resting exits. Immediate."""
        self._transition_run(Trigger.PAUSE)
        log.info("paused: no new entries; an open position is still managed")

    async def resume(self) -> None:
        self._transition_run(Trigger.RESUME)
        log.info("resumed: new entries allowed")

    async def emergency_stop(self) -> None:
        """HALT at once (persisted until the operator clears it), then flatten at market: at the
        next live price if there is none yet, or as soon as an entry in flight resolves."""
        log.critical("EMERGENCY STOP requested by the operator")
        self.ex.flatten_reason = "EMERGENCY"
        self._halt_now("emergency stop by the operator")
        async with self._lock:
            self.ex.drop_pending("emergency stop")
            try:
                await self.ex.flatten("EMERGENCY", self.acct.live_price)
            finally:                                  # a failed exit must still stop all trading
                if self._trade is not None and self.ex.resting_exits() == []:
                    self._halt_now("emergency stop by the operator: THE POSITION IS STILL OPEN")
                self._flush(durable=True)

    async def manual_close(self) -> None:
        if self.ex.entry_in_flight():
            raise EngineBusy("an entry order is in flight; close once it has filled")
        if self._trade is None:
            raise EngineBusy("there is no open position to close")
        if self._pos.state is PositionState.EXITING:
            raise EngineBusy("the position is already being closed")
        log.info("manual close requested by the operator")
        async with self._lock:
            if self._trade is None:
                raise EngineBusy("the position closed before the manual close was sent")
            await self.ex.flatten("MANUAL", self.acct.live_price)

    async def clear_halt(self) -> None:
        """HALTED -> STOPPED. The operator has looked at why; Start trades again."""
        if not self._run.can(Trigger.CLEAR):
            raise IllegalTransition(f"run state: there is no halt to clear in state {self.run_state}")
        await self._stop_feed()
        async with self._lock:
            reason, self.halt_reason = self.halt_reason, None
            self.ex.flatten_reason = None
            self._transition_run(Trigger.CLEAR)      # commits, writes state.json, publishes
            log.info("halt cleared by the operator (was: %s)", reason)

    async def stop_trading(self) -> None:
        """Graceful Stop: no new entries and no more market data; an open position keeps its
        exits resting at the venue (on paper it resumes with the next Start)."""
        if not self._run.can(Trigger.STOP):
            raise EngineBusy(f"nothing to stop: the engine is {self.run_state}")
        await self._stop_feed()
        async with self._lock:
            self.ex.drop_pending("engine stopped")
            self._transition_run(Trigger.STOP)
            log.info("stopped by the operator%s", "; the open position keeps its resting exits"
                     if self._trade is not None else "")

    async def import_config(self, path: str | Path) -> tuple[list[str], list[str]]:
        """Validate and adopt a config.json from the backtest app. Refused while the engine runs
        or a position is open; a rejected file changes nothing."""
        if self.run_state in (RunState.RUNNING, RunState.PAUSED, RunState.STARTING):
            raise EngineBusy(f"stop the engine before importing a config (it is {self.run_state})")
        if self._trade is not None:
            raise EngineBusy("close the open position before importing a config")
        cfg = load_config(path)
        check_config_fits_folder(self.store, cfg, self.venue.mode)   # one pair/timeframe/mode per folder
        await self._stop_feed()                     # a halted engine still follows the market
        async with self._lock:
            changed_market = (cfg.timeframe != self.config.timeframe
                              or cfg.exchange.trading_pair != self.config.exchange.trading_pair)
            self._apply_config(cfg)
            self.ex.config = cfg
            if changed_market and self._source_factory is not None:
                self.source = self._source_factory(cfg)
                self._history.clear()
                self._last_seen_ts = None
            else:
                for decision in self._history:     # re-warm the new parameters on what we have
                    self.strategy.update(decision.bar)
            self.risk = None                        # rebuilt with the new limits on the next start
            self._booted = False
            self.ex.pending = None
            self._save_config_copy(path)
        log.info("imported config %s: %s %s, %s", path, cfg.exchange.trading_pair, cfg.timeframe, cfg.mode)
        return summarize(cfg), config_warnings(cfg)

    async def stop(self) -> None:
        """Shutdown: stop the feed, commit, write state.json, close the store. Resting exits stay
        at the venue."""
        await self._stop_feed()
        await self.orders.close()
        async with self._lock:
            if self._run.can(Trigger.STOP):
                self._transition_run(Trigger.STOP)
            self._flush(durable=True, force_state=True)
            self.store.close()
            await self.venue.close()
            await self._close_source()
            self._lock_file.release()
        self._finished.set()
        log.info("engine stopped")

    async def _close_source(self) -> None:
        """A live source holds an exchange connection and a candle cache: closed with the engine."""
        closer = getattr(self.source, "close", None)
        if closer is None:
            return
        try:
            await closer()
        except Exception:
            log.exception("closing the market data source failed")

    async def settle(self) -> None:
        """Return once the market step or order flow in progress (if any) has finished: a
        graceful shutdown lets an order step complete instead of cancelling it midway."""
        async with self._lock:
            pass

    async def wait_finished(self) -> None:
        await self._finished.wait()

    # ----- start-up ---------------------------------------------------------------------------
    async def _boot(self) -> None:
        try:
            read_state(self.paths.state)
        except StateFileCorrupt as exc:
            log.error("%s", exc)
            self.halt_reason = (f"state.json was unreadable and has been set aside ({exc}); "
                                "review it, then clear the halt")
        rules = await self.venue.market_rules()
        self.ex.rules = rules
        bp = self.config.backtest_params
        self.risk = RiskManager(RiskLimits.from_config(self.config), rules, bp.fee_bp, bp.slippage_bp)
        cp = Checkpoint.load(self.store)
        self.halt_reason = cp.halt_reason or self.halt_reason
        if cp.balance is not None:
            self.acct.balance = cp.balance
        self._durable_bar_ts = cp.last_bar_ts
        self.acct.day = cp.day
        self.ex.pending = cp.pending
        last_snapshot = self.store.last_snapshot()
        self.acct.last_snapshot_ts = last_snapshot.ts if last_snapshot else None
        self.acct.last_mark = last_snapshot.price if last_snapshot else None
        self.acct.finish()
        self.acct.trade = self.store.open_trade()
        if self.acct.trade is not None and self.acct.trade.id is not None:
            self.acct.restore_exits([o for o in self.store.orders_for_trade(self.acct.trade.id)
                                     if o.purpose == "exit"])
        self._pos.force(PositionState.INITIALIZING)
        self._booted = True                           # memory now holds what the store says
        if self._at_exchange:                               # the exchange is the truth: agree or halt
            recovered = await reconcile(self.store, self.orders, self.ex, self.venue, rules,
                                        self.config.exchange.base_currency)
            await self._sync_cash(at_boot=True, first=cp.balance is None)
        else:
            recovered = await recover_orders(self.store, self.orders, self.ex)
            self._deferred = recovered.deferred
        if recovered.halt_reason:
            self.halt_reason = redact(recovered.halt_reason)
        if self._pos.state is PositionState.INITIALIZING:
            self._pos.transition(Trigger.CONNECTED)
        if self._trade is not None:
            log.warning("restored open position: trade %s, %.8g %s @ %.8g", self._trade.id,
                        self._trade.amount, self.config.exchange.base_currency, self._trade.entry_price)
            if not self._at_exchange and not self.ex.resting_exits() and not self._deferred:
                log.warning("trade %s had no exits resting at the venue: placing them", self._trade.id)
                await self.ex.protect()
        self._flush(durable=True)
        if self._durable_bar_ts is not None:
            log.info("resuming after bar %s", iso_utc(self._durable_bar_ts))

    # ----- the market loop --------------------------------------------------------------------
    def _start_feed(self) -> None:
        if self._feed_task is not None and not self._feed_task.done():
            return
        self._finished.clear()
        self._feed_task = asyncio.get_running_loop().create_task(self._consume(), name="engine-feed")
        self._feed_task.add_done_callback(self._feed_done)

    async def _stop_feed(self) -> None:
        task, self._feed_task = self._feed_task, None
        if task is not None and not task.done():
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass
        if self._feed_state in ("live", "catching up"):
            self._feed_state = "stopped"

    def _feed_done(self, task: asyncio.Task) -> None:
        if task.cancelled():
            return
        exc = task.exception()
        if exc is None:
            return
        log.critical("%s died: %s", task.get_name(), exc, exc_info=exc)
        try:
            if self._run.can(Trigger.FAIL):
                self._transition_run(Trigger.FAIL, reason=f"{task.get_name()} died: {exc}")
        except Exception:
            log.exception("could not record the failure")
        finally:
            self._finished.set()

    async def _consume(self) -> None:
        self._feed_state = "catching up"
        lock, feed_ended, bar_closed, feed_status = self._lock, mk.FeedEnded, mk.BarClosed, mk.FeedStatus
        on_market = self._on_market
        async for event in self.source.events(self._durable_bar_ts):
            kind = type(event)
            if kind is feed_status:
                self._on_feed_status(event)
                continue
            if kind is feed_ended:
                await self._feed_ended(event)
                return
            if not event.live:
                # Catch-up: indicators only. Nothing durable, nothing a command shares, no await:
                # no lock and no commit, so a restart reaches the live part at full speed.
                if kind is bar_closed:
                    self._warm(event.bar)
                continue
            # `async with lock`, without its two extra coroutine frames (twice per bar)
            await lock.acquire()
            try:
                await on_market(event)
            except (IllegalTransition, OrderUnresolved, TradeInvariantBroken) as exc:
                log.critical("%s", exc)
                self._halt_now(f"internal safety stop: {exc}")
            finally:
                lock.release()
        await self._feed_ended(mk.FeedEnded("lost", "the market data stream ended without a word"))

    def _on_feed_status(self, status: mk.FeedStatus) -> None:
        """A live feed's health report: kept for status(), its new health checks counted in the
        ledger (the uptime KPI; the next bar's commit carries them), passed on to subscribers.
        While the data is not whole (a gap the feed could not fill) no new entry is taken."""
        prev = self._feed_status
        seen, seen_up = (0, 0) if prev is None or prev.checks > status.checks else (prev.checks, prev.checks_up)
        self._feed_status = status
        if status.checks > seen and not self.store.closed:
            try:
                self.store.add_link_checks(status.ts, status.checks - seen, status.checks_up - seen_up)
            except StoreError as exc:                 # monitoring only: never stops the feed
                log.error("could not count the feed's health checks: %s", exc)
        self.bus.publish(status)  # type: ignore[arg-type]   # monitoring, not trading state

    def _feed_state_text(self) -> str:
        fs = self._feed_status
        if fs is None or fs.state == "ok" or self._feed_state not in ("live", "catching up"):
            return self._feed_state
        return f"{fs.state} ({fs.transport})"

    def _data_gap(self) -> str | None:
        fs = self._feed_status
        if fs is None or fs.data_whole:
            return None
        gaps = [p for p in fs.problems if p.startswith("data gap")]
        return "market data incomplete" + (f" ({gaps[0]})" if gaps else "") + \
            ": entries paused until it is whole"

    async def _feed_ended(self, event: mk.FeedEnded) -> None:
        async with self._lock:
            self._flush(durable=True, force_state=True)
        if event.reason == "finished":
            self._feed_state = "finished"
            log.info("replay finished: %d bars processed in this run (%s)", self._bars_this_run, event.detail)
            self.bus.publish(ReplayFinished(self._bars_this_run))
        else:
            self._feed_state = "lost"
            log.error("market data lost: %s; the position keeps its exits resting at the venue",
                      event.detail)
            if self._run.can(Trigger.FAIL):
                self._transition_run(Trigger.FAIL, reason=f"market data lost: {event.detail}")
        self._finished.set()

    async def _on_market(self, event: mk.MarketEvent) -> None:
        """One live market event (the caller holds the lock)."""
        kind = type(event)
        if kind is mk.BarClosed:
            if self._durable_bar_ts is not None and event.bar.ts <= self._durable_bar_ts:
                self._warm(event.bar)                 # already done before a restart
                return
            self.clock.observe(event.bar.ts)
        else:
            self.clock.observe(event.ts)
        if not self._live_seen:
            self._live_seen = True
            self._feed_state = "live"
            if self._pos.state is PositionState.CONNECTED:
                self.ex.transition(Trigger.WARMED_UP)   # history replayed; decisions count now
                if self.ex.pending is not None:
                    self.ex.transition(Trigger.SIGNAL)  # a signal restored from the store
        if kind is mk.BarOpened:
            await self._on_bar_open(event)
        elif kind is mk.BarClosed:
            if self._updates or self._deferred:
                await self._apply_reports(event.bar.ts)
            await self._on_bar_close(event)
        else:
            if self._updates or self._deferred:
                await self._apply_reports(event.ts)
            self.acct.mark(event.price)
            self._outbox.append(PriceTick(event.ts, event.price))
            await self._check_daily_loss()
        if self._at_exchange and self.acct.fills != self._fills_synced:
            await self._after_fills()
        if self._state_changed or time.monotonic() - self._last_commit >= COMMIT_EVERY_S:
            # A close that leaves an entry for the next price is committed now (the pending
            # entry is durable) and published with the entry's own commit, so state.json's
            # rewrite and the subscribers run after the order is sent, not in front of it.
            self._flush(publish=not (kind is mk.BarClosed and self._pos.state is PositionState.SIGNAL))

    def _warm(self, bar: Bar) -> None:
        """A bar whose effects are already in the store, or history: indicators only."""
        self.clock.observe(bar.ts + self._tf_ms)
        self._history.append(self.strategy.update(bar))
        self._last_seen_ts = bar.ts

    async def _on_bar_open(self, event: mk.BarOpened) -> None:
        if self.acct.roll_day(event.ts):
            log.debug("new UTC day %s: daily counters reset", iso_utc(event.ts))
        t = self._trade
        if t is not None:
            self.ex.held = t.bars_held + (1 if t.entry_ts < event.ts else 0)
        if self._updates or self._deferred:
            await self._apply_reports(event.ts)
        self.acct.live_price = event.price
        p = self.ex.pending
        if p is not None and self._pos.state is PositionState.SIGNAL:
            if self._trade is not None:
                self.ex.drop_pending("a position is already open")
            elif event.ts >= p.bar_ts + 2 * self._tf_ms:
                self.ex.drop_pending("stale: the bar after the signal has passed")
            else:
                await self._enter(p, event.price)

    async def _on_bar_close(self, event: mk.BarClosed) -> None:
        bar, close_ts, a = event.bar, event.close_ts, self.acct
        self.clock.observe(close_ts)
        a.live_price = bar.close
        t = a.trade
        if t is not None:
            bp = self.config.backtest_params
            if self.ex.held is None:                  # a position restored mid-bar
                self.ex.held = t.bars_held + (1 if t.entry_ts < bar.ts else 0)
            if (bp.use_time_exit and self.ex.held >= bp.max_hold
                    and self._pos.state is PositionState.IN_POSITION):
                await self.ex.flatten("TIME", bar.close)
            await self._check_daily_loss()
        while self._updates:                          # reports of those closes belong to this bar
            await self.ex.apply(self._updates.popleft().order)
        # Everything durable for this bar happened above; what follows is redone identically if
        # a crash loses it, which is what makes resuming after the last committed bar exact.
        if a.trade is not None and self.ex.held is not None:
            a.trade.bars_held = self.ex.held
        self.ex.held = None
        decision = self.strategy.update(bar)
        self._history.append(decision)
        self._last_seen_ts = bar.ts
        if decision.signal:
            self._on_signal(decision)
        figures = a.figures()                         # for the snapshot and BalanceChanged
        if a.last_snapshot_ts is None or close_ts - a.last_snapshot_ts >= SNAPSHOT_EVERY_MS:
            self.store.insert_snapshot(a.snapshot(close_ts, figures))
        self._durable_bar_ts = bar.ts
        self._bars_this_run += 1
        out = self._outbox
        out.append(BarClosed(bar, decision))
        out.append(PriceTick(close_ts, bar.close))
        if figures != self._last_balance:             # flat, nothing moves: nothing to say
            self._last_balance = figures
            out.append(BalanceChanged(close_ts, *figures))

    async def _check_daily_loss(self) -> None:
        if (self._trade is None or self.risk is None or self.acct.day is None
                or self._pos.state is not PositionState.IN_POSITION
                or not self.risk.daily_loss_breached(self.acct.day, self.acct.equity())):
            return
        limit = self.risk.limits.max_daily_loss_percent
        log.error("daily loss limit of %s%% reached (equity %.2f, day start %.2f): closing and halting",
                  limit, self.acct.equity(), self.acct.day.start_equity)
        day = iso_utc(self.acct.day.day_start_ms)[:10]
        self.ex.flatten_reason = "DAILY_LOSS_LIMIT"
        self._halt_now(f"daily loss limit of {limit}% reached on {day}")
        await self.ex.flatten("DAILY_LOSS_LIMIT", self.acct.live_price)

    # ----- signals and entries ----------------------------------------------------------------
    def _on_signal(self, d: Decision) -> None:
        skip = self._entry_blocker(d)
        signal = signal_record(d)
        if skip is not None:
            self.ex.record_signal(signal, "SKIPPED", skip)
            return
        self.ex.transition(Trigger.SIGNAL)
        self.ex.pending = PendingEntry(signal, d.risk_stop, d.fib.swing_low if d.fib else None)
        log.info("signal at %s close %.8g: entering at the next price", d.bar.iso, d.bar.close)
        prefetch = getattr(self.venue, "prefetch_book", None)    # a venue with a book to read
        if prefetch is not None:
            prefetch()

    def _entry_blocker(self, d: Decision) -> str | None:
        if self._run.state is not RunState.RUNNING:
            return f"engine {self.run_state.lower()}" + (f": {self.halt_reason}" if self.halt_reason else "")
        if self._trade is not None:
            return "in position"
        if (gap := self._data_gap()) is not None:
            return gap
        if self.ex.pending is not None or self.ex.entry_in_flight():
            return "an entry is already in progress"
        if self.params.use_fib_exits and d.fib is None:
            # PRD rule; the backtest enters anyway. A documented divergence.
            swing = ("no swing high" if math.isnan(d.swing_high)
                     else f"swing high {d.swing_high:.8g} not above the low {d.bar.low:.8g}")
            return f"no Fibonacci levels ({swing}; PRD: skip, the backtest would enter)"
        return None

    async def _enter(self, p: PendingEntry, reference: float) -> None:
        assert self.risk is not None and self.acct.day is not None
        if self._run.state is not RunState.RUNNING:
            self.ex.drop_pending(f"engine {self.run_state.lower()} before the entry")
            return
        if (gap := self._data_gap()) is not None:
            self.ex.drop_pending(gap)
            return
        self.ex.transition(Trigger.CHECK_RISK)
        verdict = self.risk.check(balance=self.acct.balance, equity=self.acct.equity(), entry=reference,
                                  risk_stop=p.risk_stop, signal_close=p.signal.close, open_positions=0,
                                  day=self.acct.day)
        refusal = f"risk check: {verdict.reason}" if not verdict.approved else \
            await self._book_refusal(verdict.amount)
        if refusal is not None:
            self.ex.pending = None
            self.ex.transition(Trigger.REJECTED)
            self.ex.record_signal(p.signal, "SKIPPED", refusal)
            log.warning("signal at %s not traded: %s", iso_utc(p.bar_ts), refusal)
            return
        order = OrderRecord(
            client_order_id=self.orders.new_client_order_id(f"E{p.bar_ts}"), trade_id=None,
            side="buy", type="market", amount=verdict.amount, created_ts=self.clock.now_ms(),
            purpose="entry", expected_price=reference)
        await self.ex.enter(order, p)

    async def _book_refusal(self, amount: float) -> str | None:
        """A venue with an order book is asked what buying `amount` now would cost: beyond
        slippage_tolerance_percent against the best ask, the entry is skipped (exits never are)."""
        quote_buy = getattr(self.venue, "quote_buy", None)
        if quote_buy is None:
            return None
        try:
            quote = await quote_buy(amount)
        except OrderOutcomeUnknown as exc:
            return f"slippage check: {exc}"
        why = quote.refusal(self.config.risk_management.slippage_tolerance_percent)
        return None if why is None else f"slippage check: {why}"

    # ----- venue reports ----------------------------------------------------------------------
    def _deliver(self, update: OrderUpdate) -> None:
        """The venue's (or a background lookup's) report: queued, applied in order under the lock."""
        self._updates.append(update)
        if not self._drain_scheduled and self._booted:
            self._drain_scheduled = True
            task = asyncio.get_running_loop().create_task(self._drain_reports(), name="engine-reports")
            task.add_done_callback(self._feed_done)

    async def _drain_reports(self) -> None:
        async with self._lock:
            self._drain_scheduled = False
            if not (self._updates or self._deferred or
                    (self._at_exchange and self.acct.fills != self._fills_synced)):
                return                                # the market loop applied them first
            try:
                await self._apply_reports(None)
                if self._at_exchange and self.acct.fills != self._fills_synced:
                    await self._after_fills()
            except (IllegalTransition, OrderUnresolved, TradeInvariantBroken) as exc:
                log.critical("%s", exc)
                self._halt_now(f"internal safety stop: {exc}")
            self._flush()

    async def _apply_reports(self, now_ts: int | None) -> None:
        """Recovered fills whose time has come, then the venue's reports in arrival order."""
        while self._deferred and (now_ts is None or self._deferred[0].ts <= now_ts):
            await self.ex.apply(self._deferred.pop(0).order)
        while self._updates:
            await self.ex.apply(self._updates.popleft().order)

    # ----- cash at an exchange -----------------------------------------------------------------
    async def _after_fills(self) -> None:
        """A fill moved cash by its own figures; the exchange's balance is read again (not while
        an entry is working: its quote is locked and its fill not known yet)."""
        if self.ex.entry_in_flight():
            return
        self._fills_synced = self.acct.fills
        await self._sync_cash()

    async def _sync_cash(self, *, at_boot: bool = False, first: bool = False) -> None:
        """Cash = the quote the exchange holds free for the agent. At start-up nothing of ours
        is working that locks quote (reconciliation canceled any entry still working), so quote
        locked in open orders is someone else's and is not counted. After a fill the balance is
        adopted only when the base balance shows every fill of ours applied (the position plus
        what is not the agent's): otherwise a fill not reported yet would be counted twice."""
        sheet_of = getattr(self.venue, "balance_sheet", None)
        try:
            if sheet_of is not None:
                sheet = await sheet_of()
            else:
                sheet = {k: (v, 0.0) for k, v in (await self.venue.balances()).items()}
        except OrderOutcomeUnknown as exc:
            if at_boot:
                raise
            log.warning("cash not read from the exchange (%s): kept at %.8g, read again after the next fill",
                        exc, self.acct.balance)
            return
        ex = self.config.exchange
        quote_free, quote_locked = sheet.get(ex.quote_currency, (0.0, 0.0))
        if not at_boot:
            base = sum(sheet.get(ex.base_currency, (0.0, 0.0)))
            expected = self.acct.position_amount() + not_managed(self.store)
            step = self.risk.rules.amount_step if self.risk is not None else 0.0
            tol = step * (1 + self.store.closed_trade_count()) + 1e-9
            if abs(base - expected) > tol:
                log.info("cash not refreshed: the exchange holds %.8g %s, the agent expects %.8g (a fill "
                         "not reported yet); kept at %.8g %s", base, ex.base_currency, expected,
                         self.acct.balance, ex.quote_currency)
                return
        self._fills_synced = self.acct.fills
        before = self.acct.balance
        diff = quote_free - before
        if quote_locked > 0 and at_boot:
            log.info("%.8g %s locked in open orders that are not the agent's: not counted as cash",
                     quote_locked, ex.quote_currency)
        if first:
            log.info("cash at the exchange: %.8g %s free, adopted (paper_initial_balance %.8g is not used "
                     "at an exchange)", quote_free, ex.quote_currency, before)
        elif abs(diff) > 1e-9:
            loud = at_boot or abs(diff) > max(0.01, 1e-6 * abs(before))
            log.log(logging.INFO if loud else logging.DEBUG,
                    "cash at the exchange: %.8g %s free, the agent's record was %.8g (%+.8g: deposits, "
                    "withdrawals or fees): adopted", quote_free, ex.quote_currency, before, diff)
        if diff == 0:
            return
        self.acct.balance = quote_free
        day = self.acct.day
        if day is not None and not first:          # money moved in or out is not a trading result
            self.acct.day = DayState(day.day_start_ms, day.start_equity + diff, day.trades_opened)
        self._state_changed = True

    def _unresolved(self, order: OrderRecord, why: str) -> None:
        log.critical("%s", why)
        self._halt_now(f"{why}: resolve it on the exchange, then clear the halt")

    # ----- halts, commits, state --------------------------------------------------------------
    def _halt_now(self, reason: str) -> None:
        """Stop all new trading at once, durably; no lock needed (nothing awaits here)."""
        self.halt_reason = reason = redact(reason)   # stored, published, alerted: never a secret
        self.ex.drop_pending("engine halted")
        if self._run.can(Trigger.HALT):
            self._transition_run(Trigger.HALT, reason=reason)
        else:
            self._flush(durable=True)
        log.error("engine HALTED: %s", reason)

    def _transition_run(self, trigger: Trigger, reason: str | None = None) -> None:
        self._run.transition(trigger)
        self._state_reason = redact_optional(reason)
        self._state_changed = True
        self._flush(durable=trigger in (Trigger.HALT, Trigger.CLEAR, Trigger.FAIL))

    def _changed(self) -> None:
        self._state_changed = True

    def _commit_quietly(self, durable: bool = False) -> None:
        """An order row made durable before it is sent: committed with everything before it,
        its events published by the commit that records the venue's answer."""
        self._flush(durable=durable, publish=False)

    def _flush(self, durable: bool = False, force_state: bool = False, publish: bool = True) -> None:
        """Commit, then publish what the commit made true (invariant 3). Every commit records
        the last bar whose work is complete: a restart resumes after it, and any partial work of
        the next bar that rode along is idempotent to redo."""
        if self.store.closed:
            return
        if self._booted:                              # before boot, memory holds defaults only
            Checkpoint(self._durable_bar_ts, self.acct.balance, self.acct.day, self.ex.pending,
                       self.halt_reason).save(self.store)
            if self._trade is not None:
                self.store.update_trade(self._trade)  # bars_held, as of that bar
        self.store.commit(durable=durable)
        self._last_commit = time.monotonic()
        if not publish:
            return
        events, self._outbox = self._outbox, []
        if self._state_changed or force_state:
            self._state_changed = False
            # state.json is rewritten before any event of this commit is heard of, so every
            # event describes what state.json already says.
            self.mirror.write()
            events.insert(0, EngineStateChanged(self.run_state, self.position_state,
                                                self._state_reason or self.halt_reason,
                                                self.clock.now_ms()))
            self._state_reason = None
        self.bus.publish_all(events)

    def _state_document(self) -> dict | None:
        """What state.json mirrors (None until the store has been read); the store stays
        authoritative."""
        if not self._booted:
            return None
        t, a = self._trade, self.acct
        p = self.ex.pending
        return {
            "version": 1,
            "updated_at": iso_utc(self.clock.now_ms()),
            "run_state": self.run_state,
            "position_state": self.position_state,
            "halt_reason": self.halt_reason,
            "mode": self.venue.mode,
            "pair": self.config.exchange.trading_pair,
            "timeframe": self.config.timeframe,
            "balance": a.balance,
            "equity": a.equity(),
            "last_bar": iso_utc(self._durable_bar_ts) if self._durable_bar_ts is not None else None,
            "day": {"date": iso_utc(a.day.day_start_ms)[:10], "start_equity": a.day.start_equity,
                    "trades_opened": a.day.trades_opened} if a.day else None,
            "open_position": None if t is None else {
                "trade_id": t.id, "entry_time": iso_utc(t.entry_ts), "entry_price": t.entry_price,
                "amount": t.amount, "target_price": t.target_price, "stop_price": t.stop_price,
                "tp_price": t.tp_price, "bars_held": t.bars_held},
            "pending_entry_signal": iso_utc(p.bar_ts) if p else None,
        }

    def _save_config_copy(self, source: str | Path) -> None:
        """The imported file becomes the data folder's config.json (the previous one kept as .bak)."""
        target = self.data_dir / "config.json"
        if target.exists():
            target.replace(target.with_suffix(".json.bak"))
        target.write_text(Path(source).read_text(encoding="utf-8"), encoding="utf-8")
