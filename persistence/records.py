"""Rows the store keeps. Plain dataclasses: the engine builds them, the store persists them,
the UI and CLI read them. Prices in quote currency, amounts in base currency, times in Unix ms
(UTC) in memory and ISO 8601 UTC in the database."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class OrderRecord:
    """One order's life. Written BEFORE it is sent (invariant 1), updated as it resolves."""

    client_order_id: str          # unique; the only key used to look an order up after a crash
    trade_id: int | None          # the trade this order opens or closes
    side: str                     # "buy" | "sell"
    type: str                     # "market" | "limit" | "stop"
    amount: float                 # requested, base currency
    created_ts: int
    status: str = "new"           # new -> open -> filled | canceled | rejected | unknown
    purpose: str = "entry"        # "entry" | "exit"
    limit_price: float | None = None
    stop_price: float | None = None
    expected_price: float | None = None   # reference price when decided
    fill_price: float | None = None
    filled_amount: float = 0.0
    fee: float = 0.0              # quote currency
    exchange_order_id: str | None = None
    reason: str | None = None     # exit reason, or why it was rejected
    updated_ts: int | None = None
    group_id: str | None = None   # the exit group (one-cancels-the-other) this leg belongs to


@dataclass(slots=True)
class TradeRecord:
    """A round trip: opened by an entry fill, closed by an exit fill."""

    pair: str
    signal_ts: int                # the signal bar's open time (the backtest's entry_ts)
    entry_ts: int                 # when the entry filled
    entry_price: float            # fill price (slippage included)
    entry_reference: float        # reference price (next bar's open in replay)
    amount: float
    entry_fee: float
    mode: str                     # "paper" | "testnet" | "live"
    fib_target_level: float | None = None
    target_price: float | None = None
    tp_price: float | None = None
    stop_price: float | None = None      # the placed stop, when use_stop_loss
    risk_stop: float | None = None       # the sizing stop, always set
    swing_high: float | None = None
    swing_low: float | None = None
    status: str = "open"          # "open" | "closed"
    exit_ts: int | None = None
    exit_price: float | None = None      # fill price
    exit_reference: float | None = None  # the level or price the exit was triggered at
    exit_fee: float = 0.0
    exit_reason: str | None = None       # FIB_61.8, STOP, STOP_GAP, TP_2.0R, TIME, MANUAL, ...
    bars_held: int = 0
    pnl: float | None = None             # quote currency, after both fees
    pnl_percent: float | None = None     # pnl / entry notional * 100
    id: int | None = None


@dataclass(slots=True)
class SignalRecord:
    """Every bar whose signal condition holds, traded or not."""

    bar_ts: int
    close: float
    ema_fast: float
    ema_slow: float
    vol_z: float
    tr_z: float
    cloc: float
    fib_swing_high: float | None
    fib_levels: dict[str, float] | None   # {"0.382": price, ...}; stored as JSON
    target_price: float | None
    action: str                   # "ENTERED" | "SKIPPED"
    reason: str                   # why (e.g. "in position", "no Fibonacci levels", "paused")


@dataclass(slots=True)
class SnapshotRecord:
    ts: int
    balance: float                # quote currency cash
    equity: float                 # balance + position marked to market
    unrealized_pnl: float
    position_amount: float
    price: float | None


@dataclass(slots=True)
class Stats:
    """What the stats panel and `status` show; computed from the store so it survives restarts."""

    today_trades: int = 0
    today_wins: int = 0
    today_losses: int = 0
    today_pnl: float = 0.0
    total_trades: int = 0
    total_wins: int = 0
    total_pnl: float = 0.0
    max_drawdown_percent: float = 0.0     # peak-to-trough of equity snapshots
    sharpe: float | None = None           # per-trade returns, not annualised; None below 2 trades
    avg_duration_minutes: float | None = None

    @property
    def today_win_rate(self) -> float | None:
        return self.today_wins / self.today_trades * 100 if self.today_trades else None

    @property
    def win_rate(self) -> float | None:
        return self.total_wins / self.total_trades * 100 if self.total_trades else None


@dataclass(frozen=True, slots=True)
class DataFolderIdentity:
    """What a data folder's ledger belongs to: one pair, one timeframe, one mode. A position
    opened on BTC/USDT must never be "restored" under an ETH/USDT config (or a paper ledger
    continued as live money)."""

    pair: str                     # "BTC/USDT"
    timeframe: str                # "15m"
    mode: str                     # "paper" | "testnet" | "live": the venue that actually executes

    def __str__(self) -> str:
        return f"{self.pair} {self.timeframe} {self.mode}"
