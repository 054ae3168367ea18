"""A local Binance-spot simulator that the real, unmodified ccxt client talks to.

    from tests.exchange_sim import ExchangeSim
    sim = ExchangeSim(symbol="BTC/USDT", price=30_000.0, balances={"USDT": 10_000.0})
    await sim.start()                  # http://127.0.0.1:<sim.port>
    ...
    await sim.stop()

See server.py for what is simulated and how faults are injected; `python -m tests.exchange_sim
--help` runs it standalone.
"""
from tests.exchange_sim.server import ExchangeSim, Fault, SimMarket, ccxt_config

__all__ = ["ExchangeSim", "Fault", "SimMarket", "ccxt_config"]
