"""The order book of one symbol, kept up to date by the exchange's diff-depth stream while a
session runs, so an entry's slippage check walks a local book instead of asking REST (a round
trip, and rate-limit weight that the order right after it would wait for).

ccxt.pro does the protocol: for Binance spot `watch_order_book` subscribes `<sym>@depth@100ms`,
buffers the events, takes a REST snapshot (`/api/v3/depth`, `limit` levels), drops events with
u <= lastUpdateId and then requires each event's U to be the previous u + 1; a gap raises
ChecksumError and drops its book. This module keeps that watch running and says when its book
may be trusted.

Guarantees:
- `book()` returns the streamed book only while it is healthy: synchronised (a snapshot applied
  and no gap since) and updated at most `max_age_s` ago; otherwise None, and the caller reads
  the book over REST. A market with no change for `max_age_s` therefore costs a REST read: the
  stream cannot tell a quiet book from a dead connection.
- A sequence gap is resynchronised at once (a new subscription and snapshot; a second gap within
  `gap_again_s` backs off first, so a broken stream cannot spend the rate limit on snapshots);
  a lost connection or a failed subscription is retried with exponential backoff and jitter
  (tenacity), a fresh backoff after a session that was healthy for `reset_after_s`. A stream
  silent for `stall_s` is cut and resubscribed (a connection that died without a word).
- Every change of health is logged once: lost (WARNING), live again (INFO).
"""
from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

import ccxt

from data.exchange_errors import keep_subscribed, redact

log = logging.getLogger(__name__)


MAX_AGE_S = 1.0          # a book with no update for longer is not used (also a REST read's life)
SNAPSHOT_LEVELS = 100    # levels of the REST snapshot the stream starts from (weight 1 on Binance)


class BookStream:
    def __init__(self, exchange: Any, symbol: str, *, limit: int = SNAPSHOT_LEVELS,
                 max_age_s: float = MAX_AGE_S,
                 backoff_s: float = 0.5, backoff_max_s: float = 30.0, reset_after_s: float = 60.0,
                 stall_s: float = 10.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.ex = exchange
        self.symbol = symbol
        self.limit = limit
        self.max_age_s = max_age_s
        self.backoff_s = backoff_s
        self.backoff_max_s = backoff_max_s
        self.reset_after_s = reset_after_s
        self.stall_s = stall_s
        self.clock = clock
        self._book: dict | None = None
        self._updated: float | None = None      # clock() of the last update applied
        self._synced = False
        self._task: asyncio.Task | None = None
        self._closed = False
        self._last_gap: float | None = None      # clock() of the last sequence gap
        self.gap_again_s = 5.0                   # a gap this soon after another backs off first
        self.subscriptions = 0                   # times the book became live (first one included)
        self.resyncs = 0                         # sequence gaps recovered from
        self.failures = 0                        # sessions that ended in an error

    # ----- reading ------------------------------------------------------------------------------
    def book(self) -> dict | None:
        """The streamed book (ccxt's, updated in place: walk it now, do not keep it), or None
        when it is not healthy."""
        if not self._synced or self._book is None or self._updated is None:
            return None
        if self._book.get("nonce") is None or self.clock() - self._updated > self.max_age_s:
            return None
        return self._book

    def age_s(self) -> float | None:
        return None if self._updated is None else self.clock() - self._updated

    def why_not(self) -> str:
        """Why book() is None, for the log line of a REST fallback."""
        if self._task is None:
            return "not started"
        if not self._synced or self._book is None:
            return "not synchronised (connecting, or resyncing after a gap or a lost connection)"
        age = self.age_s()
        return f"no update for {age:.2f} s (more than {self.max_age_s:g} s)" if age is not None else "no update yet"

    # ----- running ------------------------------------------------------------------------------
    def start(self) -> None:
        """Start watching (idempotent; needs a running loop)."""
        if self._closed or (self._task is not None and not self._task.done()):
            return
        self._task = asyncio.get_running_loop().create_task(self._run(), name=f"book-stream {self.symbol}")

    async def close(self) -> None:
        self._closed = True
        self._synced = False
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def _run(self) -> None:
        await keep_subscribed(self._session, closed=lambda: self._closed, backoff_s=self.backoff_s,
                              backoff_max_s=self.backoff_max_s,
                              what=f"order book stream of {self.symbol}", logger=log)

    async def _session(self) -> None:
        """Watch until the stream fails (raises), resynchronising after sequence gaps; return
        after a long healthy session failed, so the next one starts with a fresh backoff."""
        healthy_since: float | None = None
        try:
            while not self._closed:
                watch = asyncio.ensure_future(self.ex.watch_order_book(self.symbol, self.limit))
                done, _ = await asyncio.wait({watch}, timeout=self.stall_s)
                if not done:
                    watch.add_done_callback(_consume)
                    self._cut(f"no update for {self.stall_s:g} s")
                    raise ccxt.NetworkError(f"order book stream of {self.symbol} silent for {self.stall_s:g} s")
                try:
                    book = watch.result()
                except ccxt.ChecksumError:
                    self.resyncs += 1
                    now = self.clock()
                    again = self._last_gap is not None and now - self._last_gap < self.gap_again_s
                    self._last_gap = now
                    self._lost("a sequence gap (update ids not contiguous): resynchronising from a new snapshot",
                               level=logging.WARNING)
                    if again:                    # gap after gap: back off, not a snapshot storm
                        raise
                    continue
                self._book, self._updated = book, self.clock()
                if not self._synced:
                    self._synced = True
                    self.subscriptions += 1
                    healthy_since = self._updated
                    log.info("order book stream of %s live (%d asks, %d bids): entries walk it, no REST read",
                             self.symbol, len(book.get("asks") or []), len(book.get("bids") or []))
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self.failures += 1
            self._lost(f"{type(exc).__name__}: {redact(str(exc))[:200]}", level=logging.WARNING)
            if healthy_since is not None and self.clock() - healthy_since >= self.reset_after_s:
                return
            raise

    def _lost(self, why: str, *, level: int) -> None:
        was = self._synced
        self._synced = False
        if was and not self._closed:
            log.log(level, "order book stream of %s lost (%s): its book is not used until it is back",
                    self.symbol, why)

    def _cut(self, why: str) -> None:
        """Drop the connection carrying the book, so the next watch connects anew."""
        for client in list((getattr(self.ex, "clients", None) or {}).values()):
            if f"orderbook::{self.symbol}" in (getattr(client, "subscriptions", None) or {}):
                client.on_error(ccxt.NetworkError(f"order book stream of {self.symbol}: {why}"))


def _consume(fut: asyncio.Future) -> None:
    """A watch abandoned after a stall: its eventual error is expected, not 'never retrieved'."""
    if not fut.cancelled():
        fut.exception()
