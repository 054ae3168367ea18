"""The paper venue on its own: resting orders, the backtest's intrabar order, locks on the base
balance, and a paper account that resumes exactly after a restart."""
from __future__ import annotations

import pytest

from agent.paper_venue import PaperVenue
from agent.venue import OrderRejected
from data.bar import Bar
from data.market import BarClosed, BarOpened, PriceUpdate
from persistence.records import OrderRecord

TF = 900_000


def venue(path=None, slippage_bp=0.0) -> PaperVenue:
    return PaperVenue(fee_bp=10.0, slippage_bp=slippage_bp, base="BTC", quote="USDT",
                      initial_quote=10_000.0, path=path)


def order(cid, side, type_, amount=1.0, *, limit=None, stop=None, group=None, purpose="exit",
          reason=None) -> OrderRecord:
    return OrderRecord(client_order_id=cid, trade_id=1, side=side, type=type_, amount=amount,
                       created_ts=0, purpose=purpose, limit_price=limit, stop_price=stop,
                       group_id=group, reason=reason)


def group(name: str, stop=90.0, target=110.0, amount=1.0) -> list[OrderRecord]:
    return [order(f"{name}-stop", "sell", "stop", amount, stop=stop, group=name, reason="STOP"),
            order(f"{name}-fib", "sell", "limit", amount, limit=target, group=name, reason="FIB_61.8")]


async def holding(v: PaperVenue, price=100.0, ts=0) -> None:
    v.on_market(BarOpened(ts, price))
    filled = await v.place(order("buy", "buy", "market", purpose="entry"))
    assert filled.status == "filled"


async def test_legs_of_one_group_share_the_base_they_sell_and_nothing_else_may_use_it():
    v = venue()
    await holding(v)
    placed = await v.place_exit_group(group("g1"))
    assert [o.status for o in placed] == ["open", "open"], "both legs lock the same 1 BTC"
    with pytest.raises(OrderRejected, match="insufficient BTC"):
        await v.place(order("sell", "sell", "market"))
    with pytest.raises(OrderRejected, match="insufficient BTC"):
        await v.place_exit_group(group("g2"))
    await v.cancel("g1-stop")
    await v.cancel("g1-fib")
    sold = await v.place(order("sell", "sell", "market"))
    assert sold.status == "filled"


async def test_on_one_bar_the_stop_wins_over_the_target_and_cancels_it():
    v = venue()
    await holding(v)
    await v.place_exit_group(group("g"))
    updates = []
    v.on_update(updates.append)
    v.on_market(BarClosed(Bar(0, 100, 120, 80, 100, 1), TF))
    assert [(u.order.client_order_id, u.order.status) for u in updates] == [
        ("g-stop", "filled"), ("g-fib", "canceled")]
    assert updates[0].order.fill_price == 90.0 and updates[0].ts == 0, "at the stop, in that bar"


async def test_a_gap_through_the_stop_fills_at_the_open_and_says_so():
    v = venue(slippage_bp=10.0)
    await holding(v)
    await v.place_exit_group(group("g"))
    v.on_market(BarClosed(Bar(0, 100, 101, 99, 100, 1), TF))
    v.on_market(BarOpened(TF, 85.0))
    stop = await v.lookup("g-stop")
    assert (stop.status, stop.reason, stop.updated_ts) == ("filled", "STOP_GAP", TF)
    assert stop.fill_price == pytest.approx(85.0 * 0.999)


async def test_catch_up_and_already_seen_events_change_nothing():
    v = venue()
    await holding(v, ts=TF)
    await v.place_exit_group(group("g"))
    v.on_market(BarClosed(Bar(TF, 100, 120, 80, 100, 1), 2 * TF, live=False))
    v.on_market(PriceUpdate(TF // 2, 50.0))                  # older than what the venue has seen
    assert [o.status for o in await v.open_orders()] == ["open", "open"]


async def test_a_restarted_paper_account_resumes_exactly_and_never_fills_at_an_old_price(tmp_path):
    path = tmp_path / "paper_venue.db"
    v = venue(path)
    await holding(v)
    await v.place_exit_group(group("g"))
    v.on_market(BarClosed(Bar(0, 100, 101, 99, 100.5, 1), TF))
    before = (await v.balances(), await v.open_orders(), v._cursor)
    v.close_now()

    again = venue(path)
    assert (await again.balances(), await again.open_orders(), again._cursor) == before
    assert await again.lookup("buy") is not None, "the fill is there to be looked up"
    await again.cancel("g-stop")
    await again.cancel("g-fib")
    waiting = await again.place(order("sell", "sell", "market"))
    assert waiting.status == "open", "no live price since the restart: the market order waits"
    again.on_market(BarClosed(Bar(0, 100, 101, 99, 100.5, 1), TF))   # already seen before
    assert (await again.lookup("sell")).status == "open"
    again.on_market(BarOpened(TF, 97.0))
    sold = await again.lookup("sell")
    assert (sold.status, sold.fill_price, sold.updated_ts) == ("filled", 97.0, TF)
    again.close_now()


class Book:
    """A streamed order book as BookStream shows it: book() is None while it is not healthy."""

    def __init__(self, asks=None, bids=None, why="not synchronised") -> None:
        self.levels = None if asks is None else {"asks": asks, "bids": bids or []}
        self.why = why

    def book(self):
        return self.levels

    def why_not(self) -> str:
        return self.why


async def test_on_live_prices_a_market_order_walks_the_streamed_book_for_its_size():
    v = venue(slippage_bp=5.0)
    v.book_stream = Book(asks=[[100.0, 0.5], [101.0, 0.5], [103.0, 5.0]],
                         bids=[[99.0, 0.25], [98.0, 5.0]])
    v.on_market(BarOpened(0, 99.5))
    bought = await v.place(order("buy", "buy", "market", 1.0, purpose="entry"))
    assert bought.fill_price == pytest.approx(100.5)           # half at 100, half at 101
    assert bought.fee == pytest.approx(100.5 * 1.0 * 0.001)
    sold = await v.place(order("sell", "sell", "market", 1.0))
    assert sold.fill_price == pytest.approx(0.25 * 99.0 + 0.75 * 98.0)


async def test_without_a_healthy_book_or_with_one_too_thin_the_slippage_model_fills_and_says_so(caplog):
    v = venue(slippage_bp=10.0)
    v.book_stream = Book(why="no update for 3.00 s (more than 1 s)")
    v.on_market(BarOpened(0, 100.0))
    with caplog.at_level("WARNING", logger="agent.paper_venue"):
        bought = await v.place(order("buy", "buy", "market", 1.0, purpose="entry"))
    assert bought.fill_price == pytest.approx(100.0 * 1.001)
    assert "no usable order book: no update for 3.00 s" in caplog.text
    v.book_stream = Book(asks=[[100.0, 0.1]], bids=[[99.0, 0.1]])
    caplog.clear()
    with caplog.at_level("WARNING", logger="agent.paper_venue"):
        sold = await v.place(order("sell", "sell", "market", 1.0))
    assert sold.fill_price == pytest.approx(100.0 * 0.999)
    assert "does not hold the size" in caplog.text
