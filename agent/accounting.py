"""Cash, the open position, its mark, and the UTC day: what the account is worth, and the one
typed checkpoint that makes it survive a restart.

A position is marked only by a live price (invariant 8): catch-up bars never move the mark, so
equity and the daily-loss check never see an old price. Until the first live price after a
start, the position is valued at its entry price.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

from agent.clock import utc_day
from agent.risk_manager import DayState
from persistence.records import OrderRecord, SignalRecord, SnapshotRecord, TradeRecord
from persistence.store import Store

CHECKPOINT_KEY = "checkpoint"
# Base on the exchange account that is not the agent's (recorded at the first reconciliation,
# plus any remainder of a partly sold position too small to sell): {"amount", "closed_trades"}.
BASELINE_KEY = "reconcile.base_not_managed"


def add_not_managed(store: Store, amount: float) -> None:
    """Record `amount` more base as not the agent's (a remainder below the market minimum)."""
    raw = store.get_meta(BASELINE_KEY)
    if raw is None or amount <= 0:
        return
    baseline = json.loads(raw)
    baseline["amount"] = round(float(baseline["amount"]) + amount, 12)
    store.set_meta(BASELINE_KEY, json.dumps(baseline))


def not_managed(store: Store) -> float:
    raw = store.get_meta(BASELINE_KEY)
    return float(json.loads(raw)["amount"]) if raw else 0.0


@dataclass(slots=True)
class PendingEntry:
    """A signal that passed the bar-close checks and waits for the next price to enter at.
    `signal` becomes its row in the signals table once the outcome is known."""

    signal: SignalRecord
    risk_stop: float | None
    swing_low: float | None

    @property
    def bar_ts(self) -> int:
        return self.signal.bar_ts


@dataclass(slots=True)
class Checkpoint:
    """Everything the engine needs beyond the tables to resume exactly, in one typed row."""

    last_bar_ts: int | None = None        # the last bar whose work is complete
    balance: float | None = None
    day: DayState | None = None
    pending: PendingEntry | None = None
    halt_reason: str | None = None

    def to_json(self) -> str:
        return json.dumps(asdict(self), allow_nan=True)

    @classmethod
    def from_json(cls, text: str) -> "Checkpoint":
        raw = json.loads(text)
        day = DayState(**raw["day"]) if raw.get("day") else None
        pending = None
        if raw.get("pending"):
            p = dict(raw["pending"])
            pending = PendingEntry(SignalRecord(**p.pop("signal")), **p)
        return cls(raw.get("last_bar_ts"), raw.get("balance"), day, pending, raw.get("halt_reason"))

    @classmethod
    def load(cls, store: Store) -> "Checkpoint":
        text = store.get_meta(CHECKPOINT_KEY)
        if text:
            return cls.from_json(text)
        return cls._from_loose_keys(store)

    @classmethod
    def _from_loose_keys(cls, store: Store) -> "Checkpoint":
        """Data folders written before the typed checkpoint kept these as separate meta keys."""
        meta = store.get_meta
        pending = None
        if meta("pending_entry"):
            raw = json.loads(meta("pending_entry"))
            pending = PendingEntry(SignalRecord(**raw.pop("signal")), **raw)
        return cls(int(meta("last_bar_ts")) if meta("last_bar_ts") else None,
                   float(meta("balance")) if meta("balance") else None,
                   DayState(**json.loads(meta("day"))) if meta("day") else None,
                   pending, meta("halt_reason") or None)

    def save(self, store: Store) -> None:
        store.set_meta(CHECKPOINT_KEY, self.to_json())


@dataclass(slots=True)
class Accounting:
    balance: float                         # cash, quote currency
    trade: TradeRecord | None = None
    day: DayState | None = None
    live_price: float | None = None        # the latest price from the LIVE part of the feed
    last_snapshot_ts: int | None = field(default=None)
    # The mark on record when the engine last stopped: it values the position after a restart
    # until the first live price (so a restart, or an older file replayed into the folder,
    # does not move equity), and is never a price to trade at.
    last_mark: float | None = None
    # What exit orders have sold of the open trade so far (a partly filled exit leg): the
    # position is the trade's amount less `exited`; cash already holds the proceeds.
    exited: float = 0.0
    exit_quote: float = 0.0                # sum of filled amount x price of those fills
    exit_fees: float = 0.0
    fills: int = 0                         # fills applied to cash (an exchange re-reads after one)

    def position_amount(self) -> float:
        t = self.trade
        return 0.0 if t is None else t.amount - self.exited

    def mark(self, price: float) -> None:
        self.live_price = price

    def position_value(self) -> float:
        t = self.trade
        if t is None:
            return 0.0
        price = self.live_price if self.live_price is not None else self.last_mark
        return (t.amount - self.exited) * (price if price is not None else t.entry_price)

    def equity(self) -> float:
        return self.balance + self.position_value()

    def unrealized(self) -> float:
        t = self.trade
        if t is None:
            return 0.0
        return self.position_value() - self._cost_left(t)

    def _cost_left(self, t: TradeRecord) -> float:
        """Entry cost (fee included) of what is still held."""
        if not self.exited:
            return t.amount * t.entry_price + t.entry_fee
        left = t.amount - self.exited
        return left * t.entry_price + t.entry_fee * left / t.amount

    def day_pnl(self) -> float:
        return self.equity() - self.day.start_equity if self.day else 0.0

    def figures(self) -> tuple[float, float, float, float]:
        """(balance, equity, day_pnl, unrealized), each exactly its method's value, with the
        position valued once: the engine reads all four on every bar."""
        value = self.position_value()
        equity = self.balance + value
        t = self.trade
        return (self.balance, equity, equity - self.day.start_equity if self.day else 0.0,
                0.0 if t is None else value - self._cost_left(t))

    def roll_day(self, now_ms: int) -> bool:
        """Daily counters reset at 00:00 UTC of the engine clock; the day's start equity is the
        equity at the first live price of the day. True when a new day began."""
        day = utc_day(now_ms)
        if self.day is not None and self.day.day_start_ms == day:
            return False
        self.day = DayState(day, self.equity(), 0)
        return True

    def open(self, trade: TradeRecord, fill: OrderRecord) -> None:
        self.balance -= fill.filled_amount * fill.fill_price + fill.fee
        self.fills += 1
        self.trade = trade
        if self.day is not None:
            self.day = DayState(self.day.day_start_ms, self.day.start_equity, self.day.trades_opened + 1)

    def close(self, fill: OrderRecord) -> None:
        self.balance += fill.filled_amount * fill.fill_price - fill.fee
        self.fills += 1
        self.finish()

    def sell(self, amount: float, quote: float, fee: float) -> None:
        """Part of the position sold (an exit leg's new fills): cash gets the proceeds."""
        self.balance += quote - fee
        self.fills += 1
        self.exited += amount
        self.exit_quote += quote
        self.exit_fees += fee

    def restore_exits(self, exits: list[OrderRecord]) -> None:
        """After a restart: what the open trade's exit orders had already sold."""
        sold = [o for o in exits if o.filled_amount > 0 and o.fill_price]
        self.exited = sum(o.filled_amount for o in sold)
        self.exit_quote = sum(o.filled_amount * o.fill_price for o in sold)   # type: ignore[operator]
        self.exit_fees = sum(o.fee for o in sold)

    def finish(self) -> None:
        self.trade = None
        self.exited = self.exit_quote = self.exit_fees = 0.0

    def snapshot(self, now_ms: int,
                 figures: tuple[float, float, float, float] | None = None) -> SnapshotRecord:
        """The account now; `figures`: this moment's figures() when the caller has them."""
        self.last_snapshot_ts = now_ms
        balance, equity, _, unrealized = figures if figures is not None else self.figures()
        return SnapshotRecord(now_ms, balance, equity, unrealized,
                              self.position_amount() if self.trade else 0.0, self.live_price)
