"""A simulated exchange in this process: resting orders matched against the live part of the
market feed, durable in its own SQLite file so a restarted paper account resumes exactly.

Fill model (deterministic, documented in the README):
- a market buy fills at the latest live price x (1 + slippage), a market sell x (1 - slippage);
  with no live price yet (just after a start) it waits for the first one, never an old price.
  On live prices with the exchange's streamed order book (book_stream, set by the live paper
  session) a market order walks the book for its size instead: the average price of the asks
  (a buy) or bids (a sell) it takes, as at the exchange; when the book is not healthy or too
  thin, the slippage model, said in the log. A replay has no book: the backtest's model;
- a resting limit sell fills at its limit price once price reaches it;
- a resting stop sell fills at its stop price minus slippage once price touches it, or at the
  price that jumped through it (a bar's open gapping below it) minus slippage;
- every fill pays fee_bp/10000 of its notional, in quote currency.

Matching against a closed bar follows the backtest's intrabar rules (STRATEGY.md): an order
resting before the bar opened is first checked against the open (a gap through the stop), then
against the range in the order of its group's legs (stop, then target, then take-profit). An
order placed during a bar (the exits placed right after an entry at the bar's open) is matched
against the rest of that bar, not against the open it was placed at.

The venue is the other party of every order: its state commits on its own, before it reports,
so a crash of the agent between a fill and the agent recording it leaves the fill here to be
looked up, as it would at an exchange. Its commits are not fsynced (WAL, synchronous=NORMAL):
they survive the process being killed at any instant, not a power cut or an OS crash, after
which this simulated account may have lost its last changes while trades.db (whose orders and
fills are fsynced) kept them. An order it lost reads as never received, as at an exchange;
a lost fill leaves the account disagreeing with the ledger (exits refused for want of base
stop the start-up). After a power cut a paper account is best started afresh. Paper money
only: testnet and live trade through the exchange venue, which keeps no file here.
"""
from __future__ import annotations

import json
import logging
import sqlite3
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from agent.venue import MarketRules, OrderRejected, OrderUpdate, UpdateCallback, walk_book
from data.market import BarClosed, BarOpened, MarketEvent, PriceUpdate
from persistence.records import OrderRecord

log = logging.getLogger(__name__)

DEFAULT_RULES = MarketRules(amount_step=1e-8, min_amount=1e-8, min_notional=5.0, price_tick=0.0)

Key = tuple[int, int]             # (time, phase): the order in which market events happen
_START: Key = (-1, 0)


def event_key(event: MarketEvent) -> Key | None:
    """BarOpened < PriceUpdates of that bar < the bar's range (BarClosed) < the next BarOpened."""
    if isinstance(event, BarOpened):
        return (event.ts, 0)
    if isinstance(event, PriceUpdate):
        return (event.ts, 1)
    if isinstance(event, BarClosed):
        return (event.close_ts, -1)
    return None


@dataclass(slots=True)
class _Resting:
    order: OrderRecord
    placed_at: Key                # the venue's cursor when it arrived


_SCHEMA = """
CREATE TABLE IF NOT EXISTS orders (
    seq              INTEGER PRIMARY KEY,
    client_order_id  TEXT NOT NULL UNIQUE,
    placed_at        TEXT NOT NULL,
    record           TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS venue_state (
    key    TEXT PRIMARY KEY,
    value  TEXT NOT NULL
);
"""


class PaperVenue:
    mode = "paper"
    supports_oco = True

    def __init__(self, fee_bp: float, slippage_bp: float, *, base: str, quote: str,
                 initial_quote: float, path: Path | None = None,
                 rules: MarketRules = DEFAULT_RULES) -> None:
        self.fee_rate = fee_bp / 10_000
        self.slippage = slippage_bp / 10_000
        self.rules = rules
        self.base, self.quote = base, quote
        self._callback: UpdateCallback | None = None
        self.book_stream: Any = None           # live paper: a data.book_stream.BookStream (see above)
        self._conn = sqlite3.connect(str(path) if path else ":memory:", check_same_thread=False)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")    # see the module docstring
        self._conn.executescript(_SCHEMA)
        self._orders: dict[str, _Resting] = {}
        self._resting: list[str] = []          # client ids of open orders, in arrival order
        self._cursor: Key = _START
        self._price: float | None = None       # the latest LIVE price; never restored from disk
        self._now: int = 0
        self._balances = {base: 0.0, quote: float(initial_quote)}
        self._load()

    # ----- persistence ------------------------------------------------------------------------
    def _load(self) -> None:
        for cid, placed, record in self._conn.execute(
                "SELECT client_order_id, placed_at, record FROM orders ORDER BY seq"):
            order = OrderRecord(**json.loads(record))
            self._orders[cid] = _Resting(order, tuple(json.loads(placed)))
            if order.status == "open":
                self._resting.append(cid)
        state = dict(self._conn.execute("SELECT key, value FROM venue_state"))
        if "cursor" in state:
            self._cursor = tuple(json.loads(state["cursor"]))
            self._now = self._cursor[0]
        if "balances" in state:
            self._balances = json.loads(state["balances"])

    def _save(self, *orders: OrderRecord) -> None:
        """Commit the venue's side of a change before anyone hears of it."""
        for given in orders:
            item = self._orders[given.client_order_id]          # the venue's own copy
            self._conn.execute(
                "INSERT INTO orders (client_order_id, placed_at, record) VALUES (?, ?, ?) "
                "ON CONFLICT (client_order_id) DO UPDATE SET record = excluded.record",
                (given.client_order_id, json.dumps(list(item.placed_at)), json.dumps(asdict(item.order))))
        self._conn.execute("INSERT OR REPLACE INTO venue_state VALUES ('cursor', ?)",
                           (json.dumps(list(self._cursor)),))
        self._conn.execute("INSERT OR REPLACE INTO venue_state VALUES ('balances', ?)",
                           (json.dumps(self._balances),))
        self._conn.commit()

    # ----- the Venue interface ----------------------------------------------------------------
    async def market_rules(self) -> MarketRules:
        return self.rules

    def on_update(self, callback: UpdateCallback) -> None:
        self._callback = callback

    async def place(self, order: OrderRecord) -> OrderRecord:
        self._accept(order)
        if order.type == "market" and self._price is not None:
            price = self._market_price(order.side, self._price, order.amount)
            self._fill(order.client_order_id, price)  # saves
        elif order.type == "market":
            self._save(order)
            log.warning("paper venue: market %s of %.8g waits for the first live price",
                        order.side, order.amount)
        else:
            self._save(order)
        return replace(self._orders[order.client_order_id].order)

    async def place_exit_group(self, legs: list[OrderRecord]) -> list[OrderRecord]:
        if len({leg.group_id for leg in legs}) != 1 or legs[0].group_id is None:
            raise OrderRejected("the legs of an exit group must share one group id")
        for leg in legs:
            if leg.side != "sell" or leg.type not in ("limit", "stop"):
                raise OrderRejected(f"{leg.client_order_id}: exit legs are limit or stop sells")
            self._accept(leg)
        self._save(*legs)
        return [replace(self._orders[leg.client_order_id].order) for leg in legs]

    async def cancel(self, client_order_id: str) -> OrderRecord | None:
        item = self._orders.get(client_order_id)
        if item is None:
            return None
        if item.order.status == "open":
            item.order.status, item.order.updated_ts = "canceled", self._now
            item.order.reason = item.order.reason or "canceled"
            self._resting.remove(client_order_id)
            self._save(item.order)
        return replace(item.order)

    async def lookup(self, client_order_id: str) -> OrderRecord | None:
        item = self._orders.get(client_order_id)
        return None if item is None else replace(item.order)

    async def open_orders(self) -> list[OrderRecord]:
        return [replace(self._orders[cid].order) for cid in self._resting]

    async def balances(self) -> dict[str, float]:
        return dict(self._balances)

    async def close(self) -> None:
        self.close_now()

    def close_now(self) -> None:
        """Close the account's file, with the last market event seen (a clean stop resumes
        exactly; after a crash the cursor is the one of the last order change, and the events
        seen since then changed nothing, so matching them again changes nothing either)."""
        try:
            self._save()
        except sqlite3.Error as exc:
            log.warning("paper venue: could not record its last market event: %s", exc)
        self._conn.close()

    # ----- market data ------------------------------------------------------------------------
    def on_market(self, event: MarketEvent) -> None:
        """Match resting orders against a live market event. Catch-up events and events this
        venue already processed before a restart change nothing."""
        kind = type(event)
        if kind is BarOpened:
            key: Key = (event.ts, 0)
        elif kind is BarClosed:
            key = (event.close_ts, -1)
        elif kind is PriceUpdate:
            key = (event.ts, 1)
        else:
            return
        if not event.live or key <= self._cursor:
            return
        self._cursor = key
        if kind is BarClosed:
            if self._resting:
                self._match_range(event, key)
            self._now, self._price = event.close_ts, event.bar.close
            if self._resting:
                self._fill_waiting_market_orders()
        else:
            self._now, self._price = event.ts, event.price
            if self._resting:
                self._match_price(event.ts, event.price, key, gap=kind is BarOpened)

    def _match_price(self, ts: int, price: float, key: Key, gap: bool) -> None:
        for cid in list(self._resting):
            item = self._orders.get(cid)
            if item is None or item.order.status != "open" or item.placed_at >= key:
                continue
            o = item.order
            if o.type == "market":
                self._fill(cid, self._market_price(o.side, price, o.amount))
            elif o.type == "stop" and o.stop_price is not None and price <= o.stop_price:
                # A jump through the stop (a gap at the open, or a tick below it) fills at the
                # price that jumped, minus slippage: the stop became a market order there.
                self._fill(cid, min(price, o.stop_price) * (1 - self.slippage),
                           reason="gap" if gap else None)
            elif o.type == "limit" and o.limit_price is not None and price >= o.limit_price:
                self._fill(cid, o.limit_price)

    def _match_range(self, event: BarClosed, key: Key) -> None:
        bar = event.bar
        self._now = bar.ts             # a fill inside the bar is stamped with the bar's open time
        for cid in list(self._resting):
            item = self._orders.get(cid)
            if item is None or item.order.status != "open" or item.placed_at >= key:
                continue
            o = item.order
            if o.type == "stop" and o.stop_price is not None and bar.low <= o.stop_price:
                self._fill(cid, o.stop_price * (1 - self.slippage))
            elif o.type == "limit" and o.limit_price is not None and bar.high >= o.limit_price:
                self._fill(cid, o.limit_price)

    def _fill_waiting_market_orders(self) -> None:
        assert self._price is not None
        for cid in list(self._resting):
            o = self._orders[cid].order
            if o.type == "market" and o.status == "open":
                self._fill(cid, self._market_price(o.side, self._price, o.amount))

    # ----- internals --------------------------------------------------------------------------
    def _accept(self, order: OrderRecord) -> None:
        cid = order.client_order_id
        if cid in self._orders:
            raise OrderRejected(f"{cid}: duplicate client order id")
        if order.amount <= 0:
            raise OrderRejected(f"{cid}: amount must be positive, got {order.amount}")
        if order.type == "limit" and order.limit_price is None:
            raise OrderRejected(f"{cid}: limit order without a limit price")
        if order.type == "stop" and order.stop_price is None:
            raise OrderRejected(f"{cid}: stop order without a stop price")
        if order.type not in ("market", "limit", "stop"):
            raise OrderRejected(f"{cid}: unknown order type {order.type!r}")
        free = self._free_base(order.group_id)
        if order.side == "sell" and order.amount > free + 1e-12:
            raise OrderRejected(f"{cid}: insufficient {self.base}: selling {order.amount:.8g}, "
                                f"free {free:.8g}")
        mine = replace(order, status="open", exchange_order_id=f"paper-{cid}", updated_ts=self._now,
                       filled_amount=0.0, fee=0.0, fill_price=None)
        self._orders[cid] = _Resting(mine, self._cursor)
        self._resting.append(cid)

    def _free_base(self, group_id: str | None) -> float:
        """Base not locked by resting sells; the legs of one group share one lock, as the legs
        of an exchange's OCO list do."""
        locked: dict[str, float] = {}
        for cid in self._resting:
            o = self._orders[cid].order
            if o.side == "sell" and (group_id is None or o.group_id != group_id):
                key = o.group_id or cid
                locked[key] = max(locked.get(key, 0.0), o.amount)
        return self._balances.get(self.base, 0.0) - sum(locked.values())

    def _market_price(self, side: str, price: float, amount: float) -> float:
        stream = self.book_stream
        if stream is not None:
            book = stream.book()
            if book is not None:
                quote = walk_book(book.get("asks" if side == "buy" else "bids") or [], amount)
                if quote is not None and quote.fillable + 1e-12 >= amount:
                    return quote.average_price
                why = "the streamed order book does not hold the size"
            else:
                why = f"no usable order book: {stream.why_not()}"
            log.warning("paper venue: market %s of %.8g filled at the last price %s %g bp slippage (%s)",
                        side, amount, "+" if side == "buy" else "-", self.slippage * 10_000, why)
        return price * (1 + self.slippage) if side == "buy" else price * (1 - self.slippage)

    def _fill(self, cid: str, price: float, reason: str | None = None) -> None:
        o = self._orders[cid].order
        o.status, o.fill_price, o.filled_amount = "filled", price, o.amount
        o.fee = price * o.amount * self.fee_rate
        o.updated_ts = self._now
        if reason == "gap" and o.reason and not o.reason.endswith("_GAP"):
            o.reason = f"{o.reason}_GAP"
        self._resting.remove(cid)
        sign = 1.0 if o.side == "buy" else -1.0
        self._balances[self.base] = self._balances.get(self.base, 0.0) + sign * o.amount
        self._balances[self.quote] = self._balances.get(self.quote, 0.0) - sign * price * o.amount - o.fee
        changed = [o]
        if o.group_id is not None:     # one-cancels-the-other
            for other in list(self._resting):
                leg = self._orders[other].order
                if leg.group_id == o.group_id:
                    leg.status, leg.updated_ts, leg.reason = "canceled", self._now, f"OCO: {cid} filled"
                    self._resting.remove(other)
                    changed.append(leg)
        self._save(*changed)
        if self._callback is not None:
            for order in changed:
                self._callback(OrderUpdate(replace(order), self._now))
