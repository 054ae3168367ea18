"""An order's life over a Broker, with invariant 1 kept here and nowhere else:

    An order is written to SQLite with its client order id, and fsynced, BEFORE it is sent.
    After any crash, startup looks each unresolved order up by that id: no order is ever sent
    twice, no fill is ever lost.

An ambiguous outcome (timeout, dropped connection) is never turned into a rejection and never
retried blindly: it is looked up by client order id, and if it stays unknown the engine halts."""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from agent.broker import Broker, OrderOutcomeUnknown, OrderRejected
from agent.clock import Clock
from agent.events import EventBus, OrderChanged
from persistence.records import OrderRecord
from persistence.store import Store

log = logging.getLogger(__name__)

LOOKUP_ATTEMPTS = 5
LOOKUP_BACKOFF_S = 0.5


class OrderUnresolved(Exception):
    """The venue could not tell whether the order exists: trading must stop until resolved."""


class OrderManager:
    def __init__(self, store: Store, broker: Broker, bus: EventBus, clock: Clock,
                 commit: Callable[..., None]) -> None:
        self.store = store
        self._commit = commit         # the engine's commit: it also records bar progress
        self.broker = broker
        self.bus = bus
        self.clock = clock

    def new_client_order_id(self, key: str) -> str:
        """`ta-<key>-<attempt>`: deterministic, unique in the store, short enough for any venue."""
        attempt = 1
        while self.store.get_order(f"ta-{key}-{attempt}") is not None:
            attempt += 1
        return f"ta-{key}-{attempt}"

    async def execute(self, order: OrderRecord) -> OrderRecord:
        """Persist durably, send, and return the order as the venue left it (filled, open or
        rejected). The final update is staged in the store, not committed: the caller commits
        it together with its effect on the trade, so the two can never disagree."""
        self.store.insert_order(order)
        self._commit(durable=True)
        self.bus.publish(OrderChanged(order))
        try:
            result = await self.broker.place(order, self.clock.now_ms())
        except OrderRejected as exc:
            order.status, order.reason, order.updated_ts = "rejected", str(exc), self.clock.now_ms()
            self.store.update_order(order)
            log.warning("order %s rejected: %s", order.client_order_id, exc)
            return order
        except OrderOutcomeUnknown as exc:
            log.error("order %s outcome unknown (%s): looking it up by client order id",
                      order.client_order_id, exc)
            order.status, order.updated_ts = "unknown", self.clock.now_ms()
            self.store.update_order(order)
            self._commit(durable=True)
            result = await self._resolve(order)
        self.store.update_order(result)
        log.info("order %s %s: %s %s %.8g @ %s", result.client_order_id, result.status, result.side,
                 result.type, result.filled_amount, result.fill_price)
        return result

    async def recover(self, order: OrderRecord) -> OrderRecord:
        """Startup: what became of an order that was durable but unresolved when we stopped."""
        found = await self.broker.lookup(order.client_order_id)
        if found is None:
            order.status = "canceled"
            order.reason = "not found at the venue after restart: it was never received"
            order.updated_ts = self.clock.now_ms()
        else:
            order = found
        self.store.update_order(order)
        return order

    async def _resolve(self, order: OrderRecord) -> OrderRecord:
        for attempt in range(LOOKUP_ATTEMPTS):
            try:
                found = await self.broker.lookup(order.client_order_id)
            except OrderOutcomeUnknown:
                found = None
            if found is not None and found.status in ("filled", "rejected", "canceled"):
                return found
            await asyncio.sleep(LOOKUP_BACKOFF_S * 2 ** attempt)
        raise OrderUnresolved(f"order {order.client_order_id}: venue gave no final answer after "
                              f"{LOOKUP_ATTEMPTS} lookups")
