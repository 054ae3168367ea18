"""What the exchange accepts for one pair, read from ccxt's load_markets, applied before any order
is sent: an order that would break a rule is refused here with the reason, never sent to be
refused (or, worse, silently truncated) by the exchange.

Amounts are rounded DOWN to the step (never sell more than is held); prices to the tick in the
direction the caller asks (the exchange venue rounds a sell target UP, never below the intended
level, and a sell stop UP, triggering no later than intended). Notional = amount x price.
"""
from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_DOWN, ROUND_UP, Decimal
from typing import Any


def _d(x: float) -> Decimal:
    return Decimal(repr(float(x)))


@dataclass(frozen=True, slots=True)
class PairRules:
    symbol: str
    amount_step: float
    price_tick: float          # 0: any price
    min_amount: float
    min_notional: float

    @classmethod
    def from_market(cls, market: dict[str, Any]) -> PairRules:
        """From a ccxt market (binance: precisionMode TICK_SIZE, so precision is the step)."""
        if not market.get("spot", True):
            raise ValueError(f"{market.get('symbol')}: not a spot market")
        precision, limits = market.get("precision") or {}, market.get("limits") or {}
        step = precision.get("amount")
        tick = precision.get("price")
        if step is None:
            raise ValueError(f"{market.get('symbol')}: the exchange gives no amount step")
        min_amount = (limits.get("amount") or {}).get("min") or step
        min_notional = (limits.get("cost") or {}).get("min") or 0.0
        return cls(symbol=market["symbol"], amount_step=float(step), price_tick=float(tick or 0.0),
                   min_amount=float(min_amount), min_notional=float(min_notional))

    def round_amount(self, amount: float) -> float:
        step = _d(self.amount_step)
        return float((_d(amount) / step).to_integral_value(rounding=ROUND_DOWN) * step)

    def round_price(self, price: float, up: bool) -> float:
        if not self.price_tick:
            return price
        tick = _d(self.price_tick)
        return float((_d(price) / tick).to_integral_value(rounding=ROUND_UP if up else ROUND_DOWN) * tick)

    def violation(self, amount: float, price: float | None) -> str | None:
        """Why an order of `amount` (already rounded) at `price` (limit, stop, or the expected fill
        of a market order) would be refused by the exchange; None when it is acceptable."""
        if amount <= 0:
            return f"{self.symbol}: amount {amount:.12g} is not positive"
        if amount + 1e-15 < self.min_amount:
            return f"{self.symbol}: amount {amount:.12g} below the minimum {self.min_amount:.12g}"
        steps = _d(amount) / _d(self.amount_step)
        if steps != steps.to_integral_value():
            return f"{self.symbol}: amount {amount:.12g} is not a multiple of the step {self.amount_step:.12g}"
        if price is not None:
            if price <= 0:
                return f"{self.symbol}: price {price:.12g} is not positive"
            if self.price_tick:
                ticks = _d(price) / _d(self.price_tick)
                if ticks != ticks.to_integral_value():
                    return f"{self.symbol}: price {price:.12g} is not a multiple of the tick {self.price_tick:.12g}"
            notional = amount * price
            if notional + 1e-12 < self.min_notional:
                return (f"{self.symbol}: notional {notional:.8g} ({amount:.12g} x {price:.12g}) below "
                        f"the minimum {self.min_notional:.8g}")
        return None
