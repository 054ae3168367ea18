"""An ambiguous send (timeout, dropped connection) is resolved by looking the order up by its
client order id, in the background, never by sending it again."""
from __future__ import annotations

from dataclasses import replace

import pytest

import agent.order_manager as om
import asyncio

from agent.venue import OrderOutcomeUnknown
from agent.clock import ReplayClock
from persistence.records import OrderRecord
from persistence.store import Store


class AmbiguousVenue:
    """Times out on place(); the order did reach it, and lookups answer after `late` tries."""

    mode = "paper"

    def __init__(self, late: int) -> None:
        self.sent: list[str] = []
        self.lookups = 0
        self.late = late
        self.book: dict[str, OrderRecord] = {}

    async def place(self, order):
        self.sent.append(order.client_order_id)
        self.book[order.client_order_id] = replace(order, status="filled", fill_price=101.0,
                                                   filled_amount=order.amount, fee=0.1)
        raise OrderOutcomeUnknown("read timeout")

    async def lookup(self, client_order_id):
        self.lookups += 1
        return self.book.get(client_order_id) if self.lookups > self.late else None


@pytest.fixture
def manager_for(tmp_path, monkeypatch):
    monkeypatch.setattr(om, "LOOKUP_BACKOFF_S", 0.0)
    stores: list[Store] = []

    def build(venue):
        store = Store(tmp_path / f"trades{len(stores)}.db")
        stores.append(store)
        reports: list = []
        unresolved: list = []
        manager = om.OrderManager(store, venue, ReplayClock(1), commit=store.commit,
                                  deliver=reports.append, on_unresolved=lambda o, why: unresolved.append(why))
        manager.reports, manager.unresolved = reports, unresolved
        return manager, store

    yield build
    for store in stores:
        store.close()


def entry() -> OrderRecord:
    return OrderRecord(client_order_id="ta-E1-1", trade_id=None, side="buy", type="market", amount=1.0,
                       created_ts=1, expected_price=100.0)


async def test_a_timed_out_order_that_reached_the_venue_is_found_and_not_resent(manager_for):
    venue = AmbiguousVenue(late=2)
    manager, store = manager_for(venue)
    result = await manager.submit(entry())
    assert result.status == "unknown", "the caller is not kept waiting for the lookup"
    while manager.pending_lookups():
        await asyncio.sleep(0)
    [report] = manager.reports
    assert report.order.status == "filled" and report.order.fill_price == 101.0
    assert venue.sent == ["ta-E1-1"], "sent exactly once"


async def test_an_order_the_venue_never_confirms_stops_trading_and_stays_unknown(manager_for):
    venue = AmbiguousVenue(late=10**6)
    manager, store = manager_for(venue)
    await manager.submit(entry())
    while manager.pending_lookups():
        await asyncio.sleep(0)
    assert manager.reports == [] and "ta-E1-1" in manager.unresolved[0]
    assert venue.sent == ["ta-E1-1"]
    assert store.get_order("ta-E1-1").status == "unknown", "kept for the start-up lookup"


def test_client_ids_never_repeat_a_stored_order_nor_a_stored_group_leg(manager_for):
    manager, store = manager_for(AmbiguousVenue(late=0))
    assert manager.new_client_order_id("E1") == "ta-E1-1"
    store.insert_order(entry())
    assert manager.new_client_order_id("E1") == "ta-E1-2"
    legs = ("stop", "fib", "tp")
    assert manager.new_client_order_id("G1", legs=legs) == "ta-G1-1"
    store.insert_order(replace(entry(), client_order_id="ta-G1-1-fib", side="sell", type="limit",
                               limit_price=110.0, group_id="ta-G1-1"))
    assert manager.new_client_order_id("G1", legs=legs) == "ta-G1-2", "one leg stored: the group is taken"
