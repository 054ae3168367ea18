"""Live-trading readiness against the local exchange simulator: credentials, the exchange
answering, the key accepted and allowed to trade, a key that can withdraw warned about."""
from __future__ import annotations

import ccxt.pro as ccxtpro
import pytest

from agent.credentials import Credentials
from agent.live_safety import check_live_ready, live_flag_refusal
from tests.exchange_sim.server import ccxt_config, production_errors

from .conftest import make_config

LIVE = make_config(exchange={"paper_trading": False, "testnet": False})


def _creds(key="sim-key", secret="sim-secret") -> Credentials:
    return Credentials(values={"api_key": key, "api_secret": secret},
                       sources={"api_key": "environment", "api_secret": "environment"},
                       searched=["OS keyring", "environment"])


async def test_a_key_that_may_trade_and_not_withdraw_is_ready(sim, ccxt_client):
    r = await check_live_ready(LIVE, _creds(), ccxt_client)
    assert r.ok and r.refusal is None
    assert "the API key may trade spot" in r.checked and "the API key cannot withdraw" in r.checked
    assert r.warnings == ("the API key is not restricted to this server's IP address",)
    assert sim.count("GET", "sapi/account/apiRestrictions") == 1


async def test_a_key_that_can_withdraw_is_ready_with_a_warning(sim, ccxt_client):
    sim.api_restrictions.update(enableWithdrawals=True, ipRestrict=True)
    r = await check_live_ready(LIVE, _creds(), ccxt_client)
    assert r.ok and len(r.warnings) == 1 and "can WITHDRAW funds" in r.warnings[0]


async def test_a_key_without_trading_permission_is_refused(sim, ccxt_client):
    sim.api_restrictions["enableSpotAndMarginTrading"] = False
    r = await check_live_ready(LIVE, _creds(), ccxt_client)
    assert not r.ok and r.refusal.startswith("the API key may not trade")
    assert "\n" not in r.refusal


async def test_missing_credentials_are_refused_naming_where_they_were_looked_for(sim, ccxt_client):
    before = len(sim.requests)
    r = await check_live_ready(LIVE, Credentials(searched=["OS keyring", "environment"]), ccxt_client)
    assert not r.ok and "missing credentials: api_key, api_secret" in r.refusal
    assert "OS keyring" in r.refusal
    assert len(sim.requests) == before                  # nothing was asked of the exchange
    r = await check_live_ready(LIVE, None, ccxt_client)
    assert not r.ok and "no exchange credentials found" in r.refusal


async def test_a_wrong_secret_is_refused_without_echoing_it(sim):
    client = ccxtpro.binance(ccxt_config(sim.url, api_key=sim.api_key, secret="wrong-secret-8d7e6f5a4b",
                                         timeout_ms=2_000))
    production_errors(client)
    try:
        r = await check_live_ready(LIVE, _creds(secret="wrong-secret-8d7e6f5a4b"), client)
    finally:
        await client.close()
    assert not r.ok and r.refusal.startswith("binance rejected the API key (AuthenticationError")
    assert "wrong-secret" not in r.refusal and "\n" not in r.refusal


async def test_an_exchange_that_does_not_answer_is_refused(sim, ccxt_client):
    sim.fault("time", "error", status=503, code=-1001, msg="Internal error; unable to process your request.")
    r = await check_live_ready(LIVE, _creds(), ccxt_client)
    assert not r.ok and r.refusal.startswith("binance does not answer")
    await sim.stop()
    r = await check_live_ready(LIVE, _creds(), ccxt_client)
    assert not r.ok and "does not answer" in r.refusal


async def test_a_restricted_account_is_refused(sim, ccxt_client, monkeypatch):
    original = sim._account
    monkeypatch.setattr(sim, "_account", lambda p: {**original(p), "canTrade": False})
    r = await check_live_ready(LIVE, _creds(), ccxt_client)
    assert not r.ok and "account may not trade (canTrade is false)" in r.refusal


def test_headless_live_needs_the_flag_too():
    assert "add --live" in live_flag_refusal(LIVE, live_flag=False)
    assert live_flag_refusal(LIVE, live_flag=True) is None
    assert live_flag_refusal(make_config(), live_flag=False) is None      # paper: nothing to confirm
