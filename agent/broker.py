"""The seam between the engine and whoever executes orders. The engine cannot tell a
PaperBroker from an exchange-backed one: both take an OrderRecord that is already durable in
the store and answer with what happened to it."""
from __future__ import annotations

import math
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

    def round_amount(self, amount: float) -> float:
        """Round down to the step; the epsilon absorbs float noise like 0.3/0.1 = 2.9999999."""
        steps = math.floor(amount / self.amount_step + 1e-9)
        return round(steps * self.amount_step, 12)


class Broker(Protocol):
    mode: str                                 # "paper" | "testnet" | "live"

    async def market_rules(self) -> MarketRules: ...

    async def place(self, order: OrderRecord, now_ms: int) -> OrderRecord:
        """Send an order whose row is already committed. Returns it updated (filled, open or
        rejected). Raises OrderRejected or OrderOutcomeUnknown."""
        ...

    async def lookup(self, client_order_id: str) -> OrderRecord | None:
        """The venue's view of an order, or None if the venue never received it."""
        ...
