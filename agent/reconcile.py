"""Start-up reconciliation against an exchange (testnet and live): the store and the exchange
are made to agree before the engine trades, or the engine HALTS saying exactly where they differ.

Steps, in order (only the Venue protocol is used: no exchange library here):
1. Every order the store calls new, open or unknown is looked up by its client order id (never
   re-sent, invariant 1), and what happened while the agent was down is applied AT ONCE, at the
   exchange's price, fee and time (unlike the paper replay, which defers a fill to its bar, the
   exchange's time is real):
   - an entry that filled (or partly filled) opens the position, and its exits are placed;
   - an entry still working is canceled (its moment has passed; PRD: never retried); what filled
     of it becomes the position;
   - an exit leg that filled closes the trade; its siblings are recorded canceled/expired;
   - an order the exchange cannot account for (lookup keeps failing) halts.
2. Open orders on the pair that the store does not know are reported (WARNING), never touched;
   one the store holds as final but the exchange holds open halts.
3. The position is compared with the exchange's base balance (free + locked). Less than the
   position (beyond one amount step of fee dust) halts. More is allowed only as much as was
   recorded, at the first reconciliation, as not the agent's (store meta
   `reconcile.base_not_managed`, updated each start to absorb sell-side dust: one step per
   closed trade); growth beyond that halts.
4. A position with no protective order resting at the exchange gets its exits re-placed. A
   position an exit leg sold in part while the agent was down (the leg expired or canceled with
   some filled, or still working with some filled) is reduced by what sold, cash gets the
   proceeds, and the remainder gets exits of its own (what still rests is canceled first).
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field, replace

from agent.accounting import BASELINE_KEY
from agent.execution import Execution
from agent.order_manager import FINAL, OrderManager, OrderUnresolved
from agent.state_machine import Trigger
from agent.venue import MarketRules, OrderOutcomeUnknown, Venue
from persistence.records import OrderRecord
from persistence.store import Store

log = logging.getLogger(__name__)



@dataclass(slots=True)
class Reconciled:
    halt_reason: str | None = None
    applied: list[str] = field(default_factory=list)        # what the lookups changed
    unknown_open: list[OrderRecord] = field(default_factory=list)
    replaced_exits: bool = False

    def halt(self, why: str) -> None:
        log.critical("reconciliation: %s", why)
        self.halt_reason = why if self.halt_reason is None else f"{self.halt_reason}; {why}"


async def reconcile(store: Store, orders: OrderManager, ex: Execution, venue: Venue,
                    rules: MarketRules, base: str) -> Reconciled:
    out = Reconciled()
    if ex.acct.trade is not None:
        ex.transition(Trigger.RESTORE_POSITION)
    ex.hold_rework = True                            # a partly sold position is protected below
    try:
        await _resolve_orders(store, orders, ex, venue, out)
    finally:
        ex.hold_rework = False
    await _report_open_orders(store, venue, out)
    backed = await _check_balance(store, ex, venue, rules, base, out)
    t = ex.acct.trade
    if t is not None and not ex.exits_cover_position():
        resting = ex.resting_exits()
        if not backed:
            out.halt(f"trade {t.id} has no protective order at the exchange and was NOT re-protected: "
                     "the balance does not hold the position")
        else:
            if ex.acct.exited:
                log.warning("reconciliation: trade %s was partly sold (%.8g of %.8g %s) while the agent "
                            "was down: exits for the %.8g left", t.id, ex.acct.exited, t.amount, base,
                            ex.acct.position_amount())
            elif not resting:
                log.warning("reconciliation: trade %s (%.8g %s) has no protective order resting at the "
                            "exchange: re-placing its exits", t.id, t.amount, base)
            try:
                await ex.secure_remainder()
                out.replaced_exits = True
            except OrderUnresolved as exc:
                out.halt(f"re-placing the exits of trade {t.id} failed: {exc}")
    if out.halt_reason is None:
        log.info("reconciliation: store and exchange agree (%s)", "; ".join(out.applied) or "nothing was pending")
    return out


async def _resolve_orders(store: Store, orders: OrderManager, ex: Execution, venue: Venue,
                          out: Reconciled) -> None:
    remember = getattr(venue, "remember", None)      # a venue that forgot our orders on restart
    for order in store.unresolved_orders():
        if remember is not None:
            remember(order)
        try:
            found = await orders.recover(order)      # lookup by client id; None -> never received
            found = replace(found, trade_id=order.trade_id, purpose=order.purpose, type=order.type,
                            group_id=order.group_id, reason=found.reason or order.reason)
        except OrderOutcomeUnknown as exc:
            out.halt(f"{order.purpose} order {order.client_order_id}: the store says {order.status}, the "
                     f"exchange could not be asked ({exc}); check it on the exchange")
            continue
        if found.purpose == "entry" and found.status == "open":
            log.warning("reconciliation: entry %s is still working at the exchange (%.8g of %.8g "
                        "filled): canceling the rest (not retried)", found.client_order_id,
                        found.filled_amount, found.amount)
            canceled = await orders.cancel(found)
            found = replace(canceled, reason=f"canceled at start-up: {canceled.filled_amount:.8g} of "
                                             f"{canceled.amount:.8g} had filled") \
                if canceled.status == "canceled" else canceled
        note = (f"{found.client_order_id} ({found.purpose} {found.type}): store {order.status} -> "
                f"exchange {found.status}" + (f", {found.filled_amount:.8g} filled @ {found.fill_price:.8g}"
                                              if found.filled_amount > 0 and found.fill_price else ""))
        log.warning("reconciliation: %s", note)
        out.applied.append(note)
        if found.status == "unknown" or found.status not in (*FINAL, "open"):
            out.halt(f"{found.purpose} order {found.client_order_id}: the store says {order.status}, the "
                     f"exchange gave no answer ({found.reason or found.status}); check it on the exchange")
            continue
        if found.purpose == "entry":
            if found.filled_amount > 0 and ex.acct.trade is not None:
                store.update_order(found)
                out.halt(f"entry {found.client_order_id} filled {found.filled_amount:.8g} while trade "
                         f"{ex.acct.trade.id} is already open: two positions the store cannot tell apart")
                continue
            if found.filled_amount > 0 and ex.pos.can(Trigger.RESTORE_ENTRY):
                ex.transition(Trigger.RESTORE_ENTRY)
            await ex.apply(found)                    # fill -> position + exits; none -> signal skipped
        elif found.group_id is None and found.status in ("canceled", "rejected") and not found.filled_amount:
            # a market exit (close) that never executed: the position stays and is protected below
            store.update_order(found)
            ex.out.commit(durable=True)
            log.error("reconciliation: the market exit %s (%s) did not execute: the position stays open",
                      found.client_order_id, found.reason)
        else:
            await ex.apply(found)                    # a filled leg closes the trade


async def _report_open_orders(store: Store, venue: Venue, out: Reconciled) -> None:
    for o in await venue.open_orders():
        stored = store.get_order(o.client_order_id)
        if stored is None:
            out.unknown_open.append(o)
            log.warning("reconciliation: unknown open order on the pair, NOT touched: %s %s %s %.8g @ %s "
                        "(exchange id %s)", o.client_order_id, o.side, o.type, o.amount,
                        o.limit_price or o.stop_price or "market", o.exchange_order_id)
        elif stored.status in FINAL:
            out.halt(f"order {o.client_order_id}: the store says {stored.status}, the exchange says it is "
                     f"open ({o.filled_amount:.8g} of {o.amount:.8g} filled)")


async def _check_balance(store: Store, ex: Execution, venue: Venue, rules: MarketRules, base: str,
                         out: Reconciled) -> bool:
    """True when the exchange holds the position."""
    balances = await venue.balances()
    held = float(balances.get(base, 0.0))
    t = ex.acct.trade
    position = ex.acct.position_amount()
    what = f"trade {t.id} holds {position:.8g} {base}" if t is not None else f"no open position (0 {base})"
    tol = rules.amount_step + 1e-12
    if held < position - tol:
        out.halt(f"balance mismatch: the store says {what}; the exchange says the account holds "
                 f"{held:.8g} {base} (free + locked), {position - held:.8g} {base} short")
        return False
    excess = held - position
    closed = store.closed_trade_count()
    raw = store.get_meta(BASELINE_KEY)
    if raw is None:
        if excess > tol:
            log.warning("reconciliation: %.8g %s on the account are not the agent's (the store says %s): "
                        "recorded, and kept out of every decision", excess, base, what)
        _save_baseline(store, excess, closed)
        return True
    baseline = json.loads(raw)
    allowed = float(baseline["amount"]) + tol * (1 + max(0, closed - int(baseline["closed_trades"])))
    if excess > allowed:
        out.halt(f"balance mismatch: the store says {what} (plus {float(baseline['amount']):.8g} {base} "
                 f"recorded as not the agent's); the exchange says the account holds {held:.8g} {base} "
                 f"(free + locked): {excess - float(baseline['amount']):.8g} {base} unexplained")
        return True
    if excess < float(baseline["amount"]) - tol:
        log.warning("reconciliation: %.8g %s not the agent's were taken off the account (%.8g left)",
                    float(baseline["amount"]) - excess, base, excess)
    _save_baseline(store, excess, closed)
    return True


def _save_baseline(store: Store, amount: float, closed: int) -> None:
    store.set_meta(BASELINE_KEY, json.dumps({"amount": round(max(amount, 0.0), 12), "closed_trades": closed}))
