"""Exchange access: one ccxt.pro instance per exchange does REST and WebSocket.

- spot markets only (the options that keep load_markets to one exchangeInfo call on Binance);
- rate limiting on, as the exchange counts it: ccxt's rolling-window limiter (the request weight
  of the last 60 s; for Binance 1200 ccxt cost units = 6000 weight a minute, its IP limit), not
  its default leaky bucket, which holds every request for cost x rateLimit after the previous
  one, idle time not counted (measured: a market order waited 10-20 ms in it after a second of
  silence, 200+ ms after a burst), though the exchange allows bursts within the minute's budget.
  429/418 with Retry-After are still honoured by data.exchange_errors;
- sandbox mode when `testnet`;
- credentials are passed in by the caller (the credentials lookup); they never reach a log line
  or an exception message from here, and ccxt's own debug log (which prints request headers,
  the API key among them) is kept quiet;
- `exchange_url` points REST and WebSocket of a Binance-compatible exchange at another base URL
  (the local simulator, a proxy), with Binance's production error mapping kept;
- every call goes through data.exchange_errors: reads are retried when transient, submits never
  resent once they may have been booked.

The composition root creates ONE ExchangeClient per exchange and hands it to both the live feed
and the exchange venue.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import ccxt
import ccxt.pro as ccxtpro

from data import exchange_errors as errs
from data.exchange_errors import RetryPolicy

log = logging.getLogger(__name__)

API_PATH = "/api/v3"


def binance_urls(base_url: str) -> dict[str, Any]:
    """REST and WebSocket URLs of a Binance-compatible server at `base_url` (http[s]://host:port)."""
    base = base_url.rstrip("/")
    ws = base.replace("https://", "wss://").replace("http://", "ws://")
    return {"public": f"{base}{API_PATH}", "private": f"{base}{API_PATH}", "sapi": f"{base}/sapi/v1",
            "ws": {"spot": f"{ws}/ws", "margin": f"{ws}/ws", "ws-api": {"spot": f"{ws}/ws-api/v3"}}}


def apply_production_errors(exchange: Any) -> None:
    """ccxt applies Binance's spot error table only on binance.com URLs: apply it everywhere."""
    spot = exchange.exceptions.get("spot") if isinstance(exchange.exceptions, dict) else None
    if not spot:
        return
    exchange.exceptions["exact"] = {**exchange.exceptions.get("exact", {}), **spot.get("exact", {})}
    exchange.exceptions["broad"] = {**exchange.exceptions.get("broad", {}), **spot.get("broad", {})}


def create_exchange(exchange_id: str = "binance", *, api_key: str | None = None,
                    secret: str | None = None, password: str | None = None, testnet: bool = False,
                    exchange_url: str | None = None, timeout_ms: int = 10_000,
                    options: dict | None = None) -> Any:
    """A configured ccxt.pro instance (not connected yet: call load_markets)."""
    cls = getattr(ccxtpro, exchange_id, None)
    if cls is None:
        raise ValueError(f"unknown exchange {exchange_id!r}: ccxt.pro has no such exchange")
    config: dict[str, Any] = {
        # rateLimiterAlgorithm: see the module's docstring (the exchange's real weight budget)
        "enableRateLimit": True, "rateLimiterAlgorithm": "rollingWindow",
        "timeout": timeout_ms, "enableLastResponseHeaders": True,
        "options": {"defaultType": "spot", "fetchMarkets": {"types": ["spot"]},
                    "fetchCurrencies": False, "fetchMargins": False,
                    "adjustForTimeDifference": False, **(options or {})},
    }
    if api_key:
        config["apiKey"] = api_key
    if secret:
        config["secret"] = secret
    if password:
        config["password"] = password
    exchange = cls(config)
    if testnet:
        exchange.set_sandbox_mode(True)
    if exchange_url:
        if exchange_id != "binance":
            raise ValueError(f"exchange_url works for Binance-compatible servers; {exchange_id} is not")
        exchange.urls["api"] = {**exchange.urls.get("api", {}), **binance_urls(exchange_url)}
        apply_production_errors(exchange)
    # ccxt logs every request at DEBUG with its headers (the API key among them).
    logging.getLogger("ccxt").setLevel(max(logging.INFO, logging.getLogger("ccxt").level))
    return exchange


@dataclass(frozen=True)
class ExchangeSettings:
    exchange_id: str = "binance"
    testnet: bool = False
    exchange_url: str | None = None
    timeout_ms: int = 10_000
    retry: RetryPolicy = RetryPolicy()


class ExchangeClient:
    """The one ccxt.pro instance of an exchange, with retries and error classes applied."""

    def __init__(self, settings: ExchangeSettings = ExchangeSettings(), *, api_key: str | None = None,
                 secret: str | None = None, password: str | None = None, exchange: Any = None) -> None:
        self.settings = settings
        self.policy = settings.retry
        self.ex = exchange if exchange is not None else create_exchange(
            settings.exchange_id, api_key=api_key, secret=secret, password=password,
            testnet=settings.testnet, exchange_url=settings.exchange_url, timeout_ms=settings.timeout_ms)
        self._markets_loaded = False

    def __repr__(self) -> str:        # never the keys
        return f"ExchangeClient({self.settings.exchange_id}, testnet={self.settings.testnet})"

    def _headers(self) -> dict | None:
        return getattr(self.ex, "last_response_headers", None)

    async def read(self, what: str, fn, *args, **kwargs):
        """A read (or cancel): transient errors retried with backoff, permanent ones raised."""
        return await errs.call(lambda: fn(*args, **kwargs), what=what, policy=self.policy,
                               headers=self._headers)

    async def load_markets(self, reload: bool = False) -> dict:
        markets = await self.read("load_markets", self.ex.load_markets, reload)
        self._markets_loaded = True
        return markets

    def market(self, symbol: str) -> dict:
        return self.ex.market(symbol)

    async def create_order(self, symbol: str, type_: str, side: str, amount: float,
                           price: float | None = None, params: dict | None = None) -> dict:
        """A new order: never resent once it may have been booked (raises SubmitAmbiguous)."""
        return await errs.submit(lambda: self.ex.create_order(symbol, type_, side, amount, price, dict(params or {})),
                                 what=f"create {side} {type_} {symbol}", policy=self.policy,
                                 headers=self._headers)

    async def create_oco(self, request: dict) -> dict:
        """Binance's POST /api/v3/orderList/oco (ccxt's implicit API; raw parameter names)."""
        return await errs.submit(lambda: self.ex.private_post_orderlist_oco(dict(request)),
                                 what=f"create OCO {request.get('symbol')}", policy=self.policy,
                                 headers=self._headers)

    async def order_by_client_id(self, symbol: str, client_order_id: str) -> dict | None:
        """The exchange's view of an order by client id; None when the exchange says it does not
        exist (which, right after an ambiguous submit, is not yet proof: ask again later)."""
        try:
            return await self.read(f"fetch order {client_order_id}", self.ex.fetch_order, None, symbol,
                                   {"origClientOrderId": client_order_id})
        except ccxt.OrderNotFound:
            return None

    async def order_trades(self, symbol: str, order_id: str) -> list[dict]:
        return await self.read(f"fetch trades of order {order_id}", self.ex.fetch_my_trades, symbol,
                               None, None, {"orderId": order_id})

    async def cancel_by_client_id(self, symbol: str, client_order_id: str) -> dict | None:
        """Cancel; None when the exchange knows no open order by that id (final or never seen)."""
        try:
            return await self.read(f"cancel {client_order_id}", self.ex.cancel_order, None, symbol,
                                   {"origClientOrderId": client_order_id})
        except ccxt.OrderNotFound:
            return None

    async def open_orders(self, symbol: str) -> list[dict]:
        return await self.read(f"open orders {symbol}", self.ex.fetch_open_orders, symbol)

    async def balance(self) -> dict:
        return await self.read("balance", self.ex.fetch_balance)

    async def order_book(self, symbol: str, limit: int = 100) -> dict:
        return await self.read(f"order book {symbol}", self.ex.fetch_order_book, symbol, limit)

    async def ticker(self, symbol: str) -> dict:
        return await self.read(f"ticker {symbol}", self.ex.fetch_ticker, symbol)

    async def close(self) -> None:
        await self.ex.close()
