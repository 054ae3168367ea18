"""An order's life over a Venue, with invariant 1 kept here and nowhere else:

    An order is written to SQLite with its client order id, and fsynced, BEFORE it is sent.
    After any crash, startup looks each unresolved order up by that id: no order is ever sent
    twice, no fill is ever lost.

An ambiguous outcome (timeout, dropped connection) is never turned into a rejection and never
retried blindly: the order is stored as `unknown` and looked up by client order id in the
background, so nothing waits on the lookup's back-off (commands stay instant). What the lookup
finds arrives like any other order update; if it finds nothing final, `on_unresolved` is told
and the engine halts.
"""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import replace

from agent.clock import Clock
from agent.venue import OrderOutcomeUnknown, OrderRejected, OrderUpdate, Venue
from persistence.records import OrderRecord
from persistence.store import Store
from monitoring.redaction import redact

log = logging.getLogger(__name__)

LOOKUP_ATTEMPTS = 5
LOOKUP_BACKOFF_S = 0.5
FINAL = ("filled", "canceled", "rejected")


class OrderUnresolved(Exception):
    """The venue could not tell whether the order exists: trading must stop until resolved."""


class OrderManager:
    def __init__(self, store: Store, venue: Venue, clock: Clock, *, commit: Callable[..., None],
                 deliver: Callable[[OrderUpdate], None],
                 on_unresolved: Callable[[OrderRecord, str], None]) -> None:
        self.store = store
        self.venue = venue
        self.clock = clock
        self._commit = commit               # the engine's commit: it also records bar progress
        self._deliver = deliver             # where a background lookup's answer goes
        self._on_unresolved = on_unresolved
        self._lookups: set[asyncio.Task] = set()

    def new_client_order_id(self, key: str, legs: tuple[str, ...] = ()) -> str:
        """`ta-<key>-<attempt>`: deterministic, unique in the store, short enough for any venue.
        With `legs`, the id of a group whose orders are `<id>-<leg>`: new when none of them exists."""
        attempt = 1
        while any(self.store.get_order(f"ta-{key}-{attempt}{suffix}") is not None
                  for suffix in ([f"-{leg}" for leg in legs] or [""])):
            attempt += 1
        return f"ta-{key}-{attempt}"

    async def submit(self, order: OrderRecord) -> OrderRecord:
        """Persist durably, send, and return the venue's view (filled, open, rejected or, when
        the reply was lost, unknown while a lookup runs in the background). The caller applies
        the view (execution stores it together with its effect on the trade)."""
        self.store.insert_order(order)
        self._commit(durable=True)
        try:
            result = await self.venue.place(order)
        except OrderRejected as exc:
            return self._rejected(order, str(exc))
        except OrderOutcomeUnknown as exc:
            return self._ambiguous(order, exc)
        return result

    async def submit_group(self, legs: list[OrderRecord]) -> list[OrderRecord]:
        """The exits of one position, durable together before they are sent as one group."""
        for leg in legs:
            self.store.insert_order(leg)
        self._commit(durable=True)
        try:
            results = await self.venue.place_exit_group(legs)
        except OrderRejected as exc:
            return [self._rejected(leg, str(exc)) for leg in legs]
        except OrderOutcomeUnknown as exc:
            return [self._ambiguous(leg, exc) for leg in legs]
        return results

    async def cancel(self, order: OrderRecord) -> OrderRecord:
        """Cancel a resting order; its final view may be `filled` (it filled meanwhile)."""
        try:
            found = await self.venue.cancel(order.client_order_id)
        except OrderOutcomeUnknown as exc:
            return self._ambiguous(order, exc)
        except OrderRejected as exc:           # already final at the venue: ask what it became
            log.warning("cancel of %s refused (%s): looking it up", order.client_order_id, exc)
            found = await self.venue.lookup(order.client_order_id)
        if found is None:
            found = replace(order, status="canceled", reason="never received by the venue",
                            updated_ts=self.clock.now_ms())
        return found

    async def recover(self, order: OrderRecord) -> OrderRecord:
        """Startup: what became of an order that was durable but unresolved when we stopped (not
        stored here: a fill is applied when the replay reaches its time)."""
        found = await self.venue.lookup(order.client_order_id)
        if found is None:
            found = replace(order, status="canceled", updated_ts=self.clock.now_ms(),
                            reason="not found at the venue after restart: it was never received")
        return found

    def pending_lookups(self) -> int:
        return len(self._lookups)

    async def close(self) -> None:
        for task in list(self._lookups):
            task.cancel()
        await asyncio.gather(*self._lookups, return_exceptions=True)

    def _rejected(self, order: OrderRecord, why: str) -> OrderRecord:
        """The venue's refusal as a report. Not stored here: the caller applies it like any
        other report, so its effect (a skipped signal, a failed exit) is stored with it."""
        why = redact(why)                           # an exchange reply may echo a key or signature
        order = replace(order, status="rejected", reason=why, updated_ts=self.clock.now_ms())
        log.warning("order %s rejected: %s", order.client_order_id, why)
        return order

    def _ambiguous(self, order: OrderRecord, exc: Exception) -> OrderRecord:
        log.error("order %s outcome unknown (%s): looking it up by client order id",
                  order.client_order_id, exc)
        order.status, order.updated_ts = "unknown", self.clock.now_ms()
        self.store.update_order(order)
        self._commit(durable=True)
        task = asyncio.get_running_loop().create_task(self._resolve(replace(order)),
                                                      name=f"lookup {order.client_order_id}")
        self._lookups.add(task)
        task.add_done_callback(self._lookups.discard)
        return order

    async def _resolve(self, order: OrderRecord) -> None:
        for attempt in range(LOOKUP_ATTEMPTS):
            try:
                found = await self.venue.lookup(order.client_order_id)
            except OrderOutcomeUnknown:
                found = None
            if found is not None and found.status in (*FINAL, "open"):
                self._deliver(OrderUpdate(found, self.clock.now_ms()))
                return
            await asyncio.sleep(LOOKUP_BACKOFF_S * 2 ** attempt)
        self._on_unresolved(order, f"order {order.client_order_id}: the venue gave no answer after "
                                   f"{LOOKUP_ATTEMPTS} lookups")
