"""pytest fixtures for the simulator, shared by every test directory (tests/conftest.py imports
them):

- `sim`: a running ExchangeSim on a free port of 127.0.0.1 (BTC/USDT at 30 000, 10 000 USDT, no
  BTC, 15m candles), stopped after the test.
- `ccxt_client`: a ccxt.pro binance pointed at it (REST and WebSocket, spot only, keys of the
  sim, production error mapping, 2 s timeout), markets loaded, closed after the test.
"""
from __future__ import annotations

import ccxt.pro as ccxtpro
import pytest

from tests.exchange_sim.server import ExchangeSim, ccxt_config, production_errors


@pytest.fixture
async def sim():
    s = ExchangeSim(symbol="BTC/USDT", price=30_000.0, balances={"USDT": 10_000.0}, hang_seconds=10.0)
    await s.start()
    try:
        yield s
    finally:
        await s.stop()


@pytest.fixture
async def ccxt_client(sim):
    client = ccxtpro.binance(ccxt_config(sim.url, api_key=sim.api_key, secret=sim.secret, timeout_ms=2_000))
    production_errors(client)
    try:
        await client.load_markets()
        yield client
    finally:
        await client.close()
