"""Simulated execution with a deterministic fill model (documented in the README):

- market buy  fills at reference * (1 + slippage_bp/10000); market sell at reference * (1 - slippage_bp/10000)
- limit sell (Fibonacci / take-profit exit) fills at its limit price: it is only sent once price reached it
- stop sell   fills at its trigger price minus slippage; the engine passes the bar's open as the
              trigger when the bar gapped through the stop
- every fill pays fee_bp/10000 of its notional, in quote currency, stored on the order

The reference price is the order's `expected_price` (in replay, the next bar's open for an
entry). The paper venue lives in this process: if the process dies after an order row was
committed but before its fill was, the venue died with it and never saw the order, so lookup()
answers None for anything it did not fill in this run."""
from __future__ import annotations

import logging

from agent.broker import MarketRules, OrderRejected
from persistence.records import OrderRecord

log = logging.getLogger(__name__)

DEFAULT_RULES = MarketRules(amount_step=1e-8, min_amount=1e-8, min_notional=5.0)


class PaperBroker:
    mode = "paper"

    def __init__(self, fee_bp: float, slippage_bp: float, rules: MarketRules = DEFAULT_RULES) -> None:
        self.fee_rate = fee_bp / 10_000
        self.slippage = slippage_bp / 10_000
        self.rules = rules
        self._filled: dict[str, OrderRecord] = {}

    async def market_rules(self) -> MarketRules:
        return self.rules

    async def place(self, order: OrderRecord, now_ms: int) -> OrderRecord:
        price = self._fill_price(order)
        if order.amount <= 0:
            raise OrderRejected(f"{order.client_order_id}: amount must be positive, got {order.amount}")
        order.fill_price = price
        order.filled_amount = order.amount
        order.fee = price * order.amount * self.fee_rate
        order.status = "filled"
        order.exchange_order_id = f"paper-{order.client_order_id}"
        order.updated_ts = now_ms
        self._filled[order.client_order_id] = order
        return order

    async def lookup(self, client_order_id: str) -> OrderRecord | None:
        return self._filled.get(client_order_id)

    def _fill_price(self, order: OrderRecord) -> float:
        sign = 1.0 if order.side == "buy" else -1.0
        if order.type == "market":
            if order.expected_price is None:
                raise OrderRejected(f"{order.client_order_id}: a paper market order needs a reference price")
            return order.expected_price * (1 + sign * self.slippage)
        if order.type == "limit":
            if order.limit_price is None:
                raise OrderRejected(f"{order.client_order_id}: limit order without a limit price")
            return order.limit_price
        if order.type == "stop":
            trigger = order.expected_price if order.expected_price is not None else order.stop_price
            if trigger is None:
                raise OrderRejected(f"{order.client_order_id}: stop order without a stop price")
            return trigger * (1 + sign * self.slippage)
        raise OrderRejected(f"{order.client_order_id}: unknown order type {order.type!r}")
