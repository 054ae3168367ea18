"""Credentials: lookup order, unsafe .env refusal, no keyring backend, and the keys commands."""
from __future__ import annotations

import json
import logging
import os

import keyring
import pytest
from keyring.backends import fail

from agent import credentials as cr
from agent import keys_cli
from monitoring.redaction import forget_secrets, redact

from .conftest import DEFAULT_CONFIG
from .memkeyring import BrokenKeyring, MemoryKeyring

KEY, SECRET, TOKEN = "kKEYcanary0123456789", "sSECRETcanary9876543210", "123456:AAtokenCANARYabcdefghijklmnop"


@pytest.fixture
def mem():
    previous = keyring.get_keyring()
    backend = MemoryKeyring()
    keyring.set_keyring(backend)
    cr.reset_keyring_warning()
    yield backend
    keyring.set_keyring(previous)
    forget_secrets()


@pytest.fixture
def no_keyring():
    previous = keyring.get_keyring()
    keyring.set_keyring(fail.Keyring())
    cr.reset_keyring_warning()
    yield
    keyring.set_keyring(previous)
    forget_secrets()


def load(tmp_path, env, **kw):
    return cr.load_credentials(exchange="binance", account="live", config_path=tmp_path / "config.json",
                               env=env, **kw)


def test_keyring_wins_over_systemd_over_environment_over_dotenv(mem, tmp_path):
    mem.set_password("trading-agent/binance/live", "api_key", KEY)
    creddir = tmp_path / "creds"
    creddir.mkdir()
    (creddir / "EXCHANGE_API_SECRET").write_text(SECRET + "\n")
    (creddir / "EXCHANGE_API_KEY").write_text("systemdKEYnotused")
    env_file = tmp_path / ".env"
    env_file.write_text(f"EXCHANGE_API_PASSPHRASE=passDOTENV1\nEXCHANGE_API_SECRET=dotenvSECRETnotused\n"
                        f"TELEGRAM_CHAT_ID=4242\n")
    env_file.chmod(0o600)
    env = {"CREDENTIALS_DIRECTORY": str(creddir), "TELEGRAM_BOT_TOKEN": TOKEN,
           "EXCHANGE_API_SECRET": "envSECRETnotused"}
    creds = load(tmp_path, env)
    assert creds.api_key == KEY and creds.sources["api_key"] == "OS keyring trading-agent/binance/live"
    assert creds.api_secret == SECRET and creds.sources["api_secret"] == "systemd credential EXCHANGE_API_SECRET"
    assert creds.telegram_bot_token == TOKEN and creds.sources["bot_token"] == "environment TELEGRAM_BOT_TOKEN"
    assert creds.api_passphrase == "passDOTENV1" and creds.sources["api_passphrase"].startswith(".env file")
    assert creds.telegram_chat_id == "4242"
    assert creds.has_exchange_keys and creds.has_telegram
    # found values are registered with the redactor at once; repr never shows one
    assert KEY not in redact(f"key {KEY} secret {SECRET}") and SECRET not in redact(SECRET)
    assert KEY not in repr(creds) and SECRET not in repr(creds) and KEY not in str(creds.describe())


def test_a_dotenv_readable_by_others_is_refused_with_the_chmod(mem, tmp_path):
    env_file = tmp_path / ".env"
    env_file.write_text(f"EXCHANGE_API_KEY={KEY}\n")
    env_file.chmod(0o644)
    with pytest.raises(cr.CredentialError) as err:
        load(tmp_path, {})
    assert f"chmod 600 {env_file}" in str(err.value) and KEY not in str(err.value)
    env_file.chmod(0o600)
    assert load(tmp_path, {}).api_key == KEY


def test_no_keyring_backend_is_said_once_and_the_next_source_is_used(no_keyring, tmp_path, caplog):
    caplog.set_level(logging.WARNING)
    for _ in range(3):
        creds = load(tmp_path, {"EXCHANGE_API_KEY": KEY, "EXCHANGE_API_SECRET": SECRET})
        assert creds.api_key == KEY and creds.sources["api_key"] == "environment EXCHANGE_API_KEY"
    warnings = [r for r in caplog.records if "keyring" in r.getMessage()]
    assert len(warnings) == 1 and "no OS keyring backend" in warnings[0].getMessage()
    assert "unavailable" in creds.searched[0]


def test_a_failing_keyring_never_crashes_the_lookup(tmp_path):
    previous = keyring.get_keyring()
    keyring.set_keyring(BrokenKeyring())
    cr.reset_keyring_warning()
    try:
        creds = load(tmp_path, {"EXCHANGE_API_KEY": KEY})
        assert creds.api_key == KEY and creds.api_secret is None
        message = creds.missing_message()
        assert "api_secret" in message and "EXCHANGE_API_SECRET" in message and KEY not in message
        assert "OS keyring" in message and "environment" in message
    finally:
        keyring.set_keyring(previous)
        forget_secrets()


def test_legacy_environment_names_still_work(mem, tmp_path):
    assert load(tmp_path, {"TRADING_AGENT_API_KEY": KEY}).api_key == KEY


def test_mask_shows_only_the_last_four():
    assert cr.mask("abcdefghijkl") == "********ijkl"
    assert cr.mask(None) == "(not set)" and cr.mask("abc") == "***"


# ----- keys commands ------------------------------------------------------------------------------
def test_keys_set_show_delete(mem, tmp_path, monkeypatch, capsys):
    import io

    monkeypatch.setattr("sys.stdin", io.StringIO(f"{KEY}\n{SECRET}\n\n"))
    assert keys_cli.main(["set", "--exchange", "kraken", "--account", "main"]) == 0
    out = capsys.readouterr().out
    assert KEY not in out and SECRET not in out and KEY[-4:] in out
    assert mem.entries[("trading-agent/kraken/main", "api_key")] == KEY
    assert ("trading-agent/kraken/main", "api_passphrase") not in mem.entries
    assert keys_cli.main(["show", "--exchange", "kraken", "--account", "main"]) == 0
    out = capsys.readouterr().out
    assert KEY not in out and SECRET not in out
    assert f"api_key: ********{KEY[-4:]}" in out and "OS keyring trading-agent/kraken/main" in out
    assert "api_passphrase: (not set)" in out
    assert keys_cli.main(["delete", "--exchange", "kraken", "--account", "main"]) == 0
    assert mem.entries == {}
    assert "was not in" in capsys.readouterr().out


def test_keys_set_without_a_keyring_is_refused_with_the_alternatives(no_keyring, capsys):
    assert keys_cli.main(["set"]) == 3
    err = capsys.readouterr().err
    assert "no OS keyring backend" in err and "EXCHANGE_API_KEY" in err


def _config_with_keys(tmp_path, **exchange):
    raw = json.loads(DEFAULT_CONFIG.read_text())
    raw["exchange"].update(exchange)
    path = tmp_path / "config.json"
    path.write_text(json.dumps(raw, indent=2) + "\n")
    path.chmod(0o640)
    return path, raw


def test_keys_import_moves_real_keys_to_the_keyring_and_leaves_placeholders(mem, tmp_path, capsys):
    from agent.config import load_config

    path, raw = _config_with_keys(tmp_path, api_key=KEY, api_secret=SECRET, api_passphrase="pass-phrase-1",
                                  testnet=False)
    assert keys_cli.main(["import", str(path)]) == 0
    out = capsys.readouterr().out
    assert KEY not in out and SECRET not in out
    assert mem.entries[("trading-agent/binance/live", "api_key")] == KEY
    assert mem.entries[("trading-agent/binance/live", "api_secret")] == SECRET
    assert mem.entries[("trading-agent/binance/live", "api_passphrase")] == "pass-phrase-1"
    text = path.read_text()
    assert KEY not in text and SECRET not in text and "pass-phrase-1" not in text
    rewritten = json.loads(text)
    assert rewritten["exchange"]["api_key"] == "YOUR_API_KEY_HERE"
    assert rewritten["exchange"]["api_secret"] == "YOUR_API_SECRET_HERE"
    assert rewritten["exchange"]["api_passphrase"] is None
    assert list(rewritten) == list(raw) and rewritten["seller_params"] == raw["seller_params"]
    assert (path.stat().st_mode & 0o777) == 0o640
    assert [p.name for p in tmp_path.iterdir()] == ["config.json"]      # no temp file, no backup
    load_config(path)                                                    # now a valid config
    assert keys_cli.main(["import", str(path)]) == 0
    assert "nothing to import" in capsys.readouterr().out


def test_keys_import_without_a_keyring_leaves_the_file_untouched(no_keyring, tmp_path, capsys):
    path, _ = _config_with_keys(tmp_path, api_key=KEY, api_secret=SECRET)
    before = path.read_bytes()
    assert keys_cli.main(["import", str(path)]) == 3
    assert path.read_bytes() == before
    captured = capsys.readouterr()
    assert KEY not in captured.out + captured.err
