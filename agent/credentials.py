"""Where API keys and the Telegram token come from. Never config.json (agent/config.py refuses
real values there).

Lookup order, per field, first hit wins:
1. the OS keyring: service `trading-agent/EXCHANGE/ACCOUNT` for the exchange keys (an account
   per key set: by default `testnet` or `live` from the config), `trading-agent/telegram` for
   the Telegram bot; the user name is the field (api_key, api_secret, api_passphrase,
   bot_token, chat_id);
2. systemd credentials: a file named like the environment variable in $CREDENTIALS_DIRECTORY
   (`LoadCredentialEncrypted=EXCHANGE_API_KEY:/etc/credstore.encrypted/...`);
3. environment variables EXCHANGE_API_KEY, EXCHANGE_API_SECRET, EXCHANGE_API_PASSPHRASE,
   TELEGRAM_BOT_TOKEN, TELEGRAM_CHAT_ID (the PRD's names; the older TRADING_AGENT_API_* names
   that config errors mention are read too);
4. a `.env` file beside the config (python-dotenv syntax), refused when group or others can
   read it, with the chmod that fixes it.

No keyring backend (a headless server) is said once in the log and the next source is used;
a keyring error never stops the agent. Every value found is registered with the redactor
before anything else can print it, and messages name only where keys were looked for.
"""
from __future__ import annotations

import logging
import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from monitoring.redaction import register_secret

log = logging.getLogger(__name__)

SERVICE_PREFIX = "trading-agent"
EXCHANGE_FIELDS = ("api_key", "api_secret", "api_passphrase")
TELEGRAM_FIELDS = ("bot_token", "chat_id")
ALL_FIELDS = EXCHANGE_FIELDS + TELEGRAM_FIELDS
ENV_NAMES = {
    "api_key": "EXCHANGE_API_KEY",
    "api_secret": "EXCHANGE_API_SECRET",
    "api_passphrase": "EXCHANGE_API_PASSPHRASE",
    "bot_token": "TELEGRAM_BOT_TOKEN",
    "chat_id": "TELEGRAM_CHAT_ID",
}
LEGACY_ENV_NAMES = {
    "api_key": "TRADING_AGENT_API_KEY",
    "api_secret": "TRADING_AGENT_API_SECRET",
    "api_passphrase": "TRADING_AGENT_API_PASSPHRASE",
}
NOT_SECRET = {"chat_id"}            # an address, not a credential: shown in full, not masked


class CredentialError(Exception):
    """A credential source that must not be used as it is (the message says what to do)."""


def exchange_service(exchange: str, account: str) -> str:
    return f"{SERVICE_PREFIX}/{exchange}/{account}"


def telegram_service() -> str:
    return f"{SERVICE_PREFIX}/telegram"


def service_for(field_name: str, exchange: str, account: str) -> str:
    return telegram_service() if field_name in TELEGRAM_FIELDS else exchange_service(exchange, account)


def default_account(testnet: bool) -> str:
    """Testnet and live keys are different keys: each has its own keyring entry."""
    return "testnet" if testnet else "live"


def mask(value: str | None) -> str:
    """What `keys show` prints: only the last 4 characters."""
    if not value:
        return "(not set)"
    return "*" * min(8, max(0, len(value) - 4)) + value[-4:] if len(value) > 4 else "*" * len(value)


# ----- the keyring, never fatal ---------------------------------------------------------------
_keyring_warned = False


class KeyringUnavailable(Exception):
    """No usable keyring backend (or it failed); the message names the backend, never a value."""


def _keyring():
    import keyring
    from keyring.backends import fail

    backend = keyring.get_keyring()
    if isinstance(backend, fail.Keyring):
        raise KeyringUnavailable("no OS keyring backend is available (a headless server has none "
                                 "unless one is installed and unlocked)")
    return keyring


def keyring_get(service: str, field_name: str) -> str | None:
    kr = _keyring()
    try:
        return kr.get_password(service, field_name)
    except Exception as exc:            # locked, D-Bus gone, backend bug: never fatal
        raise KeyringUnavailable(f"the OS keyring failed ({type(exc).__name__})") from None


def keyring_set(service: str, field_name: str, value: str) -> None:
    kr = _keyring()
    try:
        kr.set_password(service, field_name, value)
    except Exception as exc:
        raise KeyringUnavailable(f"the OS keyring refused to store {service} {field_name} "
                                 f"({type(exc).__name__})") from None


def keyring_delete(service: str, field_name: str) -> bool:
    """True when an entry was deleted, False when there was none."""
    kr = _keyring()
    from keyring.errors import PasswordDeleteError

    try:
        kr.delete_password(service, field_name)
        return True
    except PasswordDeleteError:
        return False
    except Exception as exc:
        raise KeyringUnavailable(f"the OS keyring failed ({type(exc).__name__})") from None


def _warn_keyring_once(reason: str) -> None:
    global _keyring_warned
    if not _keyring_warned:
        _keyring_warned = True
        log.warning("credentials: %s; using systemd credentials, the environment or a .env instead",
                    reason)


def reset_keyring_warning() -> None:
    global _keyring_warned
    _keyring_warned = False


# ----- the lookup -----------------------------------------------------------------------------
@dataclass
class Credentials:
    """What was found. repr and str never show a value."""

    values: dict[str, str] = field(default_factory=dict, repr=False)
    sources: dict[str, str] = field(default_factory=dict)    # field -> where it was found
    searched: list[str] = field(default_factory=list)        # every place looked at, in order

    def get(self, field_name: str) -> str | None:
        return self.values.get(field_name)

    @property
    def api_key(self) -> str | None:
        return self.get("api_key")

    @property
    def api_secret(self) -> str | None:
        return self.get("api_secret")

    @property
    def api_passphrase(self) -> str | None:
        return self.get("api_passphrase")

    @property
    def telegram_bot_token(self) -> str | None:
        return self.get("bot_token")

    @property
    def telegram_chat_id(self) -> str | None:
        return self.get("chat_id")

    @property
    def has_exchange_keys(self) -> bool:
        return bool(self.api_key and self.api_secret)

    @property
    def has_telegram(self) -> bool:
        return bool(self.telegram_bot_token and self.telegram_chat_id)

    def missing_message(self, fields: tuple[str, ...] = ("api_key", "api_secret")) -> str:
        missing = [f for f in fields if not self.get(f)]
        return (f"missing credentials: {', '.join(missing)}; looked in: {'; '.join(self.searched)}. "
                "Store them with `trading-agent keys set`, or set "
                + ", ".join(ENV_NAMES[f] for f in missing))

    def describe(self) -> list[str]:
        """One line per field: where it came from (never the value)."""
        return [f"{f}: {self.sources[f] if f in self.sources else 'not found'}" for f in ALL_FIELDS]


def env_file_for(config_path: Path | None) -> Path | None:
    return None if config_path is None else Path(config_path).resolve().parent / ".env"


def check_env_file_mode(path: Path) -> None:
    """Refuse a .env that group or others can read (or write)."""
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise CredentialError(f"{path} can be read by other users (mode {mode:04o}); it holds "
                              f"credentials, so it is not used. Run: chmod 600 {path}")


def load_credentials(*, exchange: str, account: str, config_path: Path | None = None,
                     env: Mapping[str, str] | None = None, use_keyring: bool = True,
                     fields: tuple[str, ...] = ALL_FIELDS) -> Credentials:
    """Look every field up in order (keyring, systemd, environment, .env). Raises
    CredentialError only for an unsafe .env that was needed."""
    env = os.environ if env is None else env
    creds = Credentials()
    wanted = [f for f in fields]

    def found(field_name: str, value: str | None, source: str) -> None:
        if field_name in creds.values or value is None or not value.strip():
            return
        value = value.strip()
        if field_name not in NOT_SECRET:
            register_secret(value)
        creds.values[field_name] = value
        creds.sources[field_name] = source

    if use_keyring:
        services = sorted({service_for(f, exchange, account) for f in wanted})
        creds.searched.append(f"OS keyring ({', '.join(services)})")
        try:
            for f in wanted:
                service = service_for(f, exchange, account)
                found(f, keyring_get(service, f), f"OS keyring {service}")
        except KeyringUnavailable as exc:
            creds.searched[-1] += " - unavailable"
            _warn_keyring_once(str(exc))

    cred_dir = env.get("CREDENTIALS_DIRECTORY")
    if cred_dir:
        creds.searched.append(f"systemd credentials in {cred_dir}")
        for f in wanted:
            path = Path(cred_dir) / ENV_NAMES[f]
            if f not in creds.values and path.is_file():
                found(f, path.read_text(encoding="utf-8"), f"systemd credential {ENV_NAMES[f]}")

    creds.searched.append("environment (" + ", ".join(ENV_NAMES[f] for f in wanted) + ")")
    for f in wanted:
        found(f, env.get(ENV_NAMES[f]), f"environment {ENV_NAMES[f]}")
        if f in LEGACY_ENV_NAMES:
            found(f, env.get(LEGACY_ENV_NAMES[f]), f"environment {LEGACY_ENV_NAMES[f]}")

    dotenv = env_file_for(config_path)
    if dotenv is not None:
        creds.searched.append(f".env file {dotenv}")
        if any(f not in creds.values for f in wanted) and dotenv.is_file():
            check_env_file_mode(dotenv)
            from dotenv import dotenv_values

            values = dotenv_values(dotenv)
            for f in wanted:
                found(f, values.get(ENV_NAMES[f]) or values.get(LEGACY_ENV_NAMES.get(f, "")),
                      f".env file {dotenv}")
    return creds


def load_for_config(config, config_path: Path | None, env: Mapping[str, str] | None = None,
                    account: str | None = None) -> Credentials:
    """The credentials a run with this config uses; logs where each one came from."""
    ex = config.exchange
    creds = load_credentials(exchange=ex.exchange_name, account=account or default_account(ex.testnet),
                             config_path=config_path, env=env)
    log.info("credentials: %s", "; ".join(creds.describe()))      # one line: where from, never values
    return creds
