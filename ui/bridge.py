"""The one place where engine events become Qt signals.

The engine publishes synchronously on its loop; the subscriber here only appends to a queue
(it must be quick and must not raise). A timer at screen rate drains the queue and re-emits
the events coalesced, so a replay at --speed max (thousands of bars a second) costs the window
one batch per frame instead of one repaint per event:
- consecutive BarClosed become one `bars_closed(list)`; any other discrete event first flushes
  the pending bars, so the window always sees a bar before the trade that happened on it;
- PriceTick keeps only the latest price (plus the high/low of the ticks it replaces), and a
  BarClosed discards ticks that came before it: the closed bar already contains them;
- BalanceChanged keeps only the latest;
- FeedStatus is dropped: the window reads the feed's health from engine.status() each second.
Order of discrete events (state, signals, orders, positions, replay end) is preserved."""
from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from PySide6.QtCore import QObject, QTimer, Signal

from agent.events import (BalanceChanged, BarClosed, EngineStateChanged, Event, EventBus,
                          OrderChanged, PositionClosed, PositionOpened, PriceTick,
                          ReplayFinished, SignalSeen)
from data.market import FeedStatus

log = logging.getLogger(__name__)

SCREEN_RATE_MS = 33   # ~30 Hz


@dataclass(frozen=True, slots=True)
class TickSummary:
    """The latest tick and the range of the ticks coalesced into it."""

    ts: int
    price: float
    high: float
    low: float


class EngineBridge(QObject):
    """Subscribes to an EventBus and re-emits its events, coalesced, on a Qt timer."""

    state_changed = Signal(object)      # EngineStateChanged
    bars_closed = Signal(list)          # list[BarClosed], oldest first
    price_ticked = Signal(object)       # TickSummary
    signal_seen = Signal(object)        # SignalSeen
    order_changed = Signal(object)      # OrderChanged
    position_opened = Signal(object)    # PositionOpened
    position_closed = Signal(object)    # PositionClosed
    balance_changed = Signal(object)    # BalanceChanged (latest of the batch)
    replay_finished = Signal(object)    # ReplayFinished

    def __init__(self, bus: EventBus, interval_ms: int = SCREEN_RATE_MS,
                 parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._queue: deque[Event] = deque()
        self._unsubscribe: Callable[[], None] | None = bus.subscribe(self._queue.append)
        self._tick: TickSummary | None = None
        self._timer = QTimer(self)
        self._timer.setInterval(interval_ms)
        self._timer.timeout.connect(self.drain)
        self._timer.start()
        self._discrete = {
            EngineStateChanged: self.state_changed,
            SignalSeen: self.signal_seen,
            OrderChanged: self.order_changed,
            PositionOpened: self.position_opened,
            PositionClosed: self.position_closed,
            ReplayFinished: self.replay_finished,
        }

    @property
    def pending(self) -> int:
        return len(self._queue)

    def drain(self) -> None:
        """Emit everything queued since the last drain, coalesced (see the module docstring)."""
        bars: list[BarClosed] = []
        balance: BalanceChanged | None = None
        while self._queue:
            event = self._queue.popleft()
            if isinstance(event, BarClosed):
                bars.append(event)
                self._tick = None
            elif isinstance(event, PriceTick):
                self._merge_tick(event)
            elif isinstance(event, BalanceChanged):
                balance = event
            elif isinstance(event, FeedStatus):
                continue
            else:
                signal = self._discrete.get(type(event))
                if signal is None:
                    log.warning("bridge ignores unknown event %s", type(event).__name__)
                    continue
                if bars:
                    self.bars_closed.emit(bars)
                    bars = []
                signal.emit(event)
        if bars:
            self.bars_closed.emit(bars)
        if self._tick is not None:
            tick, self._tick = self._tick, None
            self.price_ticked.emit(tick)
        if balance is not None:
            self.balance_changed.emit(balance)

    def close(self) -> None:
        """Stop listening: no signal is emitted after this returns."""
        self._timer.stop()
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        self._queue.clear()

    def _merge_tick(self, tick: PriceTick) -> None:
        prev = self._tick
        if prev is None:
            self._tick = TickSummary(tick.ts, tick.price, tick.price, tick.price)
        else:
            self._tick = TickSummary(tick.ts, tick.price, max(prev.high, tick.price),
                                     min(prev.low, tick.price))
