"""The paper fill model the README documents, to the last digit."""
import pytest

from agent.broker import OrderRejected
from agent.paper_broker import PaperBroker
from persistence.records import OrderRecord

BROKER_ARGS = dict(fee_bp=10.0, slippage_bp=5.0)


def order(**over):
    base = dict(client_order_id="ta-E1-1", trade_id=None, side="buy", type="market", amount=2.0,
                created_ts=0, expected_price=100.0)
    base.update(over)
    return OrderRecord(**base)


async def test_market_buy_fills_above_the_reference_by_the_slippage():
    filled = await PaperBroker(**BROKER_ARGS).place(order(), now_ms=5)
    assert filled.status == "filled" and filled.filled_amount == 2.0
    assert filled.fill_price == pytest.approx(100.0 * 1.0005, rel=1e-15)
    assert filled.fee == pytest.approx(2.0 * 100.05 * 0.001, rel=1e-15)


async def test_market_sell_fills_below_the_reference_by_the_slippage():
    filled = await PaperBroker(**BROKER_ARGS).place(order(side="sell"), now_ms=5)
    assert filled.fill_price == pytest.approx(99.95, rel=1e-15)


async def test_limit_sell_fills_exactly_at_its_limit():
    filled = await PaperBroker(**BROKER_ARGS).place(
        order(side="sell", type="limit", limit_price=117.5, expected_price=117.5), now_ms=5)
    assert filled.fill_price == 117.5
    assert filled.fee == pytest.approx(2 * 117.5 * 0.001)


async def test_stop_fills_at_its_trigger_minus_slippage_and_at_the_open_when_gapped():
    broker = PaperBroker(**BROKER_ARGS)
    touched = await broker.place(order(client_order_id="a", side="sell", type="stop", stop_price=90.0,
                                       expected_price=90.0), now_ms=5)
    gapped = await broker.place(order(client_order_id="b", side="sell", type="stop", stop_price=90.0,
                                      expected_price=85.0), now_ms=5)
    assert touched.fill_price == pytest.approx(90 * 0.9995)
    assert gapped.fill_price == pytest.approx(85 * 0.9995)


async def test_lookup_knows_only_what_this_venue_filled():
    broker = PaperBroker(**BROKER_ARGS)
    await broker.place(order(), now_ms=1)
    assert (await broker.lookup("ta-E1-1")).status == "filled"
    assert await broker.lookup("ta-E2-1") is None


async def test_a_market_order_without_a_reference_is_rejected():
    with pytest.raises(OrderRejected, match="reference price"):
        await PaperBroker(**BROKER_ARGS).place(order(expected_price=None), now_ms=1)
