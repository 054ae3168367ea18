"""A Binance-spot simulator on aiohttp (HTTP + WebSocket on 127.0.0.1) for the real ccxt client.

What it speaks (paths under /api/v3, as ccxt's binance class sends them):
- public: ping, time, exchangeInfo (PRICE_FILTER, LOT_SIZE, NOTIONAL), klines, ticker/24hr,
  ticker/bookTicker, ticker/price, depth, trades;
- signed (HMAC-SHA256 over the raw query/body, X-MBX-APIKEY, timestamp within recvWindow):
  account, order POST/GET/DELETE (MARKET, LIMIT, LIMIT_MAKER, STOP_LOSS, STOP_LOSS_LIMIT; by
  orderId or client order id), openOrders, allOrders, myTrades, orderList/oco, and
  /sapi/v1/account/apiRestrictions (`sim.api_restrictions`: may the key trade, withdraw);
- WebSocket at /ws/<n>: SUBSCRIBE/UNSUBSCRIBE to <sym>@kline_<tf>, @trade, @bookTicker,
  @ticker, @miniTicker, and the diff-depth streams @depth (every 1000 ms) and @depth@100ms, as
  Binance sends them: `{"e": "depthUpdate", "E", "s", "U": first update id, "u": last update id,
  "b": [[price, qty]], "a": [...]}` with the levels that changed since the previous event (qty 0:
  the level is gone), only when something changed. Update ids count every change of the book;
  GET depth's `lastUpdateId` is the id of the book it returns, so a client following Binance's
  recipe (buffer events, take the snapshot, drop events with u <= lastUpdateId, then each U must
  be the previous u + 1) keeps an exact copy. Faults: `drop_depth_streams()` cuts only the
  connections carrying a depth stream, `skip_depth_updates = N` loses the next N events (their
  ids are used: a sequence gap the client must resync from), `mute_depth = True` stops sending
  depth events while the connection stays up (a silent stream). `book_churn = True` makes the
  book breathe as a busy market's does: every 100 ms the deepest level of each side gains or
  loses one amount step, so the stream has an event every 100 ms even while the price stands.
- The user data stream as ccxt 4.5 uses it for spot: no listenKey, but Binance's WebSocket API at
  /ws-api/v3, request `userDataStream.subscribe.signature` (params apiKey, timestamp[,
  recvWindow], HMAC signature over the sorted params) answered `{"id", "status": 200, "result":
  {"subscriptionId": n}}`, then `{"subscriptionId": n, "event": {...}}` for every change made
  after it: executionReport (NEW, TRADE with the cumulative and last quantity, last price,
  commission and its asset, trade id and maker flag, CANCELED with the cancel's id in `c` and the
  order's in `C`, EXPIRED), listStatus for OCO lists, outboundAccountPosition for the balances
  that changed. `userDataStream.unsubscribe` ends it. Faults: `drop_user_streams()` cuts those
  connections, `refuse_user_streams` rejects new ones, `terminate_user_streams()` sends
  `eventStreamTerminated` (Binance ending a subscription), `reject_user_stream_subscribe`
  answers the next N subscribe requests with an error.

Market model: one symbol; the last price moves only when the test says (`set_price`, `play`).
The book is synthetic around the last price: best bid = last price on the tick grid, best ask one
tick above, `book_levels` levels of `level_qty` each `level_gap_ticks` apart. A market order walks
it (a fill per level; what the book cannot take expires: a partial fill). Resting orders are
matched on every price change: a sell limit fills at its price when the last price reaches it, a
stop triggers when the price falls to its stop (STOP_LOSS sells at market, STOP_LOSS_LIMIT rests
its limit). `liquidity_per_tick` caps what one price change fills of a resting order (partial
fills). When one leg of an OCO list executes the other expires, as Binance does.
`hold_market_orders = N` acknowledges the next N market orders as NEW without filling them
(an exchange under load), `fill_held(client_id, qty)` fills them later, in part or whole.
Commission is `fee_rate` of each fill, charged in the asset received (base on a buy, quote on a sell) unless
`commission_asset` names one.

Faults (`sim.fault(...)`, or `--fault` on the command line) apply to matching requests, a given
number of times: delay, hang (never processed: the client times out), lost_reply (processed,
the reply never comes: an ambiguous submit), abort / abort_after (connection cut before / after
processing), error (any status with a Binance code, optional Retry-After), html (a gateway page),
malformed (200 with truncated JSON). `drop_sockets()` cuts every WebSocket connection;
`refuse_sockets` rejects new ones.

Every request is logged in `sim.requests` (method, path, params) so tests can assert what the
exchange saw, e.g. exactly one POST order.
"""
from __future__ import annotations

import asyncio
import hashlib
import hmac
import itertools
import json
import logging
import time
from dataclasses import dataclass, field
from decimal import ROUND_DOWN, Decimal
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import WSMsgType, web

log = logging.getLogger(__name__)

D = Decimal
API = "/api/v3"
SAPI = "/sapi/v1"               # wallet endpoints: only account/apiRestrictions is spoken
TF_MS = {"1m": 60_000, "3m": 180_000, "5m": 300_000, "15m": 900_000, "30m": 1_800_000,
         "1h": 3_600_000, "2h": 7_200_000, "4h": 14_400_000, "6h": 21_600_000, "8h": 28_800_000,
         "12h": 43_200_000, "1d": 86_400_000}
FINAL = ("FILLED", "CANCELED", "EXPIRED", "REJECTED")


def fmt(x: Decimal | float | int) -> str:
    d = x if isinstance(x, Decimal) else D(str(x))
    return f"{d.normalize():f}" if d != 0 else "0.00000000"


def dec(x: Any) -> Decimal:
    return x if isinstance(x, Decimal) else D(str(x))


class BinanceError(Exception):
    def __init__(self, status: int, code: int, msg: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(f"{status} {code} {msg}")
        self.status, self.code, self.msg, self.headers = status, code, msg, headers or {}


@dataclass
class SimMarket:
    base: str = "BTC"
    quote: str = "USDT"
    tick: Decimal = D("0.01")
    step: Decimal = D("0.00001")
    min_qty: Decimal = D("0.00001")
    min_notional: Decimal = D("5")
    notional_filter: str = "NOTIONAL"        # or "MIN_NOTIONAL" (older symbols)

    @property
    def symbol(self) -> str:
        return f"{self.base}{self.quote}"

    @property
    def unified(self) -> str:
        return f"{self.base}/{self.quote}"


@dataclass
class Fault:
    path: str                    # "order", "orderList/oco", "*" (any), relative to /api/v3
    kind: str                    # delay|hang|lost_reply|abort|abort_after|error|html|malformed
    method: str | None = None    # None: any method
    times: int = 1               # how many matching requests; -1 forever
    seconds: float = 0.0         # delay
    status: int = 500
    code: int = -1000
    msg: str = "An unknown error occurred while processing the request."
    retry_after: int | None = None
    hits: int = 0

    def matches(self, method: str, path: str) -> bool:
        return ((self.method is None or self.method == method)
                and (self.path == "*" or self.path == path) and self.times != 0)


@dataclass
class Order:
    order_id: int
    client_id: str
    side: str
    type: str
    qty: Decimal
    price: Decimal | None
    stop: Decimal | None
    time_in_force: str | None
    time: int
    status: str = "NEW"
    executed: Decimal = D(0)
    quote_qty: Decimal = D(0)
    update_time: int = 0
    working_time: int = -1
    triggered: bool = False
    list_id: int = -1
    locked_asset: str | None = None
    locked: Decimal = D(0)
    fills: list[dict] = field(default_factory=list)

    @property
    def remaining(self) -> Decimal:
        return self.qty - self.executed


@dataclass
class Candle:
    ts: int
    o: Decimal
    h: Decimal
    l: Decimal
    c: Decimal
    v: Decimal = D(0)
    q: Decimal = D(0)
    n: int = 0
    ticks: list[tuple[int, Decimal, Decimal]] = field(default_factory=list)   # (ts, price, qty)

    def row(self, tf_ms: int) -> list:
        return [self.ts, fmt(self.o), fmt(self.h), fmt(self.l), fmt(self.c), fmt(self.v),
                self.ts + tf_ms - 1, fmt(self.q), self.n, "0", "0", "0"]


class ExchangeSim:
    def __init__(self, *, symbol: str = "BTC/USDT", price: float = 30_000.0,
                 balances: dict[str, float] | None = None, market: SimMarket | None = None,
                 api_key: str = "sim-key", secret: str = "sim-secret", timeframe: str = "15m",
                 fee_rate: float = 0.001, commission_asset: str | None = None,
                 book_levels: int = 20, level_qty: float = 1.0, level_gap_ticks: int = 1,
                 liquidity_per_tick: float | None = None, recv_window_ms: int = 5_000,
                 hang_seconds: float = 30.0, clock=None) -> None:
        base, quote = symbol.split("/")
        self.m = market or SimMarket(base=base, quote=quote)
        self.api_key, self.secret = api_key, secret
        self.timeframe, self.tf_ms = timeframe, TF_MS[timeframe]
        self.fee_rate = dec(fee_rate)
        self.commission_asset = commission_asset
        self.book_levels, self.level_qty, self.level_gap_ticks = book_levels, dec(level_qty), level_gap_ticks
        self.liquidity_per_tick = None if liquidity_per_tick is None else dec(liquidity_per_tick)
        self.recv_window_ms = recv_window_ms
        self.hang_seconds = hang_seconds
        self.clock = clock or (lambda: time.time_ns() // 1_000_000)   # market time, Unix ms
        self.price = self._tick_down(dec(price))
        self.free: dict[str, Decimal] = {self.m.base: D(0), self.m.quote: D(0)}
        self.locked: dict[str, Decimal] = {self.m.base: D(0), self.m.quote: D(0)}
        for asset, amount in (balances or {}).items():
            self.free[asset] = dec(amount)
            self.locked.setdefault(asset, D(0))
        self.orders: dict[int, Order] = {}
        self.by_client: dict[str, int] = {}
        self.lists: dict[int, dict] = {}
        self.my_trades: list[dict] = []
        self.candles: list[Candle] = []
        self.requests: list[tuple[str, str, dict]] = []
        self.faults: list[Fault] = []
        self.refuse_sockets = 0
        # GET /sapi/v1/account/apiRestrictions: what the key may do (tests flip these)
        self.api_restrictions: dict[str, Any] = {
            "ipRestrict": False, "enableReading": True, "enableSpotAndMarginTrading": True,
            "enableWithdrawals": False, "enableInternalTransfer": False, "enableMargin": False,
            "enableFutures": False, "permitsUniversalTransfer": False, "enableVanillaOptions": False,
            "enablePortfolioMarginTrading": False}
        self.hold_market_orders = 0      # the next N MARKET orders are acknowledged NEW, unfilled
        self._ids = itertools.count(1)
        self._list_ids = itertools.count(1)
        self._trade_ids = itertools.count(1)
        self._sockets: set[web.WebSocketResponse] = set()
        self._user_init()
        self._subs: dict[web.WebSocketResponse, set[str]] = {}
        self._book_init()
        self._closing: asyncio.Event | None = None    # created in start() (needs a loop)
        self._runner: web.AppRunner | None = None
        self.port = 0
        self._roll(self.clock())

    # ----- lifecycle --------------------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self, port: int = 0) -> ExchangeSim:
        self._closing = asyncio.Event()
        app = web.Application()
        app.router.add_route("*", API + "/{path:.*}", self._http)
        app.router.add_route("*", SAPI + "/{path:.*}", self._http)
        app.router.add_get("/ws", self._ws)
        app.router.add_get("/ws/{n}", self._ws)
        app.router.add_get("/ws-api/v3", self._ws_api)
        self._runner = web.AppRunner(app, handle_signals=False, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", port)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]   # type: ignore[union-attr]
        self._depth_task = asyncio.get_running_loop().create_task(self._depth_pacer(), name="sim-depth")
        return self

    async def stop(self) -> None:
        if self._closing is not None:
            self._closing.set()
        if self._depth_task is not None:
            self._depth_task.cancel()
            await asyncio.gather(self._depth_task, return_exceptions=True)
            self._depth_task = None
        for ws in list(self._sockets):
            await ws.close()
        for ws in list(self._api_sockets):
            await ws.close()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # ----- what tests drive -------------------------------------------------------------------
    def fault(self, path: str, kind: str, *, method: str | None = None, times: int = 1, **kw: Any) -> Fault:
        f = Fault(path=path, kind=kind, method=method, times=times, **kw)
        self.faults.append(f)
        return f

    def count(self, method: str, path: str) -> int:
        """Requests the exchange received (faulted or not) for METHOD path."""
        return sum(1 for m, p, _ in self.requests if m == method and p == path)

    def order_by_client_id(self, client_id: str) -> Order | None:
        oid = self.by_client.get(client_id)
        return None if oid is None else self.orders[oid]

    def deposit(self, asset: str, amount: float) -> None:
        self.free[asset] = self.free.get(asset, D(0)) + dec(amount)
        self.locked.setdefault(asset, D(0))

    def balance(self, asset: str) -> tuple[float, float]:
        return float(self.free.get(asset, 0)), float(self.locked.get(asset, 0))

    def load_history(self, rows: list[tuple[int, float, float, float, float, float]]) -> None:
        """Closed candles (ts, open, high, low, close, volume) before the current one."""
        self.candles = [Candle(ts, dec(o), dec(h), dec(l), dec(c), dec(v), dec(v) * dec(c), 1)
                        for ts, o, h, l, c, v in rows] + [c for c in self.candles if c.ts > rows[-1][0]]
        self.candles.sort(key=lambda c: c.ts)

    def set_price(self, price: float, *, qty: float = 0.01, ts: int | None = None) -> None:
        """A trade prints at `price` (market time `ts`, default the clock): candles move, resting
        orders match, streams publish."""
        now = self.clock() if ts is None else ts
        p = self._tick_down(dec(price))
        self.price = p
        self._roll(now)
        c = self.candles[-1]
        c.h, c.l, c.c = max(c.h, p), min(c.l, p), p
        c.v += dec(qty)
        c.q += dec(qty) * p
        c.n += 1
        c.ticks.append((now, p, dec(qty)))
        self._publish_trade(p, dec(qty), now)
        self._match(now)
        self._publish_kline(c, closed=False, now=now)
        self._publish_book(now)
        self._user_sync()

    def open_candle(self, ts: int, price: float) -> None:
        """Start the candle containing market time `ts` at `price` (its open; the previous
        candle closes at the last price), as a CSV bar being played does."""
        p = self._tick_down(dec(price))
        if self.candles and self.candles[-1].ts == ts - ts % self.tf_ms:
            self.candles[-1] = Candle(self.candles[-1].ts, p, p, p, p)    # started here: anew
            self.price = p
        self._roll(ts, open_price=p)
        self.set_price(price, qty=0, ts=ts)

    async def play(self, path: list[float], interval: float = 0.0) -> None:
        for p in path:
            self.set_price(p)
            await asyncio.sleep(interval)

    def fill_held(self, client_id: str, qty: float | None = None) -> None:
        """Fill (part of) a MARKET order held by `hold_market_orders` against the book; it stays
        PARTIALLY_FILLED until the rest is filled or it is canceled."""
        o = self.order_by_client_id(client_id)
        assert o is not None and o.type == "MARKET" and o.status not in FINAL, client_id
        now = self.clock()
        want = o.remaining if qty is None else min(o.remaining, dec(qty))
        side = "ask" if o.side == "BUY" else "bid"
        for price, level_qty in self._levels(side):
            if want <= 0:
                break
            take = min(level_qty, want)
            self._fill(o, price, take, now, maker=False)
            want -= take
        o.status = "FILLED" if o.remaining <= 0 else "PARTIALLY_FILLED"
        if o.status == "FILLED":
            self._finish(o, now)
        self._user_sync()

    def drop_sockets(self) -> int:
        """Cut every WebSocket connection without a close handshake."""
        return _abort_all(self._sockets)

    async def close_sockets(self, code: int = 1011) -> int:
        """Close every WebSocket connection with a close frame (an orderly server-side close)."""
        socks = list(self._sockets)
        for ws in socks:
            await ws.close(code=code, message=b"closed by the simulator")
        return len(socks)

    # ----- HTTP -------------------------------------------------------------------------------
    async def _http(self, request: web.Request) -> web.StreamResponse:
        path = request.match_info["path"]
        if request.path.startswith(SAPI + "/"):
            path = "sapi/" + path
        method = request.method
        raw_query = request.query_string
        body = await request.text() if request.can_read_body else ""
        params = dict(parse_qsl(raw_query, keep_blank_values=True))
        params.update(dict(parse_qsl(body, keep_blank_values=True)))
        self.requests.append((method, path, params))
        fault = next((f for f in self.faults if f.matches(method, path)), None)
        if fault is not None:
            fault.hits += 1
            if fault.times > 0:
                fault.times -= 1
        try:
            if fault is not None:
                early = await self._fault_before(fault, request)
                if early is not None:
                    return early
            payload = self._dispatch(method, path, params, request.headers, raw_query, body)
            self._user_sync(cancel_reply=payload if (method, path) == ("DELETE", "order") else None)
            if fault is not None:
                late = await self._fault_after(fault, request, payload)
                if late is not None:
                    return late
            return web.json_response(payload, dumps=json.dumps)
        except BinanceError as e:
            return web.json_response({"code": e.code, "msg": e.msg}, status=e.status, headers=e.headers)

    async def _hang(self) -> None:
        assert self._closing is not None
        try:
            await asyncio.wait_for(self._closing.wait(), self.hang_seconds)
        except asyncio.TimeoutError:
            pass

    async def _fault_before(self, f: Fault, request: web.Request) -> web.StreamResponse | None:
        if f.kind == "delay":
            await asyncio.sleep(f.seconds)
            return None
        if f.kind == "hang":
            await self._hang()
            raise web.HTTPServiceUnavailable()
        if f.kind == "abort":
            await _abort_request(request)
        if f.kind == "error":
            headers = {"Retry-After": str(f.retry_after)} if f.retry_after is not None else {}
            raise BinanceError(f.status, f.code, f.msg, headers)
        if f.kind == "html":
            return web.Response(status=f.status, content_type="text/html",
                                text=f"<html><body><h1>{f.status} Gateway</h1></body></html>")
        return None

    async def _fault_after(self, f: Fault, request: web.Request, payload: Any) -> web.StreamResponse | None:
        if f.kind == "lost_reply":
            await self._hang()
            raise web.HTTPServiceUnavailable()
        if f.kind == "abort_after":
            await _abort_request(request)
        if f.kind == "malformed":
            text = json.dumps(payload)
            return web.Response(status=200, content_type="application/json", text=text[: len(text) // 2])
        return None

    def _dispatch(self, method: str, path: str, params: dict, headers, raw_query: str, body: str) -> Any:
        public = {
            ("GET", "ping"): lambda p: {},
            ("GET", "time"): lambda p: {"serverTime": self.clock()},
            ("GET", "exchangeInfo"): self._exchange_info,
            ("GET", "klines"): self._klines,
            ("GET", "uiKlines"): self._klines,
            ("GET", "ticker/24hr"): self._ticker,
            ("GET", "ticker/bookTicker"): self._book_ticker,
            ("GET", "ticker/price"): lambda p: {"symbol": self.m.symbol, "price": fmt(self.price)},
            ("GET", "depth"): self._depth,
            ("GET", "trades"): lambda p: [],
            ("GET", "avgPrice"): lambda p: {"mins": 5, "price": fmt(self.price), "closeTime": self.clock()},
        }
        signed = {
            ("GET", "account"): self._account,
            ("POST", "order"): self._new_order,
            ("POST", "order/test"): lambda p: {},
            ("GET", "order"): self._get_order,
            ("DELETE", "order"): self._cancel_order,
            ("GET", "openOrders"): lambda p: [self._order_json(o) for o in self.orders.values()
                                              if o.status not in FINAL],
            ("GET", "allOrders"): lambda p: [self._order_json(o) for o in self.orders.values()],
            ("GET", "myTrades"): self._get_my_trades,
            ("POST", "orderList/oco"): self._new_oco,
            ("GET", "sapi/account/apiRestrictions"): lambda p: {**self.api_restrictions,
                                                                "createTime": self.clock()},
        }
        key = (method, path)
        if key in public:
            return public[key](params)
        if key in signed:
            self._check_signature(headers, raw_query if method in ("GET", "DELETE") else body, params)
            return signed[key](params)
        raise BinanceError(404, -1000, f"simulator: no endpoint {method} {API}/{path}")

    def _check_signature(self, headers, signed_text: str, params: dict) -> None:
        key = headers.get("X-MBX-APIKEY")
        if not key:
            raise BinanceError(401, -2014, "API-key format invalid.")
        if key != self.api_key:
            raise BinanceError(401, -2015, "Invalid API-key, IP, or permissions for action.")
        payload, sep, signature = signed_text.rpartition("&signature=")
        if not sep:
            raise BinanceError(400, -1102, "Mandatory parameter 'signature' was not sent, was empty/null, or malformed.")
        expected = hmac.new(self.secret.encode(), payload.encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, signature):
            raise BinanceError(400, -1022, "Signature for this request is not valid.")
        try:
            ts = int(params["timestamp"])
        except (KeyError, ValueError):
            raise BinanceError(400, -1102, "Mandatory parameter 'timestamp' was not sent, was empty/null, or malformed.") from None
        window = int(params.get("recvWindow", self.recv_window_ms))
        wall = time.time_ns() // 1_000_000
        if ts > wall + 1_000 or wall - ts > window:
            raise BinanceError(400, -1021, "Timestamp for this request is outside of the recvWindow.")

    # ----- public endpoints -------------------------------------------------------------------
    def _symbol(self, params: dict, required: bool = True) -> None:
        s = params.get("symbol")
        if s is None and not required:
            return
        if s != self.m.symbol:
            raise BinanceError(400, -1121, "Invalid symbol.")

    def _exchange_info(self, params: dict) -> dict:
        m = self.m
        return {
            "timezone": "UTC", "serverTime": self.clock(), "rateLimits": [], "exchangeFilters": [],
            "symbols": [{
                "symbol": m.symbol, "status": "TRADING", "baseAsset": m.base, "baseAssetPrecision": 8,
                "quoteAsset": m.quote, "quotePrecision": 8, "quoteAssetPrecision": 8,
                "baseCommissionPrecision": 8, "quoteCommissionPrecision": 8,
                "orderTypes": ["LIMIT", "LIMIT_MAKER", "MARKET", "STOP_LOSS", "STOP_LOSS_LIMIT",
                               "TAKE_PROFIT", "TAKE_PROFIT_LIMIT"],
                "icebergAllowed": True, "ocoAllowed": True, "otoAllowed": True,
                "quoteOrderQtyMarketAllowed": True, "allowTrailingStop": False,
                "cancelReplaceAllowed": True, "isSpotTradingAllowed": True,
                "isMarginTradingAllowed": False,
                "filters": [
                    {"filterType": "PRICE_FILTER", "minPrice": fmt(m.tick), "maxPrice": "1000000.00",
                     "tickSize": fmt(m.tick)},
                    {"filterType": "LOT_SIZE", "minQty": fmt(m.min_qty), "maxQty": "9000.00000000",
                     "stepSize": fmt(m.step)},
                    {"filterType": m.notional_filter, "minNotional": fmt(m.min_notional),
                     "applyMinToMarket": True, "applyToMarket": True, "maxNotional": "9000000.00",
                     "applyMaxToMarket": False, "avgPriceMins": 5},
                ],
                "permissions": [], "permissionSets": [["SPOT"]],
                "defaultSelfTradePreventionMode": "EXPIRE_MAKER",
                "allowedSelfTradePreventionModes": ["NONE", "EXPIRE_TAKER", "EXPIRE_MAKER", "EXPIRE_BOTH"],
            }],
        }

    def _klines(self, params: dict) -> list:
        self._symbol(params)
        interval = params.get("interval")
        if interval not in TF_MS:
            raise BinanceError(400, -1120, "Invalid interval.")
        ms = TF_MS[interval]
        self._roll(self.clock())
        limit = min(int(params.get("limit", 500)), 1000)
        start, end = params.get("startTime"), params.get("endTime")
        rows = [c for c in self.candles_at(ms, None if start is None else int(start))
                if (start is None or c.ts >= int(start)) and (end is None or c.ts <= int(end))]
        rows = rows[:limit] if start is not None else rows[-limit:]
        return [c.row(ms) for c in rows]

    def _bid_ask(self) -> tuple[Decimal, Decimal]:
        return self.price, self.price + self.m.tick

    def _levels(self, side: str) -> list[tuple[Decimal, Decimal]]:
        bid, ask = self._bid_ask()
        gap = self.m.tick * self.level_gap_ticks
        last = self.book_levels - 1
        extra = self.m.step if getattr(self, "_churn", False) else D(0)     # book_churn: the far end moves
        if side == "ask":
            return [(ask + i * gap, self.level_qty + (extra if i == last else 0)) for i in range(self.book_levels)]
        return [(bid - i * gap, self.level_qty + (extra if i == last else 0))
                for i in range(self.book_levels) if bid - i * gap > 0]

    def _ticker(self, params: dict) -> dict:
        self._symbol(params)
        self._roll(self.clock())
        c = self.candles[-1]
        bid, ask = self._bid_ask()
        now = self.clock()
        return {"symbol": self.m.symbol, "priceChange": fmt(self.price - c.o),
                "priceChangePercent": "0", "weightedAvgPrice": fmt(self.price),
                "prevClosePrice": fmt(c.o), "lastPrice": fmt(self.price), "lastQty": "0.01",
                "bidPrice": fmt(bid), "bidQty": fmt(self.level_qty), "askPrice": fmt(ask),
                "askQty": fmt(self.level_qty), "openPrice": fmt(c.o), "highPrice": fmt(c.h),
                "lowPrice": fmt(c.l), "volume": fmt(c.v), "quoteVolume": fmt(c.q),
                "openTime": now - 86_400_000, "closeTime": now, "firstId": 0, "lastId": 0, "count": c.n}

    def _book_ticker(self, params: dict) -> dict:
        self._symbol(params)
        bid, ask = self._bid_ask()
        return {"symbol": self.m.symbol, "bidPrice": fmt(bid), "bidQty": fmt(self.level_qty),
                "askPrice": fmt(ask), "askQty": fmt(self.level_qty)}

    def _depth(self, params: dict) -> dict:
        self._symbol(params)
        limit = int(params.get("limit", 100))
        self._book_changed()                  # the id of exactly the book returned
        return {"lastUpdateId": self._book_id,
                "bids": [[fmt(p), fmt(q)] for p, q in self._levels("bid")[:limit]],
                "asks": [[fmt(p), fmt(q)] for p, q in self._levels("ask")[:limit]]}

    # ----- signed endpoints -------------------------------------------------------------------
    def _account(self, params: dict) -> dict:
        assets = sorted(set(self.free) | set(self.locked))
        return {"makerCommission": 10, "takerCommission": 10, "buyerCommission": 0,
                "sellerCommission": 0, "canTrade": True, "canWithdraw": True, "canDeposit": True,
                "brokered": False, "requireSelfTradePrevention": False, "preventSor": False,
                "updateTime": self.clock(), "accountType": "SPOT",
                "balances": [{"asset": a, "free": fmt(self.free.get(a, D(0))),
                              "locked": fmt(self.locked.get(a, D(0)))} for a in assets],
                "permissions": ["SPOT"], "uid": 1}

    def _find(self, params: dict) -> Order:
        self._symbol(params)
        if "orderId" in params:
            o = self.orders.get(int(params["orderId"]))
        elif "origClientOrderId" in params:
            o = self.order_by_client_id(params["origClientOrderId"])
        else:
            raise BinanceError(400, -1102, "Param 'origClientOrderId' or 'orderId' must be sent, but both were empty/null!")
        if o is None:
            raise BinanceError(400, -2013, "Order does not exist.")
        return o

    def _get_order(self, params: dict) -> dict:
        return self._order_json(self._find(params))

    def _get_my_trades(self, params: dict) -> list[dict]:
        self._symbol(params)
        rows = self.my_trades
        if "orderId" in params:
            rows = [t for t in rows if t["orderId"] == int(params["orderId"])]
        if "startTime" in params:
            rows = [t for t in rows if t["time"] >= int(params["startTime"])]
        return rows[-int(params.get("limit", 500)):]

    def _cancel_order(self, params: dict) -> dict:
        try:
            o = self._find(params)
        except BinanceError as e:
            if e.code == -2013:
                raise BinanceError(400, -2011, "Unknown order sent.") from None
            raise
        if o.status in FINAL:
            raise BinanceError(400, -2011, "Unknown order sent.")
        now = self.clock()
        legs = [o]
        if o.list_id >= 0:      # cancelling one leg cancels the whole list
            legs = [self.orders[i] for i in self.lists[o.list_id]["orderIds"]]
        for leg in legs:
            if leg.status not in FINAL:
                leg.status, leg.update_time = "CANCELED", now
        self._release(legs)
        if o.list_id >= 0:
            self.lists[o.list_id]["listOrderStatus"] = "ALL_DONE"
        reply = self._order_json(o)
        reply["origClientOrderId"] = o.client_id
        reply["clientOrderId"] = params.get("newClientOrderId") or f"cancel-{next(self._ids)}"
        reply["transactTime"] = now
        self._publish_book(now)
        return reply

    def _validate(self, side: str, type_: str, qty: Decimal, price: Decimal | None,
                  stop: Decimal | None) -> None:
        m = self.m
        if side not in ("BUY", "SELL"):
            raise BinanceError(400, -1117, "Invalid side.")
        if qty < m.min_qty or ((qty - m.min_qty) % m.step) != 0:
            raise BinanceError(400, -1013, "Filter failure: LOT_SIZE")
        for p in (price, stop):
            if p is not None and (p <= 0 or (p % m.tick) != 0):
                raise BinanceError(400, -1013, "Filter failure: PRICE_FILTER")
        ref = price if price is not None else self.price
        if qty * ref < m.min_notional:
            raise BinanceError(400, -1013, f"Filter failure: {m.notional_filter}")

    def _new_order(self, params: dict) -> dict:
        self._symbol(params)
        side, type_ = params.get("side", ""), params.get("type", "")
        if type_ not in ("MARKET", "LIMIT", "LIMIT_MAKER", "STOP_LOSS", "STOP_LOSS_LIMIT"):
            raise BinanceError(400, -1116, "Invalid orderType.")
        cid = params.get("newClientOrderId") or f"sim-{next(self._ids)}"
        if cid in self.by_client and self.orders[self.by_client[cid]].status not in FINAL:
            raise BinanceError(400, -2010, "Duplicate order sent.")
        if "quantity" not in params:
            raise BinanceError(400, -1102, "Mandatory parameter 'quantity' was not sent, was empty/null, or malformed.")
        qty = dec(params["quantity"])
        price = dec(params["price"]) if "price" in params else None
        stop = dec(params["stopPrice"]) if "stopPrice" in params else None
        if type_ in ("LIMIT", "LIMIT_MAKER", "STOP_LOSS_LIMIT") and price is None:
            raise BinanceError(400, -1102, "Mandatory parameter 'price' was not sent, was empty/null, or malformed.")
        if type_ in ("STOP_LOSS", "STOP_LOSS_LIMIT") and stop is None:
            raise BinanceError(400, -1102, "Mandatory parameter 'stopPrice' was not sent, was empty/null, or malformed.")
        self._validate(side, type_, qty, price, stop)
        now = self.clock()
        o = Order(next(self._ids), cid, side, type_, qty, price, stop,
                  params.get("timeInForce") if type_ in ("LIMIT", "STOP_LOSS_LIMIT") else None, now,
                  update_time=now)
        if type_ == "LIMIT_MAKER" and self._crosses(o):
            raise BinanceError(400, -2010, "Order would immediately match and take.")
        if type_ in ("STOP_LOSS", "STOP_LOSS_LIMIT") and self._stop_hit(o):
            raise BinanceError(400, -2010, "Order would trigger immediately.")
        self._lock([o])
        self._book(o)
        if type_ == "MARKET" and self.hold_market_orders:
            self.hold_market_orders -= 1          # acknowledged; filled by fill_held() or never
            o.working_time = now
        elif type_ == "MARKET":
            self._take(o, now)
        elif type_ in ("LIMIT",) and self._crosses(o):
            self._take(o, now, limit=price)
        else:
            o.working_time = now if type_ in ("LIMIT", "LIMIT_MAKER") else -1
        self._publish_book(now)
        return self._order_json(o, full=True)

    def _new_oco(self, params: dict) -> dict:
        self._symbol(params)
        side = params.get("side", "")
        qty = dec(params.get("quantity", "0"))
        above_type, below_type = params.get("aboveType"), params.get("belowType")
        if side != "SELL":
            raise BinanceError(400, -1013, "The simulator supports SELL OCO lists only.")
        if above_type not in ("LIMIT_MAKER",) or below_type not in ("STOP_LOSS", "STOP_LOSS_LIMIT"):
            raise BinanceError(400, -1116, "Invalid orderType.")
        above_price = dec(params["abovePrice"]) if "abovePrice" in params else None
        below_stop = dec(params["belowStopPrice"]) if "belowStopPrice" in params else None
        below_price = dec(params["belowPrice"]) if "belowPrice" in params else None
        if above_price is None or below_stop is None or (below_type == "STOP_LOSS_LIMIT" and below_price is None):
            raise BinanceError(400, -1102, "Mandatory parameter was not sent, was empty/null, or malformed.")
        for cid_key in ("listClientOrderId", "aboveClientOrderId", "belowClientOrderId"):
            cid = params.get(cid_key)
            if cid and cid in self.by_client and self.orders[self.by_client[cid]].status not in FINAL:
                raise BinanceError(400, -2010, "Duplicate order sent.")
        self._validate(side, "LIMIT_MAKER", qty, above_price, None)
        self._validate(side, below_type, qty, below_price, below_stop)
        if not (above_price > self.price > below_stop):
            raise BinanceError(400, -2010, "The relationship of the prices for the orders is not correct.")
        now = self.clock()
        list_id = next(self._list_ids)
        above = Order(next(self._ids), params.get("aboveClientOrderId") or f"sim-{next(self._ids)}", "SELL",
                      "LIMIT_MAKER", qty, above_price, None, None, now, update_time=now,
                      working_time=now, list_id=list_id)
        below = Order(next(self._ids), params.get("belowClientOrderId") or f"sim-{next(self._ids)}", "SELL",
                      below_type, qty, below_price, below_stop,
                      params.get("belowTimeInForce", "GTC") if below_type == "STOP_LOSS_LIMIT" else None,
                      now, update_time=now, list_id=list_id)
        self._lock([below, above])
        list_cid = params.get("listClientOrderId") or f"sim-list-{list_id}"
        self.lists[list_id] = {"orderIds": [below.order_id, above.order_id], "listClientOrderId": list_cid,
                               "listOrderStatus": "EXECUTING", "transactionTime": now}
        self._book(below)
        self._book(above)
        return self._list_json(list_id)

    def _list_json(self, list_id: int) -> dict:
        lst = self.lists[list_id]
        legs = [self.orders[i] for i in lst["orderIds"]]
        return {"orderListId": list_id, "contingencyType": "OCO", "listStatusType": "EXEC_STARTED",
                "listOrderStatus": lst["listOrderStatus"], "listClientOrderId": lst["listClientOrderId"],
                "transactionTime": lst["transactionTime"], "symbol": self.m.symbol,
                "orders": [{"symbol": self.m.symbol, "orderId": o.order_id, "clientOrderId": o.client_id}
                           for o in legs],
                "orderReports": [self._order_json(o, full=True) for o in legs]}

    # ----- matching ---------------------------------------------------------------------------
    def _book(self, o: Order) -> None:
        self.orders[o.order_id] = o
        self.by_client[o.client_id] = o.order_id

    def _lock(self, orders: list[Order]) -> None:
        """Reserve what the orders could spend; one OCO list locks its quantity once."""
        o = orders[0]
        if o.side == "SELL":
            asset, need = self.m.base, o.qty
        else:
            asset = self.m.quote
            ref = o.price if o.price is not None else self._levels("ask")[0][0]
            need = o.qty * ref * (1 + self.fee_rate if self._commission(o.side) == self.m.quote else 1)
        if self.free.get(asset, D(0)) < need:
            raise BinanceError(400, -2010, "Account has insufficient balance for requested action.")
        self.free[asset] -= need
        self.locked[asset] = self.locked.get(asset, D(0)) + need
        o.locked_asset, o.locked = asset, need
        for other in orders[1:]:
            other.locked_asset = asset      # shares the first leg's lock

    def _release(self, orders: list[Order]) -> None:
        for o in orders:
            if o.locked > 0 and o.locked_asset is not None:
                self.locked[o.locked_asset] -= o.locked
                self.free[o.locked_asset] += o.locked
                o.locked = D(0)

    def _crosses(self, o: Order) -> bool:
        bid, ask = self._bid_ask()
        if o.price is None:
            return False
        return o.price >= ask if o.side == "BUY" else o.price <= bid

    def _stop_hit(self, o: Order) -> bool:
        if o.stop is None:
            return False
        return self.price <= o.stop if o.side == "SELL" else self.price >= o.stop

    def _commission(self, side: str) -> str:
        if self.commission_asset is not None:
            return self.commission_asset
        return self.m.base if side == "BUY" else self.m.quote

    def _fill(self, o: Order, price: Decimal, qty: Decimal, now: int, maker: bool) -> None:
        quote = price * qty
        asset = self._commission(o.side)
        fee = (qty if asset == self.m.base else quote) * self.fee_rate
        fee = fee.quantize(D("0.00000001"), rounding=ROUND_DOWN)
        o.executed += qty
        o.quote_qty += quote
        o.update_time = now
        if o.working_time < 0:
            o.working_time = now
        tid = next(self._trade_ids)
        o.fills.append({"price": fmt(price), "qty": fmt(qty), "commission": fmt(fee),
                        "commissionAsset": asset, "tradeId": tid})
        self.my_trades.append({"symbol": self.m.symbol, "id": tid, "orderId": o.order_id,
                               "orderListId": o.list_id, "price": fmt(price), "qty": fmt(qty),
                               "quoteQty": fmt(quote), "commission": fmt(fee), "commissionAsset": asset,
                               "time": now, "isBuyer": o.side == "BUY", "isMaker": maker,
                               "isBestMatch": True})
        # settle: spend from the lock first, then from free
        spend_asset = self.m.base if o.side == "SELL" else self.m.quote
        spend = qty if o.side == "SELL" else quote
        if asset == spend_asset:
            spend += fee
        holder = o if o.list_id < 0 else self.orders[self.lists[o.list_id]["orderIds"][0]]
        from_lock = min(spend, holder.locked)
        holder.locked -= from_lock
        self.locked[spend_asset] -= from_lock
        self.free[spend_asset] -= spend - from_lock
        gain_asset = self.m.quote if o.side == "SELL" else self.m.base
        gain = quote if o.side == "SELL" else qty
        if asset == gain_asset:
            gain -= fee
        elif asset not in (spend_asset, gain_asset):
            self.free[asset] = self.free.get(asset, D(0)) - fee
        self.free[gain_asset] = self.free.get(gain_asset, D(0)) + gain
        self._publish_trade(price, qty, now)

    def _take(self, o: Order, now: int, limit: Decimal | None = None) -> None:
        """Walk the synthetic book; what it cannot take expires (MARKET) or rests (LIMIT)."""
        side = "ask" if o.side == "BUY" else "bid"
        for price, level_qty in self._levels(side):
            if o.remaining <= 0:
                break
            if limit is not None and ((o.side == "BUY" and price > limit) or (o.side == "SELL" and price < limit)):
                break
            self._fill(o, price, min(level_qty, o.remaining), now, maker=False)
        if o.remaining <= 0:
            o.status = "FILLED"
        elif o.type == "MARKET" or (o.type == "STOP_LOSS" and o.triggered):
            o.status = "EXPIRED"
        else:
            o.status = "PARTIALLY_FILLED" if o.executed > 0 else "NEW"
        if o.status in FINAL:
            self._finish(o, now)

    def _finish(self, o: Order, now: int) -> None:
        """An order became final: release what it still locks, expire its OCO sibling."""
        if o.list_id >= 0:
            lst = self.lists[o.list_id]
            legs = [self.orders[i] for i in lst["orderIds"]]
            for leg in legs:
                if leg is not o and leg.status not in FINAL:
                    leg.status, leg.update_time = "EXPIRED", now
            lst["listOrderStatus"] = "ALL_DONE"
            self._release(legs)
        else:
            self._release([o])

    def _match(self, now: int) -> None:
        for o in list(self.orders.values()):
            if o.status in FINAL:
                continue
            if o.type in ("STOP_LOSS", "STOP_LOSS_LIMIT") and not o.triggered:
                if not self._stop_hit(o):
                    continue
                o.triggered, o.working_time, o.update_time = True, now, now
                if o.type == "STOP_LOSS":
                    self._take(o, now)
                    continue
            if o.type == "MARKET" or o.price is None:
                continue
            if (o.side == "SELL" and self.price >= o.price) or (o.side == "BUY" and self.price <= o.price):
                qty = o.remaining if self.liquidity_per_tick is None else min(o.remaining, dec(self.liquidity_per_tick))
                qty = (qty / self.m.step).to_integral_value(rounding=ROUND_DOWN) * self.m.step
                if qty <= 0:
                    continue
                self._fill(o, o.price, qty, now, maker=True)
                o.status = "FILLED" if o.remaining <= 0 else "PARTIALLY_FILLED"
                if o.status == "FILLED":
                    self._finish(o, now)
                elif o.list_id >= 0:        # any fill of an OCO leg expires the other leg
                    for leg in (self.orders[i] for i in self.lists[o.list_id]["orderIds"]):
                        if leg is not o and leg.status not in FINAL:
                            leg.status, leg.update_time = "EXPIRED", now

    # ----- JSON shapes ------------------------------------------------------------------------
    def _order_json(self, o: Order, full: bool = False) -> dict:
        d = {"symbol": self.m.symbol, "orderId": o.order_id, "orderListId": o.list_id,
             "clientOrderId": o.client_id, "price": fmt(o.price or D(0)), "origQty": fmt(o.qty),
             "executedQty": fmt(o.executed), "cummulativeQuoteQty": fmt(o.quote_qty),
             "status": o.status, "timeInForce": o.time_in_force or "GTC", "type": o.type,
             "side": o.side, "stopPrice": fmt(o.stop or D(0)), "icebergQty": "0.00000000",
             "time": o.time, "updateTime": o.update_time, "isWorking": o.working_time >= 0,
             "workingTime": o.working_time, "origQuoteOrderQty": "0.00000000",
             "selfTradePreventionMode": "EXPIRE_MAKER"}
        if full:
            d["transactTime"] = o.update_time
            d["fills"] = list(o.fills)
            for k in ("time", "updateTime", "isWorking", "icebergQty", "origQuoteOrderQty"):
                d.pop(k)
        return d

    # ----- candles ----------------------------------------------------------------------------
    def _tick_down(self, p: Decimal) -> Decimal:
        return (p / self.m.tick).to_integral_value(rounding=ROUND_DOWN) * self.m.tick

    def _roll(self, now: int, open_price: Decimal | None = None) -> None:
        """Make the candle containing `now` the current one (closing the ones before)."""
        start = now - now % self.tf_ms
        if self.candles and self.candles[-1].ts >= start:
            return
        if self.candles:
            self._publish_kline(self.candles[-1], closed=True, now=now)
        p = self.price if open_price is None else open_price
        self.price = p
        self.candles.append(Candle(start, p, p, p, p))

    def candles_at(self, interval_ms: int, start: int | None = None) -> list[Candle]:
        """The candles at another interval, as Binance answers any interval: a multiple of the
        simulator's timeframe aggregates its candles (the last bucket may be forming); a divisor
        splits them, exactly from the prints of candles that were traded here (set_price), and
        for loaded history along open -> low -> high -> close (a down bar: high first), so the
        finer candles always aggregate back to the coarse one. Only candles that have started."""
        base = [c for c in self.candles if start is None or c.ts + self.tf_ms > start]
        if interval_ms == self.tf_ms:
            return base
        if interval_ms % self.tf_ms == 0:
            out: list[Candle] = []
            for c in base:
                bucket = c.ts - c.ts % interval_ms
                if out and out[-1].ts == bucket:
                    a = out[-1]
                    a.h, a.l, a.c = max(a.h, c.h), min(a.l, c.l), c.c
                    a.v, a.q, a.n = a.v + c.v, a.q + c.q, a.n + c.n
                else:
                    out.append(Candle(bucket, c.o, c.h, c.l, c.c, c.v, c.q, c.n))
            return out
        if self.tf_ms % interval_ms:
            raise BinanceError(400, -1120, f"Invalid interval (the simulator's {self.timeframe} "
                                           "candles are neither a multiple nor a divisor of it).")
        now = self.clock()
        return [s for c in base for s in self._split(c, interval_ms, now)]

    def _split(self, c: Candle, ms: int, now: int) -> list[Candle]:
        k = self.tf_ms // ms
        out: list[Candle] = []
        if c.ticks:
            last, ticks = c.o, list(c.ticks)
            for j in range(k):
                t0 = c.ts + j * ms
                if t0 > now:
                    break
                mine = [t for t in ticks if t0 <= t[0] < t0 + ms or (j == k - 1 and t[0] >= t0)]
                prices = [last] + [p for _, p, _ in mine]
                vol = sum((q for _, _, q in mine), D(0))
                out.append(Candle(t0, last, max(prices), min(prices), prices[-1], vol,
                                  sum((q * p for _, p, q in mine), D(0)), len(mine)))
                last = prices[-1]
            return out
        path = [c.o, c.l, c.h, c.c] if c.c >= c.o else [c.o, c.h, c.l, c.c]

        def at(f: Decimal) -> Decimal:          # the price along the path at fraction f of the bar
            i = min(int(f * 3), 2)
            frac = f * 3 - i
            if frac in (0, 1):
                return path[i + int(frac)]
            v = path[i] + (path[i + 1] - path[i]) * frac
            return min(max(self._tick_down(v), c.l), c.h)

        for j in range(k):
            t0 = c.ts + j * ms
            if t0 > now:
                break
            a, b = D(j) / k, D(j + 1) / k
            pts = [at(a), at(b)] + [path[v] for v in (1, 2) if a < D(v) / 3 < b]
            out.append(Candle(t0, pts[0], max(pts), min(pts), pts[1], c.v / k, c.q / k, 1))
        return out

    # ----- WebSocket --------------------------------------------------------------------------
    async def _ws(self, request: web.Request) -> web.StreamResponse:
        if self.refuse_sockets:
            self.refuse_sockets -= 1
            raise web.HTTPServiceUnavailable()
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        self._sockets.add(ws)
        self._subs[ws] = set()
        try:
            async for msg in ws:
                if msg.type != WSMsgType.TEXT:
                    continue
                try:
                    req = json.loads(msg.data)
                except ValueError:
                    await ws.send_json({"error": {"code": 3, "msg": "Invalid JSON"}})
                    continue
                method, streams = req.get("method"), req.get("params") or []
                if method == "SUBSCRIBE":
                    self._subs[ws].update(streams)
                    await ws.send_json({"result": None, "id": req.get("id")})
                elif method == "UNSUBSCRIBE":
                    self._subs[ws].difference_update(streams)
                    await ws.send_json({"result": None, "id": req.get("id")})
                elif method == "LIST_SUBSCRIPTIONS":
                    await ws.send_json({"result": sorted(self._subs[ws]), "id": req.get("id")})
                else:
                    await ws.send_json({"error": {"code": 2, "msg": f"Invalid request: {method}"},
                                        "id": req.get("id")})
        finally:
            self._sockets.discard(ws)
            self._subs.pop(ws, None)
        return ws

    def subscribers(self, stream: str) -> int:
        return sum(1 for subs in self._subs.values() if stream in subs)

    def _publish(self, stream: str, payload: dict) -> None:
        for ws, subs in list(self._subs.items()):
            if stream in subs and not ws.closed:
                asyncio.get_running_loop().create_task(self._send(ws, payload))

    @staticmethod
    async def _send(ws: web.WebSocketResponse, payload: dict) -> None:
        try:
            await ws.send_str(json.dumps(payload))
        except (ConnectionError, RuntimeError):
            pass

    def _has_loop(self) -> bool:
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return False
        return bool(self._subs)

    def _publish_kline(self, c: Candle, closed: bool, now: int) -> None:
        """The candle to its stream, and to streams of other intervals (candles_at) too."""
        if not self._has_loop():
            return
        s = self.m.symbol
        prefix = f"{s.lower()}@kline_"
        intervals = {self.timeframe} | {st[len(prefix):] for subs in self._subs.values() for st in subs
                                        if st.startswith(prefix) and st[len(prefix):] in TF_MS}
        for interval in sorted(intervals):
            ms = TF_MS[interval]
            if ms == self.tf_ms:
                k = c
            elif ms % self.tf_ms == 0 or self.tf_ms % ms == 0:
                last = [x for x in self.candles_at(ms, c.ts) if x.ts <= c.ts + self.tf_ms - 1]
                if not last:
                    continue
                k = last[-1]
            else:
                continue
            self._publish(prefix + interval, {
                "e": "kline", "E": now, "s": s,
                "k": {"t": k.ts, "T": k.ts + ms - 1, "s": s, "i": interval, "f": 0, "L": 0,
                      "o": fmt(k.o), "c": fmt(k.c), "h": fmt(k.h), "l": fmt(k.l), "v": fmt(k.v),
                      "n": k.n, "x": closed and k.ts + ms == c.ts + self.tf_ms, "q": fmt(k.q),
                      "V": "0", "Q": "0", "B": "0"}})

    def _publish_trade(self, price: Decimal, qty: Decimal, now: int) -> None:
        if not self._has_loop():
            return
        s = self.m.symbol
        self._publish(f"{s.lower()}@trade", {"e": "trade", "E": now, "s": s, "t": next(self._trade_ids),
                                             "p": fmt(price), "q": fmt(qty), "T": now, "m": False,
                                             "M": True})

    def _publish_book(self, now: int) -> None:
        self._book_changed()
        if not self._has_loop():
            return
        s = self.m.symbol
        bid, ask = self._bid_ask()
        self._publish(f"{s.lower()}@bookTicker", {"u": now, "s": s, "b": fmt(bid), "B": fmt(self.level_qty),
                                                  "a": fmt(ask), "A": fmt(self.level_qty)})
        c = self.candles[-1]
        ticker = {"e": "24hrTicker", "E": now, "s": s, "p": fmt(self.price - c.o), "P": "0",
                  "w": fmt(self.price), "x": fmt(c.o), "c": fmt(self.price), "Q": "0.01",
                  "b": fmt(bid), "B": fmt(self.level_qty), "a": fmt(ask), "A": fmt(self.level_qty),
                  "o": fmt(c.o), "h": fmt(c.h), "l": fmt(c.l), "v": fmt(c.v), "q": fmt(c.q),
                  "O": now - 86_400_000, "C": now, "F": 0, "L": 0, "n": c.n}
        self._publish(f"{s.lower()}@ticker", ticker)
        self._publish(f"{s.lower()}@miniTicker", {k: ticker[k] for k in ("e", "E", "s", "c", "o", "h", "l", "v", "q")}
                      | {"e": "24hrMiniTicker"})

    # ----- diff-depth stream --------------------------------------------------------------------
    def _book_init(self) -> None:
        self._book_id = 0                                  # id of the last change of the book
        self._book_shown: dict[str, dict[Decimal, Decimal]] = {"bid": {}, "ask": {}}
        # per pace (ms): the changes not sent yet, and the first update id among them
        self._depth_pending: dict[int, dict[str, dict[Decimal, Decimal]]] = {100: {}, 1000: {}}
        self._depth_first: dict[int, int | None] = {100: None, 1000: None}
        self._depth_task: asyncio.Task | None = None
        self._depth_ticks = 0
        self.depth_events: int = 0                         # depthUpdate events sent
        self.skip_depth_updates = 0                        # lose the next N events (a gap)
        self.mute_depth = False                            # send none, the connection stays up
        self.book_churn = False                            # the deepest levels breathe every 100 ms
        self._churn = False
        self._book_changed()

    def _depth_streams(self) -> dict[str, int]:
        s = self.m.symbol.lower()
        return {f"{s}@depth@100ms": 100, f"{s}@depth": 1000}

    def _book_changed(self) -> None:
        """Compare the synthetic book with the one last shown; every level that changed is one
        update id, queued for the next event of each pace."""
        now = {side: dict(self._levels(side)) for side in ("bid", "ask")}
        for side in ("bid", "ask"):
            before, after = self._book_shown[side], now[side]
            changed = {p: q for p, q in after.items() if before.get(p) != q}
            changed.update({p: D(0) for p in before if p not in after})
            for price in sorted(changed):
                self._book_id += 1
                for pace, pending in self._depth_pending.items():
                    pending.setdefault(side, {})[price] = changed[price]
                    if self._depth_first[pace] is None:
                        self._depth_first[pace] = self._book_id
        self._book_shown = now

    def depth_subscribers(self) -> int:
        names = self._depth_streams()
        return sum(1 for subs in self._subs.values() for st in subs if st in names)

    def drop_depth_streams(self) -> int:
        """Cut (no close handshake) every WebSocket connection that carries a depth stream."""
        names = self._depth_streams()
        return _abort_all([ws for ws, subs in self._subs.items() if subs & names.keys()])

    async def _depth_pacer(self) -> None:
        """Binance's pace: @depth@100ms every 100 ms, @depth every second, an event only when
        the book changed (also by a test changing the book's shape)."""
        while True:
            await asyncio.sleep(0.1)
            self._depth_ticks += 1
            if not self.depth_subscribers():
                self._depth_pending, self._depth_first = {100: {}, 1000: {}}, {100: None, 1000: None}
                continue
            if self.book_churn:
                self._churn = not self._churn
            self._book_changed()
            self._flush_depth(100)
            if self._depth_ticks % 10 == 0:
                self._flush_depth(1000)

    def _flush_depth(self, pace: int) -> None:
        pending, first = self._depth_pending[pace], self._depth_first[pace]
        self._depth_pending[pace], self._depth_first[pace] = {}, None
        if first is None or self.mute_depth:
            return
        if self.skip_depth_updates:
            self.skip_depth_updates -= 1
            return
        s = self.m.symbol
        event = {"e": "depthUpdate", "E": self.clock(), "s": s, "U": first, "u": self._book_id,
                 "b": [[fmt(p), fmt(q)] for p, q in sorted(pending.get("bid", {}).items(), reverse=True)],
                 "a": [[fmt(p), fmt(q)] for p, q in sorted(pending.get("ask", {}).items())]}
        self.depth_events += 1
        for name, p in self._depth_streams().items():
            if p == pace:
                self._publish(name, event)

    # ----- user data stream (WebSocket API, as ccxt 4.5 uses it for spot) ---------------------
    def _user_init(self) -> None:
        self._api_sockets: set[web.WebSocketResponse] = set()
        self._user_subs: dict[web.WebSocketResponse, set[int]] = {}
        self._user_queues: dict[web.WebSocketResponse, asyncio.Queue] = {}
        self._user_sub_ids = itertools.count(0)
        self._user_seen: dict[int, tuple[str, int]] = {}     # order id -> (status, fills) published
        self._user_lists: dict[int, str] = {}                # list id -> listOrderStatus published
        self._user_balances: dict[str, tuple[Decimal, Decimal]] = {}
        self.user_events: list[dict] = []                    # every event sent (tests assert on it)
        self.refuse_user_streams = 0                         # reject the next N ws-api connections
        self.reject_user_stream_subscribe = 0                # answer the next N subscribes with -1022

    def user_stream_subscribers(self) -> int:
        return sum(len(s) for s in self._user_subs.values())

    def drop_user_streams(self) -> int:
        """Cut every WebSocket API connection (the user data stream) without a close handshake."""
        return _abort_all(self._api_sockets)

    def terminate_user_streams(self) -> int:
        """Binance ending the subscriptions (`eventStreamTerminated`); the connection stays up."""
        n = 0
        for ws, subs in list(self._user_subs.items()):
            for sid in sorted(subs):
                self._user_queues[ws].put_nowait({"subscriptionId": sid, "event": {
                    "e": "eventStreamTerminated", "E": self.clock()}})
                n += 1
            subs.clear()
        return n

    async def _ws_api(self, request: web.Request) -> web.StreamResponse:
        if self.refuse_user_streams:
            self.refuse_user_streams -= 1
            raise web.HTTPServiceUnavailable()
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        queue: asyncio.Queue = asyncio.Queue()
        self._api_sockets.add(ws)
        self._user_subs[ws] = set()
        self._user_queues[ws] = queue
        writer = asyncio.get_running_loop().create_task(self._user_writer(ws, queue))
        try:
            async for msg in ws:
                if msg.type != WSMsgType.TEXT:
                    continue
                try:
                    req = json.loads(msg.data)
                except ValueError:
                    queue.put_nowait({"id": None, "status": 400, "error": {"code": -1102, "msg": "Invalid JSON"}})
                    continue
                queue.put_nowait(self._ws_api_request(ws, req))
        finally:
            self._api_sockets.discard(ws)
            self._user_subs.pop(ws, None)
            self._user_queues.pop(ws, None)
            writer.cancel()
        return ws

    @staticmethod
    async def _user_writer(ws: web.WebSocketResponse, queue: asyncio.Queue) -> None:
        """One writer per connection: replies and events leave in the order they were made."""
        while True:
            payload = await queue.get()
            try:
                await ws.send_str(json.dumps(payload))
            except (ConnectionError, RuntimeError):
                return

    def _ws_api_request(self, ws: web.WebSocketResponse, req: dict) -> dict:
        rid, method, params = req.get("id"), req.get("method"), req.get("params") or {}
        try:
            if method == "userDataStream.subscribe.signature":
                if self.reject_user_stream_subscribe:
                    self.reject_user_stream_subscribe -= 1
                    raise BinanceError(400, -1022, "Signature for this request is not valid.")
                self._check_ws_signature(params)
                sid = next(self._user_sub_ids)
                self._user_subs[ws].add(sid)
                self._user_sync()               # what changed before this subscription is not sent
                return {"id": rid, "status": 200, "result": {"subscriptionId": sid}}
            if method == "userDataStream.unsubscribe":
                sid = params.get("subscriptionId")
                if sid is None:
                    self._user_subs[ws].clear()
                else:
                    self._user_subs[ws].discard(int(sid))
                return {"id": rid, "status": 200, "result": {}}
            raise BinanceError(400, -1100, f"simulator: the WebSocket API method {method} is not spoken")
        except BinanceError as e:
            return {"id": rid, "status": e.status, "error": {"code": e.code, "msg": e.msg}}

    def _check_ws_signature(self, params: dict) -> None:
        """WebSocket API signing: HMAC-SHA256 over `k=v&...` of every other param, keys sorted."""
        if params.get("apiKey") != self.api_key:
            raise BinanceError(401, -2015, "Invalid API-key, IP, or permissions for action.")
        signature = params.get("signature")
        if not signature:
            raise BinanceError(400, -1102, "Mandatory parameter 'signature' was not sent, was empty/null, or malformed.")
        payload = "&".join(f"{k}={params[k]}" for k in sorted(params) if k != "signature")
        expected = hmac.new(self.secret.encode(), payload.encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, str(signature)):
            raise BinanceError(400, -1022, "Signature for this request is not valid.")
        wall = time.time_ns() // 1_000_000
        ts = int(params.get("timestamp", 0))
        if ts > wall + 1_000 or wall - ts > int(params.get("recvWindow", self.recv_window_ms)):
            raise BinanceError(400, -1021, "Timestamp for this request is outside of the recvWindow.")

    def _user_sync(self, cancel_reply: dict | None = None) -> None:
        """Publish what changed since the last call: for each order NEW, its fills (TRADE), then
        the final CANCELED / EXPIRED reports; OCO list status; changed balances. Called after
        every request and every price print; the state is tracked even with no subscriber, so a
        new subscription only hears of later changes."""
        now = self.clock()
        events: list[dict] = []
        finals: list[dict] = []
        cancel_cid = cancel_reply.get("clientOrderId") if cancel_reply else None
        for o in self.orders.values():
            status, nfills = self._user_seen.get(o.order_id, (None, 0))
            if (status, nfills) == (o.status, len(o.fills)):
                continue
            if status is None:
                events.append(self._execution_report(o, "NEW", "NEW", None, 0, now))
            for i in range(nfills, len(o.fills)):
                cum = sum((dec(f["qty"]) for f in o.fills[: i + 1]), D(0))
                x_status = "FILLED" if cum >= o.qty else "PARTIALLY_FILLED"
                events.append(self._execution_report(o, "TRADE", x_status, o.fills[i], i + 1, now))
            if o.status in ("CANCELED", "EXPIRED", "REJECTED") and status != o.status:
                finals.append(self._execution_report(o, o.status, o.status, None, len(o.fills), now,
                                                     cancel_cid=cancel_cid if o.status == "CANCELED" else None))
            self._user_seen[o.order_id] = (o.status, len(o.fills))
        events += finals
        for list_id, lst in self.lists.items():
            if self._user_lists.get(list_id) != lst["listOrderStatus"]:
                self._user_lists[list_id] = lst["listOrderStatus"]
                events.append(self._list_status(list_id, now))
        changed = []
        for asset in sorted(set(self.free) | set(self.locked)):
            pair = (self.free.get(asset, D(0)), self.locked.get(asset, D(0)))
            if self._user_balances.get(asset) != pair:
                self._user_balances[asset] = pair
                changed.append({"a": asset, "f": fmt(pair[0]), "l": fmt(pair[1])})
        if changed and events:
            events.append({"e": "outboundAccountPosition", "E": now, "u": now, "B": changed})
        if not events or not self.user_stream_subscribers():
            return
        self.user_events.extend(events)
        for ws, subs in self._user_subs.items():
            for sid in sorted(subs):
                for ev in events:
                    self._user_queues[ws].put_nowait({"subscriptionId": sid, "event": ev})

    def _execution_report(self, o: Order, x: str, status: str, fill: dict | None, nfills: int, now: int,
                          cancel_cid: str | None = None) -> dict:
        fills = o.fills[:nfills]
        cum = sum((dec(f["qty"]) for f in fills), D(0))
        cum_quote = sum((dec(f["qty"]) * dec(f["price"]) for f in fills), D(0))
        trade = next((t for t in reversed(self.my_trades) if fill and t["id"] == fill["tradeId"]), None)
        ts = trade["time"] if trade else (o.update_time or now)
        return {
            "e": "executionReport", "E": now, "s": self.m.symbol,
            "c": cancel_cid or o.client_id, "S": o.side, "o": o.type, "f": o.time_in_force or "GTC",
            "q": fmt(o.qty), "p": fmt(o.price or D(0)), "P": fmt(o.stop or D(0)), "F": "0.00000000",
            "g": o.list_id, "C": o.client_id if cancel_cid else "", "x": x, "X": status, "r": "NONE",
            "i": o.order_id, "l": fill["qty"] if fill else "0.00000000",
            "z": fmt(cum), "L": fill["price"] if fill else "0.00000000",
            "n": fill["commission"] if fill else "0", "N": fill["commissionAsset"] if fill else None,
            "T": ts, "t": fill["tradeId"] if fill else -1, "v": 0, "I": 0,
            "w": status in ("NEW", "PARTIALLY_FILLED") and o.working_time >= 0,
            "m": bool(trade and trade["isMaker"]), "M": False, "O": o.time, "Z": fmt(cum_quote),
            "Y": fmt(dec(fill["qty"]) * dec(fill["price"])) if fill else "0.00000000",
            "Q": "0.00000000", "W": o.working_time if o.working_time >= 0 else o.time,
            "V": "EXPIRE_MAKER"}

    def _list_status(self, list_id: int, now: int) -> dict:
        lst = self.lists[list_id]
        done = lst["listOrderStatus"] == "ALL_DONE"
        return {"e": "listStatus", "E": now, "s": self.m.symbol, "g": list_id, "c": "OCO",
                "l": "ALL_DONE" if done else "EXEC_STARTED", "L": lst["listOrderStatus"], "r": "NONE",
                "C": lst["listClientOrderId"], "T": now,
                "O": [{"s": self.m.symbol, "i": i, "c": self.orders[i].client_id} for i in lst["orderIds"]]}


def production_errors(exchange: Any) -> None:
    """ccxt maps Binance's spot error codes only on binance.com URLs; apply them to any URL."""
    spot = exchange.exceptions.get("spot", {})
    exchange.exceptions["exact"] = {**exchange.exceptions.get("exact", {}), **spot.get("exact", {})}
    exchange.exceptions["broad"] = {**exchange.exceptions.get("broad", {}), **spot.get("broad", {})}


async def _abort_request(request: web.Request) -> None:
    """Cut the connection under a request: the client sees it die with no reply."""
    if request.transport is not None:
        request.transport.abort()
    await asyncio.sleep(0)
    raise web.HTTPServiceUnavailable()


def _abort_all(sockets) -> int:
    """Abort the transport under each WebSocket: the peer sees the connection die, no close frame."""
    n = 0
    for ws in list(sockets):
        transport = ws._req.transport if ws._req is not None else None   # noqa: SLF001
        if transport is not None:
            transport.abort()
            n += 1
    return n


def ccxt_config(sim_url: str, *, api_key: str | None = "sim-key", secret: str | None = "sim-secret",
                timeout_ms: int = 3_000) -> dict:
    """The constructor config that points ccxt.pro.binance at a simulator (or any
    Binance-compatible base URL), spot only, one exchangeInfo call per load_markets."""
    ws = sim_url.replace("http://", "ws://").replace("https://", "wss://")
    cfg: dict[str, Any] = {
        "enableRateLimit": True, "timeout": timeout_ms,
        "urls": {"api": {"public": f"{sim_url}{API}", "private": f"{sim_url}{API}",
                         "sapi": f"{sim_url}/sapi/v1",
                         "ws": {"spot": f"{ws}/ws", "ws-api": {"spot": f"{ws}/ws-api/v3"}}}},
        "options": {"defaultType": "spot", "fetchMarkets": {"types": ["spot"]},
                    "fetchCurrencies": False, "fetchMargins": False,
                    "adjustForTimeDifference": False},
    }
    if api_key is not None:
        cfg["apiKey"], cfg["secret"] = api_key, secret
    return cfg
