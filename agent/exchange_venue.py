"""The Venue protocol against a real exchange (Binance spot, testnet or live) through
data.exchange. The engine cannot tell it from the paper venue.

- Every order carries the engine's client order id (`newClientOrderId`), so it can always be
  looked up; market rules (step, tick, minimum amount and notional) are applied before sending:
  an order that breaks one is refused here with the reason.
- A submit whose outcome is unknown (timeout, cut connection, 5xx) is looked up once at once;
  if the exchange does not know it yet, OrderOutcomeUnknown is raised and the order manager keeps
  looking it up. It is never sent again.
- Exits: one stop and a target become ONE Binance OCO order list (LIMIT_MAKER above, STOP_LOSS
  below), because a resting sell locks the base asset. With two targets (Fibonacci and
  take-profit) the nearer one rests (price reaches it first) and the farther leg is reported
  canceled. An exit already due (target at or below the last price, stop at or above it) is sold
  at market under that leg's client id instead.
- Fills are reported at the exchange's average price and time; fees are converted to quote
  currency; a buy whose commission was taken in the base asset reports the NET amount received
  (what can be sold) and the commission's quote value as the fee.
- Entries: `quote_buy` walks the order book for the exact size (the engine skips an entry whose
  estimated slippage is beyond its tolerance). The book is streamed while the venue lives
  (data.book_stream: the diff-depth stream, synchronised by update id), so the check costs no
  REST call and no rate-limit weight in front of the order; when the stream is not healthy (not
  synchronised, or no update for BOOK_MAX_AGE_S) or its levels cannot fill the size, the book is
  read over REST (prefetched at the signal) and the log says why. A market entry the exchange acknowledges without
  filling it at once is watched for `order_timeout_s`; then what is left of it is canceled (never
  sent again) and its final view reported: a partial fill becomes the position.
- Order updates come from the exchange's user data stream (ccxt `watch_orders`; for Binance
  spot the WebSocket API subscription, no listenKey) within milliseconds of a fill, from every
  answer the exchange gives about an order, and from polling the orders still open (fetch_order
  by id). Every update carries the order's whole state and goes through the same path
  (`_view`: fees from the fills, asked for over REST when the stream's fills do not add up to
  the filled amount), so a repeat between stream and poll changes nothing; a view older than
  the one already known (a poll reply overtaken by the stream) is not reported. While the
  stream is subscribed the poller runs every `stream_poll_interval_s` (a safety net); when it
  drops, polling goes back to `poll_interval_s` at once and the stream is resubscribed with
  exponential backoff and jitter (tenacity); after every (re)subscription the open orders are
  looked up once, so nothing that happened during the gap is missed.
"""
from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import replace
from typing import Any

import ccxt

from agent.venue import (BookQuote, MarketRules, OrderOutcomeUnknown, OrderRejected, OrderUpdate,
                         UpdateCallback, walk_book)
from data.book_stream import MAX_AGE_S, BookStream
from data.exchange import ExchangeClient
from data.exchange_errors import ErrorClass, SubmitAmbiguous, classify, keep_subscribed, redact
from data.market_rules import PairRules
from monitoring.redaction import redact as redact_secrets
from persistence.records import OrderRecord

log = logging.getLogger(__name__)

STATUS = {"open": "open", "closed": "filled", "canceled": "canceled", "canceling": "open",
          "expired": "canceled", "rejected": "rejected"}
FINAL = ("filled", "canceled", "rejected")


def behind(new: OrderRecord, known: OrderRecord) -> bool:
    """`new` is an older view of the order than `known` (less filled, or open after final)."""
    if new.filled_amount + 1e-12 < known.filled_amount:
        return True
    return known.status in FINAL and new.status not in FINAL


BOOK_MAX_AGE_S = MAX_AGE_S    # a streamed or prefetched order book older than this is not used


def _quiet(task: asyncio.Task) -> None:
    """A prefetch that failed is read again at the entry, where its error is classified."""
    if not task.cancelled() and task.exception() is not None:
        log.debug("order book prefetch failed: %s", redact_secrets(str(task.exception())))


class ExchangeVenue:
    supports_oco = True

    def __init__(self, client: ExchangeClient, symbol: str, *, mode: str = "testnet",
                 poll_interval_s: float = 1.0, owns_client: bool = True,
                 order_timeout_s: float = 30.0, user_stream: bool = True,
                 stream_poll_interval_s: float | None = None, stream_backoff_s: float = 0.5,
                 stream_backoff_max_s: float = 30.0, stream_reset_after_s: float = 60.0,
                 stream_check_s: float = 5.0, book_stream: bool = True) -> None:
        if mode not in ("testnet", "live"):
            raise ValueError(f"an exchange venue is testnet or live, not {mode!r}")
        self.client = client
        self.symbol = symbol
        self.base, self.quote = symbol.split("/")
        self.mode = mode
        self.poll_interval_s = poll_interval_s
        self.order_timeout_s = order_timeout_s
        self._deadlines: dict[str, asyncio.Task] = {}  # entry client id -> its timeout
        self.owns_client = owns_client
        self.rules: PairRules | None = None
        self._callback: UpdateCallback | None = None
        self._known: dict[str, OrderRecord] = {}      # our orders: the last view reported
        self._watch: set[str] = set()                 # client ids still open at the exchange
        self._poller: asyncio.Task | None = None
        self._closed = False
        self._book: tuple[float, int, dict] | None = None   # (monotonic time, depth, book)
        self._book_task: asyncio.Task | None = None
        self.book_stream: BookStream | None = None
        self.book_stream_enabled = book_stream
        self.book_rest_reads = 0                      # entries whose book came from REST
        # user data stream
        self.user_stream = user_stream
        self.stream_poll_interval_s = (stream_poll_interval_s if stream_poll_interval_s is not None
                                       else 10 * poll_interval_s)
        self.stream_backoff_s = stream_backoff_s
        self.stream_backoff_max_s = stream_backoff_max_s
        self.stream_reset_after_s = stream_reset_after_s
        self.stream_check_s = stream_check_s
        self.stream_healthy = False
        self.stream_subscriptions = 0                 # successful (re)subscriptions
        self.stream_updates = 0                       # order updates the stream reported
        self._stream: asyncio.Task | None = None
        self._stream_seen: dict[str, tuple] = {}      # client id -> last stream state handled
        self._poll_wake = asyncio.Event()

    # ----- rules ------------------------------------------------------------------------------
    async def market_rules(self) -> MarketRules:
        r = await self._pair_rules()
        return MarketRules(amount_step=r.amount_step, min_amount=r.min_amount,
                           min_notional=r.min_notional, price_tick=r.price_tick)

    async def _pair_rules(self) -> PairRules:
        self._ensure_stream()
        self._ensure_book_stream()
        if self.rules is None:
            try:
                await self.client.load_markets()
                self.rules = PairRules.from_market(self.client.market(self.symbol))
            except ccxt.BaseError as exc:
                raise OrderOutcomeUnknown(f"market rules of {self.symbol} unavailable: {redact(str(exc))[:200]}") from exc
        return self.rules

    def on_update(self, callback: UpdateCallback) -> None:
        self._callback = callback

    def remember(self, order: OrderRecord) -> None:
        """An order of ours from before a restart (the store's row): lookups describe it as ours
        (purpose, reason), not as a foreign order."""
        self._known.setdefault(order.client_order_id, replace(order))

    # ----- order book -------------------------------------------------------------------------
    def _ensure_book_stream(self) -> None:
        """Stream the book from the venue's first use on (idempotent)."""
        if not self.book_stream_enabled or self._closed:
            return
        if self.book_stream is None:
            if not (getattr(self.client.ex, "has", {}) or {}).get("watchOrderBook"):
                log.info("%s: no order book stream (watch_order_book unsupported): entries read the book "
                         "over REST", self.symbol)
                self.book_stream_enabled = False
                return
            self.book_stream = BookStream(self.client.ex, self.symbol)
        try:
            self.book_stream.start()
        except RuntimeError:                          # no running loop yet: started at the next use
            pass

    def _streamed_quote(self, amount: float) -> BookQuote | None:
        """The quote from the streamed book when it is healthy and holds the size (else None:
        read REST, deeper if need be)."""
        book = self.book_stream.book() if self.book_stream is not None else None
        if book is None:
            return None
        quote = walk_book(book.get("asks") or [], amount)
        if quote is None or quote.fillable + 1e-12 < amount:
            return None
        return quote

    def prefetch_book(self) -> None:
        """A signal was just found. With a healthy streamed book there is nothing to do; else
        read the order book now, in the background, so the entry at the next price walks a book
        at most BOOK_MAX_AGE_S old instead of waiting for a round trip (and for the rate
        limiter's spacing) in front of its order."""
        if self.book_stream is not None and self.book_stream.book() is not None:
            return
        if self._book_task is None or self._book_task.done():
            self._book_task = asyncio.get_running_loop().create_task(
                self._read_book(100), name="order-book-prefetch")
            self._book_task.add_done_callback(_quiet)

    async def _read_book(self, limit: int) -> dict:
        book = await self.client.order_book(self.symbol, limit)
        self._book = (time.monotonic(), limit, book)
        return book

    async def _fresh_book(self, limit: int) -> dict:
        task = self._book_task
        if limit == 100 and task is not None and not task.done():
            try:
                await asyncio.shield(task)
            except Exception:                         # read it again below, errors classified there
                pass
        held = self._book
        if held is not None and held[1] >= limit and time.monotonic() - held[0] <= BOOK_MAX_AGE_S:
            return held[2]
        return await self._read_book(limit)

    async def quote_buy(self, amount: float) -> BookQuote:
        """Buying `amount` at market now, estimated from the streamed order book; over REST
        when the stream is not healthy or cannot fill the size (deeper when the first 100 levels
        do not hold it), a book prefetched at the signal used while fresh."""
        quote = self._streamed_quote(amount)
        if quote is not None:
            return quote
        self.book_rest_reads += 1
        if self.book_stream is not None:
            held = self.book_stream.book()
            why = (self.book_stream.why_not() if held is None
                   else f"its {len(held.get('asks') or [])} ask levels do not hold {amount:.8g}")
            log.info("order book stream of %s not used for this entry (%s): reading the book over REST",
                     self.symbol, why)
        book: dict = {}
        for limit in (100, 1000):
            try:
                book = await self._fresh_book(limit)
            except ccxt.BaseError as exc:
                raise OrderOutcomeUnknown(f"order book of {self.symbol} unavailable: {type(exc).__name__}") from exc
            quote = walk_book(book.get("asks") or [], amount)
            if quote is None:
                raise OrderOutcomeUnknown(f"order book of {self.symbol} has no asks")
            if quote.fillable + 1e-12 >= amount or len(book.get("asks") or []) < limit:
                return quote
        return quote

    # ----- orders -----------------------------------------------------------------------------
    async def place(self, order: OrderRecord) -> OrderRecord:
        rules = await self._pair_rules()
        amount = rules.round_amount(order.amount)
        if order.type == "market":
            price = order.expected_price if order.expected_price is not None else await self._last_price()
            ccxt_type, ccxt_price, params = "market", None, {}
        elif order.type == "limit" and order.limit_price is not None:
            price = rules.round_price(order.limit_price, up=order.side == "sell")
            ccxt_type, ccxt_price, params = "limit", price, {"timeInForce": "GTC"}
        elif order.type == "stop" and order.stop_price is not None:
            price = rules.round_price(order.stop_price, up=order.side == "sell")
            ccxt_type, ccxt_price, params = "STOP_LOSS", None, {"stopPrice": price}
        else:
            raise OrderRejected(f"{order.client_order_id}: cannot send a {order.type} order without its price")
        why = rules.violation(amount, price)
        if why is not None:
            raise OrderRejected(f"{order.client_order_id} refused before sending: {why}")
        params["clientOrderId"] = order.client_order_id
        self._known.setdefault(order.client_order_id, replace(order))   # the stream may answer first
        try:
            raw = await self.client.create_order(self.symbol, ccxt_type, order.side, amount, ccxt_price, params)
        except SubmitAmbiguous as exc:
            return await self._after_ambiguous(order, exc)
        except ccxt.BaseError as exc:
            raise OrderRejected(f"{order.client_order_id}: {type(exc).__name__}: {redact(str(exc))[:300]}") from exc
        view = await self._view(order, raw)
        self._arm_entry_timeout(view)
        return view

    async def place_exit_group(self, legs: list[OrderRecord]) -> list[OrderRecord]:
        if not legs or len({leg.group_id for leg in legs}) != 1 or legs[0].group_id is None:
            raise OrderRejected("the legs of an exit group must share one group id")
        if any(leg.side != "sell" or leg.type not in ("limit", "stop") for leg in legs):
            raise OrderRejected("exit legs are limit or stop sells")
        rules = await self._pair_rules()
        stops = [leg for leg in legs if leg.type == "stop"]
        limits = sorted((leg for leg in legs if leg.type == "limit"), key=lambda leg: leg.limit_price or 0.0)
        if len(stops) > 1:
            raise OrderRejected("an exit group has at most one stop")
        target = limits[0] if limits else None
        dropped = [replace(leg, status="canceled", updated_ts=self._now(),
                           reason=f"{leg.reason}: superseded by the nearer target {target.client_order_id}")
                   for leg in limits[1:]] if target else []
        stop = stops[0] if stops else None
        last = await self._last_price()
        due = self._due(target, stop, last)
        if due is not None:
            return await self._sell_due(legs, due, target, stop, dropped, last)
        if target is None or stop is None:
            single = await self.place(target or stop)   # type: ignore[arg-type]
            return self._in_order(legs, [single, *dropped])
        amount = rules.round_amount(target.amount)
        above = rules.round_price(target.limit_price, up=True)   # type: ignore[arg-type]
        below = rules.round_price(stop.stop_price, up=True)       # type: ignore[arg-type]
        for p in (above, below):
            why = rules.violation(amount, p)
            if why is not None:
                raise OrderRejected(f"{target.group_id} refused before sending: {why}")
        market = self.client.market(self.symbol)
        request = {"symbol": market["id"], "side": "SELL", "quantity": self.client.ex.amount_to_precision(self.symbol, amount),
                   "listClientOrderId": target.group_id,
                   "aboveType": "LIMIT_MAKER", "abovePrice": self.client.ex.price_to_precision(self.symbol, above),
                   "aboveClientOrderId": target.client_order_id,
                   "belowType": "STOP_LOSS", "belowStopPrice": self.client.ex.price_to_precision(self.symbol, below),
                   "belowClientOrderId": stop.client_order_id, "newOrderRespType": "FULL"}
        for leg in (target, stop):
            self._known.setdefault(leg.client_order_id, replace(leg))
        try:
            raw = await self.client.create_oco(request)
        except SubmitAmbiguous as exc:
            found = [await self._lookup_quiet(leg) for leg in (target, stop)]
            if all(f is not None for f in found):
                return self._in_order(legs, [*found, *dropped])   # type: ignore[list-item]
            raise OrderOutcomeUnknown(str(exc)) from exc
        except ccxt.InvalidOrder as exc:
            # Binance: "The relationship of the prices for the orders is not correct." The price
            # crossed a leg between the read above and the list: that exit is due now.
            now = await self._last_price() if "relationship of the prices" in str(exc) else None
            due = self._due(target, stop, now) if now is not None else None
            if due is None:
                raise OrderRejected(f"{target.group_id}: {type(exc).__name__}: {redact(str(exc))[:300]}") from exc
            return await self._sell_due(legs, due, target, stop, dropped, now)   # type: ignore[arg-type]
        except ccxt.BaseError as exc:
            raise OrderRejected(f"{target.group_id}: {type(exc).__name__}: {redact(str(exc))[:300]}") from exc
        reports = {r.get("clientOrderId"): r for r in raw.get("orderReports", [])}
        views = []
        for leg in (target, stop):
            report = reports.get(leg.client_order_id)
            parsed = self.client.ex.parse_order(report, market) if report else None
            views.append(await self._view(leg, parsed) if parsed else await self._lookup_or_unknown(leg))
        return self._in_order(legs, [*views, *dropped])

    @staticmethod
    def _due(target: OrderRecord | None, stop: OrderRecord | None, last: float) -> OrderRecord | None:
        """The exit leg the last price has already reached (target at or below it, stop at or
        above it), if any."""
        if target is not None and (target.limit_price or 0.0) <= last:
            return target
        if stop is not None and (stop.stop_price or 0.0) >= last:
            return stop
        return None

    async def _sell_due(self, legs: list[OrderRecord], due: OrderRecord, target: OrderRecord | None,
                        stop: OrderRecord | None, dropped: list[OrderRecord], last: float) -> list[OrderRecord]:
        """The exit is due now: sell at market under the due leg's id, the other legs canceled."""
        log.warning("exit %s is due at %.8g (last price): selling at market", due.client_order_id, last)
        others = [replace(leg, status="canceled", updated_ts=self._now(),
                          reason=f"{leg.reason}: {due.client_order_id} was due at once")
                  for leg in (target, stop) if leg is not None and leg is not due]
        sold = await self.place(replace(due, type="market", expected_price=last))
        return self._in_order(legs, [sold, *others, *dropped])

    async def cancel(self, client_order_id: str) -> OrderRecord | None:
        try:
            raw = await self.client.cancel_by_client_id(self.symbol, client_order_id)
        except ccxt.BaseError as exc:
            if classify(exc) is ErrorClass.TRANSIENT:
                raise OrderOutcomeUnknown(f"cancel {client_order_id}: {type(exc).__name__}") from exc
            raise OrderRejected(f"cancel {client_order_id}: {type(exc).__name__}: {redact(str(exc))[:200]}") from exc
        if raw is None:
            log.info("cancel %s: no open order by that id at the exchange; looking it up", client_order_id)
        # the cancel reply is thin (and names the cancel's own id): ask for the order itself
        return await self.lookup(client_order_id)

    async def lookup(self, client_order_id: str) -> OrderRecord | None:
        try:
            raw = await self.client.order_by_client_id(self.symbol, client_order_id)
        except ccxt.BaseError as exc:
            raise OrderOutcomeUnknown(f"lookup {client_order_id}: {type(exc).__name__}: {redact(str(exc))[:200]}") from exc
        if raw is None:
            return None
        base = self._known.get(client_order_id) or self._foreign(raw)
        return await self._view(base, raw)

    async def open_orders(self) -> list[OrderRecord]:
        try:
            rows = await self.client.open_orders(self.symbol)
        except ccxt.BaseError as exc:
            raise OrderOutcomeUnknown(f"open orders: {type(exc).__name__}") from exc
        out = []
        for raw in rows:
            cid = raw.get("clientOrderId")
            base = self._known.get(cid) if cid else None
            out.append(self._record(base or self._foreign(raw), raw, []))
        return out

    async def balances(self) -> dict[str, float]:
        self._ensure_stream()
        try:
            bal = await self.client.balance()
        except ccxt.BaseError as exc:
            raise OrderOutcomeUnknown(f"balances: {type(exc).__name__}") from exc
        return {asset: float(v) for asset, v in (bal.get("total") or {}).items() if v is not None}

    async def balance_sheet(self) -> dict[str, tuple[float, float]]:
        """(free, locked) per asset, from one read: the engine's cash is the free quote."""
        try:
            bal = await self.client.balance()
        except ccxt.BaseError as exc:
            raise OrderOutcomeUnknown(f"balances: {type(exc).__name__}") from exc
        free, used = bal.get("free") or {}, bal.get("used") or {}
        return {asset: (float(free.get(asset) or 0.0), float(used.get(asset) or 0.0))
                for asset in set(free) | set(used)}

    async def close(self) -> None:
        self._closed = True
        self.stream_healthy = False
        if self.book_stream is not None:
            await self.book_stream.close()
        tasks = [t for t in (self._poller, self._stream, *self._deadlines.values()) if t is not None]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._deadlines.clear()
        if self.owns_client:
            await self.client.close()

    # ----- entry timeout ------------------------------------------------------------------------
    def _arm_entry_timeout(self, view: OrderRecord) -> None:
        """A market entry still working at the exchange: cancel what is left of it after
        order_timeout_s (PRD: wait for the fill, then cancel; never retry)."""
        cid = view.client_order_id
        if view.purpose != "entry" or view.status != "open" or cid in self._deadlines or self._closed:
            return
        log.warning("entry %s acknowledged but not filled (%.8g of %.8g): waiting up to %g s for the fill",
                    cid, view.filled_amount, view.amount, self.order_timeout_s)
        self._deadlines[cid] = asyncio.get_running_loop().create_task(
            self._entry_deadline(cid), name=f"entry-timeout {cid}")

    async def _entry_deadline(self, cid: str) -> None:
        try:
            await asyncio.sleep(self.order_timeout_s)
            while not self._closed and cid in self._watch:
                try:
                    final = await self.cancel_after_timeout(cid)
                except (OrderOutcomeUnknown, OrderRejected) as exc:
                    log.warning("canceling entry %s after its timeout failed (%s); trying again", cid, exc)
                    await asyncio.sleep(self.poll_interval_s)
                    continue
                if final is not None and final.status != "open" and self._callback is not None:
                    self._callback(OrderUpdate(replace(final), final.updated_ts or self._now()))
                if final is None or final.status != "open":
                    return
                await asyncio.sleep(self.poll_interval_s)
        finally:
            self._deadlines.pop(cid, None)

    async def cancel_after_timeout(self, cid: str) -> OrderRecord | None:
        before = self._known.get(cid)
        log.warning("entry %s not filled within %g s (%.8g of %.8g filled): canceling the rest, "
                    "not retrying", cid, self.order_timeout_s, before.filled_amount if before else 0.0,
                    before.amount if before else 0.0)
        if before is not None:     # every later view of it (the poller's too) carries the reason
            self._known[cid] = replace(before, reason=f"not filled within order_timeout_seconds "
                                                      f"({self.order_timeout_s:g} s): the rest canceled, not retried")
        return await self.cancel(cid)

    # ----- user data stream ---------------------------------------------------------------------
    def _ensure_stream(self) -> None:
        """Start the user data stream at the venue's first use (idempotent)."""
        if not self.user_stream or self._closed or (self._stream is not None and not self._stream.done()):
            return
        ex = self.client.ex
        if not (getattr(ex, "has", {}) or {}).get("watchOrders") or not getattr(ex, "apiKey", None):
            log.info("%s: no user data stream (watch_orders unsupported or no API key): order updates "
                     "by polling every %g s", self.symbol, self.poll_interval_s)
            self.user_stream = False
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        self._stream = loop.create_task(self._stream_loop(), name="exchange-venue-user-stream")

    async def _stream_loop(self) -> None:
        """Keep the stream subscribed: exponential backoff with jitter between failed sessions,
        a fresh backoff after a session that was healthy for stream_reset_after_s."""
        await keep_subscribed(self._stream_session, closed=lambda: self._closed,
                              backoff_s=self.stream_backoff_s, backoff_max_s=self.stream_backoff_max_s,
                              what="user data stream", logger=log)

    def _stream_subscribed(self) -> bool:
        """False when the connection or its subscription is gone without the pending watch being
        told (Binance's eventStreamTerminated ends the subscription, not the watch)."""
        ex = self.client.ex
        url = (((ex.urls.get("api") or {}).get("ws") or {}).get("ws-api") or {}).get("spot")
        if not isinstance(url, str):
            return True                                   # not Binance's WebSocket API: cannot tell
        client = (getattr(ex, "clients", None) or {}).get(url)
        return client is not None and "spot" in client.subscriptions

    async def _stream_session(self) -> None:
        """Subscribe, look the open orders up once (what happened while unsubscribed), then apply
        every update until the stream fails (raises), or return after a long healthy session
        failed (the next one starts with a fresh backoff)."""
        ex = self.client.ex
        loop = asyncio.get_running_loop()
        healthy_since: float | None = None
        watch: asyncio.Future | None = None
        try:
            if isinstance(getattr(ex, "balance", None), dict):
                # ccxt 4.5 readies this cache in watch_orders, after the subscription: a balance
                # event in between would raise KeyError inside its receive loop
                ex.balance.setdefault("spot", {})
            if callable(getattr(ex, "authenticate", None)):
                await ex.authenticate({"type": "spot"})   # Binance spot: the WebSocket API subscription
            watch = asyncio.ensure_future(ex.watch_orders(self.symbol))
            await asyncio.sleep(0)                        # the watch's future exists from here on
            self.stream_healthy, healthy_since = True, loop.time()
            self.stream_subscriptions += 1
            log.info("user data stream subscribed (%s): polling every %g s as a safety net", self.symbol,
                     self.stream_poll_interval_s)
            await self.poll_now()                         # the gap before the subscription
            await self._drain_stream()
            while not self._closed:
                done, _ = await asyncio.wait({watch}, timeout=self.stream_check_s)
                if not done:
                    if not self._stream_subscribed():
                        raise ccxt.NetworkError("user data stream: subscription ended by the exchange")
                    continue
                watch.result()                            # raises what ended the stream
                await self._drain_stream()
                watch = asyncio.ensure_future(ex.watch_orders(self.symbol))
                await asyncio.sleep(0)
                await self._drain_stream()                # what arrived before the new watch existed
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self._stream_down(exc)
            if healthy_since is not None and loop.time() - healthy_since >= self.stream_reset_after_s:
                return
            raise
        finally:
            if watch is not None and not watch.done():
                watch.cancel()

    def _stream_down(self, exc: BaseException) -> None:
        self.stream_healthy = False
        self._poll_wake.set()                             # the poller goes back to its fast pace now
        if not self._closed:
            log.warning("user data stream lost (%s: %s): polling every %g s until it is back",
                        type(exc).__name__, redact_secrets(redact(str(exc)))[:200], self.poll_interval_s)

    async def _drain_stream(self) -> None:
        """Apply every order of ours whose cached stream state changed since last handled. ccxt
        wakes a watch only for messages that arrive while it waits; the cache has them all."""
        ex = self.client.ex
        while not self._closed:
            todo = []
            for raw in list(getattr(ex, "orders", None) or []):
                cid = raw.get("clientOrderId")
                if raw.get("symbol") != self.symbol or cid not in self._known:
                    continue
                key = (raw.get("status"), raw.get("filled"), raw.get("lastUpdateTimestamp"),
                       len(raw.get("trades") or []))
                if self._stream_seen.get(cid) != key:
                    todo.append((cid, key, raw))
            if not todo:
                return
            for cid, key, raw in todo:
                self._stream_seen[cid] = key
                self.stream_updates += 1
                record, changed = await self._view_changed(self._known[cid], raw)
                if changed:
                    self._report(record)

    # ----- internals --------------------------------------------------------------------------
    def _now(self) -> int:
        return time.time_ns() // 1_000_000

    async def _last_price(self) -> float:
        try:
            t = await self.client.ticker(self.symbol)
        except ccxt.BaseError as exc:
            raise OrderOutcomeUnknown(f"no price for {self.symbol}: {type(exc).__name__}") from exc
        return float(t["last"])

    async def _after_ambiguous(self, order: OrderRecord, exc: Exception) -> OrderRecord:
        log.error("submit of %s ambiguous (%s): looking it up, never resending", order.client_order_id, exc)
        self._known.setdefault(order.client_order_id, replace(order))
        found = await self._lookup_quiet(order)
        if found is not None:
            self._arm_entry_timeout(found)
            return found
        raise OrderOutcomeUnknown(f"{order.client_order_id}: {exc}") from exc

    async def _lookup_quiet(self, order: OrderRecord) -> OrderRecord | None:
        self._known.setdefault(order.client_order_id, replace(order))
        try:
            return await self.lookup(order.client_order_id)
        except OrderOutcomeUnknown:
            return None

    async def _lookup_or_unknown(self, order: OrderRecord) -> OrderRecord:
        found = await self._lookup_quiet(order)
        if found is None:
            raise OrderOutcomeUnknown(f"{order.client_order_id}: the exchange's reply did not describe it")
        return found

    @staticmethod
    def _in_order(legs: list[OrderRecord], views: list[OrderRecord]) -> list[OrderRecord]:
        by_id = {v.client_order_id: v for v in views}
        return [by_id[leg.client_order_id] for leg in legs]

    def _foreign(self, raw: dict) -> OrderRecord:
        """An order this process did not send (or forgot after a restart)."""
        kind = str(raw.get("type") or "").lower()
        return OrderRecord(client_order_id=raw.get("clientOrderId") or str(raw.get("id")), trade_id=None,
                           side=raw.get("side") or "sell",
                           type="stop" if "stop" in kind else ("limit" if "limit" in kind else "market"),
                           amount=float(raw.get("amount") or 0.0),
                           created_ts=int(raw.get("timestamp") or self._now()),
                           limit_price=float(raw["price"]) if raw.get("price") and "limit" in kind else None,
                           stop_price=float(raw["triggerPrice"]) if raw.get("triggerPrice") else None)

    async def _view(self, order: OrderRecord, raw: dict) -> OrderRecord:
        return (await self._view_changed(order, raw))[0]

    async def _view_changed(self, order: OrderRecord, raw: dict) -> tuple[OrderRecord, bool]:
        """The engine's record of the exchange's view; fees from the fills (asked for when the
        reply had none), and whether it moves the order on from the view known before."""
        filled = float(raw.get("filled") or 0.0)
        trades = raw.get("trades") or []
        if filled > 0 and abs(sum(float(t.get("amount") or 0.0) for t in trades) - filled) > 1e-12:
            try:
                trades = await self.client.order_trades(self.symbol, raw["id"])
            except ccxt.BaseError as exc:
                log.warning("fills of %s unavailable (%s): fee taken from the order", order.client_order_id,
                            type(exc).__name__)
                trades = []
        record = self._record(order, raw, trades)
        changed = self._remember(record)
        return replace(record), changed

    def _record(self, order: OrderRecord, raw: dict, trades: list[dict]) -> OrderRecord:
        status = STATUS.get(str(raw.get("status")), "open")
        filled = float(raw.get("filled") or 0.0)
        average = raw.get("average")
        fee_quote, fee_base = 0.0, 0.0
        fees = [t.get("fee") for t in trades if t.get("fee")] or list(raw.get("fees") or [])
        for f in fees:
            cost, cur = float(f.get("cost") or 0.0), f.get("currency")
            if cur == self.quote:
                fee_quote += cost
            elif cur == self.base:
                fee_base += cost
            elif cost:
                log.warning("%s: commission in %s is not converted to %s", order.client_order_id, cur, self.quote)
        price = float(average) if average else None
        if fee_base and price:
            fee_quote += fee_base * price
        net = filled - fee_base if order.side == "buy" else filled
        ts = raw.get("lastUpdateTimestamp") or raw.get("timestamp")
        ts = int(ts) if ts and int(ts) > 0 else self._now()
        reason = order.reason
        if raw.get("status") == "expired" and order.purpose == "entry":
            reason = f"expired at the exchange after {filled:.8g} of {order.amount:.8g} filled"
        return replace(order, status=status, filled_amount=round(net, 12), fill_price=price,
                       fee=round(fee_quote, 10), exchange_order_id=str(raw.get("id")), updated_ts=ts,
                       reason=reason)

    def _remember(self, record: OrderRecord) -> bool:
        """Keep the newest view (a reply overtaken by the stream does not undo it); True when
        `record` changed the order's status or filled amount."""
        cid = record.client_order_id
        before = self._known.get(cid)
        if before is not None and before.exchange_order_id is not None and behind(record, before):
            return False
        self._known[cid] = replace(record)
        if record.status == "open":
            self._watch.add(cid)
            self._ensure_poller()
            self._ensure_stream()
        else:
            self._watch.discard(cid)
        return (before is None or before.exchange_order_id is None
                or (record.status, record.filled_amount) != (before.status, before.filled_amount))

    def _ensure_poller(self) -> None:
        if self._poller is None or self._poller.done():
            if not self._closed:
                self._poller = asyncio.get_running_loop().create_task(self._poll(), name="exchange-venue-poll")

    def current_poll_interval(self) -> float:
        """The safety-net interval while the user stream is subscribed, the fast one otherwise."""
        return self.stream_poll_interval_s if self.stream_healthy else self.poll_interval_s

    async def _poll(self) -> None:
        """Report every change of the orders still open at the exchange."""
        while self._watch and not self._closed:
            self._poll_wake.clear()
            try:       # woken early when the stream drops: back to the fast interval at once
                await asyncio.wait_for(self._poll_wake.wait(), self.current_poll_interval())
            except asyncio.TimeoutError:
                pass
            if self._closed:
                return
            await self.poll_now()

    def watching(self) -> int:
        """How many of this venue's orders are still open at the exchange."""
        return len(self._watch)

    async def poll_now(self) -> None:
        """One pass over the orders still open: report what changed (a source that saw the
        price cross a resting level calls this instead of waiting for the next poll)."""
        for cid in list(self._watch):
            before = self._known.get(cid)
            if before is None:
                continue
            try:
                raw = await self.client.order_by_client_id(self.symbol, cid)
            except ccxt.BaseError as exc:
                log.warning("polling %s: %s: %s", cid, type(exc).__name__, redact(str(exc))[:200])
                continue
            if raw is None:
                continue
            now, changed = await self._view_changed(self._known.get(cid) or before, raw)
            if changed:
                self._report(now)

    def _report(self, record: OrderRecord) -> None:
        if self._callback is not None:
            self._callback(OrderUpdate(replace(record), record.updated_ts or self._now()))
