"""The one place that decides what an exchange error means and whether a call is tried again.

- TRANSIENT: the request failed on the way or the exchange was busy (ccxt NetworkError and its
  subclasses RequestTimeout, ExchangeNotAvailable, InvalidNonce, DDoSProtection,
  RateLimitExceeded; and OperationFailed, e.g. Binance -1000/-1001). A read is retried with
  exponential backoff and jitter (tenacity), waiting at least what the exchange's Retry-After
  header asks for.
- PERMANENT: the exchange understood the request and refused it (AuthenticationError,
  PermissionDenied, InsufficientFunds, InvalidOrder, BadRequest, BadSymbol, and any other
  ExchangeError). Never retried: the caller reports it.
- A SUBMIT (a new order) is never resent once it may have reached the matching engine. Only
  errors proving the exchange refused it before processing (429/418 rate limits, a timestamp
  outside recvWindow) are retried; a timeout, a cut connection or a 5xx make the outcome
  AMBIGUOUS: the order is looked up by its client order id instead (`SubmitAmbiguous`).
"""
from __future__ import annotations

import enum
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

import ccxt
from tenacity import (AsyncRetrying, RetryCallState, retry_if_exception, retry_if_exception_type,
                      stop_after_attempt, stop_after_delay, wait_exponential_jitter)

log = logging.getLogger(__name__)

T = TypeVar("T")


class ErrorClass(enum.Enum):
    TRANSIENT = "transient"
    PERMANENT = "permanent"


PERMANENT_TYPES: tuple[type[BaseException], ...] = (
    ccxt.AuthenticationError, ccxt.PermissionDenied, ccxt.AccountSuspended, ccxt.InsufficientFunds,
    ccxt.InvalidOrder, ccxt.BadRequest, ccxt.BadSymbol, ccxt.NotSupported, ccxt.ArgumentsRequired)
TRANSIENT_TYPES: tuple[type[BaseException], ...] = (ccxt.NetworkError, ccxt.OperationFailed)
# Refused before the matching engine saw the request: a submit may be sent again after waiting.
REFUSED_BEFORE_PROCESSING: tuple[type[BaseException], ...] = (
    ccxt.DDoSProtection, ccxt.RateLimitExceeded, ccxt.InvalidNonce)


def classify(exc: BaseException) -> ErrorClass:
    """TRANSIENT or PERMANENT; anything that is not a known transient error is permanent."""
    if isinstance(exc, PERMANENT_TYPES):
        return ErrorClass.PERMANENT
    if isinstance(exc, TRANSIENT_TYPES):
        return ErrorClass.TRANSIENT
    return ErrorClass.PERMANENT


def is_transient(exc: BaseException) -> bool:
    return classify(exc) is ErrorClass.TRANSIENT


def is_ambiguous_submit(exc: BaseException) -> bool:
    """A new order failed in a way that leaves it possibly booked."""
    return is_transient(exc) and not isinstance(exc, REFUSED_BEFORE_PROCESSING)


class SubmitAmbiguous(Exception):
    """An order may or may not have been booked: look it up by client order id, never resend."""


def redact(text: str) -> str:
    """Signed URLs carry a signature and timestamp; keep them out of messages and logs."""
    import re
    return re.sub(r"(signature|apiKey|secret|X-MBX-APIKEY)=?[^&\s\"']*", r"\1=***", text)


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 5            # tries in all, the first included
    initial_s: float = 0.5       # first backoff; doubles each time
    max_backoff_s: float = 8.0
    jitter_s: float = 0.25       # uniform [0, jitter_s) added to each wait
    max_total_s: float = 30.0    # give up after this much time, whatever the attempt count
    max_retry_after_s: float = 60.0


def retry_after_seconds(headers: dict | None) -> float | None:
    """The Retry-After header (seconds form) of the last reply, if it had one."""
    if not headers:
        return None
    for key, value in headers.items():
        if key.lower() == "retry-after":
            try:
                return max(0.0, float(value))
            except (TypeError, ValueError):
                return None
    return None


class _Wait:
    """Exponential backoff with jitter, never shorter than the exchange's Retry-After."""

    def __init__(self, policy: RetryPolicy, headers: Callable[[], dict | None]) -> None:
        self.policy = policy
        self.headers = headers

    def __call__(self, state: RetryCallState) -> float:
        p = self.policy
        backoff = min(p.max_backoff_s, p.initial_s * 2 ** (state.attempt_number - 1))
        wait = backoff + random.uniform(0, p.jitter_s)
        exc = state.outcome.exception() if state.outcome is not None else None
        if isinstance(exc, (ccxt.DDoSProtection, ccxt.RateLimitExceeded)):
            after = retry_after_seconds(self.headers())
            if after is not None:
                wait = max(wait, min(after, p.max_retry_after_s))
        return wait


def _log_retry(what: str) -> Callable[[RetryCallState], None]:
    def before_sleep(state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome is not None else None
        wait = state.next_action.sleep if state.next_action is not None else 0.0
        log.warning("%s failed (%s: %s); attempt %d, retrying in %.2f s", what, type(exc).__name__,
                    redact(str(exc))[:200], state.attempt_number, wait)
    return before_sleep


async def call(fn: Callable[[], Awaitable[T]], *, what: str, policy: RetryPolicy = RetryPolicy(),
               headers: Callable[[], dict | None] = lambda: None,
               retry_if: Callable[[BaseException], bool] = is_transient) -> T:
    """Run `fn` (a fresh request per attempt), retrying only what `retry_if` allows. The last
    transient error is re-raised after the attempts run out; a permanent one at once."""
    retrying = AsyncRetrying(
        retry=retry_if_exception(retry_if),
        stop=stop_after_attempt(policy.attempts) | stop_after_delay(policy.max_total_s),
        wait=_Wait(policy, headers), before_sleep=_log_retry(what), reraise=True)
    async for attempt in retrying:
        with attempt:
            return await fn()
    raise AssertionError("unreachable: tenacity re-raises the last error")   # pragma: no cover


async def submit(fn: Callable[[], Awaitable[T]], *, what: str, policy: RetryPolicy = RetryPolicy(),
                 headers: Callable[[], dict | None] = lambda: None) -> T:
    """Send a new order: retried only when the exchange refused it before processing it; a
    failure that may have booked it raises SubmitAmbiguous (from the original error)."""
    try:
        return await call(fn, what=what, policy=policy, headers=headers,
                          retry_if=lambda e: isinstance(e, REFUSED_BEFORE_PROCESSING))
    except BaseException as exc:
        if is_ambiguous_submit(exc):
            raise SubmitAmbiguous(f"{what}: {type(exc).__name__}: {redact(str(exc))[:300]}") from exc
        raise


async def keep_subscribed(session: Callable[[], Awaitable[None]], *, closed: Callable[[], bool],
                          backoff_s: float, backoff_max_s: float, what: str,
                          logger: logging.Logger = log) -> None:
    """Run a stream's `session` again and again until `closed()`: exponential backoff with
    jitter between failed sessions; a session that ends without an error starts a fresh
    backoff. `what` names the stream in the log ("user data stream")."""
    def before_sleep(state: RetryCallState) -> None:
        wait = state.next_action.sleep if state.next_action is not None else 0.0
        logger.info("%s: resubscribing in %.2f s (attempt %d)", what, wait, state.attempt_number)

    while not closed():
        retrying = AsyncRetrying(
            retry=retry_if_exception_type(Exception),
            wait=wait_exponential_jitter(multiplier=backoff_s, max=backoff_max_s, jitter=backoff_s / 2),
            before_sleep=before_sleep, reraise=True)
        async for attempt in retrying:
            with attempt:
                await session()
