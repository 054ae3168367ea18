"""What the engine announces. Front ends (Qt window, headless logger, alerts) subscribe to one
stream of these typed events; none of them reaches into the engine's internals.

Delivery is synchronous and in order, on the engine's loop, after the change is durable
(invariant 3). A subscriber must be quick (the UI bridge only queues and coalesces) and must
not raise: an exception in a subscriber is logged and the subscriber is kept.

Events are values, immutable by convention: a subscriber never changes one (several hear the
same object). They are plain slotted dataclasses, not `frozen=True`, whose __init__ costs three
times as much on a path that builds two or three per bar; none of them is hashed."""
from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Union

from data.bar import Bar
from persistence.records import OrderRecord, SignalRecord, TradeRecord

if TYPE_CHECKING:
    from agent.strategy import Decision

log = logging.getLogger(__name__)


@dataclass(slots=True)
class EngineStateChanged:
    run_state: str                # STOPPED STARTING RUNNING PAUSED HALTED ERROR
    position_state: str           # INITIALIZING CONNECTED MONITORING SIGNAL RISK_CHECK ENTERING IN_POSITION EXITING CLOSED
    reason: str | None            # why HALTED / ERROR, else None
    ts: int


@dataclass(slots=True)
class BarClosed:
    bar: Bar
    decision: "Decision"          # indicator values, signal, Fibonacci levels on signal bars


@dataclass(slots=True)
class PriceTick:
    """Latest traded price (live ticks; in replay the bar's close)."""

    ts: int
    price: float


@dataclass(slots=True)
class SignalSeen:
    signal: SignalRecord


@dataclass(slots=True)
class OrderChanged:
    order: OrderRecord


@dataclass(slots=True)
class PositionOpened:
    trade: TradeRecord


@dataclass(slots=True)
class PositionClosed:
    trade: TradeRecord


@dataclass(slots=True)
class BalanceChanged:
    ts: int
    balance: float                # cash, quote currency
    equity: float                 # cash + open position at the latest price
    day_pnl: float                # equity minus the day's starting equity
    unrealized_pnl: float


@dataclass(slots=True)
class ReplayFinished:
    bars: int


Event = Union[EngineStateChanged, BarClosed, PriceTick, SignalSeen, OrderChanged,
              PositionOpened, PositionClosed, BalanceChanged, ReplayFinished]
Subscriber = Callable[[Event], None]


class EventBus:
    """Ordered, synchronous fan-out of engine events."""

    def __init__(self) -> None:
        # A tuple replaced on (un)subscribe: publish (several times a bar) iterates it as it
        # was when the event went out, without copying it each time.
        self._subscribers: tuple[Subscriber, ...] = ()

    def subscribe(self, callback: Subscriber) -> Callable[[], None]:
        self._subscribers = (*self._subscribers, callback)

        def unsubscribe() -> None:
            remaining = list(self._subscribers)
            remaining.remove(callback)              # ValueError when already unsubscribed
            self._subscribers = tuple(remaining)
        return unsubscribe

    def publish(self, event: Event) -> None:
        for callback in self._subscribers:
            try:
                callback(event)
            except Exception:
                log.exception("event subscriber %r failed on %s", callback, type(event).__name__)

    def publish_all(self, events: list[Event]) -> None:
        """publish() each event in order (a commit's events: several thousand a second in a
        replay, so without a call per event)."""
        for event in events:
            for callback in self._subscribers:
                try:
                    callback(event)
                except Exception:
                    log.exception("event subscriber %r failed on %s", callback, type(event).__name__)
