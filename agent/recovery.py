"""Start-up: what became of every order that was durable but unresolved when the agent stopped.

Each is looked up at the venue by its client order id, never re-sent (invariant 1). A fill that
happened while the agent was down is not applied at once: it is handed back with its venue time
and applied when the engine's live processing reaches that time, so the bars between the last
commit and the fill are redone exactly as they were first done (a replay killed at any instant
ends with the trades of an uninterrupted one). A position left without resting exits gets them
re-placed; an order the venue cannot account for halts the engine with the order named.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field

from agent.execution import Execution
from agent.order_manager import OrderManager
from agent.state_machine import Trigger
from agent.venue import OrderUpdate
from persistence.store import Store

log = logging.getLogger(__name__)


@dataclass(slots=True)
class Recovered:
    deferred: list[OrderUpdate] = field(default_factory=list)   # fills to apply at their time
    halt_reason: str | None = None


async def recover_orders(store: Store, orders: OrderManager, ex: Execution) -> Recovered:
    out = Recovered()
    if ex.acct.trade is not None:
        ex.transition(Trigger.RESTORE_POSITION)
    for order in store.unresolved_orders():
        found = await orders.recover(order)
        log.warning("recovered order %s (%s %s): %s%s", found.client_order_id, found.purpose,
                    found.type, found.status, f" ({found.reason})" if found.reason else "")
        if found.status not in ("filled",) and not (found.status == "canceled" and found.filled_amount > 0):
            store.update_order(found)
        if found.purpose == "entry":
            if found.status == "open" or (found.status in ("filled", "canceled") and found.filled_amount > 0):
                if ex.pos.can(Trigger.RESTORE_ENTRY):
                    ex.transition(Trigger.RESTORE_ENTRY)
            if found.filled_amount > 0 and found.status in ("filled", "canceled"):
                out.deferred.append(OrderUpdate(found, found.updated_ts or found.created_ts))
            elif found.status == "unknown":
                out.halt_reason = (f"entry order {found.client_order_id} is unknown at the venue: "
                                   "check the exchange, then clear the halt")
            # canceled or rejected with nothing filled: the pending signal may enter again at
            # the next live price if it is still fresh; the engine decides
        elif found.status == "filled":
            out.deferred.append(OrderUpdate(found, found.updated_ts or found.created_ts))
        elif found.status == "unknown":
            out.halt_reason = (f"exit order {found.client_order_id} is unknown at the venue: "
                               "check the exchange, then clear the halt")
    out.deferred.sort(key=lambda u: u.ts)
    return out
