"""Before real money: may this run trade live? (issue 8, live-trading safety, the agent's side)

`check_live_ready(config, creds, client)` asks, in order, and stops at the first failure:
1. credentials found (API key and secret, from any source agent/credentials.py reads);
2. the exchange answers (its server time, a public call);
3. the key is accepted and the account may trade (Binance: GET /api/v3/account `canTrade`);
4. the key may trade spot (Binance: GET /sapi/v1/account/apiRestrictions
   `enableSpotAndMarginTrading`), and whether it can withdraw (`enableWithdrawals`): a key
   that can withdraw is a WARNING (not a refusal: the exchange lets the operator choose), and
   so is an exchange that does not say.

The answer is a `LiveReadiness`: `ok`, the one-line `refusal` when not (ready to print after
"refused: "), the `warnings` to log and alert, and what was checked. Every message is redacted
and names where keys were looked for, never a value. The confirmation gate (the `--live` flag
headless, the typed pair in the window) is the caller's; `live_flag_refusal` words the headless
one. Nothing here places an order.
"""
from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Any

import ccxt

from data.exchange_errors import is_transient
from monitoring.redaction import redact

log = logging.getLogger(__name__)

TIMEOUT_S = 10.0


@dataclass(frozen=True)
class LiveReadiness:
    ok: bool
    refusal: str | None = None                      # one line: why live trading is refused
    warnings: tuple[str, ...] = ()
    checked: tuple[str, ...] = field(default=())    # what passed, in order (for the log)

    def log(self, logger: logging.Logger = log) -> None:
        for line in self.checked:
            logger.info("live check: %s", line)
        for line in self.warnings:
            logger.warning("live check: %s", line)
        if self.refusal:
            logger.error("live trading refused: %s", self.refusal)


def live_flag_refusal(config, live_flag: bool) -> str | None:
    """Headless: a live config trades real money only with --live on the command line too."""
    if config.mode != "live" or live_flag:
        return None
    return (f"the config trades REAL MONEY on {config.exchange.exchange_name} "
            f"({config.exchange.trading_pair}; paper_trading and testnet are false): add --live "
            "to the command line to confirm, or set paper_trading true")


def _why(exc: BaseException) -> str:
    text = redact(str(exc)).replace("\n", " ").strip()
    return f"{type(exc).__name__}: {text[:200]}" if text else type(exc).__name__


async def _call(fn, *args) -> Any:
    return await asyncio.wait_for(fn(*args), TIMEOUT_S)


async def check_live_ready(config, creds, client) -> LiveReadiness:
    """See the module docstring. `client` is the ccxt (pro or async_support) exchange the run
    will trade on, with the keys set; an ExchangeClient wrapper is unwrapped."""
    ex = getattr(client, "ex", client)
    name = config.exchange.exchange_name
    checked: list[str] = []
    warnings: list[str] = []

    def refuse(line: str) -> LiveReadiness:
        return LiveReadiness(False, redact(line), tuple(warnings), tuple(checked))

    if creds is None or not creds.has_exchange_keys:
        searched = "; ".join(getattr(creds, "searched", []) or []) or "nowhere"
        return refuse(creds.missing_message() if creds is not None else
                      f"no exchange credentials found (looked in: {searched}); store them with "
                      "`trading-agent keys set`")
    checked.append(f"credentials found ({', '.join(sorted(set(creds.sources.values()))) or 'given'})")

    try:
        await _call(ex.fetch_time)
    except Exception as exc:
        return refuse(f"{name} does not answer ({_why(exc)}); check the network and the "
                      "exchange's status, then start again")
    checked.append(f"{name} answers")

    is_binance = getattr(ex, "id", "") == "binance" and hasattr(ex, "privateGetAccount")
    try:
        if is_binance:
            account = await _call(ex.privateGetAccount)
        else:
            account = None
            await _call(ex.fetch_balance)
    except (ccxt.AuthenticationError, ccxt.PermissionDenied, ccxt.AccountSuspended) as exc:
        return refuse(f"{name} rejected the API key ({_why(exc)}): check the key, the secret and "
                      "the key's IP whitelist")
    except Exception as exc:
        what = "does not answer" if is_transient(exc) else "refused the account request"
        return refuse(f"{name} {what} when asked for the account ({_why(exc)})")
    if account is not None and not account.get("canTrade", True):
        return refuse(f"the {name} account may not trade (canTrade is false): the exchange has "
                      "restricted it")
    checked.append("the API key is accepted" + ("; the account may trade" if account is not None else ""))

    if not is_binance or not hasattr(ex, "sapiGetAccountApiRestrictions"):
        warnings.append(f"{name} does not say whether this API key can withdraw: make sure it cannot")
        return LiveReadiness(True, None, tuple(warnings), tuple(checked))
    try:
        r = await _call(ex.sapiGetAccountApiRestrictions)
    except (ccxt.AuthenticationError, ccxt.PermissionDenied) as exc:
        return refuse(f"{name} refused to show the API key's permissions ({_why(exc)})")
    except Exception as exc:
        warnings.append(f"could not read the API key's permissions ({_why(exc)}): make sure it "
                        "cannot withdraw")
        return LiveReadiness(True, None, tuple(warnings), tuple(checked))
    if not _true(r.get("enableSpotAndMarginTrading")):
        return refuse(f"the API key may not trade: enable 'Spot & Margin Trading' for it in "
                      f"{name}'s API management (enableSpotAndMarginTrading is false)")
    checked.append("the API key may trade spot")
    if _true(r.get("enableWithdrawals")):
        warnings.append("the API key can WITHDRAW funds: a leaked key could empty the account. "
                        f"Disable withdrawals for it in {name}'s API management")
    else:
        checked.append("the API key cannot withdraw")
    if "ipRestrict" in r and not _true(r.get("ipRestrict")):
        warnings.append("the API key is not restricted to this server's IP address")
    return LiveReadiness(True, None, tuple(warnings), tuple(checked))


def _true(value: Any) -> bool:
    return value is True or str(value).lower() == "true"
