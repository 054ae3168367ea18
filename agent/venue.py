"""The seam between the engine and whoever executes orders: the paper venue in this process, or
an exchange through ccxt. The engine cannot tell which it has.

Guarantees every venue keeps:
- An order arrives with its row already durable in the store (invariant 1); the venue answers
  with its own view of the order, never a guess.
- The engine never decides that a resting order filled: it is told, through `on_update`, with
  the venue's fill price and time. Updates may repeat; each carries the order's whole current
  state (cumulative filled amount, average price, cumulative fee), so applying one twice is
  harmless.
- An ambiguous outcome (timeout, dropped reply) is raised as OrderOutcomeUnknown, never turned
  into a rejection: the caller looks the order up by its client order id.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from persistence.records import OrderRecord


class OrderRejected(Exception):
    """The venue refused the order; nothing was filled. Safe to decide again."""


class OrderOutcomeUnknown(Exception):
    """The order may or may not exist (timeout, dropped connection). Never resend: look it up by
    its client order id."""


@dataclass(frozen=True, slots=True)
class MarketRules:
    """What the venue accepts for the pair: amounts are rounded DOWN to amount_step."""

    amount_step: float
    min_amount: float
    min_notional: float
    price_tick: float = 0.0       # 0: any price

    def round_amount(self, amount: float) -> float:
        """Round down to the step; the epsilon absorbs float noise like 0.3/0.1 = 2.9999999."""
        steps = math.floor(amount / self.amount_step + 1e-9)
        return round(steps * self.amount_step, 12)


@dataclass(frozen=True, slots=True)
class OrderUpdate:
    """The venue's view of one order after a change (fill, partial fill, cancel, reject)."""

    order: OrderRecord
    ts: int                       # venue time of the change, Unix ms


UpdateCallback = Callable[[OrderUpdate], None]


class Venue(Protocol):
    mode: str                     # "paper" | "testnet" | "live"
    supports_oco: bool            # one exit group = one order list at the venue

    async def market_rules(self) -> MarketRules: ...

    async def place(self, order: OrderRecord) -> OrderRecord:
        """Send an order (market, limit or stop) whose row is already committed. Returns the
        venue's view: filled, open (resting, or a market order waiting for a price) or
        rejected. Raises OrderRejected or OrderOutcomeUnknown."""
        ...

    async def place_exit_group(self, legs: list[OrderRecord]) -> list[OrderRecord]:
        """Rest the exits of one position together: when one leg fills, the venue cancels the
        others (one-cancels-the-other). The legs share `group_id`."""
        ...

    async def cancel(self, client_order_id: str) -> OrderRecord | None:
        """Cancel a resting order; returns its final view (it may have filled meanwhile), or
        None if the venue never received it."""
        ...

    async def lookup(self, client_order_id: str) -> OrderRecord | None:
        """The venue's view of an order, or None if the venue never received it."""
        ...

    async def open_orders(self) -> list[OrderRecord]: ...

    async def balances(self) -> dict[str, float]:
        """Total (free + locked) per asset."""
        ...

    def on_update(self, callback: UpdateCallback) -> None:
        """Register the one consumer of order updates (the engine)."""
        ...

    async def close(self) -> None: ...
