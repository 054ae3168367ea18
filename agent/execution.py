"""Orders and the position state machine: entering, resting the exits at the venue, closing.

Guarantees kept here:
- The exits rest at the venue right after the entry fills: the stop as a stop order, the
  Fibonacci target and the take-profit as limit sells, one group (one-cancels-the-other).
  A crash leaves them there; nothing in this process has to be alive for them to work.
- A position is opened and closed only by a fill the venue reports, at the venue's price and
  time. Applying the same report twice changes nothing.
- Closing at market (time exit, manual close, emergency stop, daily-loss limit) cancels the
  group first, then sells; a leg that filled meanwhile closes the trade instead.
- A trade's exit time is never before its entry time (checked when it is written).
- An exit leg that fills only in part (the rest of its group expired or canceled) reduces the
  position by what sold, and cash gets the proceeds at once. What remains gets exits of its own
  (the group is canceled and re-placed for the remainder; an exit already due is sold at market
  by the venue) or, while a close is working, is sold at market. The trade closes when nothing
  is left, at the fills' weighted price with all their fees; a remainder below the market's
  minimum is left on the account as not the agent's.
"""
from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, replace

from agent.accounting import Accounting, PendingEntry, add_not_managed
from agent.config import AgentConfig
from agent.events import OrderChanged, PositionClosed, PositionOpened, SignalSeen
from agent.order_manager import FINAL, OrderManager, OrderUnresolved
from agent.state_machine import PositionState, StateMachine, Trigger
from agent.strategy import RATIOS, Decision
from agent.venue import MarketRules
from persistence.records import OrderRecord, SignalRecord, TradeRecord
from persistence.store import Store

log = logging.getLogger(__name__)

REWORK_ATTEMPTS = 5            # re-protecting a remainder that keeps selling only in part


class TradeInvariantBroken(RuntimeError):
    """A trade would be written with an exit before its entry: a bug, never stored."""


def exit_reason_fib(level: float) -> str:
    return f"FIB_{level * 100:.1f}"


def exit_reason_tp(reward_r: float) -> str:
    return f"TP_{reward_r:.1f}R"


def signal_record(d: Decision) -> SignalRecord:
    """The signals-table row of a signal bar; action and reason are filled in once decided. The
    swing high is the one the rule found, whether or not a ladder formed above the low."""
    fib = d.fib
    swing = fib.swing_high if fib else (None if math.isnan(d.swing_high) else d.swing_high)
    return SignalRecord(
        bar_ts=d.bar.ts, close=d.bar.close, ema_fast=d.ema_fast, ema_slow=d.ema_slow, vol_z=d.vol_z,
        tr_z=d.tr_z, cloc=d.cloc, fib_swing_high=swing,
        fib_levels={f"{r}": p for r, p in zip(RATIOS, fib.prices)} if fib else None,
        target_price=d.target_price, action="PENDING", reason="")


@dataclass(slots=True)
class Outbox:
    """How execution reports: stage an event, mark the state changed, commit."""

    emit: Callable[[object], None]
    changed: Callable[[], None]
    commit: Callable[..., None]


class Execution:
    def __init__(self, config: AgentConfig, store: Store, orders: OrderManager, acct: Accounting,
                 pos: StateMachine, out: Outbox, now_ms: Callable[[], int], mode: str) -> None:
        self.config = config
        self.store = store
        self.orders = orders
        self.acct = acct
        self.pos = pos
        self.out = out
        self.now_ms = now_ms
        self.mode = mode
        self.pending: PendingEntry | None = None    # a signal waiting for the next price
        self.held: int | None = None                # bars held by the open trade, as of this bar
        self.flatten_reason: str | None = None      # close as soon as the position is known
        self.rules: MarketRules | None = None       # the venue's, once known: what is sellable
        self.hold_rework = False                    # reconciliation re-protects a remainder itself
        self._reworking = False                     # exits being (re)placed: no nested rework
        self._partial_reason: str | None = None     # the reason of the last partly filled exit

    # ----- state ------------------------------------------------------------------------------
    def transition(self, trigger: Trigger) -> None:
        self.pos.transition(trigger)
        self.out.changed()

    def record_signal(self, signal: SignalRecord, action: str, reason: str) -> None:
        row = replace(signal, action=action, reason=reason)
        self.store.insert_signal(row)
        self.out.emit(SignalSeen(row))

    def drop_pending(self, why: str) -> None:
        if self.pending is None:
            return
        self.record_signal(self.pending.signal, "SKIPPED", why)
        self.pending = None
        if self.pos.state is PositionState.SIGNAL:
            self.transition(Trigger.SKIP)

    def entry_in_flight(self) -> bool:
        return self.pos.state in (PositionState.ENTERING, PositionState.RISK_CHECK)

    # ----- entry ------------------------------------------------------------------------------
    async def enter(self, order: OrderRecord, pending: PendingEntry) -> None:
        """Send an approved entry; the fill opens the position (now, or when the venue says)."""
        self.pending = pending                       # kept in the checkpoint until resolved
        self.transition(Trigger.APPROVED)
        result = await self.orders.submit(order)
        await self.apply(result)

    # ----- order updates ----------------------------------------------------------------------
    async def apply(self, order: OrderRecord) -> None:
        """One venue report about one of our orders. Idempotent."""
        stored = self.store.get_order(order.client_order_id)
        if stored is None:
            log.warning("venue reported an order this agent never sent: %s (%s)",
                        order.client_order_id, order.status)
            return
        if stored.status in FINAL and (order.status not in FINAL or (
                stored.status == order.status and stored.filled_amount == order.filled_amount)):
            return                                   # a repeat, or a stale report after the end
        if order.filled_amount < stored.filled_amount:
            return                                   # an older partial report than the one applied
        order = replace(order, trade_id=stored.trade_id, purpose=stored.purpose,
                        group_id=stored.group_id, reason=order.reason or stored.reason,
                        expected_price=order.expected_price if order.expected_price is not None
                        else stored.expected_price)
        self.store.update_order(order)
        self.out.emit(OrderChanged(order))
        if order.purpose == "entry":
            await self._entry_report(order)
        elif order.status == "filled":
            await self._exit_filled(order, stored)
        elif order.filled_amount > stored.filled_amount:
            await self._exit_partial(order, stored)
        elif order.group_id is None and order.status in ("canceled", "rejected"):
            await self._exit_failed(order)
        else:
            # An acknowledgement or a leg canceled by its group: no position changed, and a
            # restart looks the order up anyway, so a plain commit (no fsync) is enough.
            self.out.commit()

    async def _entry_report(self, order: OrderRecord) -> None:
        p = self.pending
        final = order.status in FINAL
        if not final or self.acct.trade is not None:
            self.out.commit()                        # an acknowledgement or a repeat
            return
        if order.filled_amount > 0:                  # filled, or canceled after a partial fill
            trade = self._open_trade(order, p)
            if p is not None:
                self.record_signal(p.signal, "ENTERED", f"trade {trade.id}")
            self.pending = None
            self.held = 0
            self.transition(Trigger.ENTRY_FILLED)
            self.out.emit(PositionOpened(trade))
            log.info("ENTERED trade %s: %.8g @ %.8g (reference %.8g), target %s, stop %s", trade.id,
                     trade.amount, trade.entry_price, trade.entry_reference, _fmt(trade.target_price),
                     _fmt(trade.stop_price))
            # One fsync for the fill and what protects it: the exit orders (or the market sell
            # of a close asked for meanwhile) are committed with it, durably, before they are
            # sent, and the commit recording the venue's answer publishes it all. A crash
            # before that commit is a crash before the fill was recorded: the entry order is
            # looked up at start-up, as always.
            if self.flatten_reason is not None:
                await self.flatten(self.flatten_reason, None)
            elif not await self.protect():
                self.out.commit(durable=True)
            return
        if p is not None:
            self.record_signal(p.signal, "SKIPPED", f"entry order {order.status}: {order.reason}")
        self.pending = None
        if self.pos.can(Trigger.ENTRY_FAILED):
            self.transition(Trigger.ENTRY_FAILED)
        self.out.commit(durable=True)
        log.error("entry order %s %s: %s", order.client_order_id, order.status, order.reason)

    def _open_trade(self, order: OrderRecord, p: PendingEntry | None) -> TradeRecord:
        bp = self.config.backtest_params
        reference = order.expected_price if order.expected_price is not None else order.fill_price
        risk_stop = p.risk_stop if p else None
        stop = risk_stop if bp.use_stop_loss else None
        risk = reference - stop if stop is not None and stop < reference else 0.01 * reference
        signal = p.signal if p else None
        trade = TradeRecord(
            pair=self.config.exchange.trading_pair,
            signal_ts=signal.bar_ts if signal else order.created_ts,
            entry_ts=order.updated_ts if order.updated_ts is not None else self.now_ms(),
            entry_price=order.fill_price, entry_reference=reference, amount=order.filled_amount,
            entry_fee=order.fee, mode=self.mode,
            fib_target_level=bp.fib_target_level if bp.use_fib_exits else None,
            target_price=signal.target_price if bp.use_fib_exits and signal else None,
            tp_price=reference + bp.reward_r * risk if bp.use_traditional_tp else None,
            stop_price=stop, risk_stop=risk_stop,
            swing_high=signal.fib_swing_high if signal else None,
            swing_low=p.swing_low if p else None)
        trade.id = self.store.insert_trade(trade)
        order.trade_id = trade.id
        self.store.update_order(order)
        self.acct.open(trade, order)
        self.store.insert_snapshot(self.acct.snapshot(self.now_ms()))
        return trade

    # ----- exits ------------------------------------------------------------------------------
    def exit_legs(self, trade: TradeRecord) -> list[OrderRecord]:
        """Stop, then Fibonacci target, then take-profit: the backtest's order on one bar."""
        bp = self.config.backtest_params
        group = self.orders.new_client_order_id(f"G{trade.id}", legs=("stop", "fib", "tp"))
        left = trade.amount - self.acct.exited       # what partial exits have not sold yet
        now = self.now_ms()
        legs: list[OrderRecord] = []

        def leg(suffix: str, type_: str, reason: str, limit: float | None, stop: float | None) -> None:
            legs.append(OrderRecord(
                client_order_id=f"{group}-{suffix}", trade_id=trade.id, side="sell", type=type_,
                amount=left, created_ts=now, purpose="exit", limit_price=limit,
                stop_price=stop, expected_price=limit if limit is not None else stop,
                reason=reason, group_id=group))

        if trade.stop_price is not None:
            leg("stop", "stop", "STOP", None, trade.stop_price)
        if trade.target_price is not None:
            leg("fib", "limit", exit_reason_fib(bp.fib_target_level), trade.target_price, None)
        if trade.tp_price is not None:
            leg("tp", "limit", exit_reason_tp(bp.reward_r), trade.tp_price, None)
        return legs

    async def protect(self) -> bool:
        """Rest the open trade's exits at the venue (none when the config enables no exit).
        True when exits were sent: their rows were committed durably before, with everything
        staged until then."""
        t = self.acct.trade
        if t is None:
            return False
        legs = self.exit_legs(t)
        if not legs:
            log.warning("trade %s has no resting exit: the config enables none (time exit only)", t.id)
            return False
        busy, self._reworking = self._reworking, True
        sold_before = self.acct.exited
        try:
            results = await self.orders.submit_group(legs)
            for r in results:
                await self.apply(r)
        finally:
            self._reworking = busy
        for r in results:
            if r.status == "rejected":
                raise OrderUnresolved(f"exit order {r.client_order_id} was rejected: {r.reason}; "
                                      "the position has no protection at the venue")
        log.info("exits resting at the venue for trade %s: %s", t.id,
                 ", ".join(f"{r.reason} {_fmt(r.limit_price or r.stop_price)}" for r in results))
        if not busy and self.acct.trade is not None and self.acct.exited > sold_before:
            await self.secure_remainder()            # an exit due at once sold only part
        return True

    def exits_cover_position(self) -> bool:
        """Exits rest for exactly what is held, none of them partly filled."""
        legs = self.resting_exits()
        if not legs:
            return False
        left = self.acct.position_amount()
        tol = (self.rules.amount_step if self.rules is not None else 0.0) + 1e-9
        return all(o.filled_amount == 0 and abs(o.amount - left) <= tol for o in legs)

    async def secure_remainder(self) -> None:
        """Part of the position was sold by an exit: cancel what still rests for the trade and
        rest exits for what remains (the venue sells at market an exit that is already due)."""
        busy, self._reworking = self._reworking, True
        try:
            for _ in range(REWORK_ATTEMPTS):
                t = self.acct.trade
                if t is None:
                    return
                for leg in self.resting_exits():
                    result = await self.orders.cancel(leg)
                    await self.apply(result)
                    if self.acct.trade is None:
                        return
                if self._close_if_dust(self._partial_reason or "EXIT"):
                    return
                log.warning("trade %s: %.8g of %.8g sold by its exits; resting exits for the %.8g left",
                            t.id, self.acct.exited, t.amount, self.acct.position_amount())
                await self.protect()
                if self.acct.trade is None or self.exits_cover_position():
                    return
            t = self.acct.trade
            if t is not None:
                raise OrderUnresolved(f"trade {t.id}: {self.acct.position_amount():.8g} left after "
                                      f"{REWORK_ATTEMPTS} attempts to protect the remainder of a partly "
                                      "filled exit")
        finally:
            self._reworking = busy

    def _sellable(self, amount: float, price: float) -> bool:
        r = self.rules
        if r is None:
            return amount > 1e-12
        amount = r.round_amount(amount)
        return amount > 0 and amount >= r.min_amount and amount * price >= r.min_notional

    def _close_if_dust(self, reason: str) -> bool:
        """After partial exits: a remainder the venue would refuse (below its minimum amount or
        notional) cannot be sold; the trade closes with what sold, the rest is not the agent's."""
        a, t = self.acct, self.acct.trade
        if t is None or not a.exited:
            return False
        left = a.position_amount()
        price = a.live_price if a.live_price is not None else a.exit_quote / a.exited
        if self._sellable(left, price):
            return False
        log.warning("trade %s: the %.8g left after partial exits is below the market minimum: it stays "
                    "on the account, recorded as not the agent's", t.id, left)
        add_not_managed(self.store, max(left, 0.0))
        self._finish_trade(t, self.now_ms(), reason, None)
        return True

    def resting_exits(self) -> list[OrderRecord]:
        t = self.acct.trade
        if t is None or t.id is None:
            return []
        return [o for o in self.store.orders_for_trade(t.id)
                if o.purpose == "exit" and o.status in ("new", "open", "unknown")]

    async def flatten(self, reason: str, reference: float | None) -> None:
        """Cancel the resting exits, then sell at market (at the first live price if there is
        none yet: the venue holds the order until then, never filling at an old price)."""
        t = self.acct.trade
        if t is None:
            return
        if self.pos.can(Trigger.EXIT):
            self.transition(Trigger.EXIT)
        for leg in self.resting_exits():
            if leg.group_id is None:
                log.warning("a market exit %s is already working; waiting for its fill", leg.client_order_id)
                return
            result = await self.orders.cancel(leg)
            await self.apply(result)
            if self.acct.trade is None:                  # a leg filled before the cancel
                return
        if self._close_if_dust(reason):
            return
        order = OrderRecord(
            client_order_id=self.orders.new_client_order_id(f"X{t.id}"), trade_id=t.id, side="sell",
            type="market", amount=self.acct.position_amount(), created_ts=self.now_ms(), purpose="exit",
            expected_price=reference, reason=reason)
        if reference is None:
            log.warning("%s: no live price yet; the market sell waits for the first one", reason)
        result = await self.orders.submit(order)
        await self.apply(result)

    async def _exit_partial(self, order: OrderRecord, prior: OrderRecord) -> None:
        """An exit sold part of the position (still working, or ended with the rest unfilled)."""
        t = self.acct.trade
        if t is None or t.id != order.trade_id:
            self.out.commit()                        # a late report about a closed trade
            return
        self._sell(order, prior)
        self._partial_reason = order.reason or self._partial_reason   # for a remainder closed as dust
        self.store.insert_snapshot(self.acct.snapshot(self.now_ms()))
        self.out.changed()
        self.out.commit(durable=True)
        log.warning("EXIT PARTLY FILLED: %s (%s) sold %.8g of trade %s @ %.8g (%s); %.8g %s left of %.8g",
                    order.client_order_id, order.reason, order.filled_amount, t.id, order.fill_price or 0.0,
                    order.status, self.acct.position_amount(), self.config.exchange.base_currency, t.amount)
        if self.hold_rework or self._reworking:
            return                                   # the caller protects what is left
        if order.group_id is None and order.status in FINAL:
            await self.flatten(order.reason or "EXIT", order.expected_price)   # sell the rest too
        elif self.pos.state is PositionState.IN_POSITION:
            await self.secure_remainder()

    def _sell(self, order: OrderRecord, prior: OrderRecord) -> None:
        amount = order.filled_amount - prior.filled_amount
        quote = order.filled_amount * (order.fill_price or 0.0) - prior.filled_amount * (prior.fill_price or 0.0)
        self.acct.sell(amount, quote, order.fee - prior.fee)

    async def _exit_filled(self, order: OrderRecord, prior: OrderRecord) -> None:
        t = self.acct.trade
        if t is None or t.id != order.trade_id:
            self.out.commit()                        # a repeat: the trade is already closed
            return
        exit_ts = order.updated_ts if order.updated_ts is not None else self.now_ms()
        reason = order.reason or "EXIT"
        if self.acct.exited or prior.filled_amount:  # the last of partial exits
            self._sell(order, prior)
            self._finish_trade(t, exit_ts, reason, order.expected_price)
            return
        self._record_exit(t, exit_ts, reason, order.expected_price, order.fill_price, order.fee,
                          (order.fill_price - t.entry_price) * t.amount - t.entry_fee - order.fee)
        self.acct.close(order)
        self._closed(t)

    def _finish_trade(self, t: TradeRecord, exit_ts: int, reason: str, reference: float | None) -> None:
        """Close a trade sold in several fills: the weighted exit price, every exit fee, and the
        pnl as the fills' proceeds less all fees less what the entry cost."""
        a = self.acct
        self._record_exit(t, exit_ts, reason, reference, a.exit_quote / a.exited if a.exited else None,
                          a.exit_fees, a.exit_quote - a.exit_fees - t.amount * t.entry_price - t.entry_fee)
        log.info("trade %s sold in parts: %.8g of %.8g @ %.8g on average, exit fees %.8g", t.id, a.exited,
                 t.amount, t.exit_price or 0.0, a.exit_fees)
        a.finish()
        self._partial_reason = None
        self._closed(t)

    def _record_exit(self, t: TradeRecord, exit_ts: int, reason: str, reference: float | None,
                     price: float | None, fee: float, pnl: float) -> None:
        """The trade row closed, checked first: an exit is never before its entry."""
        if exit_ts < t.entry_ts:
            raise TradeInvariantBroken(f"trade {t.id}: exit at {exit_ts} before entry at {t.entry_ts}")
        t.status = "closed"
        t.exit_ts = exit_ts
        t.exit_price = price
        t.exit_reference = reference
        t.exit_fee = fee
        t.exit_reason = reason
        t.bars_held = self.held if self.held is not None else t.bars_held
        t.pnl = pnl
        t.pnl_percent = pnl / (t.entry_price * t.amount) * 100
        self.store.update_trade(t)

    def _closed(self, t: TradeRecord) -> None:
        reason = t.exit_reason
        self.store.insert_snapshot(self.acct.snapshot(self.now_ms()))
        self.flatten_reason = None
        self.transition(Trigger.EXIT_FILLED)
        self.out.emit(PositionClosed(t))
        self.transition(Trigger.REARM)
        self.out.commit(durable=True)
        log.info("EXITED trade %s %s: %.8g @ %.8g, pnl %.2f %s (%.2f%%)", t.id, reason, t.amount,
                 t.exit_price, t.pnl, self.config.exchange.quote_currency, t.pnl_percent)

    async def _exit_failed(self, order: OrderRecord) -> None:
        """A market exit the venue refused: the position stays, protected again at the venue."""
        if self.pos.can(Trigger.EXIT_FAILED):
            self.transition(Trigger.EXIT_FAILED)
        self.out.commit(durable=True)
        if not self.resting_exits():
            await self.protect()
        raise OrderUnresolved(f"exit order {order.client_order_id} ({order.reason}) was {order.status}; "
                              "the position is still open")


def _fmt(x: float | None) -> str:
    return "-" if x is None else f"{x:.8g}"
