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


@dataclass(frozen=True, slots=True)
class BookQuote:
    """What buying `amount` at market would cost now, walked through the venue's order book."""

    amount: float                 # asked for, base currency
    best_ask: float
    average_price: float          # volume-weighted over what the book can fill
    fillable: float               # how much of `amount` the book (as fetched) can fill

    @property
    def slippage_percent(self) -> float:
        """Average fill price against the best ask, in percent."""
        return (self.average_price - self.best_ask) / self.best_ask * 100.0

    def refusal(self, tolerance_percent: float) -> str | None:
        """Why an entry of `amount` should not be sent (None: it may)."""
        if self.fillable + 1e-12 < self.amount:
            return (f"order book too thin: it holds {self.fillable:.8g} of the {self.amount:.8g} "
                    f"to buy (best ask {self.best_ask:.8g})")
        if self.slippage_percent > tolerance_percent:
            return (f"estimated slippage {self.slippage_percent:.3f}% (average {self.average_price:.8g} "
                    f"vs best ask {self.best_ask:.8g} for {self.amount:.8g}) exceeds the tolerance "
                    f"of {tolerance_percent:g}%")
        return None


def walk_book(asks: list, amount: float) -> BookQuote | None:
    """A BookQuote for taking `amount` from one side's levels [[price, qty], ...], best first:
    the asks for a buy, the bids for a sell (`best_ask` is then the best bid). None: empty."""
    levels = [(float(p), float(q)) for p, q, *_ in asks if p is not None and q is not None and float(q) > 0]
    if not levels:
        return None
    left, cost = amount, 0.0
    for price, qty in levels:
        take = min(qty, left)
        cost += take * price
        left -= take
        if left <= 1e-15:
            break
    filled = amount - max(left, 0.0)
    average = cost / filled if filled > 0 else levels[0][0]
    return BookQuote(amount=amount, best_ask=levels[0][0], average_price=average, fillable=filled)


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

    # Optional capability (an exchange): `async def balance_sheet() -> dict[str, tuple[float,
    # float]]`, (free, locked) per asset from one read. At an exchange the engine's cash is the
    # free quote it reports (read at start-up and after fills).

    # Optional capability (a venue with an order book to ask): `async def quote_buy(amount) ->
    # BookQuote`, raising OrderOutcomeUnknown when the book cannot be read. The engine checks an
    # entry's estimated slippage with it before sending; a venue without it is not asked.
    # With it may come `def prefetch_book() -> None`, called when a signal is found, so the
    # entry at the next price walks a fresh book without a round trip in front of its order.

    async def close(self) -> None: ...
