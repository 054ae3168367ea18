"""The conductor. It owns the two state machines and is the only place that decides; the
strategy, risk manager, order manager and store each do one thing and are called from here.

Guarantees kept in this module:
- Every state change is committed to the store (and mirrored to state.json) before the event
  that reports it is published (invariant 3).
- An emergency stop or a breached daily-loss limit flattens the position and leaves the engine
  HALTED, persisted, across restarts, until the operator clears it (invariant 5).
- Pause stops new entries; open positions are still managed.
- Replay and live share this code: only the Feed, the Broker and the Clock differ (invariant 7).
- Resuming with the same data folder continues after the last bar whose work was committed; the
  strategy is re-warmed silently on the bars before it, so a killed replay ends with exactly the
  trades of an uninterrupted one.
"""
from __future__ import annotations

import asyncio
import json
import logging
import math
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Protocol

from agent.broker import Broker, MarketRules
from agent.clock import Clock, ReplayClock, utc_day
from agent.config import AgentConfig, config_warnings, load_config, summarize
from agent.events import (BalanceChanged, BarClosed, EngineStateChanged, EventBus, OrderChanged,
                          PositionClosed, PositionOpened, PriceTick, ReplayFinished, SignalSeen)
from agent.order_manager import OrderManager, OrderUnresolved
from agent.paper_broker import PaperBroker
from agent.risk_manager import DayState, RiskLimits, RiskManager
from agent.state_machine import (POSITION_TABLE, RUN_TABLE, IllegalTransition, PositionState,
                                 RunState, StateMachine)
from agent.strategy import RATIOS, Decision, SellerExhaustionStrategy, StrategyParams
from data.bar import Bar, iso_utc
from data.replay_feed import ReplayFeed
from persistence.paths import DataDir, DataDirLock
from persistence.records import OrderRecord, SignalRecord, SnapshotRecord, TradeRecord
from persistence.state_file import StateFileCorrupt, StateFileError, read_state, write_state
from persistence.store import Store

log = logging.getLogger(__name__)

HISTORY_BARS = 50_000          # closed bars kept in memory for the chart
SNAPSHOT_EVERY_MS = 60_000     # balance snapshot cadence of the engine clock (once per bar in replay)
COMMIT_EVERY_S = 0.05          # bar progress is grouped into one commit per 50 ms of work; live
                               # bars are minutes apart, so there every bar is its own commit


class EngineBusy(Exception):
    """A command that needs a stopped, flat engine was given while running or in a position."""


class Feed(Protocol):
    async def stream(self, start_after_ts: int | None = None) -> AsyncIterator[Bar]: ...


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


@dataclass(slots=True)
class PendingEntry:
    """A signal that passed the bar-close checks and waits for the next price to enter at.
    `signal` becomes its row in the signals table once the outcome is known."""

    signal: SignalRecord
    risk_stop: float | None
    swing_low: float | None

    @property
    def bar_ts(self) -> int:
        return self.signal.bar_ts

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> "PendingEntry":
        raw = json.loads(text)
        return cls(SignalRecord(**raw.pop("signal")), **raw)


def _signal_record(d: Decision) -> SignalRecord:
    """The signals-table row of a signal bar; action and reason are filled in once decided."""
    fib = d.fib
    return SignalRecord(
        bar_ts=d.bar.ts, close=d.bar.close, ema_fast=d.ema_fast, ema_slow=d.ema_slow, vol_z=d.vol_z,
        tr_z=d.tr_z, cloc=d.cloc, fib_swing_high=fib.swing_high if fib else None,
        fib_levels={f"{r}": p for r, p in zip(RATIOS, fib.prices)} if fib else None,
        target_price=d.target_price, action="PENDING", reason="")


def exit_reason_fib(level: float) -> str:
    return f"FIB_{level * 100:.1f}"


def exit_reason_tp(reward_r: float) -> str:
    return f"TP_{reward_r:.1f}R"


class Engine:
    def __init__(self, config: AgentConfig, *, data_dir: Path, feed: Feed, broker: Broker,
                 clock: Clock, feed_factory: Callable[[AgentConfig], Feed] | None = None) -> None:
        self.config = config
        self.feed = feed
        self.broker = broker
        self.clock = clock
        self._feed_factory = feed_factory
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
        self.orders = OrderManager(self.store, broker, self.bus, clock, commit=self._commit)
        self._run = StateMachine("run state", RUN_TABLE, RunState.STOPPED)
        self._pos = StateMachine("position state", POSITION_TABLE, PositionState.INITIALIZING)
        self._lock = asyncio.Lock()
        self._apply_config(config)
        self.halt_reason: str | None = None
        self.risk: RiskManager | None = None
        self._booted = False
        self._feed_task: asyncio.Task | None = None
        self._finished = asyncio.Event()
        self._feed_state = "stopped"
        self._history: deque[Decision] = deque(maxlen=HISTORY_BARS)
        self._trade: TradeRecord | None = None
        self._pending: PendingEntry | None = None
        self._balance = config.exchange.paper_initial_balance
        self._day: DayState | None = None
        self._durable_bar_ts: int | None = None   # last bar whose work is complete (goes out with the next commit)
        self._last_seen_ts: int | None = None     # last bar fed to the strategy
        self._last_price: float | None = None
        self._last_snapshot_ts: int | None = None
        self._bars_this_run = 0
        self._last_commit = time.monotonic()
        self._held: int | None = None                # bars held by the open trade, as of this bar

    # ----- construction helpers -------------------------------------------------------------
    @classmethod
    def for_replay(cls, config: AgentConfig, data_dir: Path, csv_path: Path,
                   speed: float | None) -> "Engine":
        """Paper broker, simulated clock, bars from a CSV: the headless replay and the demo."""
        from data.replay_feed import load_replay

        def make_feed(cfg: AgentConfig) -> ReplayFeed:
            return ReplayFeed(load_replay(Path(csv_path), cfg.timeframe_minutes).bars, speed,
                              source_name=Path(csv_path).name)

        bp = config.backtest_params
        return cls(config, data_dir=data_dir, feed=make_feed(config),
                   broker=PaperBroker(bp.fee_bp, bp.slippage_bp), clock=ReplayClock(),
                   feed_factory=make_feed)

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

    def history(self) -> list[Decision]:
        return list(self._history)

    @property
    def replay_speed(self) -> float | None:
        """Bars per second of a replay feed (None: as fast as possible)."""
        return self._replay_feed().speed

    @property
    def is_replay(self) -> bool:
        return isinstance(self.feed, ReplayFeed)

    def set_replay_speed(self, speed: float | None) -> None:
        """Change a running replay's pace; the simulated clock makes the outcome identical."""
        self._replay_feed().speed = speed
        log.info("replay speed: %s", "max" if speed is None else f"{speed:g} bars/s")

    def _replay_feed(self) -> ReplayFeed:
        if not isinstance(self.feed, ReplayFeed):
            raise EngineBusy("the market data is live: only a replay has a speed")
        return self.feed

    def status(self) -> EngineStatus:
        unrealized = self._unrealized()
        equity = self._balance + self._position_value()
        day_pnl = equity - self._day.start_equity if self._day else 0.0
        return EngineStatus(
            run_state=self.run_state, position_state=self.position_state,
            halt_reason=self.halt_reason, mode=self.broker.mode,
            pair=self.config.exchange.trading_pair, timeframe=self.config.timeframe,
            balance=self._balance, equity=equity, day_pnl=day_pnl, unrealized_pnl=unrealized,
            last_price=self._last_price, last_bar_ts=self._last_seen_ts, open_trade=self._trade,
            feed_state=self._feed_state, exchange_state=self.broker.mode, latency_ms=None,
            last_update_ts=None if self._last_seen_ts is None else self._last_seen_ts + self._tf_ms)

    def _position_value(self) -> float:
        if self._trade is None:
            return 0.0
        price = self._last_price if self._last_price is not None else self._trade.entry_price
        return self._trade.amount * price

    def _unrealized(self) -> float:
        if self._trade is None:
            return 0.0
        return self._position_value() - self._trade.amount * self._trade.entry_price - self._trade.entry_fee

    def _equity(self) -> float:
        return self._balance + self._position_value()

    # ----- commands ---------------------------------------------------------------------------
    async def start(self) -> None:
        """STOPPED -> STARTING -> RUNNING (or HALTED when a halt is on record); starts the feed."""
        async with self._lock:
            self._transition_run("start")
            try:
                if not self._booted:
                    await self._boot()
                    self._booted = True
            except Exception as exc:
                log.exception("start-up failed")
                self._transition_run("fail", reason=f"start-up failed: {exc}")
                return
            if self.halt_reason is not None:
                self._transition_run("halt", reason=self.halt_reason)
                log.error("engine HALTED: %s. Trading stays off until the operator clears the halt.",
                          self.halt_reason)
            else:
                self._transition_run("started")
            self._start_feed()

    async def pause(self) -> None:
        async with self._lock:
            self._transition_run("pause")
            log.info("paused: no new entries; an open position is still managed")

    async def resume(self) -> None:
        async with self._lock:
            self._transition_run("resume")
            log.info("resumed")

    async def emergency_stop(self) -> None:
        """Flatten at market and HALT, persisted, until the operator clears it."""
        async with self._lock:
            log.critical("EMERGENCY STOP requested by the operator")
            self._drop_pending("emergency stop")
            try:
                if self._trade is not None:
                    await self._exit("EMERGENCY", "market", self._mark_price())
            finally:                                  # a failed exit must still stop all trading
                await self._halt("emergency stop by the operator"
                                 + ("" if self._trade is None else ": THE POSITION IS STILL OPEN"))

    async def manual_close(self) -> None:
        async with self._lock:
            if self._trade is None:
                raise EngineBusy("there is no open position to close")
            log.warning("manual close requested by the operator")
            await self._exit("MANUAL", "market", self._mark_price())

    async def clear_halt(self) -> None:
        """HALTED -> STOPPED. The operator has looked at why; Start trades again."""
        async with self._lock:
            if not self._run.can("clear"):
                raise IllegalTransition(f"run state: there is no halt to clear in state {self.run_state}")
            reason, self.halt_reason = self.halt_reason, None
            self.store.set_meta("halt_reason", "")
            self._commit(durable=True)               # durable before it is reported
            self._transition_run("clear")            # writes state.json and publishes
            log.warning("halt cleared by the operator (was: %s)", reason)
        await self._stop_feed()

    async def import_config(self, path: str | Path) -> tuple[list[str], list[str]]:
        """Validate and adopt a config.json from the backtest app. Refused while the engine runs
        or a position is open; a rejected file changes nothing."""
        if self.run_state in (RunState.RUNNING, RunState.PAUSED, RunState.STARTING):
            raise EngineBusy(f"stop the engine before importing a config (it is {self.run_state})")
        if self._trade is not None:
            raise EngineBusy("close the open position before importing a config")
        cfg = load_config(path)
        await self._stop_feed()                     # a halted engine still follows the market
        async with self._lock:
            changed_market = (cfg.timeframe != self.config.timeframe
                              or cfg.exchange.trading_pair != self.config.exchange.trading_pair)
            self._apply_config(cfg)
            if changed_market and self._feed_factory is not None:
                self.feed = self._feed_factory(cfg)
                self._history.clear()
                self._last_seen_ts = None
            else:
                for decision in self._history:     # re-warm the new parameters on what we have
                    self.strategy.update(decision.bar)
            self.risk = None                        # rebuilt with the new limits on the next start
            self._booted = False
            self._pending = None
            self._save_config_copy(path)
        log.warning("imported config %s: %s %s, %s", path, cfg.exchange.trading_pair, cfg.timeframe, cfg.mode)
        return summarize(cfg), config_warnings(cfg)

    async def stop(self) -> None:
        """Graceful shutdown: stop the feed, commit, write state.json, close the store."""
        await self._stop_feed()
        async with self._lock:
            if self._run.can("stop"):
                self._transition_run("stop")
            self._commit(durable=True)
            self._write_state()
            self.store.close()
            self._lock_file.release()
        self._finished.set()
        log.info("engine stopped")

    async def wait_finished(self) -> None:
        await self._finished.wait()

    # ----- start-up and recovery ----------------------------------------------------------------
    async def _boot(self) -> None:
        try:
            read_state(self.paths.state)
        except StateFileCorrupt as exc:
            log.error("%s", exc)
            self._record_halt(f"state.json was unreadable and has been set aside ({exc}); "
                              "review it, then clear the halt")
        rules: MarketRules = await self.broker.market_rules()
        bp = self.config.backtest_params
        self.risk = RiskManager(RiskLimits.from_config(self.config), rules, bp.fee_bp, bp.slippage_bp)
        meta = self.store.get_meta
        if meta("halt_reason"):
            self.halt_reason = meta("halt_reason")
        if meta("balance"):
            self._balance = float(meta("balance"))
        if meta("last_bar_ts"):
            self._durable_bar_ts = int(meta("last_bar_ts"))
        if meta("day"):
            self._day = DayState(**json.loads(meta("day")))
        if meta("pending_entry"):
            self._pending = PendingEntry.from_json(meta("pending_entry"))
        last_snapshot = self.store.last_snapshot()
        if last_snapshot is not None:
            self._last_snapshot_ts = last_snapshot.ts
        self._trade = self.store.open_trade()
        await self._recover_orders()
        self._pos.force(PositionState.INITIALIZING)
        if self._trade is not None:
            self._pos.transition("restore_position")
            log.warning("restored open position: trade %s, %.8g %s @ %.8g", self._trade.id,
                        self._trade.amount, self.config.exchange.base_currency, self._trade.entry_price)
        else:
            self._pos.transition("connected")
        self._commit(durable=True)
        if self._durable_bar_ts is not None:
            log.info("resuming after bar %s", iso_utc(self._durable_bar_ts))

    async def _recover_orders(self) -> None:
        """Invariant 1, the crash side: every unresolved order is looked up by its id."""
        for order in self.store.unresolved_orders():
            found = await self.orders.recover(order)
            log.warning("recovered order %s: %s (%s)", found.client_order_id, found.status, found.reason)
            if found.status == "filled":
                if found.purpose == "entry" and self._trade is None:
                    self._open_trade_from_fill(found, self._pending_or_placeholder(found))
                elif found.purpose == "exit" and self._trade is not None:
                    self._close_trade_from_fill(found, found.reason or "RECOVERED", found.expected_price)
            elif found.status in ("open", "unknown"):
                self._record_halt(f"order {found.client_order_id} is still {found.status} at the venue: "
                                  "resolve it on the exchange, then clear the halt")

    def _pending_or_placeholder(self, order: OrderRecord) -> PendingEntry:
        if self._pending is not None:
            return self._pending
        nan = float("nan")
        ref = order.expected_price or order.fill_price or nan
        return PendingEntry(SignalRecord(order.created_ts, ref, nan, nan, nan, nan, nan, None, None,
                                         None, "ENTERED", "recovered after restart"), None, None)

    # ----- the feed loop ------------------------------------------------------------------------
    def _start_feed(self) -> None:
        if self._feed_task is not None and not self._feed_task.done():
            return
        self._finished.clear()
        self._feed_task = asyncio.get_running_loop().create_task(self._consume_feed(), name="engine-feed")
        self._feed_task.add_done_callback(self._feed_done)

    async def _stop_feed(self) -> None:
        task, self._feed_task = self._feed_task, None
        if task is not None and not task.done():
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass
        if self._feed_state == "replaying":
            self._feed_state = "stopped"

    def _feed_done(self, task: asyncio.Task) -> None:
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None:
            log.critical("the market data loop died: %s", exc, exc_info=exc)
            if self._run.can("fail"):
                self._transition_run("fail", reason=f"market data loop died: {exc}")
            self._finished.set()

    async def _consume_feed(self) -> None:
        self._feed_state = "replaying"
        async for bar in self.feed.stream(self._last_seen_ts):
            async with self._lock:
                if self._durable_bar_ts is not None and bar.ts <= self._durable_bar_ts:
                    self._warm(bar)
                    continue
                try:
                    await self._on_bar(bar)
                except (IllegalTransition, OrderUnresolved) as exc:
                    log.critical("%s", exc)
                    await self._halt(f"internal safety stop: {exc}")
        async with self._lock:
            self._commit(durable=True)
            self._write_state()
        self._feed_state = "finished"
        log.info("replay finished: %d bars processed in this run", self._bars_this_run)
        self.bus.publish(ReplayFinished(self._bars_this_run))
        self._finished.set()

    def _warm(self, bar: Bar) -> None:
        """Re-feed a bar whose effects are already in the store: indicators only."""
        self.clock.observe(bar.ts + self._tf_ms)
        decision = self.strategy.update(bar)
        self._history.append(decision)
        self._last_seen_ts = bar.ts
        self._last_price = bar.close

    async def _on_bar(self, bar: Bar) -> None:
        """One closed bar: enter a pending signal at its open, watch exits through its range,
        update the strategy at its close, then record and report."""
        self.clock.observe(bar.ts)
        if self._pos.state is PositionState.CONNECTED:
            self._pos.transition("warmed_up")     # history replayed; decisions from here on count
            if self._pending is not None:
                self._pos.transition("signal")    # a signal restored from the store waits for this bar
            self._publish_state()
        self._roll_day(bar.ts)
        if self._pending is not None:
            if self._trade is None:
                await self._enter(bar)
            else:
                self._drop_pending("a position is already open")
        if self._trade is not None:
            await self._watch_exits(bar)
        close_ts = bar.ts + self._tf_ms
        self.clock.observe(close_ts)
        self._last_price = bar.close
        if (self._trade is not None and self.risk is not None and self._day is not None
                and self.risk.daily_loss_breached(self._day, self._equity())):
            await self._daily_loss_stop()
        # Everything durable for this bar happened above; what follows is redone identically if
        # a crash loses it, which is what makes resuming after the last committed bar exact.
        if self._trade is not None and self._held is not None:
            self._trade.bars_held = self._held
        self._held = None
        decision = self.strategy.update(bar)
        self._history.append(decision)
        self._last_seen_ts = bar.ts
        if decision.signal:
            self._on_signal(decision)
        self._maybe_snapshot(close_ts)
        self._durable_bar_ts = bar.ts
        self._bars_this_run += 1
        if time.monotonic() - self._last_commit >= COMMIT_EVERY_S:
            self._commit()
        self.bus.publish(BarClosed(bar, decision))
        self.bus.publish(PriceTick(close_ts, bar.close))
        self._publish_balance(close_ts)

    def _roll_day(self, now_ms: int) -> None:
        """Daily counters reset at 00:00 UTC of the engine clock; the day's start equity is the
        equity at the first price of the day."""
        day = utc_day(now_ms)
        if self._day is None or self._day.day_start_ms != day:
            if self._day is not None:
                log.debug("new UTC day %s: daily counters reset", iso_utc(day))
            self._day = DayState(day, self._equity(), 0)
            self.store.set_meta("day", json.dumps(asdict(self._day)))

    # ----- signals and entries ------------------------------------------------------------------
    def _on_signal(self, d: Decision) -> None:
        skip = self._entry_blocker(d)
        signal = _signal_record(d)
        if skip is not None:
            self._record_signal(signal, "SKIPPED", skip)
            return
        self._pos.transition("signal")
        self._pending = PendingEntry(signal, d.risk_stop, d.fib.swing_low if d.fib else None)
        self.store.set_meta("pending_entry", self._pending.to_json())
        log.info("signal at %s close %.8g: entering at the next price", d.bar.iso, d.bar.close)
        self._publish_state()

    def _entry_blocker(self, d: Decision) -> str | None:
        if self._run.state is not RunState.RUNNING:
            return f"engine {self.run_state.lower()}" + (f": {self.halt_reason}" if self.halt_reason else "")
        if self._trade is not None:
            return "in position"
        if self._pending is not None:
            return "an entry is already pending"
        if self.params.use_fib_exits and d.fib is None:
            # PRD rule; the backtest enters anyway. A documented divergence.
            swing = ("no swing high" if math.isnan(d.swing_high)
                     else f"swing high {d.swing_high:.8g} not above the low {d.bar.low:.8g}")
            return f"no Fibonacci levels ({swing}; PRD: skip, the backtest would enter)"
        return None

    def _drop_pending(self, why: str) -> None:
        if self._pending is None:
            return
        self._record_signal(self._pending.signal, "SKIPPED", why)
        self._pending = None
        self.store.set_meta("pending_entry", "")
        if self._pos.state is PositionState.SIGNAL:
            self._pos.transition("skip")

    async def _enter(self, bar: Bar) -> None:
        p = self._pending
        assert p is not None and self.risk is not None and self._day is not None
        self._pending = None
        self.store.set_meta("pending_entry", "")
        reference = bar.open
        if self._run.state is not RunState.RUNNING:
            self._record_signal(p.signal, "SKIPPED", f"engine {self.run_state.lower()} before the entry")
            self._pos.transition("skip")
            return
        self._pos.transition("check_risk")
        verdict = self.risk.check(balance=self._balance, equity=self._equity(), entry=reference,
                                  risk_stop=p.risk_stop, signal_close=p.signal.close, open_positions=0,
                                  day=self._day)
        if not verdict.approved:
            self._pos.transition("rejected")
            self._record_signal(p.signal, "SKIPPED", f"risk check: {verdict.reason}")
            log.warning("signal at %s not traded: %s", iso_utc(p.bar_ts), verdict.reason)
            self._publish_state()
            return
        self._pos.transition("approved")
        order = OrderRecord(
            client_order_id=self.orders.new_client_order_id(f"E{p.bar_ts}"), trade_id=None,
            side="buy", type="market", amount=verdict.amount, created_ts=self.clock.now_ms(),
            purpose="entry", expected_price=reference)
        self.store.set_meta("pending_entry", p.to_json())   # for recovery until filled
        self._publish_state()
        order = await self.orders.execute(order)
        self.store.set_meta("pending_entry", "")
        if order.status != "filled":
            self._pos.transition("failed")
            self._record_signal(p.signal, "SKIPPED", f"entry order {order.status}: {order.reason}")
            self._commit(durable=True)
            log.error("entry order %s %s: %s", order.client_order_id, order.status, order.reason)
            self.bus.publish(OrderChanged(order))
            self._publish_state()
            return
        trade = self._open_trade_from_fill(order, p)
        self._record_signal(p.signal, "ENTERED", f"trade {trade.id}")   # same commit as the trade
        self._commit(durable=True)
        self._pos.transition("filled")
        self._write_state()
        self.bus.publish(OrderChanged(order))
        self.bus.publish(PositionOpened(trade))
        self._publish_state()
        self._publish_balance(self.clock.now_ms())
        log.info("ENTERED trade %s: %.8g @ %.8g (reference %.8g), target %s, stop %s", trade.id,
                 trade.amount, trade.entry_price, reference, _fmt(trade.target_price), _fmt(trade.stop_price))

    def _open_trade_from_fill(self, order: OrderRecord, p: PendingEntry) -> TradeRecord:
        bp = self.config.backtest_params
        reference = order.expected_price if order.expected_price is not None else order.fill_price
        stop = p.risk_stop if bp.use_stop_loss else None
        risk = reference - stop if stop is not None and stop < reference else 0.01 * reference
        trade = TradeRecord(
            pair=self.config.exchange.trading_pair, signal_ts=p.bar_ts, entry_ts=self.clock.now_ms(),
            entry_price=order.fill_price, entry_reference=reference, amount=order.filled_amount,
            entry_fee=order.fee, mode=self.broker.mode,
            fib_target_level=bp.fib_target_level if bp.use_fib_exits else None,
            target_price=p.signal.target_price if bp.use_fib_exits else None,
            tp_price=reference + bp.reward_r * risk if bp.use_traditional_tp else None,
            stop_price=stop, risk_stop=p.risk_stop, swing_high=p.signal.fib_swing_high,
            swing_low=p.swing_low)
        trade.id = self.store.insert_trade(trade)
        order.trade_id = trade.id
        self.store.update_order(order)
        self._balance -= order.filled_amount * order.fill_price + order.fee
        self.store.set_meta("balance", repr(self._balance))
        if self._day is not None:
            self._day = DayState(self._day.day_start_ms, self._day.start_equity, self._day.trades_opened + 1)
            self.store.set_meta("day", json.dumps(asdict(self._day)))
        self._trade = trade
        self._snapshot(self.clock.now_ms())
        return trade

    # ----- exits --------------------------------------------------------------------------------
    async def _watch_exits(self, bar: Bar) -> None:
        """The backtest's exit order on one bar, first match wins: stop (gap, then touch),
        Fibonacci target, take-profit, time. Watched from the entry bar on (a documented
        divergence: the backtest skips the entry bar); a gap is not checked on the entry bar,
        whose open is the entry itself.

        trade.bars_held stays as of the last completed bar until this bar completes (or the
        trade closes), so a commit in the middle of the bar stays consistent with last_bar_ts."""
        t = self._trade
        assert t is not None
        entry_bar = bar.ts <= t.entry_ts < bar.ts + self._tf_ms
        self._held = t.bars_held if entry_bar else t.bars_held + 1
        bp = self.config.backtest_params
        if t.stop_price is not None:
            if not entry_bar and bar.open <= t.stop_price:
                await self._exit("STOP_GAP", "stop", bar.open)
                return
            if bar.low <= t.stop_price:
                await self._exit("STOP", "stop", t.stop_price)
                return
        if t.target_price is not None and bar.high >= t.target_price:
            await self._exit(exit_reason_fib(bp.fib_target_level), "limit", t.target_price)
            return
        if t.tp_price is not None and bar.high >= t.tp_price:
            await self._exit(exit_reason_tp(bp.reward_r), "limit", t.tp_price)
            return
        if bp.use_time_exit and self._held >= bp.max_hold:
            self.clock.observe(bar.ts + self._tf_ms)     # fires at the bar's close
            await self._exit("TIME", "market", bar.close)

    async def _exit(self, reason: str, order_type: str, reference: float) -> None:
        t = self._trade
        assert t is not None and t.id is not None
        self._pos.transition("exit")
        order = OrderRecord(
            client_order_id=self.orders.new_client_order_id(f"X{t.id}"), trade_id=t.id, side="sell",
            type=order_type, amount=t.amount, created_ts=self.clock.now_ms(), purpose="exit",
            expected_price=reference, reason=reason,
            limit_price=reference if order_type == "limit" else None,
            stop_price=t.stop_price if order_type == "stop" else None)
        self._publish_state()
        order = await self.orders.execute(order)
        if order.status != "filled":
            self._pos.transition("failed")
            self._commit(durable=True)
            self.bus.publish(OrderChanged(order))
            self._publish_state()
            raise OrderUnresolved(f"exit order {order.client_order_id} ({reason}) was {order.status}: "
                                  f"{order.reason}; the position is still open")
        trade = self._close_trade_from_fill(order, reason, reference)
        self._commit(durable=True)
        self._pos.transition("filled")
        self._write_state()
        self.bus.publish(OrderChanged(order))
        self.bus.publish(PositionClosed(trade))
        self._pos.transition("rearm")
        self._publish_state()
        self._publish_balance(self.clock.now_ms())
        log.info("EXITED trade %s %s: %.8g @ %.8g, pnl %.2f %s (%.2f%%)", trade.id, reason, trade.amount,
                 trade.exit_price, trade.pnl, self.config.exchange.quote_currency, trade.pnl_percent)

    def _close_trade_from_fill(self, order: OrderRecord, reason: str, reference: float | None) -> TradeRecord:
        t = self._trade
        assert t is not None
        t.status = "closed"
        t.exit_ts = self.clock.now_ms()
        t.exit_price = order.fill_price
        t.exit_reference = reference
        t.exit_fee = order.fee
        t.exit_reason = reason
        t.bars_held = self._held if self._held is not None else t.bars_held
        t.pnl = (order.fill_price - t.entry_price) * t.amount - t.entry_fee - order.fee
        t.pnl_percent = t.pnl / (t.entry_price * t.amount) * 100
        self.store.update_trade(t)
        self._balance += order.filled_amount * order.fill_price - order.fee
        self.store.set_meta("balance", repr(self._balance))
        self._trade = None
        self._snapshot(self.clock.now_ms())
        return t

    async def _daily_loss_stop(self) -> None:
        assert self._day is not None and self.risk is not None
        limit = self.risk.limits.max_daily_loss_percent
        log.error("daily loss limit of %s%% reached (equity %.2f, day start %.2f): closing and halting",
                  limit, self._equity(), self._day.start_equity)
        await self._exit("DAILY_LOSS_LIMIT", "market", self._mark_price())
        await self._halt(f"daily loss limit of {limit}% reached on {iso_utc(self._day.day_start_ms)[:10]}")

    def _mark_price(self) -> float:
        if self._last_price is not None:
            return self._last_price
        assert self._trade is not None
        return self._trade.entry_price

    # ----- halts and state ----------------------------------------------------------------------
    def _record_halt(self, reason: str) -> None:
        self.halt_reason = reason
        self.store.set_meta("halt_reason", reason)

    async def _halt(self, reason: str) -> None:
        self._record_halt(reason)
        self._drop_pending("engine halted")
        self._commit(durable=True)
        if self._run.can("halt"):
            self._transition_run("halt", reason=reason)
        log.error("engine HALTED: %s", reason)

    def _transition_run(self, trigger: str, reason: str | None = None) -> None:
        self._run.transition(trigger)
        if self._booted or trigger in ("halt", "fail", "started"):
            self._write_state()
        self._publish_state(reason)

    def _publish_state(self, reason: str | None = None) -> None:
        self.bus.publish(EngineStateChanged(self.run_state, self.position_state,
                                            reason or self.halt_reason, self.clock.now_ms()))

    def _publish_balance(self, ts: int) -> None:
        equity = self._equity()
        self.bus.publish(BalanceChanged(ts, self._balance, equity,
                                        equity - self._day.start_equity if self._day else 0.0,
                                        self._unrealized()))

    def _write_state(self) -> None:
        """The human-readable mirror of the store; the store stays authoritative."""
        t = self._trade
        state = {
            "version": 1,
            "updated_at": iso_utc(self.clock.now_ms()),
            "run_state": self.run_state,
            "position_state": self.position_state,
            "halt_reason": self.halt_reason,
            "mode": self.broker.mode,
            "pair": self.config.exchange.trading_pair,
            "timeframe": self.config.timeframe,
            "balance": self._balance,
            "equity": self._equity(),
            "last_bar": iso_utc(self._durable_bar_ts) if self._durable_bar_ts is not None else None,
            "day": {"date": iso_utc(self._day.day_start_ms)[:10], "start_equity": self._day.start_equity,
                    "trades_opened": self._day.trades_opened} if self._day else None,
            "open_position": None if t is None else {
                "trade_id": t.id, "entry_time": iso_utc(t.entry_ts), "entry_price": t.entry_price,
                "amount": t.amount, "target_price": t.target_price, "stop_price": t.stop_price,
                "tp_price": t.tp_price, "bars_held": t.bars_held},
            "pending_entry_signal": iso_utc(self._pending.bar_ts) if self._pending else None,
        }
        try:
            write_state(self.paths.state, state)
        except (OSError, StateFileError) as exc:
            log.error("could not write %s: %s (the store is still authoritative)", self.paths.state, exc)

    # ----- records ------------------------------------------------------------------------------
    def _record_signal(self, signal: SignalRecord, action: str, reason: str) -> None:
        row = replace(signal, action=action, reason=reason)
        self.store.insert_signal(row)
        self.bus.publish(SignalSeen(row))

    def _maybe_snapshot(self, now_ms: int) -> None:
        if self._last_snapshot_ts is None or now_ms - self._last_snapshot_ts >= SNAPSHOT_EVERY_MS:
            self._snapshot(now_ms)

    def _snapshot(self, now_ms: int) -> None:
        amount = self._trade.amount if self._trade else 0.0
        self.store.insert_snapshot(SnapshotRecord(now_ms, self._balance, self._equity(),
                                                  self._unrealized(), amount, self._last_price))
        self._last_snapshot_ts = now_ms

    def _commit(self, durable: bool = False) -> None:
        """Every commit records the last bar whose work is complete: a restart resumes after it,
        and any partial work of the next bar that rode along is idempotent to redo."""
        if self._durable_bar_ts is not None:
            self.store.set_meta("last_bar_ts", str(self._durable_bar_ts))
        if self._trade is not None:
            self.store.update_trade(self._trade)      # bars_held, as of that bar
        self.store.commit(durable=durable)
        self._last_commit = time.monotonic()

    def _save_config_copy(self, source: str | Path) -> None:
        """The imported file becomes the data folder's config.json (the previous one kept as .bak)."""
        target = self.data_dir / "config.json"
        if target.exists():
            target.replace(target.with_suffix(".json.bak"))
        target.write_text(Path(source).read_text(encoding="utf-8"), encoding="utf-8")


def _fmt(x: float | None) -> str:
    return "-" if x is None else f"{x:.8g}"
